"""task.kind: code — HumanEval built in, HumanEval/MBPP-format files, checked in the sandbox."""

import json

import pytest

from redraft.config import TaskSection
from redraft.envs import SingleTurnEnv, task_verifier
from redraft.errors import ConfigError, DataError, RedraftError
from redraft.rewards import isolation
from redraft.tasks import build_task
from redraft.tasks.code import function_body

needs_sandbox = pytest.mark.skipif(
    isolation().level != "namespaces", reason=f"code tasks run programs in the sandbox: {isolation().reason}"
)


def test_humaneval_is_built_in_and_split_by_seed():
    task = build_task(TaskSection(kind="code"))
    assert task.name == "humaneval" and task.match == "code" and task.template == "{question}"
    assert (len(task.test), len(task.val), len(task.train)) == (82, 16, 66)
    ids = [[ex.fields["task_id"] for ex in split] for split in (task.test, task.val, task.train)]
    assert len(set().union(*map(set, ids))) == 164
    assert [ex.fields["task_id"] for ex in build_task(TaskSection(kind="code")).test] == ids[0]
    assert [ex.fields["task_id"] for ex in build_task(TaskSection(kind="code", seed=5)).test] != ids[0]
    small = build_task(TaskSection(kind="code", test_size=20, val_size=10, train_size=50))
    assert (len(small.test), len(small.val), len(small.train)) == (20, 10, 50)
    ex = task.train[0]
    assert task.prompt(ex) == ex.question and "def " in ex.question
    assert ex.target == ex.answer and ex.fields["prepend_prompt"] and "def check(candidate)" in ex.fields["tests"]


def test_continuations_need_the_bare_prompt():
    with pytest.raises(ConfigError, match="continuations"):
        build_task(TaskSection(kind="code", template="Complete:\n{question}"))
    with pytest.raises(ConfigError, match="not 'exact'"):
        build_task(TaskSection(kind="code", match="exact"))


def test_function_body_stops_where_the_function_ends():
    body = "    x = 1\n\n    if x:\n        return x\n"
    assert function_body(body + "\n\ndef other():\n    pass\n") == body + "\n"
    assert function_body(body + "\nif __name__ == '__main__':\n    pass") == body
    assert function_body(body) == body


def test_the_code_checker_needs_the_sandbox_verifier():
    task = build_task(TaskSection(kind="code", test_size=4, val_size=4, train_size=4))
    with pytest.raises(RedraftError, match="sandbox"):
        task.check(task.test[0].target, task.test[0])


@needs_sandbox
def test_canonical_solutions_pass_and_wrong_ones_fail():
    task = build_task(TaskSection(kind="code", test_size=4, val_size=4, train_size=4))
    task_verifier(task)
    problems = task.test[:4]
    replies = [ex.target + "\n\ndef trailing_junk(:\n" for ex in problems] + ["    return None\n"] * 2
    assert task.check_many(replies, problems + problems[:2]) == [True] * 4 + [False] * 2
    # environments reward with the same checker (task.reward checker, or code)
    for reward in ("checker", "code"):
        task = build_task(TaskSection(kind="code", test_size=4, val_size=4, train_size=4, reward=reward))
        envs = [SingleTurnEnv(task) for _ in range(3)]
        for env, ex in zip(envs, task.test):
            env.reset(ex)
        results = SingleTurnEnv.step_batch(envs, [task.test[0].target, task.test[1].target, "    return None\n"])
        assert [(r.reward, r.info["correct"]) for r in results] == [(1.0, True), (1.0, True), (0.0, False)]


def _write(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


@needs_sandbox
def test_mbpp_and_generic_files(tmp_path):
    mbpp = [{"task_id": i, "text": f"Write a function add_{i}(a) that adds {i} to a.",
             "code": f"def add_{i}(a):\n    return a + {i}\n",
             "test_list": [f"assert add_{i}(1) == {i + 1}", f"assert add_{i}(0) == {i}"], "test_setup_code": ""}
            for i in range(20)]  # fmt: skip
    task = build_task(
        TaskSection(kind="code", train_path=_write(tmp_path / "mbpp.jsonl", mbpp), test_size=5, val_size=2)
    )
    assert task.name == "mbpp" and (len(task.test), len(task.val), len(task.train)) == (5, 2, 13)
    ex = task.test[0]
    assert "Your code should pass these tests:\nassert add_" in ex.question and not ex.fields["prepend_prompt"]
    task_verifier(task)
    fenced = f"Here you go:\n```python\n{ex.answer}```\nDone."
    assert task.check_many([ex.answer, fenced, "def nothing(): pass"], [ex] * 3) == [True, True, False]

    generic = [{"prompt": 'def double(x):\n    """Twice x."""\n',
                "tests": "def check(candidate):\n    assert candidate(3) == 6\n",
                "entry_point": "double", "answer": "    return 2 * x\n"}] * 10  # fmt: skip
    task = build_task(
        TaskSection(kind="code", train_path=_write(tmp_path / "generic.jsonl", generic), test_size=2, val_size=1)
    )
    task_verifier(task)
    ex = task.test[0]
    assert ex.fields["prepend_prompt"] and task.check_many([ex.answer, "    return x\n"], [ex] * 2) == [True, False]


def test_a_row_that_is_not_a_code_problem_is_named(tmp_path):
    path = _write(tmp_path / "bad.jsonl", [{"prompt": "def f():\n", "answer": "1"}])
    with pytest.raises(DataError, match=r"bad.jsonl:1: not a code problem"):
        build_task(TaskSection(kind="code", train_path=path))
    path = _write(
        tmp_path / "bare.jsonl", [{"prompt": "def f():\n", "tests": "def check(c):\n    pass\n", "entry_point": "f"}]
    )
    with pytest.raises(DataError, match=r"bare.jsonl:1: the prompt of a continuation problem must be valid Python"):
        build_task(TaskSection(kind="code", train_path=path))
