import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from redraft.errors import ConfigError, RedraftError
from redraft.text.prompts import chat_prompt, few_shot_prompt
from redraft.text.tokenizer import load_tokenizer


def test_digits_are_single_tokens_and_text_round_trips(tokenizer):
    assert tokenizer.tokenize("123+45=168") == list("123+45=168")
    for text in ["12+7=19", "Q: what is 3 * 4?\nA: 12", "ünïcödé ok"]:
        assert tokenizer.decode(tokenizer(text)["input_ids"]) == text


def test_saved_as_pretrained_tokenizer_fast(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(str(tmp_path))
    assert isinstance(loaded, PreTrainedTokenizerFast)
    assert loaded("9+9=")["input_ids"] == tokenizer("9+9=")["input_ids"]
    assert load_tokenizer(tmp_path).pad_token == "<pad>"


def test_a_folder_without_a_tokenizer_is_named_not_blamed_on_sentencepiece(tmp_path):
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(RedraftError, match=rf"no tokenizer in {tmp_path} .*is it a model or tokenizer folder"):
        load_tokenizer(tmp_path)
    (tmp_path / "tokenizer_config.json").write_text("{broken")
    with pytest.raises(RedraftError, match=rf"cannot load the tokenizer in {tmp_path}"):
        load_tokenizer(tmp_path)


def test_few_shot_builder():
    class Shot:
        def __init__(self, q, a):
            self.question, self.target = q, a

    text = few_shot_prompt("Q: {question}\nA:", [Shot("1+1", " 2"), Shot("2+2", " 4")], "3+3")
    assert text == "Q: 1+1\nA: 2\nQ: 2+2\nA: 4\nQ: 3+3\nA:"


def test_chat_template(tokenizer):
    with pytest.raises(ConfigError, match="no chat template"):
        chat_prompt(tokenizer, [{"role": "user", "content": "hi"}])
    tokenizer.chat_template = (
        "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    try:
        rendered = chat_prompt(tokenizer, [{"role": "user", "content": "2+2?"}])
    finally:
        tokenizer.chat_template = None
    assert rendered == "<|user|>2+2?\n<|assistant|>"
