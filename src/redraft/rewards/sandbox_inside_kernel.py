"""Kernel calls inside the code sandbox: mounts, prctl, the seccomp filter, dropping to a role's uid.

Stdlib only (ctypes on libc), like every ``sandbox_inside*`` module. The supervisor mounts the
private root with these, and turns each forked child into its role's identity before it execs.
"""

import ctypes
import os
import resource
import struct

_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_DUMPABLE, _PR_CAPBSET_DROP, _PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 4, 24, 38, 22, 2
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_MOVE, MS_REC, MS_PRIVATE = 32, 4096, 8192, 16384, 1 << 18


def _raise_unless_zero(result: int, what: str) -> None:
    if result != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"{what}: {os.strerror(error)}")


def _prctl(what: str, option: int, *args) -> None:
    padded = [*args, *[ctypes.c_ulong(0)] * (4 - len(args))]
    _raise_unless_zero(_libc.prctl(option, *padded), what)


def set_dumpable(dumpable: bool) -> None:
    _prctl("prctl(PR_SET_DUMPABLE)", _PR_SET_DUMPABLE, ctypes.c_ulong(int(dumpable)))


def mount(source, target, fstype, flags: int, data=None) -> None:
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


def become(identity: dict, limits: dict, filter_syscalls: bool) -> None:
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
