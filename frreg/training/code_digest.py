"""Which code trained a seed: digests of frreg's sources and of its native kernel.

``frreg 0.1.0`` names a release, not the code: a branch with a bug in its
loader, scaler or engine says the same version as the main branch. So every
run's ``config`` (and with it the cache key) also records a :class:`CodeDigest`:

- ``sources``: the sha256 of the frreg package's Python sources, every
  ``*.py`` file under the package directory (``__pycache__`` and dot-names,
  which Python cannot import, left out), in sorted order of their ``/``-joined
  relative paths, each hashed as ``path NUL length NUL bytes``. The same
  checkout gives the same digest on every machine, and so does a
  ``pip install`` of it (the installed package holds the same ``.py`` files).
- ``native``: the sha256 of the native kernel's binary that this process loads
  (``frreg/training/batched/_native*.so``), recorded only for runs the native
  kernel trained (``None`` for the torch kernel and the reference loop, whose
  numbers it cannot touch). The binary is compiled on each install, so two
  machines with the same sources may hold different binaries; kept apart from
  ``sources`` so a verdict can say which of the two differs.

Each digest is computed once per process, on first use (a few milliseconds:
``tests/test_code_digest.py`` bounds it), from the files on disk at that
moment.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from frreg._io import sha256_file

#: The frreg package directory whose sources are hashed.
PACKAGE_ROOT: Final = Path(__file__).resolve().parent.parent

_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class CodeDigest:
    """The code that trains or verifies: its sources' digest and, where it ran, the
    native kernel binary's (see the module docstring)."""

    sources: str
    native: str | None = None

    def to_json(self) -> dict[str, str | None]:
        return {"sources": self.sources, "native": self.native}

    @classmethod
    def from_json(cls, value: Any) -> CodeDigest:
        """Read a ``config.code`` object; ``ValueError`` says what is wrong with it."""
        if not isinstance(value, dict) or set(value) != {"sources", "native"}:
            raise ValueError(f"must be an object with fields native, sources, got {value!r}")
        sources, native = value["sources"], value["native"]
        if not isinstance(sources, str) or not _HEX64.fullmatch(sources):
            raise ValueError(f"sources must be a sha256 (64 hex digits), got {sources!r}")
        if native is not None and (not isinstance(native, str) or not _HEX64.fullmatch(native)):
            raise ValueError(f"native must be a sha256 (64 hex digits) or null, got {native!r}")
        return cls(sources, native)

    def short(self) -> str:
        """``sources 0123456789ab…`` (and ``, native …`` when the native kernel ran)."""
        text = f"sources {self.sources[:12]}…"
        return text if self.native is None else f"{text}, native {self.native[:12]}…"


def sources_digest(root: str | Path = PACKAGE_ROOT) -> str:
    """The sha256 of the ``*.py`` sources under ``root`` (uncached; see the module docstring)."""
    root = Path(root)
    files = sorted(
        (path.relative_to(root).as_posix(), path)
        for path in root.rglob("*.py")
        if not any(
            part == "__pycache__" or part.startswith(".") for part in path.relative_to(root).parts
        )
        and path.is_file()
    )
    digest = hashlib.sha256()
    for rel, path in files:
        data = path.read_bytes()
        digest.update(f"{rel}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


@functools.cache
def package_sources_digest() -> str:
    """:func:`sources_digest` of this process's frreg package, computed once."""
    return sources_digest(PACKAGE_ROOT)


@functools.cache
def native_digest() -> str | None:
    """The sha256 of the native kernel binary this process runs (``None``: it does not
    run here, see :func:`frreg.training.batched.native_module`), computed once."""
    from frreg.training.batched.engine import native_module

    module = native_module()
    path = getattr(module, "__file__", None)
    return None if path is None else sha256_file(path)


def code_digest(kernel: str) -> CodeDigest:
    """The code of a run trained by ``kernel`` here (``native`` or ``torch``): the
    sources, and the native binary only when it is the kernel that trains."""
    return CodeDigest(package_sources_digest(), native_digest() if kernel == "native" else None)


def this_code() -> CodeDigest:
    """Everything this process could run: its sources and its native binary, if any
    (what a verdict records as the verifier's code)."""
    return CodeDigest(package_sources_digest(), native_digest())


def same_code(trainer: CodeDigest, verifier: CodeDigest) -> bool:
    """Whether ``verifier`` runs the code that trained: the same sources and, when the
    native kernel trained, the same native binary."""
    return trainer.sources == verifier.sources and (
        trainer.native is None or trainer.native == verifier.native
    )


def difference(trainer: CodeDigest, verifier: CodeDigest) -> str:
    """One phrase naming how the verifier's code differs from the trainer's."""
    if trainer.sources != verifier.sources:
        return f"trained by frreg sources {trainer.sources[:12]}…, verified by {verifier.sources[:12]}…"
    if trainer.native is not None and trainer.native != verifier.native:
        theirs = "none" if verifier.native is None else f"{verifier.native[:12]}…"
        return (
            f"the same frreg sources, but trained by native kernel binary {trainer.native[:12]}…, "
            f"verified by {theirs}"
        )
    return "the same code"
