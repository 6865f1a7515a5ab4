"""What a code-sandbox run returns, and the error when the sandbox cannot run at all.

A module of its own so that the public API (``sandbox``) and the code that launches a run
(``sandbox_launch``) share these types without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from redraft.errors import RedraftError

Status = Literal["passed", "failed", "timeout", "error"]


class SandboxError(RedraftError):
    """The sandbox cannot run at all (as opposed to a program that fails inside it)."""


@dataclass(frozen=True)
class SandboxResult:
    """What happened to one program.

    status: "passed" (the program ran to the end and the tests passed), "failed" (an exception,
    a failed test, an early exit, a value that is not plain data, the run's memory cap), "timeout"
    (wall-clock or CPU limit), "error" (the program or the tests did not compile, the program was
    killed by another signal, or the sandbox set-up failed). returncode is the program's exit
    status (negative for a signal; None when it was still running when the run ended).
    """

    status: Status
    stdout: str
    stderr: str
    duration: float
    returncode: int | None

    @property
    def passed(self) -> bool:
        return self.status == "passed"
