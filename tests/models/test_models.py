import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from redraft.config import ModelSection
from redraft.errors import ConfigError, RedraftError
from redraft.models import PRESETS, build, build_model, load_model, save_model


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_saved_checkpoint_loads_in_plain_transformers(arch, tokenizer, tmp_path):
    model = build_model(ModelSection(preset="micro", arch=arch), tokenizer)
    save_model(model, tokenizer, tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / "model.safetensors").is_file()
    reloaded = AutoModelForCausalLM.from_pretrained(str(tmp_path / "ckpt"))
    hf_tokenizer = AutoTokenizer.from_pretrained(str(tmp_path / "ckpt"))
    ids = torch.tensor([hf_tokenizer("12+34=")["input_ids"]])
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, reloaded(ids).logits, atol=1e-6)


def test_presets_and_overrides(tokenizer):
    for name, (layers, hidden, _) in PRESETS.items():
        if name == "base":
            continue
        model = build_model(ModelSection(preset=name), tokenizer)
        assert model.config.num_hidden_layers == layers and model.config.hidden_size == hidden
        assert model.config.vocab_size == len(tokenizer)
    custom = build_model(ModelSection(preset="micro", layers=3, hidden=96, heads=3), tokenizer)
    assert (custom.config.num_hidden_layers, custom.config.hidden_size) == (3, 96)
    with pytest.raises(ConfigError, match="unknown preset"):
        build_model(ModelSection(preset="huge"), tokenizer)
    with pytest.raises(ConfigError, match="divisible"):
        build_model(ModelSection(preset="micro", hidden=100, heads=3), tokenizer)


def test_local_checkpoint_path(tokenizer, tmp_path):
    model = build_model(ModelSection(preset="micro"), tokenizer)
    model.save_pretrained(tmp_path)  # a checkpoint written by plain transformers
    loaded = build_model(ModelSection(path=str(tmp_path)), tokenizer)
    assert torch.equal(loaded.model.embed_tokens.weight, model.model.embed_tokens.weight)
    with pytest.raises(RedraftError, match="no HF checkpoint"):
        load_model(tmp_path / "missing")


def test_atomic_save_keeps_old_checkpoint_on_failure(tokenizer, tmp_path, monkeypatch):
    model = build_model(ModelSection(preset="micro"), tokenizer)
    save_model(model, tokenizer, tmp_path / "m")
    before = (tmp_path / "m" / "model.safetensors").read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(type(model), "save_pretrained", broken)
    with pytest.raises(OSError):
        save_model(model, tokenizer, tmp_path / "m")
    assert (tmp_path / "m" / "model.safetensors").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_lora_default_targets_fit_the_architecture(arch, tokenizer):
    from redraft.config import LoraSection
    from redraft.models.adapters import apply_lora

    model = apply_lora(build_model(ModelSection(preset="micro", arch=arch), tokenizer), LoraSection(enabled=True))
    adapted = {name.split(".lora_A")[0].rsplit(".", 1)[-1] for name, _ in model.named_parameters() if "lora_A" in name}
    assert adapted == ({"q_proj", "v_proj"} if arch == "llama" else {"c_attn"})
    with pytest.raises(ConfigError, match=r"lora.target_modules: \['nope'\] not found"):
        apply_lora(
            build_model(ModelSection(preset="micro", arch=arch), tokenizer), LoraSection(target_modules=["nope"])
        )


@pytest.mark.parametrize("native", [True, False])
def test_auto_mixed_precision_is_bf16_only_where_the_hardware_computes_it(monkeypatch, native):
    monkeypatch.setattr(build, "native_bf16", lambda: native)
    assert build.uses_bf16("auto") is native
    # explicit choices whatever the hardware
    assert (build.uses_bf16("bf16"), build.uses_bf16("no")) == (True, False)
