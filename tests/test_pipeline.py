"""End-to-end: the main job on a micro config, through the real CLI entry point."""

import json
import signal
import subprocess
import sys
import time

import pytest
from PIL import Image
from transformers import AutoModelForCausalLM

MICRO = [
    # Clean demonstrations keep the micro run about mechanics (teacher slips: tests/tasks).
    "--set",
    "task.train_size=600",
    "--set",
    "task.val_size=32",
    "--set",
    "task.test_size=48",
    "--set",
    "task.max_digits=2",
    "--set",
    "task.teacher_slip_rate=0",
    "--set",
    "tokenizer.vocab_size=270",
    "--set",
    "model.preset=micro",
    "--set",
    "pretrain.max_steps=30",
    "--set",
    "pretrain.eval_every=15",
    "--set",
    "pretrain.save_every=15",
    "--set",
    "sft.max_steps=20",
    "--set",
    "sft.eval_every=10",
    "--set",
    "sft.save_every=10",
    "--set",
    "sft.eval_accuracy_problems=16",
    "--set",
    "eval.k=4",
    "--set",
    "logging.progress=false",
    "--set",
    "rl.iterations=3",
    "--set",
    "rl.prompts_per_iteration=8",
    "--set",
    "rl.samples_per_prompt=4",
    "--set",
    "rl.max_new_tokens=4",
    "--set",
    "rl.eval_every=2",
    "--set",
    "rl.eval_problems=16",
    # SCoRe and its baselines, a couple of steps each
    "--set",
    "score.pair_sft.max_steps=3",
    "--set",
    "score.pair_sft.batch_size=16",
    "--set",
    "score.stage1_iterations=2",
    "--set",
    "score.stage2_iterations=2",
    "--set",
    "score.rl.prompts_per_iteration=4",
    "--set",
    "score.rl.samples_per_prompt=2",
    "--set",
    "score.max_new_tokens=3",
    "--set",
    "score.star_problems=64",
    "--set",
    "score.star_iterations=1",
    "--set",
    "score.star.max_steps=2",
    "--set",
    "score.star.batch_size=2",
    "--set",
    "score.eval.num_problems=16",
    "--set",
    "score.eval.scaling_budgets=[2,4]",
    "--set",
    "score.eval.sampled_first_attempt=true",
]


def redraft(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "redraft", *args], capture_output=True, text=True, cwd=cwd, timeout=600
    )


@pytest.fixture(scope="module")
def micro_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    result = redraft("run", "--name", "micro", *MICRO, cwd=root)
    assert result.returncode == 0, result.stderr
    return root / "runs" / "micro"


def test_main_job_writes_a_complete_run_folder(micro_run):
    for name in [
        "config.yaml",
        "metrics.jsonl",
        "report.md",
        "loss.png",
        "accuracy.png",
        "rl.png",
        "timing.json",
        "pretrain/tokenizer/tokenizer.json",
        "pretrain/model/model.safetensors",
        "sft/model/model.safetensors",
        "rl/model/model.safetensors",
        "eval/sft/eval.json",
        "eval/sft/samples.jsonl",
        "eval/rl/eval.json",
        "sft_same_time/model/model.safetensors",
        "eval/sft_same_time/eval.json",
    ]:
        assert (micro_run / name).is_file(), name
    for plot in ("loss.png", "accuracy.png", "rl.png"):
        assert Image.open(micro_run / plot).size[0] > 300
    records = [json.loads(line) for line in (micro_run / "metrics.jsonl").read_text().splitlines()]
    assert {
        "pretrain",
        "sft",
        "rl",
        "pair_sft",
        "score_stage1",
        "score_stage2",
        "single_turn_rl",
        "multiturn_rl",
        "control",
    } <= {r["stage"] for r in records}
    assert [r["step"] for r in records if r["stage"] == "rl"] == [1, 2, 3]
    result = json.loads((micro_run / "eval" / "sft" / "eval.json").read_text())
    assert result["num_problems"] == 48 and set(result["pass_at_k"]) == {"1", "2", "4"}
    report = (micro_run / "report.md").read_text()
    assert "greedy accuracy" in report and "pass@4" in report and "![loss.png](loss.png)" in report
    assert "| sft |" in report and "| rl |" in report and "| sft_same_time |" in report
    assert "## What each stage added" in report and "| RL over SFT continued for the same wall-clock |" in report
    # The equal-cost SFT control trains for at least the RL stage's wall-clock, then stops.
    rl_seconds = json.loads((micro_run / "rl" / "result.json").read_text())["seconds"]
    control = json.loads((micro_run / "sft_same_time" / "result.json").read_text())
    assert control["seconds"] >= rl_seconds and control["steps"] >= 1
    assert AutoModelForCausalLM.from_pretrained(str(micro_run / "sft" / "model")).config.num_hidden_layers == 1


def test_main_job_without_pretraining_on_scarce_demonstrations(tmp_path):
    """pretrain.max_steps=0 trains only the tokenizer; SFT sees task.demonstrations problems, RL all prompts."""
    result = redraft(
        "run",
        "--name",
        "scarce",
        *MICRO,
        "--set",
        "pretrain.max_steps=0",
        "--set",
        "task.demonstrations=200",
        "--set",
        "score.enabled=false",
        "--set",
        "sft_same_time=false",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    run = tmp_path / "runs" / "scarce"
    assert (run / "tokenizer" / "tokenizer.json").is_file() and not (run / "pretrain").exists()
    assert not (run / "sft_same_time").exists()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert "pretrain" not in {r["stage"] for r in records}
    report = (run / "report.md").read_text()
    assert "| RL over SFT |" in report and "pretrain" not in report.split("## Stages")[1].split("## Evaluation")[0]


def test_main_job_ends_with_the_self_correction_table(micro_run):
    summary = json.loads((micro_run / "score" / "score.json").read_text())
    methods = ["prompting", "pair_sft", "star", "single_turn_rl", "multiturn_rl", "control", "score"]
    assert list(summary["evaluations"]) == methods
    for method in methods:
        test = summary["evaluations"][method]["test"]
        assert test["num_problems"] == 16
        m = test["metrics"]
        assert abs(m["delta"] - (m["delta_i2c"] - m["delta_c2i"])) < 1e-9
    assert summary["evaluations"]["score"]["scaling"]["budgets"] == [2, 4]
    # Attempt 1 sampled is measured for the two-attempt methods only (the control's would be pass@1).
    assert summary["evaluations"]["control"]["test_sampled_t1"] is None
    assert summary["evaluations"]["score"]["test_sampled_t1"]["first_temperature"] == 1.0
    # The control continues the RL stage's model until its single-turn RL time reaches SCoRe's wall-clock (it
    # stops after the iteration that reaches it).
    control, rl = summary["stages"]["control"], json.loads((micro_run / "rl" / "result.json").read_text())
    assert control["starts_from"] == rl["model_dir"]
    assert control["single_attempt_seconds"] == pytest.approx(rl["seconds"] + control["seconds"])
    assert control["single_attempt_seconds"] >= summary["score_pipeline_seconds"]
    for name in ("pair_sft", "stage1", "stage2", "star", "single_turn_rl", "multiturn_rl", "control"):
        assert (micro_run / "score" / name / "result.json").is_file()
    report = (micro_run / "report.md").read_text()
    assert "## Self-correction (SCoRe)" in report and "| score |" in report and "| multiturn_rl |" in report
    assert "(paper)" in report and "![self_correction.png](self_correction.png)" in report
    assert Image.open(micro_run / "self_correction.png").size[0] > 300
    assert (micro_run / "inference_scaling.png").is_file()


def test_score_command_on_the_sft_model(micro_run):
    root = micro_run.parent.parent
    model = str(micro_run / "sft" / "model")
    args = [a for a in MICRO if a.startswith(("task.", "score.", "logging."))]
    sets = [x for a in args for x in ("--set", a)]
    # The validation table covers the whole val split, however large (here more than the default 256).
    sets += ["--set", "task.val_size=300", "--set", "score.baselines=[prompting]"]
    sets += ["--set", "score.wrong_draft_share=0.5", "--set", "score.pair_sft.eval_accuracy_problems=8"]
    # A micro model gets few drafts right, so rebalancing to half wrong leaves few rows: a batch of 2.
    sets += ["--set", "score.pair_sft_anchor=1.0", "--set", "score.pair_sft.batch_size=2"]
    sets += ["--set", "score.eval.sampled_first_attempt=false"]
    out = redraft("score", "--model", model, "--name", "sc", *sets, cwd=root)
    assert out.returncode == 0, out.stderr
    summary = json.loads((root / "runs" / "sc" / "score.json").read_text())
    pair_sft = json.loads((root / "runs" / "sc" / "pair_sft" / "result.json").read_text())
    assert 0.0 <= pair_sft["draft_wrong_share"] <= 1.0 and pair_sft["train_rows"] > 0
    # Pair-SFT checks self-correction on 8 validation problems at each validation step.
    records = [json.loads(line) for line in (root / "runs" / "sc" / "metrics.jsonl").read_text().splitlines()]
    # With the anchor on attempt 1, each logged training step carries its KL to the SFT model.
    steps = [r for r in records if r["stage"] == "pair_sft" and "loss" in r]
    assert steps and all(r["anchor_kl"] >= 0 for r in steps)
    checks = [r for r in records if r["stage"] == "pair_sft" and "val_loss" in r]
    assert checks and all("val_acc_t1" in r for r in checks)
    for r in checks:
        assert r["val_delta"] == pytest.approx(r["val_acc_t2"] - r["val_acc_t1"])
        assert r["val_delta"] == pytest.approx(r["val_delta_i2c"] - r["val_delta_c2i"])
        assert all(
            (8 * r[key]) == pytest.approx(round(8 * r[key])) for key in ("val_acc_t1", "val_acc_t2", "val_changed")
        )
    assert list(summary["evaluations"]) == ["prompting", "score"]
    assert summary["evaluations"]["score"]["val"]["num_problems"] == 300
    assert summary["evaluations"]["score"]["test_sampled_t1"] is None
    report = (root / "runs" / "sc" / "report.md").read_text()
    assert "| score |" in report and "Attempt 1 sampled" not in report


def test_existing_run_needs_resume_or_overwrite(micro_run):
    root = micro_run.parent.parent
    again = redraft("run", "--name", "micro", *MICRO, cwd=root)
    assert again.returncode == 2 and "--resume" in again.stderr
    resumed = redraft("run", "--name", "micro", "--resume", *MICRO, cwd=root)
    assert resumed.returncode == 0, resumed.stderr  # every stage done: only the report is rebuilt


def test_resume_with_a_changed_config_is_refused_naming_the_key(micro_run):
    root = micro_run.parent.parent
    changed = redraft("run", "--name", "micro", "--resume", *MICRO, "--set", "sft.optim.lr=0.5", cwd=root)
    assert changed.returncode == 2 and "sft.optim.lr: 0.001 -> 0.5" in changed.stderr, changed.stderr


def test_ctrl_c_says_how_to_resume(tmp_path):
    args = [
        "-m",
        "redraft",
        "pretrain",
        "--name",
        "p",
        "--set",
        "model.preset=micro",
        "--set",
        "train.max_steps=100000",
        "--set",
        "train.save_every=5",
        "--set",
        "task.train_size=200",
        "--set",
        "logging.progress=false",
    ]
    victim = subprocess.Popen(
        [sys.executable, *args],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        # Ctrl-C's default disposition, as in a terminal: a test runner started in the background inherits
        # SIGINT ignored, and the child would inherit that too.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    checkpoints = tmp_path / "runs" / "p" / "checkpoints"
    deadline = time.time() + 120
    while time.time() < deadline and not list(checkpoints.glob("step-*")):
        time.sleep(0.1)
    try:
        victim.send_signal(signal.SIGINT)
        _, stderr = victim.communicate(timeout=60)
    finally:
        if victim.poll() is None:
            victim.kill()
    assert victim.returncode == 130 and "rerun the same command with --resume" in stderr, stderr


@pytest.mark.slow
def test_stage_commands_on_the_trained_model(micro_run):
    root = micro_run.parent.parent
    model = str(micro_run / "sft" / "model")
    out = redraft(
        "generate", "--model", model, "-p", "12+3=", "-p", "4+4=", "--max-new-tokens", "4", "--json", cwd=root
    )
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["prompt"] for r in rows] == ["12+3=", "4+4="]
    assert all(len(r["token_ids"]) == len(r["logprobs"]) <= 4 for r in rows)
    ev = redraft(
        "eval",
        "--model",
        model,
        "--name",
        "ev",
        "--set",
        "task.test_size=16",
        "--set",
        "task.train_size=600",
        "--set",
        "task.max_digits=2",
        "--set",
        "eval.k=2",
        cwd=root,
    )
    assert ev.returncode == 0, ev.stderr
    assert json.loads((root / "runs" / "ev" / "eval.json").read_text())["num_problems"] == 16
    sft = redraft(
        "sft",
        "--model",
        model,
        "--name",
        "sft2",
        "--set",
        "task.train_size=600",
        "--set",
        "task.max_digits=2",
        "--set",
        "train.max_steps=3",
        "--set",
        "train.batch_size=16",
        "--set",
        "train.lora.enabled=true",
        "--set",
        "logging.progress=false",
        cwd=root,
    )
    assert sft.returncode == 0, sft.stderr
    assert (root / "runs" / "sft2" / "model" / "model.safetensors").is_file()


def test_help_explains_commands(tmp_path):
    out = redraft("--help", cwd=tmp_path)
    assert out.returncode == 0
    for command in ("run", "pretrain", "sft", "rl", "score", "eval", "generate", "config"):
        assert command in out.stdout
    shown = redraft("config", "show", "run", "--set", "sft.max_steps=5", cwd=tmp_path)
    assert "max_steps: 5" in shown.stdout


def test_sft_of_a_fresh_model_trains_its_own_tokenizer(tmp_path, micro_task):
    from redraft.config import load_config
    from redraft.pipeline import run_in_folder, run_sft

    cfg = load_config(
        "sft",
        None,
        [f"run.output_dir={tmp_path}", "model.preset=micro", "train.max_steps=2", "train.eval_every=2",
         "train.batch_size=8", "train.eval_accuracy_problems=2", "logging.progress=false"],
    )  # fmt: skip
    result = run_in_folder(run_sft, cfg, task=micro_task)
    assert result["steps"] == 2 and (tmp_path / "sft" / "tokenizer" / "tokenizer.json").is_file()
    assert (tmp_path / "sft" / "model" / "tokenizer.json").is_file()
