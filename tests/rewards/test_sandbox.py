"""The code sandbox: verdicts, the candidate/checker protocol, levels, HumanEval end to end.

Hostile programs (forged passes, escapes, resource bombs) are in test_sandbox_hostile.py.
"""

import logging
import math
import os

import pytest

from redraft.errors import ConfigError, DataError
from redraft.rewards import code_reward, extract_code, run_many, run_python, sandbox
from redraft.rewards.sandbox import Isolation, SandboxError
from redraft.rewards.sandbox_inside import NotPlainData, ProtocolError, decode, encode
from tests.rewards.conftest import LEVEL, run_humaneval


def _run(program: str, **options):
    return run_python(program, level=LEVEL, **options)


# --- the verdict --------------------------------------------------------------------------------


def test_statuses_and_output():
    ok = _run("print('hello')")
    assert ok.passed and ok.status == "passed" and ok.stdout == "hello\n" and ok.returncode == 0
    failed = _run("assert 1 == 2, 'nope'")
    assert failed.status == "failed" and "AssertionError: nope" in failed.stderr and failed.returncode == 1
    broken = _run("def f(:\n    pass")
    assert broken.status == "error" and "SyntaxError" in broken.stderr
    assert _run("x = 1\0").status == "error"  # null bytes do not compile either
    assert _run("def f():\n    return 1", tests="def check(:").status == "error"  # nor do broken tests


def test_tests_run_apart_and_call_the_programs_functions():
    program = (
        "def double(x):\n    return 2 * x\n\n"
        "def fails(x):\n    raise ValueError(f'bad {x}')\n\n"
        "def exits():\n    raise SystemExit(0)\n"
    )
    tests = (
        "assert double(21) == 42 and double('ab') == 'abab'\n"
        "try:\n    fails(3)\nexcept ValueError as error:\n    assert str(error) == 'bad 3'\n"
        "else:\n    raise AssertionError('no ValueError')\n"
        "try:\n    exits()\nexcept Exception as error:\n    assert 'SystemExit' in str(error)\n"
    )
    assert _run(program, tests=tests).passed
    assert _run(program, tests="assert double(2) == 5").status == "failed"
    with_entry_point = _run(
        program, tests="def check(candidate):\n    assert candidate(x=4) == 8", entry_point="double"
    )
    assert with_entry_point.passed, with_entry_point.stderr


def test_plain_values_cross_unchanged():
    values = [None, True, 3, -0.0, 1e300, float("inf"), 2**80, "é\ud800", b"\x00\xff", 1 + 2j, [1, (2, 3)],
              {1: {"a": [None]}}, {1, 2}, frozenset({"x"}), (), {}]  # fmt: skip
    program = "def echo(value):\n    return value\n"
    tests = (
        f"inf = float('inf')\nfor value in {values!r}:\n    back = echo(value)\n"
        "    assert back == value and type(back) is type(value), (back, value)\n"
    )
    tests += "import math\nassert math.isnan(echo(float('nan')))\n"
    result = _run(program, tests=tests)
    assert result.passed, result.stderr


def test_plain_data_codec():
    for value in [[1, (2.5, "x")], {"k": {b"v"}}, frozenset({(1, 2)}), 3j]:
        assert decode(encode(value)) == value
    assert math.isnan(decode(encode(float("nan"))))
    with pytest.raises(NotPlainData):
        encode(object())
    with pytest.raises(NotPlainData):
        encode([1, (2, object())])
    for junk in [
        {"tuple": 1},
        {"dict": [[1]]},
        {"bytes": 3},
        {"complex": [1, 2]},
        {"set": [1], "x": []},
        {"eval": "1"},
    ]:
        with pytest.raises(ProtocolError):
            decode(junk)


def test_output_is_capped():
    result = _run("import sys\nsys.stdout.write('x' * 1_000_000)\nsys.stderr.write('y' * 1_000_000)", max_output=1000)
    assert result.passed
    assert (
        result.stdout.startswith("x" * 1000)
        and "999000 more bytes not kept" in result.stdout
        and len(result.stdout) < 1100
    )
    assert result.stderr.startswith("y" * 1000) and len(result.stderr) < 1100


def test_bad_arguments_are_config_errors():
    with pytest.raises(ConfigError):
        run_python("pass", timeout=0)
    with pytest.raises(ConfigError):
        run_python("pass", level="docker")
    with pytest.raises(ConfigError, match="check"):
        run_python("def f(): pass", entry_point="f")
    with pytest.raises(ConfigError):
        run_many(["pass", "pass"], entry_points=["f"])
    with pytest.raises(ConfigError):
        run_many(["pass"], tests=["", ""])


def test_infinite_loop_times_out():
    result = _run("while True:\n    pass", timeout=1)
    assert result.status == "timeout" and result.duration < 3


def test_cpu_limit_stops_a_busy_program_before_the_wall_clock():
    result = _run("while True:\n    pass", timeout=10, cpu_seconds=1)
    assert result.status == "timeout" and result.duration < 4


def test_slow_tests_time_out_too():
    result = _run("def f():\n    return 1", tests="while f() == 1:\n    pass", timeout=1)
    assert result.status == "timeout"


# --- levels -----------------------------------------------------------------------------------------


def test_auto_refuses_to_run_unisolated(monkeypatch):
    monkeypatch.setattr(sandbox, "_isolation", Isolation("basic", "pretend: no CAP_SYS_ADMIN"))
    for level in ("auto", "namespaces"):
        with pytest.raises(SandboxError, match="pretend: no CAP_SYS_ADMIN.*level='basic'"):
            run_python("print('should not run')", level=level)
    with pytest.raises(SandboxError):
        code_reward()(["p"], ["def f(): pass"], tests=["assert True"])


def test_basic_level_runs_only_when_asked_and_says_so(monkeypatch, caplog):
    monkeypatch.setattr(sandbox, "_isolation", Isolation("basic", "pretend"))
    sandbox._warn_unisolated.cache_clear()
    with caplog.at_level(logging.WARNING, logger="redraft.rewards.sandbox"):
        result = run_python("import os\nopen('scratch', 'w').write('x')\nprint(os.getcwd())", level="basic")
    assert result.passed and not os.path.exists(result.stdout.strip())
    assert "WITHOUT isolation" in caplog.text


# --- HumanEval --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_humaneval_canonical_solutions_pass_and_broken_ones_fail(humaneval):
    # Broken: half return None; the other half keep only the prompt (the docstring is the whole body).
    broken = ["    return None\n" if i % 2 else "" for i in range(len(humaneval))]
    results = run_humaneval(humaneval * 2, [p["canonical_solution"] for p in humaneval] + broken)
    canonical, failing = results[: len(humaneval)], results[len(humaneval) :]
    assert [(p["task_id"], r.status, r.stderr[-300:]) for p, r in zip(humaneval, canonical) if not r.passed] == []
    assert [p["task_id"] for p, r in zip(humaneval, failing) if r.passed] == []
    assert {r.status for r in failing} <= {"failed", "error"}


def test_code_reward_humaneval_style(humaneval):
    problems = humaneval[:4]
    reward = code_reward(prepend_prompt=True, timeout=2, level=LEVEL)
    completions = [p["canonical_solution"] for p in problems[:2]] + [
        "    return None\n",
        "    while True:\n        pass\n",
    ]
    scores = reward(
        [p["prompt"] for p in problems], completions,
        tests=[p["test"] for p in problems], entry_point=[p["entry_point"] for p in problems], unrelated=[1, 2, 3, 4],
    )  # fmt: skip
    assert scores == [1.0, 1.0, 0.0, 0.0]


def test_code_reward_keeps_the_prompts_helpers(humaneval):
    # HumanEval/38's tests call the prompt's encode_cyclic: a completion that redefines it as the
    # identity (and decodes by identity too) must not pass.
    problem = next(p for p in humaneval if p["entry_point"] == "decode_cyclic")
    cheat = "    return s\n\ndef encode_cyclic(s):\n    return s\n"
    reward = code_reward(prepend_prompt=True, level=LEVEL)
    scores = reward([problem["prompt"]] * 2, [problem["canonical_solution"], cheat], tests=[problem["test"]] * 2,
                    entry_point=[problem["entry_point"]] * 2)  # fmt: skip
    assert scores == [1.0, 0.0]


def test_code_reward_fenced_completions_and_assert_lists():
    reward = code_reward(workers=2, level=LEVEL)
    completions = [
        "Here you go:\n```python\ndef double(x):\n    return 2 * x\n```\nIt doubles.",
        "```py\ndef double(x):\n    return x + x\n",  # truncated: the fence never closes
        "def double(x):\n    return x",
        "I cannot help with that.",
    ]
    tests = [["assert double(2) == 4", "assert double(-1) == -2"]] * 4
    assert reward(["Write double."] * 4, completions, tests=tests) == [1.0, 1.0, 0.0, 0.0]
    with pytest.raises(DataError, match="tests"):
        reward(["p"], ["c"], answer=["x"])
    with pytest.raises(ConfigError, match="timout"):
        code_reward(timout=3)


def test_extract_code():
    assert extract_code("```python\nx = 1\n```\n```python\ny = 2\n```") == "x = 1\n"
    assert extract_code("```\nx = 1\n```") == "x = 1\n"
    assert extract_code("x = 1") == "x = 1"
