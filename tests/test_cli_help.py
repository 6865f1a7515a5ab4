"""The CLI's own words are true: every example its --help shows parses and names keys of that
command's config, `config show` covers every command, errors say how to fix them, a stage run on its
own is named after its command, and small datasets, doubled '=' and task-less DPO are handled."""

from __future__ import annotations

import json
import re
import shlex

import pytest
import typer
from typer.testing import CliRunner

import redraft.cli as cli
from redraft.cli import CONFIGS, app, load_named_config
from redraft.config import TaskSection, load_config
from redraft.errors import ConfigError, RedraftError
from redraft.tasks import build_task
from redraft.training.logging import epochs_warning

ROOT = typer.main.get_command(app)
EXAMPLE = re.compile(r"Example: (redraft .*?)(?: \(outputs in [^)]*\))?$", re.MULTILINE)
SET_IN_TEXT = re.compile(r"--set '?([a-z_][\w.]*=[^\s')]+)")


def is_group(command) -> bool:
    return hasattr(command, "commands")  # typer's click groups (typer ships its own click)


def leaf_commands(group=ROOT, path: tuple[str, ...] = ()):
    """(path, click command) of every command that runs something: ('sft',), ('rm', 'train'), ..."""
    for name, command in group.commands.items():
        if is_group(command):
            yield from leaf_commands(command, path + (name,))
        else:
            yield path + (name,), command


LEAVES = dict(leaf_commands())


def config_names(path: tuple[str, ...]) -> list[str]:
    """The configs a command reads (`config show` shows any of them; `config reference` and
    `score-seeds` read none)."""
    if path == ("config", "show"):
        return list(CONFIGS)
    return [path[0]] if path[0] in CONFIGS else []


def help_texts(command) -> list[str]:
    return [command.help or ""] + [getattr(param, "help", None) or "" for param in command.params]


def resolve(argv: list[str]):
    """The command an example's argv names, and the arguments left for it."""
    command, path, rest = ROOT, (), list(argv)
    while is_group(command):
        assert rest and rest[0] in command.commands, f"no command {' '.join(path + tuple(rest[:1]))!r}"
        command, path, rest = command.commands[rest[0]], path + (rest[0],), rest[1:]
    return path, command, rest


def test_every_command_example_in_the_help_parses_and_uses_keys_of_its_config():
    shown = set()
    for path, command in LEAVES.items():
        for text in help_texts(command):
            for example in EXAMPLE.findall(text):
                argv = shlex.split(example)
                assert argv[0] == "redraft"
                example_path, example_command, rest = resolve(argv[1:])
                ctx = example_command.make_context(" ".join(example_path), rest)  # unknown options fail here
                sets = list(ctx.params.get("set_") or [])
                names = [ctx.params["stage"]] if example_path == ("config", "show") else config_names(example_path)
                for name in names:
                    load_named_config(name, None, sets)  # unknown keys and bad values raise ConfigError
                shown.add(path)
    # every command that trains, evaluates or samples shows one
    assert shown >= {
        ("run",),
        ("pretrain",),
        ("sft",),
        ("rl",),
        ("score",),
        ("eval",),
        ("generate",),
        ("rm", "train"),
        ("dpo", "train"),
        ("rlhf",),
        ("config", "show"),
    }


@pytest.mark.parametrize("path", sorted(p for p in LEAVES if config_names(p)), ids=" ".join)
def test_every_set_example_is_a_key_of_the_commands_config(path):
    # the option's own example (the command examples are checked above, each against the config it names)
    assignments = [a for text in help_texts(LEAVES[path]) for a in SET_IN_TEXT.findall(EXAMPLE.sub("", text))]
    assert assignments, f"redraft {' '.join(path)}: no --set example in its help"
    stage = next((param.default for param in LEAVES[path].params if param.name == "stage"), None)
    for assignment in assignments:
        for name in [stage] if stage else config_names(path):  # `config show`: its default stage
            load_named_config(name, None, [assignment.rstrip(".,;")])


def test_known_wrong_examples_are_gone():
    runner = CliRunner()
    sft = runner.invoke(app, ["sft", "--help"], terminal_width=200)
    assert "sft.max_steps" not in sft.output and "train.max_steps=200" in sft.output
    rm = runner.invoke(app, ["rm", "train", "--help"], terminal_width=200)
    assert "dpo.beta" not in rm.output and "reward_model." in rm.output


def test_config_show_covers_every_command_that_reads_a_config():
    for path, command in LEAVES.items():
        if path != ("config", "show") and any(param.name == "config" for param in command.params):
            names = config_names(path)
            assert names, f"redraft {' '.join(path)} reads a config that `config show` does not know"
            assert CONFIGS[names[0]][0] in (f"redraft {' '.join(path)}", f"redraft {path[0]}")
    runner = CliRunner()
    for name in CONFIGS:
        out = runner.invoke(app, ["config", "show", name])
        assert out.exit_code == 0, out.output


def test_a_yaml_quoting_error_suggests_the_quoted_override():
    with pytest.raises(ConfigError, match=re.escape("""--set 'task.template="{question}"'""")):
        load_config("sft", None, ["task.template={question}"])
    assert (
        load_config("sft", None, ['task.template="{question}"']).task.template == "{question}"
    )  # the suggestion works
    with pytest.raises(ConfigError, match=re.escape("""--set 'run.name="123"'""")):
        load_config("sft", None, ["run.name=123"])
    with pytest.raises(ConfigError) as error:  # not a quoting problem: no hint
        load_config("sft", None, ["train.max_steps=-1"])
    assert "quote" not in str(error.value)


def test_a_yaml_file_read_as_a_mapping_says_to_quote(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("task:\n  template: {question}\n")
    with pytest.raises(ConfigError, match="YAML read the value as a mapping: quote it"):
        load_config("sft", path)


def test_a_stage_run_on_its_own_is_named_after_its_command():
    names = {name: load_named_config(name).run.name for name in CONFIGS if name != "feedback"}
    assert names == {
        "run": "main",
        "pretrain": "pretrain",
        "sft": "sft",
        "rl": "rl",
        "score": "score",
        "eval": "eval",
        "generate": "generate",
        "rm": "reward_model",
        "dpo": "dpo",
        "rlhf": "rlhf",
    }
    assert load_config("sft", None, ["run.name=mine"]).run.directory.name == "mine"


def test_error_messages_keep_their_brackets(monkeypatch, capsys):
    def fail():
        raise RedraftError("logging.wandb needs the wandb package: pip install 'redraft[wandb]'")

    monkeypatch.setattr(cli, "app", fail)
    monkeypatch.setattr(cli, "_quiet_libraries", lambda: None)
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    assert exit_.value.code == 2 and "pip install 'redraft[wandb]'" in capsys.readouterr().err


def _write_rows(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def test_prompts_ending_in_equals_warn_about_the_default_template(tmp_path, capsys):
    path = _write_rows(tmp_path / "t.jsonl", [{"prompt": f"{i}+1=", "answer": str(i + 1)} for i in range(60)])
    task = build_task(TaskSection(kind="file", train_path=path))
    err = capsys.readouterr().err
    assert "60 of the 60 prompts" in err and "already end in '='" in err and """task.template="{question}\"""" in err
    assert task.prompt(task.test[0]).endswith("==")  # what the warning is about
    build_task(TaskSection(kind="file", train_path=path, template="{question}"))
    assert "already end in" not in capsys.readouterr().err
    plain = _write_rows(tmp_path / "p.jsonl", [{"prompt": f"{i}+1", "answer": str(i + 1)} for i in range(60)])
    build_task(TaskSection(kind="file", train_path=plain))
    assert "already end in" not in capsys.readouterr().err


def test_epochs_warning_names_the_epochs_and_the_key():
    message = epochs_warning("sft", 500, 500, 64, "examples", "train.max_steps")
    assert message == (
        "sft: 500 steps × 64 examples per step is 64 epochs over the 500 training examples; "
        "set train.max_steps=23 for about 3 epochs"
    )
    rl = epochs_warning("rl", 100, 100, 64, "prompts", "rl.iterations", generated=True, unit="iterations")
    assert rl == (
        "rl: 100 iterations × 64 prompts per iteration is 64 epochs over the 100 training prompts; "
        "set rl.iterations=5 for about 3 epochs or raise task.train_size"
    )
    assert epochs_warning("sft", 20_000, 600, 128, "examples", "sft.max_steps") is None  # the main job: 3.8 epochs
    assert epochs_warning("dpo", 0, 600, 64, "pairs", "dpo.train.max_steps") is None


def test_sft_on_a_small_file_warns_from_the_cli(tmp_path, micro_model, tokenizer):
    from redraft.models import save_model

    save_model(micro_model, tokenizer, tmp_path / "model")
    path = _write_rows(tmp_path / "t.jsonl", [{"prompt": f"{i}+1", "answer": str(i + 1)} for i in range(40)])
    out = CliRunner().invoke(app, ["sft", "--model", str(tmp_path / "model"), *[x for s in (
        f"run.output_dir={tmp_path}", "task.kind=file", f"task.train_path={path}", "train.max_steps=20",
        "train.batch_size=16", "train.eval_every=20", "train.save_every=20", "train.eval_accuracy_problems=0",
        "logging.progress=false") for x in ("--set", s)]])  # fmt: skip
    assert out.exit_code == 0, out.output
    assert re.search(
        r"warning: sft: 20 steps × 16 examples per step is \d+ epochs over the \d+ training examples; "
        r"set train.max_steps=\d+ for about 3 epochs",
        out.output,
    )
    assert (tmp_path / "sft" / "model").is_dir()  # named after the command, not runs/main


def test_dpo_without_a_task_keeps_the_policy_by_held_out_preference_accuracy(tmp_path, micro_model, tokenizer):
    from redraft.models import save_model

    save_model(micro_model, tokenizer, tmp_path / "model")
    pairs = _write_rows(tmp_path / "pairs.jsonl", [
        {"prompt": f"Q{i}:", "chosen": f" yes {i}", "rejected": f" no {i}"} for i in range(40)])  # fmt: skip
    cfg = load_named_config("dpo")
    assert cfg.task is None and cfg.dpo.select_by == "auto"
    with pytest.raises(ConfigError, match="select_by=accuracy needs a task"):
        load_named_config("dpo", None, ["dpo.select_by=accuracy"])
    assert load_named_config("dpo", None, ["dpo.select_by=accuracy", "task.kind=arithmetic"]).task.kind == "arithmetic"
    out = CliRunner().invoke(app, ["dpo", "train", "--model", str(tmp_path / "model"), "--pairs", pairs, *[x for s in (
        f"run.output_dir={tmp_path}", "dpo.train.max_steps=2", "dpo.train.batch_size=8", "dpo.train.eval_every=1",
        "dpo.train.save_every=2", "logging.progress=false") for x in ("--set", s)]])  # fmt: skip
    assert out.exit_code == 0, out.output
    result = json.loads((tmp_path / "dpo" / "result.json").read_text())
    assert result["monitor"] == "val_reward_accuracy"
    evals = [json.loads(line) for line in (tmp_path / "dpo" / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in evals if "val_loss" in r]
    assert evals and not any("val_accuracy" in r for r in evals)  # no accuracy the pairs do not define
    assert "warning: dpo: 2 steps × 8 pairs per step" not in out.output  # 16 pair-steps over 36 pairs: no warning
