"""What every process inside the code sandbox shares: exit codes, exiting, plain data over pipes.

Stdlib only, like every ``sandbox_inside*`` module: it runs inside the private root, where only the
interpreter's own installation exists (see ``sandbox_inside``).

Only plain values cross between the candidate and the checker (None, bool, int, float, complex,
str, bytes, and lists, tuples, sets, frozensets and dicts of them), each of an exact built-in type,
so nothing the candidate hands over can carry its own ``__eq__`` into the checker's comparisons.
"""

import json
import os
import struct
import sys

COMPILE_ERROR_EXIT = 3  # the program (candidate) or the tests (checker) did not compile
SETUP_ERROR_EXIT = 97  # the supervisor could not build the sandbox or start a process
PASSED = b"passed"

# Bound before the program runs, so a program that patches os does not stall its own harness.
_exit_now, _read, _write = os._exit, os.read, os.write


def flush_and_exit(code: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # a closed or replaced stream must not change the exit status
            pass
    _exit_now(code)


class NotPlainData(TypeError):
    """A value that is not made of exact built-in types (an always-equal object, say)."""


class ProtocolError(Exception):
    """The other side sent something that is not a well-formed message, or went away."""


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
