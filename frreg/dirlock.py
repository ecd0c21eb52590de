"""frreg-train and frreg-validate on one LOSO directory exclude each other.

A verdict judges the seed files it read; a trainer rewriting them while it
reads would leave a PROMOTE beside seeds it never saw. So every trainer holds
a *shared* lock on :data:`LOCK_FILE` in the directory for its whole run
(trainers of different seeds may share a directory, as they always could), and
a verdict writer holds it *exclusively* while it judges and writes. Neither
waits: the second one refuses at once with one line (exit 2).

The lock file lives in the directory itself (not in a predictable place in
/tmp), is never followed through a symlink, and is an ``flock``: the kernel
drops it with the process, so a killed trainer leaves nothing to clean up.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from frreg.errors import InputError

#: In the LOSO directory.
LOCK_FILE: Final = ".frreg-dir.lock"


@contextlib.contextmanager
def holding(directory: str | Path, *, exclusive: bool, who: str) -> Iterator[None]:
    """Hold ``directory``'s lock (shared for a trainer, ``exclusive`` for a verdict
    writer) for the block; :class:`~frreg.errors.InputError` when the other kind holds it."""
    other = "frreg-train is writing seed files" if exclusive else "a verdict is being written"
    busy = (
        f"{directory}: {other} here ({LOCK_FILE} is held); {who} waits for nothing, so run "
        "it again when that finished"
    )
    with flocked(Path(directory) / LOCK_FILE, exclusive=exclusive, busy=busy):
        yield


@contextlib.contextmanager
def flocked(path: Path, *, exclusive: bool, busy: str, remove: bool = False) -> Iterator[None]:
    """An ``flock`` on ``path`` (created, never through a symlink) for the block, taken
    without waiting: :class:`~frreg.errors.InputError` ``busy`` when it is held.

    ``remove`` (exclusive locks only): unlink the file at the end, while still holding
    it, so nothing is left beside what was written. A process that opened the file
    before it was unlinked then holds a lock on a name that is gone, so every taker
    checks, once locked, that the name still is the file it locked (else: ``busy``)."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        raise InputError(f"{path}: cannot open the lock ({exc.strerror})") from None
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(busy) from None
        try:
            same = os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            raise InputError(busy)
        try:
            yield
        finally:
            if remove and exclusive:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
    finally:
        os.close(fd)
