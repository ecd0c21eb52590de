"""What a recorded caller did: the data :mod:`argvcontract.recorder` fills and
:mod:`argvcontract.verify` checks (kept apart so neither imports the other's
machinery to name it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from argvcontract.cli import Cli


@dataclass(frozen=True)
class Call:
    """One recorded invocation: which CLI, with which argv, how it was invoked."""

    callee: str
    argv: tuple[str, ...]
    via: str
    cwd: str


@dataclass
class Recording:
    """What one run of a caller did: its calls, exit status and output.

    ``clis`` are the CLIs the recorder stood in for; :func:`~argvcontract.verify.verify`
    checks against them unless told otherwise.
    """

    caller: str
    calls: list[Call] = field(default_factory=list)
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""
    clis: tuple[Cli, ...] = field(default=(), repr=False)

    def argvs(self, callee: str | None = None) -> list[list[str]]:
        """The argv of every call (to ``callee`` only, when given)."""
        return [list(c.argv) for c in self.calls if callee is None or c.callee == callee]
