import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from redraft.config import LoggingSection, TrainSection
from redraft.data.sequences import collate, micro_batch_rows, pretraining_data, sft_data
from redraft.errors import TrainingError
from redraft.training import lm as lm_module
from redraft.training import loop as loop_module
from redraft.training.logging import MetricsLog
from redraft.training.losses import masked_kl_to_reference_sum


def _sft(task, tokenizer, split="train"):
    examples = task.split(split)
    return sft_data(tokenizer, [task.prompt(e) for e in examples], [e.target for e in examples], 64)


def _train(tmp_path, model, tokenizer, task, val=True, train=None, anchor=None, resume=False, **overrides):
    cfg = TrainSection.model_validate(
        {"max_steps": 6, "batch_size": 16, "log_every": 1, "eval_every": 3, "save_every": 3, **overrides}
    )
    log = MetricsLog(tmp_path / "metrics.jsonl")
    result = lm_module.train_lm(
        stage="sft",
        model=model,
        tokenizer=tokenizer,
        train=train or _sft(task, tokenizer),
        val=_sft(task, tokenizer, "val") if val else None,
        cfg=cfg,
        out_dir=tmp_path,
        seed=0,
        log=log,
        logging=LoggingSection(progress=False),
        anchor=anchor,
        resume=resume,
    )
    return result, log


def test_sft_loss_only_on_completion_tokens(tokenizer):
    data = sft_data(tokenizer, ["12+3="], ["15"], 64)
    assert tokenizer.decode(data.input_ids[0]) == "12+3=15</s>"
    assert data.loss_mask[0].tolist() == [0, 0, 0, 0, 0, 1, 1, 1]
    pre = pretraining_data(tokenizer, ["12+3=15", "1+1=2"], 64)
    assert pre.loss_mask.tolist() == [[1] * 8, [1] * 6 + [0, 0]]
    batch = collate(pre, [1])
    assert batch["input_ids"].shape == (1, 6) and batch["attention_mask"].tolist() == [[1] * 6]


def test_micro_batches_replay_from_seed():
    assert micro_batch_rows(100, 10, 0, 3) == micro_batch_rows(100, 10, 0, 3)
    epoch0 = [r for i in range(10) for r in micro_batch_rows(100, 10, 0, i)]
    assert sorted(epoch0) == list(range(100))
    assert micro_batch_rows(100, 10, 0, 10) != micro_batch_rows(100, 10, 0, 0)


def test_training_lowers_loss_and_writes_outputs(tmp_path, micro_model, tokenizer, micro_task):
    result, log = _train(
        tmp_path,
        micro_model,
        tokenizer,
        micro_task,
        max_steps=30,
        eval_every=10,
        save_every=10,
        optim={"lr": 3e-3, "warmup_steps": 2},
    )
    losses = [r["loss"] for r in log.read("sft") if "loss" in r]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5
    assert result.steps == 30 and result.best_val_loss is not None
    assert [r["step"] for r in log.read("sft") if "val_loss" in r] == [10, 20, 30]
    assert AutoModelForCausalLM.from_pretrained(str(result.model_dir)) is not None
    checkpoints = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert checkpoints == ["step-0000020", "step-0000030"]  # keep_checkpoints=2
    names = {p.name for p in (tmp_path / "checkpoints" / "step-0000030").iterdir()}
    assert {"model.safetensors", "optimizer.bin", "scheduler.bin", "trainer_state.json"} <= names
    assert any(n.startswith("random_states") for n in names)


def test_gradient_accumulation_matches_one_big_batch(tmp_path, tokenizer, micro_task):
    from redraft.config import ModelSection
    from redraft.models import build_model

    finals = []
    for batch, accum in ((16, 1), (8, 2)):
        torch.manual_seed(0)
        model = build_model(ModelSection(preset="micro"), tokenizer)
        _train(
            tmp_path / f"b{batch}",
            model,
            tokenizer,
            micro_task,
            val=False,
            max_steps=2,
            batch_size=batch,
            grad_accum_steps=accum,
        )
        finals.append(load_file(str(tmp_path / f"b{batch}" / "model" / "model.safetensors")))
    for name in finals[0]:
        torch.testing.assert_close(finals[0][name], finals[1][name], atol=1e-6, rtol=1e-5)


def test_fused_adamw_trains_the_same_model_up_to_rounding(tmp_path, tokenizer, micro_task):
    from redraft.config import ModelSection, OptimSection
    from redraft.models import build_model
    from redraft.training.optim import build_optimizer

    finals = []
    for fused in (False, True):
        torch.manual_seed(0)
        model = build_model(ModelSection(preset="micro"), tokenizer)
        _train(tmp_path / str(fused), model, tokenizer, micro_task, val=False, max_steps=3, optim={"fused": fused})
        finals.append(load_file(str(tmp_path / str(fused) / "model" / "model.safetensors")))
    for name in finals[0]:
        torch.testing.assert_close(finals[1][name], finals[0][name], atol=1e-5, rtol=1e-4)
    assert build_optimizer(model, OptimSection(fused=True)).defaults["fused"]
    assert not build_optimizer(model, OptimSection()).defaults["fused"]


def test_non_finite_loss_stops_with_clear_error(tmp_path, micro_model, tokenizer, micro_task, monkeypatch):
    real = lm_module.masked_lm_loss_sum
    calls = {"n": 0}

    def poisoned(*args):
        calls["n"] += 1
        value = real(*args)
        return value * float("nan") if calls["n"] == 4 else value

    monkeypatch.setattr(lm_module, "masked_lm_loss_sum", poisoned)
    with pytest.raises(TrainingError, match=r"loss is nan at step 4.*step-0000003"):
        _train(tmp_path, micro_model, tokenizer, micro_task, val=False, max_steps=6)


def test_kl_to_reference_is_the_exact_kl_on_masked_positions():
    logits = torch.tensor([[[0.0, 0.0], [1.0, -1.0], [5.0, 5.0]]])
    ref_logits = torch.tensor([[[2.0, 0.0], [0.0, 0.0], [0.0, 9.0]]])
    # position t predicts token t+1: mask[:, 1] selects position 0, mask[:, 2] position 1
    p = torch.softmax(ref_logits[0, 0], -1)
    expected = float((p * (p.log() - torch.log_softmax(logits[0, 0], -1))).sum())
    assert masked_kl_to_reference_sum(logits, ref_logits, torch.tensor([[0.0, 1.0, 0.0]])).item() == pytest.approx(
        expected
    )
    assert masked_kl_to_reference_sum(ref_logits, ref_logits, torch.ones(1, 3)).item() == pytest.approx(0.0, abs=1e-6)
    assert masked_kl_to_reference_sum(logits, ref_logits, torch.zeros(1, 3)).item() == 0.0


def test_anchor_holds_marked_tokens_at_the_reference(tmp_path, tokenizer, micro_task):
    """Training on the completions moves their distributions; the anchor on the same tokens holds
    them much closer to the frozen starting model, and its KL is logged."""
    import copy

    from redraft.config import ModelSection
    from redraft.models import build_model

    data = _sft(micro_task, tokenizer)
    data.anchor_mask = data.loss_mask.clone()
    batch = collate(data, list(range(64)))
    drift = {}
    for coef in (0.0, 10.0):
        torch.manual_seed(0)
        model = build_model(ModelSection(preset="micro"), tokenizer)
        reference = copy.deepcopy(model)
        _, log = _train(
            tmp_path / str(coef),
            model,
            tokenizer,
            micro_task,
            val=False,
            train=data,
            max_steps=15,
            optim={"lr": 3e-3, "warmup_steps": 0},
            anchor=lm_module.Anchor(reference, coef),
        )
        with torch.no_grad():
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            ref_logits = reference(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        drift[coef] = masked_kl_to_reference_sum(logits, ref_logits, batch["anchor_mask"]).item()
        assert all("anchor_kl" in r for r in log.read("sft") if "loss" in r)
    assert drift[10.0] < 0.3 * drift[0.0]


def test_anchor_needs_an_anchor_mask(tmp_path, micro_model, tokenizer, micro_task):
    with pytest.raises(TrainingError, match="anchor_mask"):
        _train(tmp_path, micro_model, tokenizer, micro_task, val=False, anchor=lm_module.Anchor(micro_model, 1.0))


def test_freezing_keeps_frozen_weights(tmp_path, micro_model, tokenizer, micro_task):
    before = {n: p.detach().clone() for n, p in micro_model.named_parameters()}
    _train(
        tmp_path, micro_model, tokenizer, micro_task, val=False, max_steps=3, freeze={"embeddings": True, "layers": 1}
    )
    after = load_file(str(tmp_path / "model" / "model.safetensors"))
    assert torch.equal(after["model.embed_tokens.weight"], before["model.embed_tokens.weight"])
    assert torch.equal(after["model.layers.0.mlp.up_proj.weight"], before["model.layers.0.mlp.up_proj.weight"])
    assert not torch.equal(after["model.norm.weight"], before["model.norm.weight"])


def test_lora_trains_adapters_and_exports_a_plain_merged_model(tmp_path, micro_model, tokenizer, micro_task):
    before = {n: p.detach().clone() for n, p in micro_model.named_parameters()}
    _train(
        tmp_path,
        micro_model,
        tokenizer,
        micro_task,
        val=False,
        max_steps=4,
        lora={"enabled": True, "r": 4, "target_modules": ["q_proj", "v_proj"]},
        optim={"lr": 1e-2, "warmup_steps": 0},
    )
    merged = AutoModelForCausalLM.from_pretrained(str(tmp_path / "model"))
    state = merged.state_dict()
    assert not any("lora" in n for n in state)
    assert not torch.equal(
        state["model.layers.0.self_attn.q_proj.weight"], before["model.layers.0.self_attn.q_proj.weight"]
    )
    assert torch.equal(state["model.layers.0.mlp.up_proj.weight"], before["model.layers.0.mlp.up_proj.weight"])


def test_early_stopping(tmp_path, micro_model, tokenizer, micro_task):
    result, log = _train(
        tmp_path,
        micro_model,
        tokenizer,
        micro_task,
        max_steps=50,
        eval_every=2,
        patience=1,
        optim={"lr": 1e-12, "warmup_steps": 0},
    )
    assert result.stopped_early and result.steps == 4


SCRIPT = """
import sys
from redraft.cli import main
sys.argv = ["redraft", "pretrain", "--name", "r", "--set", "run.output_dir={out}", "--set", "logging.progress=false",
            "--set", "task.train_size=800", "--set", "task.max_digits=2", "--set", "task.test_size=10",
            "--set", "model.preset=micro", "--set", "train.max_steps=120", "--set", "train.save_every=5",
            "--set", "train.eval_every=20", "--set", "train.batch_size=32"] + sys.argv[1:]
main()
"""


def test_a_huge_learning_rate_stops_before_non_finite_weights_are_saved(tmp_path, micro_model, tokenizer, micro_task):
    with pytest.raises(TrainingError, match=r"weights are not finite after step 1.*none yet.*lower learning rate"):
        _train(tmp_path, micro_model, tokenizer, micro_task, val=False, optim={"lr": 1e30, "warmup_steps": 0})
    assert not (tmp_path / "model").exists() and not list((tmp_path / "checkpoints").glob("step-*"))


def test_resume_skips_an_unreadable_newest_checkpoint_and_removes_staging_leftovers(
    tmp_path, micro_model, tokenizer, micro_task
):
    _train(tmp_path, micro_model, tokenizer, micro_task, val=False, max_steps=6, keep_checkpoints=2)
    newest = tmp_path / "checkpoints" / "step-0000006" / "model.safetensors"
    newest.write_bytes(newest.read_bytes()[:100])  # damaged after it was saved
    leftover = tmp_path / "checkpoints" / ".step-0000009.tmp-4242"
    leftover.mkdir()
    model_leftover = tmp_path / ".model.tmp-4242"  # an export the kill interrupted
    model_leftover.mkdir()
    result, log = _train(
        tmp_path, micro_model, tokenizer, micro_task, val=False, max_steps=6, keep_checkpoints=2, resume=True
    )
    assert result.steps == 6 and not leftover.exists() and not model_leftover.exists()
    steps = [r["step"] for r in log.read("sft") if "loss" in r]
    assert steps == [1, 2, 3, 4, 5, 6]  # steps 4-6 were redone from step 3 and logged once


def test_a_crash_before_the_first_checkpoint_leaves_no_duplicate_metrics(
    tmp_path, micro_model, tokenizer, micro_task, monkeypatch
):
    MetricsLog(tmp_path / "metrics.jsonl").write("sft", 1, loss=9.0)  # an earlier run under the same stage name
    # the shared training loop saves the checkpoints
    monkeypatch.setattr(loop_module, "save_checkpoint", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("killed")))
    with pytest.raises(RuntimeError, match="killed"):
        _train(tmp_path, micro_model, tokenizer, micro_task, val=False, max_steps=6)  # dies saving step 3
    monkeypatch.undo()
    _, log = _train(tmp_path, micro_model, tokenizer, micro_task, val=False, max_steps=6, resume=True)
    records = log.read("sft")
    assert records[0]["loss"] == 9.0 and [r["step"] for r in records[1:]] == [1, 2, 3, 4, 5, 6]


@pytest.mark.slow
def test_resume_after_kill_reaches_the_same_parameters(tmp_path):
    def launch(out, *extra):
        return subprocess.Popen(
            [sys.executable, "-c", SCRIPT.format(out=out), *extra],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    assert launch(tmp_path / "full").wait(timeout=300) == 0
    victim = launch(tmp_path / "killed")
    checkpoints = tmp_path / "killed" / "r" / "checkpoints"
    deadline = time.time() + 240
    while time.time() < deadline and not any(p.name >= "step-0000015" for p in checkpoints.glob("step-*")):
        time.sleep(0.05)
    victim.kill()
    victim.wait()
    assert not (tmp_path / "killed" / "r" / "result.json").exists(), "run finished before it could be killed"
    resumed = launch(tmp_path / "killed", "--resume")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    full = load_file(str(tmp_path / "full" / "r" / "checkpoints" / "step-0000120" / "model.safetensors"))
    again = load_file(str(tmp_path / "killed" / "r" / "checkpoints" / "step-0000120" / "model.safetensors"))
    for name in full:
        assert torch.equal(full[name], again[name]), name
    steps = [r["step"] for r in MetricsLog(tmp_path / "killed" / "r" / "metrics.jsonl").read("pretrain") if "loss" in r]
    assert steps == sorted(set(steps)) and steps[-1] == 120


def test_tensorboard_logging_writes_event_files(tmp_path, micro_model, tokenizer, micro_task):
    cfg = TrainSection(max_steps=2, batch_size=16, log_every=1, save_every=10)
    lm_module.train_lm(
        stage="sft",
        model=micro_model,
        tokenizer=tokenizer,
        train=_sft(micro_task, tokenizer),
        val=None,
        cfg=cfg,
        out_dir=tmp_path,
        seed=0,
        log=MetricsLog(tmp_path / "metrics.jsonl"),
        logging=LoggingSection(progress=False, tensorboard=True),
    )
    assert list(tmp_path.rglob("events.out.tfevents.*"))


def test_bf16_mixed_precision_trains_in_bf16_and_saves_fp32_weights(tmp_path, micro_model, tokenizer, micro_task):
    # an fp32 trainer first in the same process, as in the main job: each trainer keeps its own precision
    _train(tmp_path / "fp32", micro_model, tokenizer, micro_task, mixed_precision="no")
    outputs = set()
    micro_model.lm_head.register_forward_hook(lambda _m, _in, out: outputs.add(out.dtype))
    result, log = _train(tmp_path / "bf16", micro_model, tokenizer, micro_task, mixed_precision="bf16")
    assert outputs == {torch.bfloat16}  # training and validation forwards
    losses = [r["loss"] for r in log.read("sft") if "loss" in r]
    assert losses[-1] < losses[0]
    saved = load_file(str(result.model_dir / "model.safetensors"))
    assert {tensor.dtype for tensor in saved.values()} == {torch.float32}
