"""What runs inside the code sandbox: a supervisor, the candidate and the checker (stdlib only).

The host (``sandbox_launch``) starts ``python -I -c <script> supervisor <job fd>``, and the
supervisor starts the other two roles the same way. The script carries the source of every
``sandbox_inside*`` module and registers each in ``sys.modules`` under its usual name before
calling :func:`run_role`: inside the private root only the interpreter's own installation exists,
so these modules import nothing of redraft but each other, always as
``from redraft.rewards.sandbox_inside_... import name``, which the registered modules answer.

supervisor  trusted, never runs untrusted code. At the "namespaces" level it is root and pid 1 of
            the run's namespaces: it joins the run's memory cgroup, builds the private root
            filesystem, then starts the two processes below, each with its own identity, limits
            and syscall filter, and reports to the host how they ended (``sandbox_inside_supervisor``).
candidate   untrusted: compiles the program on its own (so nothing in it can reach into the tests),
            runs it, then serves calls to the functions it defined, plain data in and out.
checker     the trusted tests in a fresh interpreter that never runs candidate code, under a uid of
            its own: the candidate's functions are proxies that send the arguments over a pipe and
            decode the reply, so all the tests ever see of the candidate are plain values (None,
            bool, int, float, complex, str, bytes and lists, tuples, sets, frozensets and dicts of
            them), compared by the checker's own, untouched builtins. Only the checker can write
            the verdict, on a pipe the candidate never holds (both in ``sandbox_inside_roles``).

The names the host and the tests use are importable from here too.
"""

import json
import os

from redraft.rewards.sandbox_inside_kernel import SYSCALL_TABLES
from redraft.rewards.sandbox_inside_protocol import (
    COMPILE_ERROR_EXIT,
    PASSED,
    SETUP_ERROR_EXIT,
    Channel,
    NotPlainData,
    ProtocolError,
    decode,
    encode,
)
from redraft.rewards.sandbox_inside_roles import CandidateError, CandidateFunction, run_checker, serve_candidate
from redraft.rewards.sandbox_inside_supervisor import supervise

__all__ = [
    "COMPILE_ERROR_EXIT",
    "PASSED",
    "ROLES",
    "SETUP_ERROR_EXIT",
    "SYSCALL_TABLES",
    "CandidateError",
    "CandidateFunction",
    "Channel",
    "NotPlainData",
    "ProtocolError",
    "decode",
    "encode",
    "run_checker",
    "run_role",
    "serve_candidate",
    "supervise",
]

ROLES = {"supervisor": supervise, "candidate": serve_candidate, "checker": run_checker}


def _read_job(fd: int) -> dict:
    with os.fdopen(fd, "rb") as job_file:
        return json.loads(job_file.read())


def run_role(role: str, job_fd: str) -> None:
    """Play ``role`` on the job (JSON) in the inherited file descriptor ``job_fd``; never returns."""
    ROLES[role](_read_job(int(job_fd)))
