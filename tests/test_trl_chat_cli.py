"""TRL-format data from the CLI with a chat model (a micro Llama with a ChatML tokenizer, built
locally): SFT on a conversational `messages` file, DPO on conversational and implicit-prompt pairs,
stop strings and answer lengths reaching the sampler in rl, eval and SFT's validation, and
truncation reported."""

import json

import pytest
import torch
from typer.testing import CliRunner

from redraft.cli import app
from redraft.config import ModelSection
from redraft.models import build_model, save_model
from redraft.rollout import sampler
from tests.chat import chatml_tokenizer, trl_pairs, trl_rows, write_jsonl


@pytest.fixture(scope="module")
def chat_model_dir(tmp_path_factory):
    tokenizer = chatml_tokenizer()
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("chat") / "model"
    save_model(build_model(ModelSection(preset="micro"), tokenizer), tokenizer, path)
    return str(path)


@pytest.fixture()
def sampled(monkeypatch):
    """The sampling settings of every generated batch."""
    seen = []
    original = sampler._generate_batch

    def spy(model, tokenizer, prompt_ids, params, *args, **kwargs):
        seen.append(params)
        return original(model, tokenizer, prompt_ids, params, *args, **kwargs)

    monkeypatch.setattr(sampler, "_generate_batch", spy)
    return seen


def _invoke(*args):
    out = CliRunner().invoke(app, [str(a) for a in args])
    assert out.exit_code == 0, out.output
    return out


def _sets(*pairs):
    return [x for pair in pairs for x in ("--set", pair)]


def _records(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_sft_on_a_conversational_messages_file(tmp_path, chat_model_dir, sampled):
    data = write_jsonl(tmp_path / "chat.jsonl", trl_rows("messages"))
    out = _invoke("sft", "--model", chat_model_dir, "--name", "chat_sft", *_sets(
        f"run.output_dir={tmp_path}", "task.kind=file", f"task.train_path={data}", "task.test_size=4",
        "task.val_size=4", "train.max_steps=2", "train.batch_size=4", "train.eval_every=2", "train.log_every=1",
        "train.max_new_tokens=3", "train.max_length=12", "logging.progress=false",
    ))  # fmt: skip
    run = tmp_path / "chat_sft"
    assert (run / "model" / "model.safetensors").is_file()
    records = [r for r in _records(run) if r["stage"] == "sft"]
    assert [r["step"] for r in records if "loss" in r] == [1, 2] and "val_loss" in records[-1]
    # The rows (about 30 tokens) do not fit 12: said on stderr and logged with the first step.
    assert "SFT training rows are longer than train.max_length=12 tokens" in out.output
    assert records[0]["truncated_rows"] == 40 - 4 - 3  # every training row (4 test, 3 validation rows aside)
    # This file has no answers: no greedy accuracy (nothing to check), so nothing was sampled.
    assert "val_accuracy" not in records[-1] and not sampled


def test_sft_validation_accuracy_decodes_the_stage_answer_length(tmp_path, chat_model_dir, sampled):
    data = write_jsonl(tmp_path / "chat.jsonl", trl_rows("chat_prompt_only"))
    _invoke("sft", "--model", chat_model_dir, "--name", "chat_sft_acc", *_sets(
        f"run.output_dir={tmp_path}", "task.kind=file", f"task.train_path={data}", "task.test_size=4",
        "task.val_size=4", "train.max_steps=1", "train.batch_size=4", "train.eval_every=1",
        "train.max_new_tokens=3", "train.eval_accuracy_problems=3", "logging.progress=false",
    ))  # fmt: skip
    assert sampled and all(params.max_new_tokens == 3 for params in sampled)
    assert "val_accuracy" in _records(tmp_path / "chat_sft_acc")[-1]


@pytest.mark.parametrize("kind", ["conversational", "implicit", "implicit_conversational"])
def test_dpo_trains_on_trl_pairs(tmp_path, chat_model_dir, kind):
    pairs = write_jsonl(tmp_path / "pairs.jsonl", trl_pairs(kind))
    _invoke("dpo", "train", "--model", chat_model_dir, "--pairs", pairs, "--name", f"dpo_{kind}", *_sets(
        f"run.output_dir={tmp_path}", "dpo.select_by=loss", "dpo.train.max_steps=1", "dpo.train.batch_size=4",
        "dpo.train.eval_every=1", "dpo.kl_prompts=0", "dpo.eval_problems=0", "logging.progress=false",
    ))  # fmt: skip
    run = tmp_path / f"dpo_{kind}"
    records = [r for r in _records(run) if r["stage"] == "dpo"]
    assert records[0]["step"] == 1 and "loss" in records[0] and "val_loss" in records[-1]
    assert (run / "model" / "model.safetensors").is_file()


def test_rl_and_eval_take_stop_strings(tmp_path, chat_model_dir, sampled):
    data = write_jsonl(tmp_path / "chat.jsonl", trl_rows("chat_prompt_only"))
    task = ["task.kind=file", f"task.train_path={data}", "task.test_size=4", "task.val_size=4"]
    _invoke("rl", "--model", chat_model_dir, "--name", "chat_rl", *_sets(
        f"run.output_dir={tmp_path}", *task, 'rl.stop=["<|im_end|>"]', "rl.iterations=1", "rl.prompts_per_iteration=2",
        "rl.samples_per_prompt=2", "rl.max_new_tokens=4", "rl.eval_problems=2", "rl.eval_every=1",
        "logging.progress=false",
    ))  # fmt: skip
    assert len(sampled) >= 2 and all(params.stop == ["<|im_end|>"] and params.max_new_tokens == 4 for params in sampled)
    sampled.clear()
    out = _invoke("eval", "--model", chat_model_dir, "--name", "chat_eval", *_sets(
        f"run.output_dir={tmp_path}", *task, 'eval.stop=["<|im_end|>", "\\n\\n"]', "eval.k=2", "eval.max_new_tokens=5",
    ))  # fmt: skip
    assert json.loads(out.stdout)["num_problems"] == 4
    assert len(sampled) == 2 and all(params.stop == ["<|im_end|>", "\n\n"] for params in sampled)
    rows = [json.loads(line) for line in (tmp_path / "chat_eval" / "samples.jsonl").read_text().splitlines()]
    assert all(row["prompt"].startswith("<|im_start|>user\n") for row in rows)  # rendered by the chat template
