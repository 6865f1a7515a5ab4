"""--model takes a local folder or a Hugging Face Hub id (from the local cache; a clear error when it
can be neither found nor downloaded), and model.dtype picks the weights' dtype."""

import huggingface_hub
import pytest
import torch

from redraft.config import ModelSection
from redraft.errors import ConfigError, RedraftError
from redraft.models import build_model, load_model, save_model
from redraft.text.hub import is_repo_id
from redraft.text.tokenizer import load_tokenizer


def test_hub_id_from_the_local_cache(tmp_path, monkeypatch, micro_model, tokenizer):
    cache = tmp_path / "hub"
    snapshot = cache / "models--someone--micro-llama" / "snapshots" / "0123abcd"
    save_model(micro_model, tokenizer, snapshot)
    (cache / "models--someone--micro-llama" / "refs").mkdir()
    (cache / "models--someone--micro-llama" / "refs" / "main").write_text("0123abcd")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    model = load_model("someone/micro-llama")
    assert model.num_parameters() == micro_model.num_parameters()
    assert len(load_tokenizer("someone/micro-llama")) == len(tokenizer)


def test_hub_id_offline_and_not_cached_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    for load in (load_model, load_tokenizer):
        with pytest.raises(
            RedraftError,
            match=r"cannot download someone/not-here: no network / not in the local cache.*pass a local folder",
        ):
            load("someone/not-here")
    # A path that is no Hub id keeps the plain "not found" errors.
    with pytest.raises(RedraftError, match="no HF checkpoint at"):
        load_model(tmp_path / "missing" / "model")
    assert is_repo_id("Qwen/Qwen2.5-0.5B-Instruct") and is_repo_id("gpt2")
    assert not is_repo_id("/abs/path") and not is_repo_id("runs/main/sft/model") and not is_repo_id("../model")


def test_model_dtype(tmp_path, micro_model, tokenizer):
    save_model(micro_model, tokenizer, tmp_path / "m")
    assert load_model(tmp_path / "m").dtype == torch.float32
    assert load_model(tmp_path / "m", "bf16").dtype == torch.bfloat16
    assert build_model(ModelSection(path=str(tmp_path / "m"), dtype="bf16"), tokenizer).dtype == torch.bfloat16
    assert build_model(ModelSection(preset="micro", dtype="bf16"), tokenizer).dtype == torch.bfloat16
    assert build_model(ModelSection(preset="micro"), tokenizer).dtype == torch.float32
    with pytest.raises(ConfigError, match="unknown dtype"):
        load_model(tmp_path / "m", "fp8")


def test_generate_loads_the_weights_in_model_dtype(tmp_path, micro_model, tokenizer, monkeypatch):
    from typer.testing import CliRunner

    import redraft.models
    from redraft.cli import app

    seen = []
    monkeypatch.setattr(
        redraft.models, "load_model", lambda path, dtype=None: seen.append(dtype) or load_model(path, dtype)
    )
    save_model(micro_model, tokenizer, tmp_path / "m")
    out = CliRunner().invoke(
        app,
        [
            "generate",
            "--model",
            str(tmp_path / "m"),
            "-p",
            "1+2=",
            "--max-new-tokens",
            "3",
            "--set",
            "model.dtype=bf16",
        ],
    )
    assert out.exit_code == 0, out.output
    assert seen == ["bf16"]
