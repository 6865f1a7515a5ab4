"""The math and code task kinds end to end from the CLI, on micro models: GRPO with the math reward learns a
GSM8K-format file; the rest checks mechanics (an untrained model's rewards may well be 0), and evaluation's
metrics on both kinds."""

import json
import random

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


def _legs_file(path):
    """GSM8K-format rows ("reasoning\n#### n") whose answer follows from one word of the question."""
    rng = random.Random(0)
    legs = {"cat": 4, "bird": 2, "spider": 8, "fish": 0, "ant": 6, "snake": 0, "dog": 4, "hen": 2}
    with path.open("w") as f:
        for _ in range(600):
            name, (animal, count) = (
                rng.choice(["Tom", "Mia", "Sam", "Ana", "Leo", "Zoe"]),
                rng.choice(list(legs.items())),
            )
            question = f"{name} has a {animal}. How many legs does the {animal} have?"
            f.write(json.dumps({"question": question, "answer": f"A {animal} has {count} legs.\n#### {count}"}) + "\n")


def test_grpo_with_the_math_reward_raises_the_reward_on_a_gsm8k_format_file(tmp_path):
    _legs_file(tmp_path / "legs.jsonl")
    task = [f"run.output_dir={tmp_path}", "task.kind=file", f"task.train_path={tmp_path / 'legs.jsonl'}",
            "task.prompt_field=question", "task.match=math", 'task.template="Q: {question} A:"', "task.val_size=32",
            "task.test_size=32", "logging.progress=false"]  # fmt: skip
    # 40 SFT steps leave the model at about 20% sampled reward, with room for RL to sharpen it.
    _invoke("sft", "--name", "legs_sft", *_sets(*task, "model.preset=micro", "train.max_steps=40",
        "train.batch_size=32", "train.optim.lr=1e-2", "train.eval_every=20", "train.max_new_tokens=12"))  # fmt: skip
    _invoke("rl", "--model", str(tmp_path / "legs_sft" / "model"), "--name", "legs_rl", *_sets(*task,
        "task.reward=math", "rl.iterations=20", "rl.prompts_per_iteration=16", "rl.samples_per_prompt=8",
        "rl.max_new_tokens=12", "rl.optim.lr=3e-3", "rl.optim.warmup_steps=0", "rl.eval_every=20",
        "rl.eval_problems=32", "rl.minibatch_size=64"))  # fmt: skip
    records = [json.loads(line) for line in (tmp_path / "legs_rl" / "metrics.jsonl").read_text().splitlines()]
    rewards = [r["reward"] for r in records if r["stage"] == "rl" and "reward" in r]
    assert len(rewards) == 20 and sum(rewards[-4:]) / 4 > sum(rewards[:4]) / 4 + 0.2, rewards


@needs_sandbox
def test_rl_and_score_on_humaneval_with_the_sandbox_reward(tmp_path):
    model = _micro_model(tmp_path, TaskSection(kind="code"), 1000, 2048)
    code = [f"run.output_dir={tmp_path}", "task.kind=code", "logging.progress=false"]
    _invoke("rl", "--model", model, "--name", "code_rl", *_sets(*code, "rl.iterations=2",
        "rl.prompts_per_iteration=2", "rl.samples_per_prompt=2", "rl.max_new_tokens=8", "rl.eval_every=2",
        "rl.eval_problems=2"))  # fmt: skip
    records = [json.loads(line) for line in (tmp_path / "code_rl" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["stage"] == "rl" and "reward" in r] == [1, 2]
    _invoke("score", "--model", model, "--name", "code_score", *_sets(*code, "score.max_new_tokens=8",
        "score.baselines=[prompting]", "score.pair_sft.max_steps=2", "score.pair_sft.batch_size=4",
        "score.drafts_per_problem=1", "score.stage1_iterations=1", "score.stage2_iterations=1",
        "score.rl.prompts_per_iteration=2", "score.rl.samples_per_prompt=2", "score.eval.num_problems=4",
        "score.eval.scaling_budgets=[]"))  # fmt: skip
    summary = json.loads((tmp_path / "code_score" / "score.json").read_text())
    assert {"score", "prompting"} <= set(summary["models"]) and "Acc@t1" in (
        tmp_path / "code_score" / "report.md"
    ).read_text()


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
