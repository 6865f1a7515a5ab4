"""The `redraft` command line: each command loads a stage config and calls one function."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from redraft.errors import RedraftError
from redraft.feedback.cli import feedback_app
from redraft.rlhf.cli import dpo_app, rlhf, rm_app

app = typer.Typer(
    help="redraft: train language models with reinforcement learning — pretraining, SFT, RL (GRPO, RLOO, "
    "REINFORCE++, PPO) on verifiable rewards, evaluation and reports. Every command reads a YAML config "
    "(built-in defaults when --config is omitted) and accepts --set section.key=value overrides.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
config_app = typer.Typer(
    help="Inspect the configs: effective values, what each key means, the reference.", no_args_is_help=True
)
app.add_typer(config_app, name="config")
app.add_typer(feedback_app, name="feedback")
app.add_typer(rm_app, name="rm")
app.add_typer(dpo_app, name="dpo")
app.command("rlhf")(rlhf)
console = Console()

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML config file, merged over the built-in defaults.")
]


def _set_option(example: str):
    """The --set option, its help showing ``example``, a key of the command's own config (a test
    checks every example against the config of the command that shows it)."""
    return Annotated[
        list[str] | None,
        typer.Option(
            "--set", "-s", help=f"Override one key, e.g. --set {example} (repeatable; values parsed as YAML)."
        ),
    ]


SetOption = _set_option("rl.kl_coef=0.05")  # `config show`: a key of its default stage, run
RunSetOption = _set_option("sft.max_steps=200")
PretrainSetOption = _set_option("train.max_steps=200")
SFTSetOption = _set_option("train.max_steps=200")
RLSetOption = _set_option("rl.iterations=50")
ScoreSetOption = _set_option("score.stage1_iterations=30")
EvalSetOption = _set_option("eval.num_problems=100")
GenerateSetOption = _set_option("sampling.batch_size=64")
NameOption = Annotated[
    str | None,
    typer.Option(
        "--name",
        help="Run name (sets run.name; default: the command's name, main for `redraft run`): outputs go to "
        "<run.output_dir>/<name>/.",
    ),
]
ResumeOption = Annotated[bool, typer.Option("--resume", help="Continue an interrupted run from its last checkpoint.")]
OverwriteOption = Annotated[
    bool, typer.Option("--overwrite", help="Delete an existing run folder of the same name first.")
]


def _load(stage: str, config: Path | None, overrides: list[str] | None, name: str | None = None, **extra: str):
    """The stage's validated config. Commands call this before importing torch and the trainers
    (several seconds), so that a mistyped key or a missing file is reported at once."""
    from redraft.config import load_config

    sets = list(overrides or [])
    if name:
        sets.append(f"run.name={name}")
    sets += [f"{key}={value}" for key, value in extra.items() if value is not None]
    return load_config(stage, config, sets)


def _say(message: str) -> None:
    from redraft.training.logging import print_once

    print_once(console, message)


def _train_stage(runner, cfg, resume: bool, overwrite: bool) -> None:
    """Run one training stage on its own: outputs, config and metrics in <output_dir>/<name>/."""
    from redraft.run_folder import start_run_dir
    from redraft.training.logging import MetricsLog

    out = cfg.run.directory
    start_run_dir(out, cfg, resume, overwrite)
    result = runner(cfg, out, MetricsLog(out / "metrics.jsonl"), resume)
    _say(f"[green]done[/green]: model at {result['model_dir']}")


@app.command()
def run(
    config: ConfigOption = None,
    set_: RunSetOption = None,
    name: NameOption = None,
    resume: ResumeOption = False,
    overwrite: OverwriteOption = False,
) -> None:
    """The main job: tokenizer -> pretraining -> SFT -> RL -> evaluation -> report (runs/<name>/report.md).

    Example: redraft run --set rl.iterations=80 (outputs in runs/main/)
    """
    cfg = _load("run", config, set_, name)
    from redraft.pipeline import run_pipeline

    report = run_pipeline(cfg, resume=resume, overwrite=overwrite)
    _say(f"[green]done[/green]: report at {report}")
    for path in sorted((report.parent / "eval").glob("*/eval.json")):
        result = json.loads(path.read_text())
        _say(
            f"{path.parent.name}: greedy accuracy {100 * result['greedy_accuracy']:.1f}%, "
            f"pass@{result['k']} {100 * result['pass_at_k'][str(result['k'])]:.1f}%"
        )


@app.command()
def pretrain(
    config: ConfigOption = None,
    set_: PretrainSetOption = None,
    name: NameOption = None,
    resume: ResumeOption = False,
    overwrite: OverwriteOption = False,
) -> None:
    """Train a tokenizer (unless one is given) and pretrain a causal LM on the task corpus.

    Example: redraft pretrain --set model.preset=small --set train.max_steps=300 (outputs in runs/pretrain/)
    """
    cfg = _load("pretrain", config, set_, name)
    from redraft.pipeline import run_pretrain

    _train_stage(run_pretrain, cfg, resume, overwrite)


@app.command()
def sft(
    config: ConfigOption = None,
    set_: SFTSetOption = None,
    name: NameOption = None,
    model: Annotated[
        str | None, typer.Option(help="HF checkpoint folder or Hub id to fine-tune (sets model.path).")
    ] = None,
    resume: ResumeOption = False,
    overwrite: OverwriteOption = False,
) -> None:
    """Supervised fine-tuning with loss on completion tokens only (freezing and LoRA optional).

    Example: redraft sft --model runs/pretrain/model --set train.max_steps=200 (outputs in runs/sft/)
    """
    cfg = _load("sft", config, set_, name, **{"model.path": model})
    from redraft.pipeline import run_sft

    _train_stage(run_sft, cfg, resume, overwrite)


@app.command()
def rl(
    config: ConfigOption = None,
    set_: RLSetOption = None,
    name: NameOption = None,
    model: Annotated[
        str | None, typer.Option(help="HF checkpoint folder or Hub id of the starting policy (sets model.path).")
    ] = None,
    resume: ResumeOption = False,
    overwrite: OverwriteOption = False,
) -> None:
    """RL against the task's verifiable reward: rl.algorithm = grpo | rloo | reinforce_pp | ppo.

    Example: redraft rl --model runs/sft/model --set task.reward=math --set rl.iterations=50 (outputs in runs/rl/)
    """
    cfg = _load("rl", config, set_, name, **{"model.path": model})
    from redraft.pipeline import run_rl

    _train_stage(run_rl, cfg, resume, overwrite)


@app.command()
def score(
    config: ConfigOption = None,
    set_: ScoreSetOption = None,
    name: NameOption = None,
    model: Annotated[
        str | None, typer.Option(help="Single-attempt SFT checkpoint to start from (sets model.path).")
    ] = None,
    resume: ResumeOption = False,
    overwrite: OverwriteOption = False,
) -> None:
    """SCoRe self-correction: Pair-SFT on the model's own drafts -> Stage I -> Stage II, plus the baselines
    (prompting, Pair-SFT, STaR, single-turn RL, naive multi-turn RL, single-attempt control); writes report.md.

    Example: redraft score --model runs/sft/model --set score.stage1_iterations=30 (outputs in runs/score/)
    """
    cfg = _load("score", config, set_, name, **{"model.path": model})
    from redraft.distributed import on_main_process
    from redraft.run_folder import start_run_dir
    from redraft.score import run_score, score_report
    from redraft.training.logging import MetricsLog

    out = cfg.run.directory
    start_run_dir(out, cfg, resume, overwrite)
    log = MetricsLog(out / "metrics.jsonl")
    summary = run_score(cfg, out, log, resume)
    report = out / "report.md"
    on_main_process(lambda: report.write_text(
        f"# redraft score run `{cfg.run.name}`\n\n" + score_report(summary, log.read(), out, heading="## Results")
    ))  # fmt: skip
    _say(f"[green]done[/green]: report at {report}")


@app.command("score-seeds")
def score_seeds(
    runs: Annotated[
        list[Path], typer.Argument(help="Folders of `redraft score` runs (or main jobs' score/ folders), one per seed.")
    ],
    split: Annotated[str, typer.Option(help="Which evaluation to summarise: test, test_sampled_t1 or val.")] = "test",
    out: Annotated[Path | None, typer.Option(help="Also write the table to this Markdown file.")] = None,
) -> None:
    """Mean ± sd over seeds of every method's self-correction metrics, and each seed's Δ with its CI."""
    from redraft.score import seeds_table

    summaries = {}
    for run in runs:
        path = run / "score.json"
        if not path.is_file():
            raise RedraftError(f"{path}: not found (is {run} a finished `redraft score` run?)")
        summaries[str(run)] = json.loads(path.read_text())
    table = seeds_table(summaries, split)
    if out is not None:
        out.write_text(table)
    typer.echo(table)


@app.command("eval")
def eval_(
    config: ConfigOption = None,
    set_: EvalSetOption = None,
    name: NameOption = None,
    model: Annotated[
        str | None, typer.Option(help="HF checkpoint folder or Hub id to evaluate (sets model.path).")
    ] = None,
    self_correct: Annotated[
        bool,
        typer.Option(
            "--self-correct",
            help="Two-attempt self-correction metrics instead "
            "(Acc@t1, Acc@t2, Δ, Δ^{i→c}, Δ^{c→i}); writes self_correction.json.",
        ),
    ] = False,
    first_temperature: Annotated[
        float | None,
        typer.Option(
            help="Self-correction: attempt-1 temperature (0 = greedy, the headline; later attempts are greedy)."
        ),
    ] = None,
) -> None:
    """Greedy accuracy and pass@k on the task's test split; writes eval.json and samples.jsonl.

    Example: redraft eval --model runs/rl/model --set eval.num_problems=100 (outputs in runs/eval/)
    """
    cfg = _load(
        "eval",
        config,
        set_,
        name,
        **{
            "model.path": model,
            "eval.self_correct": "true" if self_correct else None,
            "eval.first_temperature": first_temperature,
        },
    )
    from redraft.pipeline import run_eval

    if cfg.eval.self_correct:
        from redraft.evaluation.self_correction import run_self_correction_eval

        result = run_self_correction_eval(cfg, cfg.run.directory)
        console.print_json(json.dumps({"model": cfg.model.path, **result.summary()}))
        return
    result = run_eval(cfg, cfg.run.directory)
    console.print_json(json.dumps({"model": cfg.model.path, **result.summary(), "num_problems": result.num_problems}))


@app.command()
def generate(
    model: Annotated[str, typer.Option(help="HF checkpoint folder, or a Hub id in the local HF cache.")],
    prompt: Annotated[list[str] | None, typer.Option("--prompt", "-p", help="A prompt (repeatable).")] = None,
    prompts_file: Annotated[Path | None, typer.Option(help="A text file with one prompt per line.")] = None,
    config: ConfigOption = None,
    set_: GenerateSetOption = None,
    temperature: Annotated[float | None, typer.Option(help="0 = greedy.")] = None,
    top_p: Annotated[float | None, typer.Option()] = None,
    top_k: Annotated[int | None, typer.Option()] = None,
    max_new_tokens: Annotated[int | None, typer.Option()] = None,
    stop: Annotated[list[str] | None, typer.Option(help="Stop string (repeatable).")] = None,
    seed: Annotated[int | None, typer.Option(help="Sampling seed.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines with token ids and log-probs.")] = False,
) -> None:
    """Sample completions for prompts (batched, KV cache, temperature/top-p/top-k, stop strings).

    Example: redraft generate --model runs/rl/model -p "012+034=" --temperature 1 --seed 0
    """
    from redraft.models import load_model
    from redraft.rollout.sampler import generate as sample
    from redraft.text.tokenizer import load_tokenizer

    prompts = list(prompt or [])
    if prompts_file is not None:
        if not prompts_file.is_file():
            raise RedraftError(f"prompts file not found: {prompts_file}")
        prompts += [line for line in prompts_file.read_text().splitlines() if line.strip()]
    if not prompts:
        raise RedraftError("give at least one --prompt or a --prompts-file")
    sets = list(set_ or [])
    if stop:
        sets.append(f"sampling.stop={json.dumps(stop)}")
    cfg = _load(
        "generate",
        config,
        sets,
        **{
            "sampling.temperature": temperature,
            "sampling.top_p": top_p,
            "sampling.top_k": top_k,
            "sampling.max_new_tokens": max_new_tokens,
        },
    )
    out = sample(load_model(model), load_tokenizer(model), prompts, cfg.sampling, seed=seed)
    for i, text in enumerate(out.texts):
        if as_json:
            row = {
                "prompt": prompts[i],
                "completion": text,
                "token_ids": out.token_ids[i],
                "logprobs": out.logprobs[i],
                "finish_reason": out.finish_reasons[i],
            }
            print(json.dumps(row))
        else:
            print(f"{prompts[i]}{text}")


# `config show NAME` and the config reference: NAME -> (the command that reads the config, what it does).
CONFIGS: dict[str, tuple[str, str]] = {
    "run": (
        "redraft run",
        "The main job: tokenizer -> pretraining -> SFT -> RL -> evaluation -> SCoRe -> report. "
        "Its defaults are the code's with src/redraft/configs/run.yaml over them.",
    ),
    "pretrain": (
        "redraft pretrain",
        "Train a tokenizer (unless one is given) and pretrain a causal LM on the task corpus.",
    ),
    "sft": ("redraft sft", "Supervised fine-tuning of model.path, loss on completion tokens only."),
    "rl": ("redraft rl", "RL of model.path against the task's reward (GRPO, RLOO, REINFORCE++, PPO)."),
    "score": (
        "redraft score",
        "SCoRe self-correction (Pair-SFT -> Stage I -> Stage II) and its baselines, from "
        "the single-attempt SFT model model.path.",
    ),
    "eval": (
        "redraft eval",
        "Greedy accuracy and pass@k of model.path (or, with --self-correct, its self-correction metrics).",
    ),
    "generate": ("redraft generate", "Sample completions of --model for prompts."),
    "rm": ("redraft rm train", "A Bradley–Terry reward model from preference pairs."),
    "dpo": ("redraft dpo train", "DPO of model.path on preference pairs."),
    "rlhf": ("redraft rlhf", "Rounds of sample -> collect preferences -> reward model + PPO, or DPO -> evaluate."),
    "feedback": ("redraft feedback", "The feedback store, its queue, the labelling web app and `feedback sample`."),
}


def load_named_config(name: str, config: Path | None = None, overrides: list[str] | None = None):
    """The validated config that the command ``CONFIGS[name]`` reads (defaults <- YAML <- overrides)."""
    from redraft.config import STAGES, load_config
    from redraft.errors import ConfigError

    if name in STAGES:
        return load_config(name, config, overrides)
    if name == "feedback":
        from redraft.feedback.config import load_feedback_config

        return load_feedback_config(config, overrides)
    from redraft.rlhf.config import DPOConfig, RewardModelConfig, RLHFConfig, load_rlhf_config

    classes = {"rm": RewardModelConfig, "dpo": DPOConfig, "rlhf": RLHFConfig}
    if name not in classes:
        raise ConfigError(f"unknown stage {name!r}; expected one of {sorted(CONFIGS)}")
    return load_rlhf_config(classes[name], config, overrides)


def config_reference() -> str:
    """docs/config-reference.md: every command's config with its defaults and descriptions."""
    from redraft.config_docs import render_reference

    preamble = (
        "Generated from the config classes by `redraft config reference --output docs/config-reference.md`; "
        "do not edit it by hand (a test checks that it matches the code).\n\n"
        "Every command reads one config: its defaults (below) <- the YAML file of `--config` <- each "
        "`--set key=value` (the value parsed as YAML). Both merge key by key, so setting one key of a section "
        "keeps the section's other defaults. The default column is what a command uses with neither; "
        "`redraft config show NAME --explain` prints the same for your own config and overrides, as YAML "
        "with each key's description above it."
    )
    commands = [
        (command, f"{summary} Shown by `redraft config show {name}`.", load_named_config(name))
        for name, (command, summary) in CONFIGS.items()
    ]
    return render_reference(commands, preamble)


@config_app.command("show")
def config_show(
    stage: Annotated[str, typer.Argument(help=" | ".join(CONFIGS) + " (the command whose config is shown)")] = "run",
    config: ConfigOption = None,
    set_: SetOption = None,
    explain: Annotated[
        bool, typer.Option("--explain", help="Put each key's description above it, as a YAML comment.")
    ] = False,
) -> None:
    """Print the full effective config of a stage as YAML (--explain: with each key's description).

    Example: redraft config show dpo --explain --set dpo.beta=0.2
    """
    import yaml

    cfg = load_named_config(stage, config, set_)
    if explain:
        from redraft.config_docs import explain_config

        print(explain_config(cfg), end="")
        return
    print(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), end="")


@config_app.command("reference")
def config_reference_command(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the Markdown to this file instead of printing it.")
    ] = None,
) -> None:
    """Print the config reference (every command's keys, defaults and descriptions) as Markdown."""
    text = config_reference()
    if output is None:
        print(text, end="")
        return
    output.write_text(text, encoding="utf-8")
    _say(f"wrote {output}")


def _quiet_libraries() -> None:
    """Keep library chatter (per-save progress bars, tied-weight notices) out of our output."""
    import logging

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    logging.getLogger("accelerate").setLevel(logging.ERROR)


INTERRUPTED = 130  # the shell's code for a process ended by SIGINT


def _print_interrupted() -> None:
    Console(stderr=True).print("interrupted; rerun the same command with --resume to continue from the last checkpoint")


def main() -> None:
    _quiet_libraries()
    try:
        app()
    except SystemExit as exit_:
        if exit_.code in (0, None) and "torch.distributed" in sys.modules:  # typer exits so on success too
            from redraft.distributed import end_processes

            end_processes()
        if exit_.code == INTERRUPTED:  # typer turns Ctrl-C into this exit before our handler below sees it
            _print_interrupted()
        raise
    except RedraftError as exc:
        from rich.markup import escape

        # escaped: a message's own brackets (pip install 'redraft[wandb]') are text, not markup
        Console(stderr=True).print(f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        _print_interrupted()
        sys.exit(INTERRUPTED)
