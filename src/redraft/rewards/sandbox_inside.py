"""What runs inside the code sandbox: a supervisor, the candidate and the checker (stdlib only).

The host starts this file's source as ``python -I -c <source> supervisor <job fd>``; nothing here
imports redraft, because inside the private root only the interpreter's own installation exists.

supervisor  trusted, never runs untrusted code. At the "namespaces" level it is root and pid 1 of
            the run's namespaces: it joins the run's memory cgroup, builds the private root
            filesystem, then starts the two processes below, each with its own identity, limits
            and syscall filter, and reports to the host how they ended.
candidate   untrusted: compiles the program on its own (so nothing in it can reach into the tests),
            runs it, then serves calls to the functions it defined, plain data in and out.
checker     the trusted tests in a fresh interpreter that never runs candidate code, under a uid of
            its own: the candidate's functions are proxies that send the arguments over a pipe and
            decode the reply, so all the tests ever see of the candidate are plain values (None,
            bool, int, float, complex, str, bytes and lists, tuples, sets, frozensets and dicts of
            them), compared by the checker's own, untouched builtins. Only the checker can write
            the verdict, on a pipe the candidate never holds.
"""

import builtins
import ctypes
import json
import linecache
import os
import resource
import signal
import stat
import struct
import sys
import time
import traceback

COMPILE_ERROR_EXIT = 3  # the program (candidate) or the tests (checker) did not compile
SETUP_ERROR_EXIT = 97  # the supervisor could not build the sandbox or start a process
PASSED = b"passed"
_CHILD_GRACE_SECONDS = 1.0  # how long the candidate gets to exit once the checker is done


# --- plain data over a pipe ---------------------------------------------------------------------


class NotPlainData(TypeError):
    """A value that is not made of exact built-in types (an always-equal object, say)."""


class ProtocolError(Exception):
    """The other side sent something that is not a well-formed message, or went away."""


class CandidateError(Exception):
    """The candidate raised an exception that has no built-in class of the same name."""


_TAGGED_SEQUENCES = {tuple: "tuple", set: "set", frozenset: "frozenset"}
_SEQUENCE_BUILDERS = {tag: kind for kind, tag in _TAGGED_SEQUENCES.items()}


def _is_json_scalar(value) -> bool:
    """None or an exact bool, int, float or str (a subclass could carry its own __eq__)."""
    return value is None or type(value) in (bool, int, float, str)


def encode(value):
    """A plain value as JSON: scalars as themselves, other kinds as a one-key tag object."""
    kind = type(value)
    if _is_json_scalar(value):
        return value
    if kind is list:
        return [encode(item) for item in value]
    if kind in _TAGGED_SEQUENCES:
        return {_TAGGED_SEQUENCES[kind]: [encode(item) for item in value]}
    if kind is dict:
        return {"dict": [[encode(key), encode(item)] for key, item in value.items()]}
    if kind is bytes:
        return {"bytes": value.hex()}
    if kind is complex:
        return {"complex": [value.real, value.imag]}
    raise NotPlainData(f"a {kind.__name__} is not plain data (only exact built-in value types cross the sandbox)")


def decode(data):
    """The inverse of ``encode``, strict: anything else is a ProtocolError."""
    kind = type(data)
    if _is_json_scalar(data):
        return data
    if kind is list:
        return [decode(item) for item in data]
    if kind is dict and len(data) == 1:
        ((tag, payload),) = data.items()
        if tag in _SEQUENCE_BUILDERS and type(payload) is list:
            return _SEQUENCE_BUILDERS[tag](decode(item) for item in payload)
        if tag == "dict" and type(payload) is list and all(type(pair) is list and len(pair) == 2 for pair in payload):
            return {decode(key): decode(item) for key, item in payload}
        if tag == "bytes" and type(payload) is str:
            return bytes.fromhex(payload)
        if (
            tag == "complex"
            and type(payload) is list
            and len(payload) == 2
            and all(type(part) is float for part in payload)
        ):
            return complex(*payload)
    raise ProtocolError(f"not a plain value: {str(data)[:100]}")


_HEADER = struct.Struct(">I")


class Channel:
    """Length-prefixed JSON messages: read from one pipe, written to another."""

    def __init__(self, read_fd: int, write_fd: int, max_message: int):
        self.read_fd, self.write_fd, self.max_message = read_fd, write_fd, max_message
        for fd in (read_fd, write_fd):  # processes the program starts do not get the channel
            os.set_inheritable(fd, False)

    def send(self, message) -> None:
        data = json.dumps(message).encode()
        view = memoryview(_HEADER.pack(len(data)) + data)
        while view:
            view = view[_write(self.write_fd, view) :]

    def receive(self):
        (length,) = _HEADER.unpack(self._read_exactly(_HEADER.size))
        if length > self.max_message:
            raise ProtocolError(f"a message of {length} bytes (the limit is {self.max_message})")
        try:
            return json.loads(self._read_exactly(length))
        except (ValueError, RecursionError) as error:
            raise ProtocolError(f"a malformed message ({type(error).__name__})") from None

    def _read_exactly(self, count: int) -> bytes:
        chunks, missing = [], count
        while missing:
            chunk = _read(self.read_fd, min(missing, 1 << 20))
            if not chunk:
                raise ProtocolError("the program ended before it answered")
            chunks.append(chunk)
            missing -= len(chunk)
        return b"".join(chunks)


def _read_job(fd: int) -> dict:
    with os.fdopen(fd, "rb") as job_file:
        return json.loads(job_file.read())


# Bound before the program runs, so a program that patches os does not stall its own harness.
_exit_now, _read, _write = os._exit, os.read, os.write


def _flush_and_exit(code: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # a closed or replaced stream must not change the exit status
            pass
    _exit_now(code)


def _compile(source: str, filename: str):
    """Compile ``source`` on its own; exit with COMPILE_ERROR_EXIT when it does not compile."""
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)  # readable tracebacks
    try:
        return compile(source, filename, "exec")
    except Exception:  # SyntaxError, null bytes, nesting too deep for the parser
        traceback.print_exc()
        _flush_and_exit(COMPILE_ERROR_EXIT)


# --- the candidate (untrusted) ------------------------------------------------------------------


def serve_candidate(job: dict) -> None:
    channel = Channel(job["requests_fd"], job["replies_fd"], job["max_message"])
    code = _compile(job["program"], "<program>")
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    del job
    try:
        exec(code, namespace)
    except BaseException:  # SystemExit too: a program that exits early did not run to the end
        traceback.print_exc()
        _flush_and_exit(1)
    channel.send(
        {"ready": [name for name, value in namespace.items() if not name.startswith("__") and callable(value)]}
    )
    while True:
        try:
            request = channel.receive()
        except ProtocolError:  # the checker is done
            _flush_and_exit(0)
        channel.send(_answer(namespace, request))


def _answer(namespace: dict, request: dict) -> dict:
    try:
        result = namespace[request["call"]](*decode(request["args"]), **decode(request["kwargs"]))
        return {"return": encode(result)}
    except BaseException as error:  # the checker decides what an exception means for the tests
        return {"raise": type(error).__name__, "message": str(error)[:1000]}


# --- the checker (trusted) ----------------------------------------------------------------------


class CandidateFunction:
    """Stands in for one of the candidate's functions: arguments go over the pipe, a plain value
    comes back (or the exception the candidate raised, rebuilt from its name)."""

    def __init__(self, channel: Channel, name: str):
        self._channel, self._name = channel, name

    def __call__(self, *args, **kwargs):
        self._channel.send({"call": self._name, "args": encode(list(args)), "kwargs": encode(kwargs)})
        reply = self._channel.receive()
        if type(reply) is dict and list(reply) == ["return"]:
            return decode(reply["return"])
        if (
            type(reply) is dict
            and sorted(reply) == ["message", "raise"]
            and all(type(v) is str for v in reply.values())
        ):
            raise _rebuilt_exception(reply["raise"], reply["message"])
        raise ProtocolError("a reply that is neither a result nor an exception")

    def __repr__(self) -> str:
        return f"<candidate function {self._name}>"


def _rebuilt_exception(name: str, message: str) -> Exception:
    """The built-in exception class of that name (so tests that expect, say, a ValueError still
    work); BaseExceptions such as SystemExit and unknown names become CandidateError."""
    kind = getattr(builtins, name, None)
    if isinstance(kind, type) and issubclass(kind, Exception):
        try:
            return kind(message)
        except Exception:  # a constructor that wants other arguments (UnicodeDecodeError, ...)
            pass
    return CandidateError(f"{name}: {message}")


def run_checker(job: dict) -> None:
    _set_dumpable(False)  # at the "basic" level the candidate shares our uid: no ptrace, no /proc/<pid>/mem
    channel = Channel(job["replies_fd"], job["requests_fd"], job["max_message"])
    code = _compile(job["tests"], "<tests>")
    try:
        ready = channel.receive()
        if type(ready) is not dict or list(ready) != ["ready"] or type(ready["ready"]) is not list:
            raise ProtocolError("the program did not say it was ready")
        namespace = {"__name__": "__main__", "__builtins__": builtins}
        # The tests may call any function the program defined, but never through a builtin's name
        # (a program that defines `abs` must not change what the tests' `abs` does); names the
        # tests define themselves replace these when the tests run.
        for name in ready["ready"]:
            if type(name) is str and name.isidentifier() and not hasattr(builtins, name):
                namespace[name] = CandidateFunction(channel, name)
        exec(code, namespace)
        if job["entry_point"] is not None:
            candidate = CandidateFunction(channel, job["entry_point"])
            namespace[job["entry_point"]] = candidate  # also for tests that call it by name, over a stub in the prompt
            namespace["check"](candidate)
    except ProtocolError as error:
        print(f"checker: {error}", file=sys.stderr)
        _flush_and_exit(1)
    except BaseException:
        traceback.print_exc()
        _flush_and_exit(1)
    os.write(job["verdict_fd"], PASSED)
    _flush_and_exit(0)


# --- the supervisor (trusted) -------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_DUMPABLE, _PR_CAPBSET_DROP, _PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 4, 24, 38, 22, 2
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_REMOUNT, _MS_BIND, _MS_MOVE, _MS_REC, _MS_PRIVATE = 32, 4096, 8192, 16384, 1 << 18


def _raise_unless_zero(result: int, what: str) -> None:
    if result != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"{what}: {os.strerror(error)}")


def _prctl(what: str, option: int, *args) -> None:
    padded = [*args, *[ctypes.c_ulong(0)] * (4 - len(args))]
    _raise_unless_zero(_libc.prctl(option, *padded), what)


def _set_dumpable(dumpable: bool) -> None:
    _prctl("prctl(PR_SET_DUMPABLE)", _PR_SET_DUMPABLE, ctypes.c_ulong(int(dumpable)))


def _mount(source, target, fstype, flags: int, data=None) -> None:
    encoded = [None if part is None else part.encode() for part in (source, target, fstype, data)]
    _raise_unless_zero(
        _libc.mount(encoded[0], encoded[1], encoded[2], ctypes.c_ulong(flags), encoded[3]),
        f"mount {source} on {target}",
    )


# Syscalls untrusted code never needs. Keyrings: the kernel keeps a keyring per uid across runs,
# a channel from one run to a later one under the same uid. Tracing and reading other processes'
# memory: the way to reach the checker at the "basic" level. Namespaces: unprivileged user
# namespaces would hand out capabilities inside them. The rest is kernel attack surface.
_DENIED_SYSCALLS = ("add_key", "request_key", "keyctl", "ptrace", "process_vm_readv", "process_vm_writev",
                    "unshare", "setns", "bpf", "perf_event_open", "userfaultfd", "io_uring_setup")  # fmt: skip
SYSCALL_TABLES = {  # audit arch, syscall numbers
    "x86_64": (0xC000003E, {"add_key": 248, "request_key": 249, "keyctl": 250, "ptrace": 101, "process_vm_readv": 310,
                            "process_vm_writev": 311, "unshare": 272, "setns": 308, "bpf": 321, "perf_event_open": 298,
                            "userfaultfd": 323, "io_uring_setup": 425, "clone": 56, "clone3": 435}),
    "aarch64": (0xC00000B7, {"add_key": 217, "request_key": 218, "keyctl": 219, "ptrace": 117, "process_vm_readv": 270,
                             "process_vm_writev": 271, "unshare": 97, "setns": 268, "bpf": 280, "perf_event_open": 241,
                             "userfaultfd": 282, "io_uring_setup": 425, "clone": 220, "clone3": 435}),
}  # fmt: skip
_CLONE_NEW_NAMESPACES = 0x7E020080  # CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET|NEWTIME
_X32_SYSCALL_BIT = 0x40000000
_LOAD, _JUMP_IF_EQUAL, _JUMP_IF_ANY_BIT, _RETURN = 0x20, 0x15, 0x45, 0x06  # BPF_LD|W|ABS, JMP|JEQ|K, JMP|JSET|K, RET|K
_ALLOW, _KILL_PROCESS = 0x7FFF0000, 0x80000000
_EPERM, _ENOSYS = 0x00050000 | 1, 0x00050000 | 38  # SECCOMP_RET_ERRNO | errno
_NR, _ARCH, _ARG0_LOW = 0, 4, 16  # offsets in struct seccomp_data (little-endian)


def _syscall_filter(machine: str) -> list[tuple[int, int, int, int]]:
    """A classic-BPF seccomp program (code, jump-if-true, jump-if-false, constant) for ``machine``."""
    arch, numbers = SYSCALL_TABLES[machine]
    program = [(_LOAD, 0, 0, _ARCH), (_JUMP_IF_EQUAL, 1, 0, arch), (_RETURN, 0, 0, _KILL_PROCESS), (_LOAD, 0, 0, _NR)]
    if machine == "x86_64":  # the x32 ABI numbers its syscalls differently: refuse it outright
        program += [(_JUMP_IF_ANY_BIT, 0, 1, _X32_SYSCALL_BIT), (_RETURN, 0, 0, _ENOSYS)]
    for name in _DENIED_SYSCALLS:
        program += [(_JUMP_IF_EQUAL, 0, 1, numbers[name]), (_RETURN, 0, 0, _EPERM)]
    # clone3 passes its flags in memory a filter cannot read; ENOSYS makes libc fall back to clone.
    program += [(_JUMP_IF_EQUAL, 0, 1, numbers["clone3"]), (_RETURN, 0, 0, _ENOSYS)]
    program += [(_JUMP_IF_EQUAL, 0, 3, numbers["clone"]), (_LOAD, 0, 0, _ARG0_LOW),
                (_JUMP_IF_ANY_BIT, 0, 1, _CLONE_NEW_NAMESPACES), (_RETURN, 0, 0, _EPERM)]  # fmt: skip
    return program + [(_RETURN, 0, 0, _ALLOW)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]


def _install_syscall_filter() -> None:
    program = _syscall_filter(os.uname().machine)
    instructions = b"".join(struct.pack("=HBBI", *instruction) for instruction in program)
    _prctl(
        "seccomp filter",
        _PR_SET_SECCOMP,
        ctypes.c_ulong(_SECCOMP_MODE_FILTER),
        ctypes.byref(_SockFprog(len(program), instructions)),
    )


def _drop_capability_bounding_set() -> None:
    with open("/proc/sys/kernel/cap_last_cap") as last:
        for capability in range(int(last.read()) + 1):
            _prctl("prctl(PR_CAPBSET_DROP)", _PR_CAPBSET_DROP, ctypes.c_ulong(capability))


def _become(identity: dict, limits: dict, filter_syscalls: bool) -> None:
    """Turn this (forked, not yet exec'd) supervisor into the identity the role runs as."""
    if identity["uid"] is not None:  # no groups, no capabilities now or after exec
        os.setgroups([])
        os.setresgid(identity["uid"], identity["uid"], identity["uid"])
        _drop_capability_bounding_set()
        os.setresuid(identity["uid"], identity["uid"], identity["uid"])
    os.chdir(identity["workdir"])
    _prctl("prctl(PR_SET_NO_NEW_PRIVS)", _PR_SET_NO_NEW_PRIVS, ctypes.c_ulong(1))  # setuid binaries do not help
    for name, (soft, hard) in limits.items():
        resource.setrlimit(getattr(resource, name), (soft, hard))
    if filter_syscalls:
        _install_syscall_filter()


def _spawn(job: dict, role: str, payload: dict, kept_fds: tuple[int, ...]) -> int:
    """Start ``role`` in a fresh interpreter; it inherits only ``kept_fds`` (and stdout/stderr)."""
    payload_fd = os.memfd_create(f"redraft-{role}")
    os.write(payload_fd, json.dumps({**payload, "max_message": job["max_message"]}).encode())
    os.lseek(payload_fd, 0, os.SEEK_SET)
    pid = os.fork()
    if pid == 0:
        try:
            _become(job["identities"][role], job["limits"], job["filter_syscalls"])
            for fd in (payload_fd, *kept_fds):
                os.set_inheritable(fd, True)
            os.execv(job["python"], [job["python"], "-I", "-c", job["source"], role, str(payload_fd)])
        except BaseException:
            traceback.print_exc()
        finally:
            _flush_and_exit(SETUP_ERROR_EXIT)
    os.close(payload_fd)
    return pid


def _build_private_root(root: dict) -> None:
    """Replace "/" (in our mount namespace) by a read-only tmpfs holding only what the interpreter
    needs: ``binds`` (read-only), ``devices``, ``symlinks``, a fresh /proc that shows each uid
    only its own processes, a size-capped /tmp for the candidate and a small /dev/shm."""
    _mount(None, "/", None, _MS_REC | _MS_PRIVATE)  # nothing we mount propagates to the host
    if root["cgroup"] is not None:  # before any process of the run exists, so all of them are counted
        with open(os.path.join(root["cgroup"], "cgroup.procs"), "w") as procs:
            procs.write("0")
    # Opened before the new root hides them (a source might live under the staging mount point).
    sources = {path: os.open(path, os.O_PATH | os.O_CLOEXEC) for path in (*root["binds"], *root["devices"])}
    staging = "/tmp"
    _mount("sandbox-root", staging, "tmpfs", _MS_NOSUID | _MS_NODEV, "size=1m,mode=0755")
    for path, fd in sources.items():
        target = staging + path
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            os.mkdir(target, 0o755)
        else:
            open(target, "w").close()
        _mount(f"/proc/self/fd/{fd}", target, None, _MS_BIND)
        if path in root["binds"]:
            _mount(None, target, None, _MS_BIND | _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID | _MS_NODEV)
        os.close(fd)
    for path, points_to in root["symlinks"].items():
        os.makedirs(os.path.dirname(staging + path), mode=0o755, exist_ok=True)
        os.symlink(points_to, staging + path)
    for path in ("/proc", "/tmp", "/dev/shm"):
        os.makedirs(staging + path, mode=0o755, exist_ok=True)
    _mount("proc", staging + "/proc", "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, "hidepid=2")
    owner = root["tmp_owner"]
    _mount(
        "sandbox-tmp",
        staging + "/tmp",
        "tmpfs",
        _MS_NOSUID | _MS_NODEV,
        f"size={root['tmp_mb']}m,mode=0700,uid={owner},gid={owner}",
    )
    _mount("sandbox-shm", staging + "/dev/shm", "tmpfs", _MS_NOSUID | _MS_NODEV, "size=1m,mode=1777")
    _mount(None, staging, None, _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID | _MS_NODEV)
    os.chdir(staging)  # switch_root: the staging mount becomes "/", the host's tree is unreachable under it
    _mount(staging, "/", None, _MS_MOVE)
    os.chroot(".")
    os.chdir("/")


def _wait_or_stop(pid: int, grace: float) -> int | None:
    """The exit code of ``pid`` if it ends within ``grace`` seconds; otherwise SIGKILL it and None."""
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.002)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


def supervise(job: dict) -> None:
    os.set_inheritable(job["report_fd"], False)
    try:
        if job["root"] is not None:
            _build_private_root(job["root"])
        requests, replies, verdict = os.pipe(), os.pipe(), os.pipe()
        candidate = _spawn(job, "candidate",
                           {"program": job["program"], "requests_fd": requests[0], "replies_fd": replies[1]},
                           (requests[0], replies[1]))  # fmt: skip
        checker = _spawn(job, "checker",
                         {"tests": job["tests"], "entry_point": job["entry_point"], "requests_fd": requests[1],
                          "replies_fd": replies[0], "verdict_fd": verdict[1]},
                         (requests[1], replies[0], verdict[1]))  # fmt: skip
    except Exception:
        traceback.print_exc()
        _flush_and_exit(SETUP_ERROR_EXIT)
    for fd in (*requests, *replies, verdict[1]):
        os.close(fd)
    said = b""
    while chunk := os.read(verdict[0], 64):  # until the checker exits
        said += chunk
    checker_code = os.waitstatus_to_exitcode(os.waitpid(checker, 0)[1])
    candidate_code = _wait_or_stop(candidate, _CHILD_GRACE_SECONDS)
    report = {"passed": said == PASSED and checker_code == 0, "candidate": candidate_code, "checker": checker_code}
    os.write(job["report_fd"], json.dumps(report).encode())
    _flush_and_exit(0)


ROLES = {"supervisor": supervise, "candidate": serve_candidate, "checker": run_checker}

if __name__ == "__main__":
    ROLES[sys.argv[1]](_read_job(int(sys.argv[2])))
