"""Token sequences of TRL-format rows: the loss falls on the assistant tokens only, a template that
writes BOS gets no second one, truncation is reported; preference pairs in every TRL format."""

import pytest

from redraft.config import TaskSection
from redraft.data.preferences import as_text_pair, read_pairs, split_by_prompt
from redraft.data.sequences import chat_sequence, pack_sequences, sft_data, task_sft_data
from redraft.errors import DataError
from redraft.tasks import build_task
from redraft.text.prompts import chat_prompt
from redraft.text.tokenizer import encode_prompts
from redraft.training.pairwise import pair_data
from tests.chat import assistant, bos_tokenizer, chatml_tokenizer, trl_pairs, trl_rows, user, write_jsonl


def _trained(data, row: int) -> tuple[list[int], list[int]]:
    n = int(data.lengths[row])
    ids, mask = data.input_ids[row, :n].tolist(), data.loss_mask[row, :n].tolist()
    return ids, [token for token, m in zip(ids, mask) if m]


def _task(tmp_path, kind):
    path = write_jsonl(tmp_path / f"{kind}.jsonl", trl_rows(kind))
    return build_task(TaskSection(kind="file", train_path=path, template="{question}", test_size=4, val_size=0))


@pytest.mark.parametrize("kind", ["messages", "chat_prompt_completion", "chat_prompt_only"])
def test_chat_rows_train_exactly_the_assistant_tokens(tmp_path, kind):
    tokenizer = chatml_tokenizer()
    task = _task(tmp_path, kind).use_tokenizer(tokenizer)
    examples = task.train[:6]
    data = task_sft_data(tokenizer, task, examples, 128)
    for row, ex in enumerate(examples):
        ids, trained = _trained(data, row)
        # The target's text and the template's end-of-turn marker, nothing of the prompt, no extra EOS.
        assert trained == tokenizer(ex.target + "<|im_end|>", add_special_tokens=False)["input_ids"]
        prompt_ids = encode_prompts(tokenizer, [task.prompt(ex)])[0]
        assert ids[: len(prompt_ids)] == prompt_ids  # the prompt has the ids the sampler gives it
        assert tokenizer.decode(ids) == chat_prompt(tokenizer, ex.messages) + ex.target + "<|im_end|>\n"


def test_every_assistant_turn_of_a_conversation_is_trained():
    tokenizer = chatml_tokenizer()
    messages = [user("What is 1+2?"), assistant("3"), user("What is 4+5?"), assistant("9")]
    ids, mask = chat_sequence(tokenizer, messages, [m["role"] == "assistant" for m in messages])
    trained = [t for t, m in zip(ids, mask) if m]
    assert trained == tokenizer("3<|im_end|>9<|im_end|>", add_special_tokens=False)["input_ids"]
    ids, mask = chat_sequence(tokenizer, messages, [False, False, False, True])
    assert [t for t, m in zip(ids, mask) if m] == tokenizer("9<|im_end|>", add_special_tokens=False)["input_ids"]


def test_text_and_prompt_completion_rows_keep_the_plain_layout(tmp_path):
    tokenizer = chatml_tokenizer()
    text_task, pc_task = _task(tmp_path, "text"), _task(tmp_path, "prompt_completion")
    text = task_sft_data(tokenizer, text_task, text_task.train[:3], 128)
    for row, ex in enumerate(text_task.train[:3]):
        ids, trained = _trained(text, row)
        assert trained == ids == tokenizer(ex.target)["input_ids"] + [tokenizer.eos_token_id]  # the whole text + EOS
    pc = task_sft_data(tokenizer, pc_task, pc_task.train[:3], 128)
    plain = sft_data(tokenizer, [ex.question for ex in pc_task.train[:3]], [ex.target for ex in pc_task.train[:3]], 128)
    assert pc.input_ids.tolist() == plain.input_ids.tolist() and pc.loss_mask.tolist() == plain.loss_mask.tolist()


def test_a_template_that_writes_bos_gets_no_second_one():
    tokenizer = bos_tokenizer()
    bos = tokenizer.bos_token_id
    prompt = chat_prompt(tokenizer, [user("What is 1+2?")])
    assert prompt.startswith("<s>")
    assert tokenizer(prompt)["input_ids"][:2] == [bos, bos]  # what encoding it naively gives
    ids = encode_prompts(tokenizer, [prompt, "1+2="])
    assert ids[0][0] == bos and ids[0][1] != bos
    assert ids[1][0] == bos and ids[1] == tokenizer("1+2=")["input_ids"]  # plain prompts keep their BOS
    sequence, mask = chat_sequence(tokenizer, [user("What is 1+2?"), assistant("3")], [False, True])
    assert sequence.count(bos) == 1 and sequence[0] == bos
    assert [t for t, m in zip(sequence, mask) if m] == tokenizer("3<|eot|>", add_special_tokens=False)["input_ids"]


def test_truncation_is_reported_never_silent(capsys):
    data = pack_sequences(
        [[1, 2, 3, 4, 5, 6], [1, 2], [1, 2, 3, 4, 5]], [[0, 0, 1, 1, 1, 1], [0, 1], [0, 0, 0, 0, 1]], 0, 4
    )
    assert data.truncated == 2 and data.input_ids.shape[1] == 4
    err = capsys.readouterr().err
    assert "2 of 3 training rows are longer than train.max_length=4 tokens (the longest has 6)" in err
    assert "2 of them lose target tokens" in err
    pack_sequences([[1, 2]], [[0, 1]], 0, 4)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("kind", ["standard", "conversational", "implicit", "implicit_conversational"])
def test_preference_pairs_in_every_trl_format(tmp_path, kind):
    pairs = read_pairs(write_jsonl(tmp_path / "pairs.jsonl", trl_pairs(kind)))
    pair = pairs[0]
    if kind in ("standard", "implicit"):
        assert (pair.prompt, pair.chosen, pair.rejected) == ("What is 0+1?", " 1", " 6") and not pair.is_chat
    else:
        assert pair.prompt == (user("What is 0+1?"),) and pair.chosen == (assistant("1"),) and pair.is_chat
    train, held_out = split_by_prompt(pairs, 0.25)
    assert len(held_out) == 6 and len(train) == 18
    tokenizer = chatml_tokenizer()
    data = pair_data(tokenizer, pairs[:4], 128)
    _, chosen = _trained(data.chosen, 0)
    _, rejected = _trained(data.rejected, 0)
    end = "<|im_end|>" if pair.is_chat else tokenizer.eos_token
    assert tokenizer.decode(chosen, skip_special_tokens=False).strip() == "1" + end
    assert tokenizer.decode(rejected, skip_special_tokens=False).strip() == "6" + end
    text = as_text_pair(
        tokenizer, pair
    )  # what a reward model trains on: prompt text and reply text, as PPO scores them
    assert (text.prompt, text.chosen, text.rejected) == (
        (chat_prompt(tokenizer, pair.prompt), "1", "6") if pair.is_chat else (pair.prompt, pair.chosen, pair.rejected)
    )


def test_implicit_prompt_errors(tmp_path):
    with pytest.raises(DataError, match="share no beginning"):
        read_pairs(write_jsonl(tmp_path / "p.jsonl", [{"chosen": "a", "rejected": "b"}]))
    with pytest.raises(DataError, match="both be strings or both be chat messages"):
        read_pairs(write_jsonl(tmp_path / "p.jsonl", [{"chosen": "a", "rejected": [assistant("b")]}]))
    with pytest.raises(DataError, match="all be strings or all be chat messages"):
        read_pairs(
            write_jsonl(
                tmp_path / "p.jsonl", [{"prompt": "q", "chosen": [assistant("a")], "rejected": [assistant("b")]}]
            )
        )
