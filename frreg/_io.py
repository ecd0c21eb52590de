"""Atomic file writes and content digests.

Every artifact is written to a temporary name in its final directory and
renamed into place, so a reader sees either the old file or the new one,
never a torn one, whatever happens to the writer.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

_CHUNK = 1 << 20


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once at import: os.umask is process-wide, and flipping it later could
# race with threads creating files.
_UMASK = _read_umask()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_json(obj: Any) -> str:
    """Hex sha256 of the canonical (sorted, compact) JSON of ``obj``."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


@contextmanager
def atomic_writer(path: str | os.PathLike[str], mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path``; rename it over ``path`` on success.

    On any exception the temporary file is removed and ``path`` is untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    # mkstemp creates 0600; give the artifact the permissions a plain open() would.
    os.chmod(tmp, 0o666 & ~_UMASK)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> None:
    """Write strict JSON (no NaN/Infinity tokens) atomically."""
    text = json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n"
    with atomic_writer(path) as fh:
        fh.write(text)


def require_creatable(path: str | os.PathLike[str], shown: object) -> None:
    """Raise :class:`~frreg.errors.InputError` unless ``path`` can be created or written:
    its nearest existing ancestor (itself included) must be a writable directory.

    ``shown`` is what the message names (the path as the user gave it).
    """
    from frreg.errors import InputError

    ancestor = Path(path)
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise InputError(f"{shown}: {ancestor} is not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise InputError(f"{shown}: cannot create files in {ancestor} (not writable)")


def append_line(path: str | os.PathLike[str], line: str) -> None:
    """Append ``line`` (a newline added) to ``path`` in one write, creating it; never
    through a symlink (``OSError`` then). Concurrent appenders interleave whole lines."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags, 0o644)
    try:
        os.write(fd, (line + "\n").encode("utf-8", "surrogateescape"))
    finally:
        os.close(fd)


def check_output_dir(path: str | os.PathLike[str]) -> Path:
    """Refuse, before any work, an output directory that could not be written.

    It must be a directory, or not exist yet under a writable directory.
    Raises :class:`~frreg.errors.InputError` naming the path and the problem.
    """
    from frreg.errors import InputError

    target = Path(path)
    if target.exists() and not target.is_dir():
        raise InputError(f"{target}: exists and is not a directory")
    require_creatable(target, target)
    return target


def read_json(path: str | os.PathLike[str], what: str) -> Any:
    """The parsed JSON of ``path``, or a one-line :class:`~frreg.errors.InputError` naming the
    file, ``what`` it should be, and the problem (missing, unreadable, not JSON)."""
    from frreg.errors import InputError

    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: {what} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the {what} ({exc})") from None
    except (json.JSONDecodeError, RecursionError, ValueError) as exc:
        raise InputError(f"{path}: the {what} is not JSON ({exc})") from None
