"""TRL's dataset formats load as task files unchanged: text, prompt/completion, messages, a prompt
of chat messages (with or without a completion); chat prompts are rendered by the tokenizer's
chat template and never turned into a Python repr."""

import pytest

from redraft.config import TaskSection
from redraft.errors import ConfigError, DataError, RedraftError
from redraft.tasks import build_task
from tests.chat import assistant, chatml_tokenizer, trl_rows, user, write_jsonl

PLAIN_TEMPLATE = "{question}"


def _task(tmp_path, rows, **keys):
    path = write_jsonl(tmp_path / "data.jsonl", rows)
    return build_task(
        TaskSection(kind="file", train_path=path, template=PLAIN_TEMPLATE, test_size=4, val_size=4, **keys)
    )


@pytest.mark.parametrize(
    "kind", ["text", "prompt_completion", "messages", "chat_prompt_completion", "chat_prompt_only"]
)
def test_every_trl_format_loads(tmp_path, kind):
    task = _task(tmp_path, trl_rows(kind))
    assert len(task.train) + len(task.val) + len(task.test) == 40
    ex = task.train[0]
    assert task.has_answers == (kind == "chat_prompt_only")  # TRL's SFT formats carry targets, not answers
    if kind == "text":
        assert ex.text_only and task.prompt(ex) == "" and ex.target.startswith("What is")
    elif kind == "prompt_completion":
        assert task.prompt(ex).startswith("What is") and ex.target.isdigit()
    else:
        assert task.is_chat and ex.messages[-1]["role"] == "user" and ex.question.startswith("What is")
        with pytest.raises(RedraftError, match="use_tokenizer"):
            task.prompt(ex)  # chat prompts need the tokenizer's template first
        task.use_tokenizer(chatml_tokenizer())
        prompt = task.prompt(ex)
        assert prompt.startswith("<|im_start|>") and prompt.endswith("<|im_start|>assistant\n")
        assert "{'role'" not in prompt and "[{" not in prompt  # never a Python repr
        if kind == "messages":
            assert "<|im_start|>system\nBe brief.<|im_end|>" in prompt and ex.train_prompt_turns
        if kind != "chat_prompt_only":
            assert ex.completion_messages == (assistant(ex.target),)


def test_messages_rows_prompt_is_everything_before_the_last_assistant_message(tmp_path):
    rows = [
        {"messages": [user("Hi"), assistant("Hello."), user(f"What is {i}+1?"), assistant(str(i + 1))]}
        for i in range(20)
    ]
    ex = _task(tmp_path, rows).train[0]
    assert [m["content"] for m in ex.messages][:2] == ["Hi", "Hello."] and ex.messages[-1]["role"] == "user"
    assert ex.completion_messages[0]["role"] == "assistant" and ex.question.endswith("+1?")


def test_chat_tasks_need_a_chat_template(tmp_path):
    from redraft.text.tokenizer import train_tokenizer

    task = _task(tmp_path, trl_rows("chat_prompt_only"))
    with pytest.raises(ConfigError, match="no chat template"):
        task.use_tokenizer(train_tokenizer(["a b c"] * 5, vocab_size=270))


def test_plain_files_keep_their_behaviour_and_answerless_files_have_no_checker(tmp_path):
    rows = [{"prompt": f"{i}+1", "answer": str(i + 1), "completion": f"{i + 1}!"} for i in range(20)]
    task = _task(tmp_path, rows)
    assert task.has_answers and all(ex.completion is None for ex in task.train)  # answers stay the target
    task = _task(tmp_path, rows, completion_field="completion")
    assert all(ex.target.endswith("!") for ex in task.train)
    task = _task(tmp_path, trl_rows("prompt_completion"))
    with pytest.raises(RedraftError, match="no answers"):
        task.check("3", task.train[0])


def test_unused_completion_column_is_reported(tmp_path, capsys):
    rows = [{"prompt": f"{i}+1", "answer": str(i + 1), "completion": f"{i + 1}!"} for i in range(20)]
    _task(tmp_path, rows)
    assert "task.completion_field=completion" in capsys.readouterr().err


def test_bad_chat_rows_name_the_line(tmp_path):
    rows = trl_rows("chat_prompt_completion", 5)
    rows[2] = {"prompt": [{"role": "user"}], "completion": [assistant("1")]}
    with pytest.raises(
        DataError, match=r"data.jsonl:3: 'prompt' message 1 needs a string 'role' and a string 'content'"
    ):
        _task(tmp_path, rows)
    rows[2] = {"prompt": {"role": "user", "content": "x"}}
    with pytest.raises(DataError, match=r"data.jsonl:3: 'prompt' is a dict"):
        _task(
            tmp_path,
            [{"prompt": "a", "answer": "1"}] * 2 + [{"prompt": {"role": "user", "content": "x"}, "answer": "1"}],
        )
    with pytest.raises(DataError, match="no assistant message"):
        _task(tmp_path, [{"messages": [user("hi")]}] * 5)
    with pytest.raises(DataError, match="preference pairs"):
        _task(tmp_path, [{"chosen": "a", "rejected": "b"}] * 5)


def test_prompt_only_rows_serve_rl_with_a_custom_reward_but_not_sft(tmp_path):
    from redraft.data.sequences import task_sft_data
    from redraft.envs.base import SingleTurnEnv, judge_replies

    task = _task(tmp_path, [{"prompt": f"What is {i}+1?", "level": i % 3} for i in range(20)])
    assert not task.has_answers and task.train[0].fields.keys() == {"level"}
    with pytest.raises(DataError, match="no SFT target"):
        task_sft_data(chatml_tokenizer(), task, task.train[:2], 64)
    envs = [SingleTurnEnv(task, reward_fn=lambda prompts, completions, level, **_: [float(x) for x in level])]
    envs[0].reset(task.train[0])
    rewards, verdicts = judge_replies(envs, ["42"])
    assert rewards == [float(task.train[0].fields["level"])] and verdicts == [False]
    with pytest.raises(RedraftError, match="no answers"):
        judge_replies([SingleTurnEnv(task)], ["42"])  # the checker has nothing to compare with
