"""What the code sandbox's private root filesystem holds for a given interpreter (host side).

Why: at the "namespaces" level the run sees none of the host's files but what the interpreter
needs to start: the system's binaries and libraries and the interpreter's own directories. This
module decides that list on the host; the supervisor inside (``sandbox_inside_supervisor``) mounts it.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
from typing import Any

from redraft.rewards.sandbox_result import SandboxError

# System directories the interpreter and its libraries need (a top-level one that is a symlink,
# as with a merged /usr, is recreated as that symlink), and a few devices.
_SYSTEM_PATHS = ("/usr/bin", "/usr/lib", "/usr/lib32", "/usr/lib64", "/usr/libx32",
                 "/bin", "/lib", "/lib32", "/lib64", "/libx32", "/etc/ld.so.cache")  # fmt: skip
_DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")
_DEVICE_LINKS = {"/dev/fd": "/proc/self/fd", "/dev/stdin": "/proc/self/fd/0", "/dev/stdout": "/proc/self/fd/1",
                 "/dev/stderr": "/proc/self/fd/2"}  # fmt: skip
# Asked of the interpreter itself: its own directories, not what .pth files add (an editable
# install would otherwise bring a source checkout into the sandbox).
_INTERPRETER_DIRS_QUERY = """
import json, os, site, sys, sysconfig
paths = sysconfig.get_paths()
dirs = [paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")] + site.getsitepackages()
dirs += [sysconfig.get_config_var("LIBDIR") or "/", os.path.dirname(sys.executable), \
os.path.dirname(os.path.realpath(sys.executable))]
if sys.prefix != sys.base_prefix:
    dirs.append(sys.prefix)  # a virtual environment: its pyvenv.cfg and bin/
print(json.dumps(dirs))
"""


@functools.cache
def _interpreter_dirs(python: str) -> tuple[str, ...]:
    try:
        answer = subprocess.run(
            [python, "-I", "-c", _INTERPRETER_DIRS_QUERY], capture_output=True, text=True, timeout=60, check=True
        )
        return tuple(json.loads(answer.stdout))
    except (OSError, subprocess.SubprocessError, ValueError) as error:
        raise SandboxError(f"cannot ask the interpreter {python} where it lives: {error}") from error


@functools.cache
def root_layout(python: str) -> dict[str, Any]:
    """What the supervisor mounts in the private root for this interpreter."""
    binds, symlinks = set(), dict(_DEVICE_LINKS)
    for path in (*_SYSTEM_PATHS, *_interpreter_dirs(python)):
        path = os.path.abspath(path)
        if os.path.dirname(path) == "/" and os.path.islink(path):
            symlinks[path] = os.readlink(path)
        elif os.path.exists(path):
            binds.add(path)
    if "/" in binds:
        raise SandboxError(f"the interpreter {python} lives directly in /, which cannot be mounted alone")
    outermost = sorted(path for path in binds if not any(path.startswith(other + "/") for other in binds))
    return {
        "binds": outermost,
        "symlinks": symlinks,
        "devices": [device for device in _DEVICES if os.path.exists(device)],
    }
