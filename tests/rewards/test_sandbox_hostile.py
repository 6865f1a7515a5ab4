"""A corpus of hostile programs: each must be contained, must not pass, and must leave the host
as it was (no process under a sandbox uid, no leftover cgroup).

Forged verdicts run at whatever level is available (the candidate/checker split does not need
namespaces); escapes and resource bombs need the "namespaces" level and are skipped without it.
"""

import errno
import os
import socket
import time
import uuid
from pathlib import Path

import pytest

from redraft.rewards import run_many, run_python, sandbox
from redraft.rewards.sandbox import SANDBOX_UIDS
from redraft.rewards.sandbox_inside import SYSCALL_TABLES
from tests.rewards.conftest import (
    LEVEL,
    NAMESPACES,
    leftover_cgroups,
    needs_memory_cgroup,
    needs_namespaces,
    processes_with,
    run_humaneval,
    sandbox_processes,
)


@pytest.fixture(autouse=True)
def host_unchanged():
    yield
    assert sandbox_processes() == []
    assert leftover_cgroups() == []


def _run(program: str, **options):
    return run_python(program, level=LEVEL, **options)


# --- forged verdicts ----------------------------------------------------------------------------

# Completion bodies that continue a HumanEval prompt and try to pass without solving it.
FORGERIES = {
    # a trailing decorator that would swallow a `def check` compiled after it
    "decorator swallows check": "    return None\n\n@lambda f: (lambda *a, **k: None)\n",
    # a gc hook that rewrites every function named check
    "gc callback rewrites check": """    return None

import gc
def _forge(phase, info):
    for thing in gc.get_objects():
        if getattr(thing, "__name__", None) == "check" and hasattr(thing, "__code__"):
            thing.__code__ = (lambda candidate: None).__code__
gc.callbacks.append(_forge)
gc.collect()
""",
    # read the harness's frames for its pipes and secrets, write "passed" everywhere, exit 0
    "frames and fake verdicts": """    return None

import os, sys
frame = sys._getframe(0)
while frame is not None:
    for value in list(frame.f_locals.values()):
        if isinstance(value, dict) and "verdict_fd" in value:
            os.write(value["verdict_fd"], b"passed")
    frame = frame.f_back
for fd in range(3, 64):
    try:
        os.write(fd, b"passed")
    except OSError:
        pass
os._exit(0)
""",
    # a tracer that swaps the candidate handed to check
    "settrace swaps candidate": """    return None

import sys, threading
def _swap(frame, event, arg):
    if "candidate" in frame.f_locals:
        frame.f_locals["candidate"] = lambda *args, **kwargs: None
    return _swap
sys.settrace(_swap)
threading.settrace(_swap)
""",
    "always-equal result": """    class Anything:
        def __eq__(self, other):
            return True
        def __ne__(self, other):
            return False
        __hash__ = object.__hash__
    return Anything()
""",
    "always-equal int subclass": """    class Zero(int):
        def __eq__(self, other):
            return True
        __hash__ = int.__hash__
    return Zero()
""",
    "early exit with status 0": "    return None\n\nimport os\nos._exit(0)\n",
    "SystemExit from an atexit hook": (
        "    return None\n\nimport atexit, os\natexit.register(lambda: os._exit(0))\nraise SystemExit(0)\n"
    ),
    "exit from a thread": (
        "    return None\n\nimport os, threading, time\nthreading.Thread(target=lambda: os._exit(0)).start()\n"
        "time.sleep(5)\n"
    ),
    "patched os._exit and os.write": (
        "    return None\n\nimport os\nos._exit = lambda code: None\nos.write = lambda fd, data: len(data)\n"
        "raise SystemExit(0)\n"
    ),
}


@pytest.mark.parametrize("forgery", FORGERIES, ids=list(FORGERIES))
def test_forged_humaneval_passes_fail(humaneval, forgery):
    problems = humaneval[::10]
    results = run_humaneval(problems, [FORGERIES[forgery]] * len(problems), timeout=3)
    assert [p["task_id"] for p, r in zip(problems, results) if r.passed] == []
    assert {r.status for r in results} <= {"failed", "error"}


def test_shadowed_builtins_do_not_reach_the_tests(humaneval):
    # Tests that wrap the result in abs/tuple/len/sum would pass a wrong answer if those returned 0.
    shadowed = ("abs", "tuple", "len", "sum", "round")
    problems = [p for p in humaneval if any(f"{name}(" in p["test"] for name in shadowed)]
    body = "    return None\n\n" + "".join(f"{name} = lambda *args, **kwargs: 0\n" for name in shadowed)
    results = run_humaneval(problems, [body] * len(problems))
    assert len(problems) >= 5 and [p["task_id"] for p, r in zip(problems, results) if r.passed] == []


@pytest.mark.parametrize(
    "program",
    [
        # an always-equal object against plain asserts (no entry point)
        "class Anything:\n    def __eq__(self, other):\n        return True\n\ndef add(a, b):\n    return Anything()\n",
        "def add(a, b):\n    return [1, (2, type('Anything', (), {'__eq__': lambda s, o: True})())]\n",
        # the program speaks the protocol itself: says it is ready, then claims results
        "import json, os, struct\n\ndef add(a, b):\n    return 0\n\nfor fd in range(3, 16):\n    try:\n"
        "        message = json.dumps({'return': 3}).encode()\n"
        "        os.write(fd, struct.pack('>I', len(message)) + message)\n"
        "    except OSError:\n        pass\n",
        # a function that exits the candidate process instead of answering
        "import os\n\ndef add(a, b):\n    os._exit(0)\n",
    ],
    ids=["always-equal", "nested always-equal", "fake protocol messages", "exit instead of answering"],
)
def test_forged_results_with_plain_asserts_fail(program):
    result = _run(program, tests="assert add(1, 2) == 3\nassert add(2, 2) == 4\n")
    assert result.status == "failed", result


def test_always_equal_is_reported_as_not_plain_data():
    program = (
        "class Anything:\n    def __eq__(self, other):\n        return True\n\ndef add(a, b):\n    return Anything()\n"
    )
    result = _run(program, tests="def check(candidate):\n    assert candidate(1, 2) == 3\n", entry_point="add")
    assert result.status == "failed" and "Anything is not plain data" in result.stderr


# --- resources ------------------------------------------------------------------------------------


def test_memory_bomb_is_stopped():
    result = _run("hoard = []\nwhile True:\n    hoard.append(bytearray(10**7))", memory_mb=256, timeout=10)
    assert result.status == "failed" and "MemoryError" in result.stderr and result.duration < 5


def test_huge_file_is_refused():
    result = _run("with open('big', 'wb') as f:\n    f.write(b'x' * (20 * 2**20))", max_file_mb=8)
    assert result.status == "failed" and "File too large" in result.stderr


MEMFD_HOARD = """
import os
def hoard(count, megabytes):
    fds = []
    for _ in range(count):
        fd = os.memfd_create("hoard")
        for _ in range(megabytes):
            os.write(fd, b"x" * 2**20)
        fds.append(fd)
    return len(fds)
"""

CHILDREN_HOARD = """
import os, time
def hoard(children, megabytes):
    kids = []
    for _ in range(children):
        pid = os.fork()
        if pid == 0:
            block = b"x" * (megabytes * 2**20)
            time.sleep(1)
            os._exit(0)
        kids.append(pid)
    for pid in kids:
        os.waitpid(pid, 0)
    return len(kids)
"""


@needs_memory_cgroup
@pytest.mark.parametrize(
    "program, tests, memory_mb",
    [(MEMFD_HOARD, "assert hoard(40, 15) == 40", 256), (CHILDREN_HOARD, "assert hoard(6, 350) == 6", 512)],
    ids=["40 memfds of 15 MB", "6 children of 350 MB"],
)
def test_a_runs_memory_is_capped_as_a_whole(program, tests, memory_mb):
    result = _run(program, tests=tests, memory_mb=memory_mb, timeout=20)
    assert result.status == "failed" and "over its memory cap" in result.stderr, result


@needs_namespaces
def test_without_a_memory_cgroup_processes_and_files_are_capped_lower(monkeypatch):
    monkeypatch.setattr(sandbox, "_memory_cgroups", lambda: "pretend there is none")
    memfd = _run(MEMFD_HOARD, tests="assert hoard(2, 8) == 2")
    assert memfd.status == "failed" and "File too large" in memfd.stderr
    forks = _run("import os\n\ndef spawn():\n    for _ in range(10):\n        if os.fork() == 0:\n"
                 "            import time\n            time.sleep(2)\n            os._exit(0)\n    return 10\n",
                 tests="assert spawn() == 10")  # fmt: skip
    assert forks.status == "failed" and "Resource temporarily unavailable" in forks.stderr


@needs_namespaces
def test_private_tmp_is_size_capped():
    result = _run("def fill():\n    with open('/tmp/fill', 'wb') as f:\n        for _ in range(100):\n"
                  "            f.write(b'x' * 2**20)\n    return True\n", tests="assert fill()", tmp_mb=8)  # fmt: skip
    assert result.status == "failed" and "No space left on device" in result.stderr


@needs_namespaces
def test_fork_bomb_is_contained():
    program = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    started = time.monotonic()
    result = _run(program, timeout=2, max_processes=16)
    assert result.status == "timeout" and time.monotonic() - started < 6


def test_output_flood_is_capped():
    result = _run("import sys\nwhile True:\n    sys.stdout.write('x' * 65536)", timeout=2, max_output=1000)
    assert result.status == "timeout" and len(result.stdout) < 1100 and "more bytes not kept" in result.stdout


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


# --- channels and escapes -------------------------------------------------------------------------

KEYRING = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
ADD_KEY, KEYCTL, UNSHARE = {add_key}, {keyctl}, {unshare}
USER_KEYRING, KEYCTL_SEARCH, CLONE_NEWUSER = -4, 10, 0x10000000

def leave(secret):
    key = libc.syscall(ADD_KEY, b"user", b"redraft-channel", secret, len(secret), USER_KEYRING)
    return key if key >= 0 else -ctypes.get_errno()

def find():
    key = libc.syscall(KEYCTL, KEYCTL_SEARCH, USER_KEYRING, b"user", b"redraft-channel", 0)
    return key if key >= 0 else -ctypes.get_errno()

def new_user_namespace():
    return libc.unshare(CLONE_NEWUSER) == 0 or -ctypes.get_errno()
"""


@pytest.mark.skipif(os.uname().machine not in SYSCALL_TABLES, reason=f"no syscall filter on {os.uname().machine}")
def test_no_keyring_channel_between_runs():
    numbers = SYSCALL_TABLES[os.uname().machine][1]
    program = KEYRING.format(add_key=numbers["add_key"], keyctl=numbers["keyctl"], unshare=numbers["unshare"])
    # One run leaves a secret in its uid's keyring, a later one (same slot, same uid) looks for it.
    assert _run(program, tests="assert leave(b'secret') > 0").status == "failed"
    assert _run(program, tests="assert find() > 0").status == "failed"
    refused = _run(program, tests=f"assert leave(b'x') == find() == new_user_namespace() == -{errno.EPERM}")
    assert refused.passed, refused.stderr


@needs_namespaces
def test_no_network():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    program = (
        "import socket\n\ndef reach(host, port):\n"
        "    socket.create_connection((host, port), timeout=2).sendall(b'leak')\n    return True\n"
    )
    results = [
        _run(program, tests=f"assert reach({host!r}, {port})") for host, port in [("127.0.0.1", port), ("1.1.1.1", 53)]
    ]
    server.setblocking(False)  # a connection would be waiting in the backlog by now
    with pytest.raises(BlockingIOError):
        server.accept()
    server.close()
    assert [r.status for r in results] == ["failed", "failed"]
    assert all("Network is unreachable" in r.stderr for r in results)


@needs_namespaces
def test_daemon_dies_with_the_run():
    marker = f"redraft-daemon-{uuid.uuid4().hex}"
    program = f"""
import os, sys, time
def spawn():
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.execv(sys.executable, [sys.executable, "-c", \
"import time; time.sleep(1.5); open('/tmp/daemon-was-here', 'w').write('x')", "{marker}"])
        os._exit(0)
    time.sleep(0.3)
    return True
"""
    result = _run(program, tests="assert spawn()", timeout=5)
    assert result.passed, result.stderr
    assert processes_with(marker) == []
    time.sleep(1.7)  # past the daemon's wake-up time
    assert processes_with(marker) == [] and not os.path.exists("/tmp/daemon-was-here")


@needs_namespaces
def test_timeout_kills_children_too():
    marker = f"redraft-child-{uuid.uuid4().hex}"
    program = (
        f"import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)', '{marker}'])\n"
        "while True:\n    pass"
    )
    result = _run(program, timeout=1)
    assert result.status == "timeout" and processes_with(marker) == []


@needs_namespaces
def test_the_host_filesystem_is_out_of_sight(tmp_path):
    sentinel = tmp_path / "sentinel"
    sentinel.write_text("keep me")
    tmp_path.chmod(0o755)
    sentinel.chmod(0o666)
    hidden = ["/sys/kernel", "/etc/passwd", "/etc/hostname", "/home", "/var", "/run", "/proc/1",
              str(Path(__file__).parent), str(sentinel), str(tmp_path)]  # fmt: skip
    program = f"""
import os
def visible():
    return [path for path in {hidden!r} if os.path.exists(path)]

def others_processes():
    return [pid for pid in os.listdir("/proc") if pid.isdigit() and os.stat(f"/proc/{{pid}}").st_uid != os.getuid()]

def writable():
    found = []
    for path in ["/etc/redraft-was-here", "/usr/lib/redraft-was-here", "/redraft-was-here", {str(sentinel)!r}]:
        try:
            open(path, "w").write("gone")
            found.append(path)
        except OSError:
            pass
    return found
"""
    result = _run(program, tests="assert visible() == []\nassert others_processes() == []\nassert writable() == []")
    assert result.passed, result.stderr
    assert sentinel.read_text() == "keep me" and not os.path.exists("/etc/redraft-was-here")


def test_environment_secrets_are_not_inherited(monkeypatch):
    monkeypatch.setenv("REDRAFT_SECRET", "hunter2")
    program = "import os\n\ndef environment():\n    return sorted(os.environ)\n"
    program += (
        f"def parents_environment():\n    try:\n        return open('/proc/{os.getpid()}/environ', 'rb').read()\n"
        "    except OSError:\n        return b''\n"
    )
    tests = "assert 'REDRAFT_SECRET' not in environment()\n"
    if NAMESPACES:  # at the basic level the caller's /proc is readable: one more reason it is not for untrusted code
        tests += "assert b'hunter2' not in parents_environment()\n"
    result = _run(program, tests=tests)
    assert result.passed, result.stderr
    assert "hunter2" not in result.stdout + result.stderr


@needs_namespaces
def test_runs_as_an_unprivileged_user_in_its_own_tmp():
    result = _run("import os\nprint(os.getuid(), os.getgid(), os.getgroups(), os.getcwd(), os.listdir('.'))")
    uid, gid, groups, cwd, listing = result.stdout.split(" ", 4)
    assert int(uid) in SANDBOX_UIDS and uid == gid
    assert groups == "[]" and cwd == "/tmp" and listing.strip() == "[]"
