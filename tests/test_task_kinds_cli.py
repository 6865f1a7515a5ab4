"""The math and code task kinds end to end from the CLI, on micro models (mechanics only: an
untrained model's rewards may well be 0), and evaluation's metrics on both kinds."""

import json

import pytest
import torch
from typer.testing import CliRunner

from redraft.cli import app
from redraft.config import EvalSection, ModelSection, TaskSection
from redraft.evaluation import evaluate as evaluate_module
from redraft.models import build_model, save_model
from redraft.rewards import isolation
from redraft.rollout.sampler import Generation
from redraft.tasks import build_task
from redraft.text.tokenizer import train_tokenizer

needs_sandbox = pytest.mark.skipif(
    isolation().level != "namespaces", reason=f"code tasks run programs in the sandbox: {isolation().reason}"
)


def _micro_model(tmp_path, task_cfg: TaskSection, vocab_size: int, max_positions: int):
    task = build_task(task_cfg)
    tokenizer = train_tokenizer(task.corpus(), vocab_size=vocab_size)
    torch.manual_seed(0)
    model = build_model(ModelSection(preset="micro", max_positions=max_positions), tokenizer)
    save_model(model, tokenizer, tmp_path / "model")
    return str(tmp_path / "model")


def _invoke(*args):
    out = CliRunner().invoke(app, list(args))
    assert out.exit_code == 0, out.output
    return out


def _sets(*pairs):
    return [x for pair in pairs for x in ("--set", pair)]


def test_rl_and_eval_on_the_math_task_with_the_math_reward(tmp_path):
    task = ["task.kind=math", "task.train_size=64", "task.val_size=4", "task.test_size=4"]
    model = _micro_model(tmp_path, TaskSection(kind="math", train_size=64, val_size=4, test_size=4), 300, 512)
    _invoke("rl", "--model", model, "--name", "math_rl", *_sets(
        f"run.output_dir={tmp_path}", *task, "task.reward=math", "rl.iterations=2", "rl.prompts_per_iteration=4",
        "rl.samples_per_prompt=2", "rl.max_new_tokens=8", "rl.eval_every=2", "rl.eval_problems=4",
        "logging.progress=false",
    ))  # fmt: skip
    run = tmp_path / "math_rl"
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if r["stage"] == "rl" and "reward" in r]
    assert [r["step"] for r in steps] == [1, 2] and all(0.0 <= r["reward"] <= 1.0 for r in steps)
    assert "val_accuracy" in steps[-1] and (run / "model" / "model.safetensors").is_file()
    out = _invoke("eval", "--model", model, "--name", "math_eval", *_sets(
        f"run.output_dir={tmp_path}", *task, "eval.k=2", "eval.max_new_tokens=8"))  # fmt: skip
    printed = json.loads(out.stdout)
    assert printed["num_problems"] == 4 and {"greedy_accuracy", "greedy_accuracy_ci95", "pass@1", "pass@2"} <= set(
        printed
    )


@needs_sandbox
def test_eval_on_humaneval_in_the_sandbox(tmp_path):
    model = _micro_model(tmp_path, TaskSection(kind="code"), 1000, 2048)
    out = _invoke("eval", "--model", model, "--name", "code_eval", *_sets(
        f"run.output_dir={tmp_path}", "task.kind=code", "eval.num_problems=4", "eval.k=2",
        "eval.max_new_tokens=8"))  # fmt: skip
    printed = json.loads(out.stdout)
    assert printed["num_problems"] == 4 and {"greedy_accuracy", "greedy_accuracy_ci95", "pass@1", "pass@2"} <= set(
        printed
    )
    saved = json.loads((tmp_path / "code_eval" / "eval.json").read_text())
    assert saved["num_problems"] == 4 and set(saved["pass_at_k"]) == {"1", "2"}
    rows = [json.loads(line) for line in (tmp_path / "code_eval" / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all("def " in row["prompt"] for row in rows)


def _reference_replies(monkeypatch, wrong_every: int):
    """Generation that answers with each problem's reference (every ``wrong_every``-th sample wrong)."""

    def generate(model, tokenizer, prompts, params=None, seed=None):
        texts = []
        for i, prompt in enumerate(prompts):
            target = REFERENCES[prompt]
            texts.append("    return None\n" if params.temperature > 0 and i % wrong_every == 0 else target)
        return Generation(texts=texts, finish_reasons=["eos"] * len(prompts))

    monkeypatch.setattr(evaluate_module, "generate", generate)


REFERENCES: dict[str, str] = {}


@pytest.mark.parametrize("kind", ["math", pytest.param("code", marks=needs_sandbox)])
def test_eval_reports_the_same_metrics_on_both_kinds(kind, monkeypatch):
    task = build_task(TaskSection(kind=kind, train_size=8, val_size=4, test_size=4))
    REFERENCES.clear()
    REFERENCES.update({task.prompt(ex): ex.target for ex in task.test})
    _reference_replies(monkeypatch, wrong_every=2)
    result = evaluate_module.evaluate(None, None, task, EvalSection(k=2, temperature=1.0, num_problems=4))
    assert result.num_problems == 4 and result.greedy_accuracy == 1.0 and result.greedy_accuracy_ci95 == 0.0
    assert result.sample_accuracy == 0.5 and result.pass_at_k == {1: 0.5, 2: 1.0}
    assert set(result.summary()) == {"greedy_accuracy", "greedy_accuracy_ci95", "pass@2", "pass@1"}
