"""Domain errors. Each carries the one line a user sees and the exit code."""

from __future__ import annotations

from collections.abc import Sequence

from frreg.schema import EXIT_FAIL, EXIT_USAGE


class FrregError(Exception):
    """Base class: ``str(err)`` is the complete one-line diagnosis."""

    exit_code: int = EXIT_USAGE


class InputError(FrregError):
    """Bad user input (a file, an option value). Exit code 2."""

    exit_code = EXIT_USAGE


class CorpusError(InputError):
    """A corpus file is unusable; the message reads ``PATH:LINE: problem``."""

    def __init__(self, path: object, line: int | None, problem: str) -> None:
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}")


class ArtifactError(InputError):
    """A training artifact (``loso_seed{N}.json``) is malformed."""

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ToolError(FrregError):
    """An external tool (ffmpeg) failed. Carries the argv and stderr tail."""

    exit_code = EXIT_FAIL

    def __init__(self, message: str, argv: Sequence[str] = (), stderr_tail: str = "") -> None:
        self.argv = list(argv)
        self.stderr_tail = stderr_tail
        super().__init__(message)


class EvidenceWarning(UserWarning):
    """A failed ensemble-evidence check outside strict mode: reported, not enforced."""
