"""The two processes of a run inside the code sandbox: the candidate (the program) and the checker (the tests).

Stdlib only, like every ``sandbox_inside*`` module. Each runs in a fresh interpreter of its own, so
the checker never executes candidate code: the program's functions reach the tests only as
proxies that send plain data over a pipe and get plain data back (``sandbox_inside_protocol``).
"""

import builtins
import linecache
import os
import sys
import traceback

from redraft.rewards.sandbox_inside_kernel import set_dumpable
from redraft.rewards.sandbox_inside_protocol import (
    COMPILE_ERROR_EXIT,
    PASSED,
    Channel,
    ProtocolError,
    decode,
    encode,
    flush_and_exit,
)


def _compile(source: str, filename: str):
    """Compile ``source`` on its own; exit with COMPILE_ERROR_EXIT when it does not compile."""
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)  # readable tracebacks
    try:
        return compile(source, filename, "exec")
    except Exception:  # SyntaxError, null bytes, nesting too deep for the parser
        traceback.print_exc()
        flush_and_exit(COMPILE_ERROR_EXIT)


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
        flush_and_exit(1)
    channel.send(
        {"ready": [name for name, value in namespace.items() if not name.startswith("__") and callable(value)]}
    )
    while True:
        try:
            request = channel.receive()
        except ProtocolError:  # the checker is done
            flush_and_exit(0)
        channel.send(_answer(namespace, request))


def _answer(namespace: dict, request: dict) -> dict:
    try:
        result = namespace[request["call"]](*decode(request["args"]), **decode(request["kwargs"]))
        return {"return": encode(result)}
    except BaseException as error:  # the checker decides what an exception means for the tests
        return {"raise": type(error).__name__, "message": str(error)[:1000]}


# --- the checker (trusted) ----------------------------------------------------------------------


class CandidateError(Exception):
    """The candidate raised an exception that has no built-in class of the same name."""


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
    set_dumpable(False)  # at the "basic" level the candidate shares our uid: no ptrace, no /proc/<pid>/mem
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
        flush_and_exit(1)
    except BaseException:
        traceback.print_exc()
        flush_and_exit(1)
    os.write(job["verdict_fd"], PASSED)
    flush_and_exit(0)
