"""A content-addressed cache of trained seeds, safe for concurrent processes.

One entry holds one seed's ``loso_seed{N}.json``, its predictions and its
weights, keyed by the sha256 of the seed's run config (corpus digest, seed,
every training setting, the model, the engine and its version, the device and
the versions that change numbers: see :func:`frreg.training.loso.run_config`).
An entry is built under a file lock in a directory every worker shares,
assembled in a temporary directory and renamed into place, then checked on
every read. Correctness does not depend on the lock: a lost lock costs
duplicated training, never a torn entry.

A builder killed mid-build (kill -9, OOM) leaves its temporary directory; the
next :meth:`SeedCache.get_or_build` of any process removes every such
directory whose builder is gone (:meth:`SeedCache.remove_dead_builds`).

The cache is a cache, not an authority: its digests are written and checked
by the same code, so an entry proves nothing. Whatever it returns goes through
the verdict's recomputation and audit (:mod:`frreg.gate.evidence`) like any
other artifact.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from frreg._io import append_line, sha256_file, sha256_json, write_json_atomic
from frreg.schema import seed_artifact_name, seed_files, seed_predictions_name
from frreg.training.record import SeedRecord

_ENTRY = "entry.json"
_TRAIN_LOG = "trained.log"
# A build directory: mkdtemp(prefix=f".{key[:12]}.") in root/key[:2]/, 8 random characters.
_BUILD_DIR = re.compile(r"\.([0-9a-f]{12})\.[A-Za-z0-9_]{8}")


@dataclass(frozen=True)
class CacheEntry:
    """A verified cache entry for one seed."""

    key: str
    directory: Path
    seed: int
    trained_now: bool
    #: When ``trained_now``: each file's sha256 as this process wrote it, before the entry
    #: was renamed into the shared cache (a gate session compares what it publishes).
    built_sha256: Mapping[str, str] = field(default_factory=dict)

    @property
    def artifact(self) -> Path:
        return self.directory / seed_artifact_name(self.seed)

    @property
    def predictions(self) -> Path:
        return self.directory / seed_predictions_name(self.seed)

    def record(self) -> SeedRecord:
        return SeedRecord.read(self.artifact)


class CorruptEntry(Exception):
    """An entry failed verification; the message says why."""


class SeedCache:
    """Trained-seed artifacts under ``root``, one directory per config key."""

    def __init__(self, root: str | Path, on_event: Callable[[str], None] | None = None) -> None:
        self.root = Path(root)
        self.on_event = on_event or (lambda message: None)
        self._swept = False

    @staticmethod
    def key(config: dict[str, Any]) -> str:
        return sha256_json(config)

    def entry_dir(self, key: str) -> Path:
        """Where the entry for ``key`` lives (whether or not it exists yet)."""
        return self.root / key[:2] / key

    def _lock_path(self, key: str) -> Path:
        return self.root / f"{key}.lock"

    def remove_dead_builds(self) -> list[Path]:
        """Remove the build directories whose builder died; return them.

        The rule is the lock, not age. A builder holds ``<key>.lock`` from
        before it creates its ``.<key12>.<random>`` directory until after it
        renames it into place, and the kernel releases the lock of a process
        that dies however it dies (kill -9 included). So a build directory
        whose lock can be taken at once (``timeout=0``, never waiting) has no
        live builder, however young it is, and one whose lock is held is kept,
        however old: age would say nothing, since a builder trains for minutes
        before it writes its first file. The lock is held while the directory
        is removed, so a builder that starts meanwhile waits, then builds
        anew. (A build directory without any lock file predates its lock or
        lost it; the protocol creates the lock first, so no live builder owns
        it.) The ``*.lock`` files themselves stay: they are empty and reused.
        """
        removed: list[Path] = []
        try:
            shards = [d for d in self.root.iterdir() if len(d.name) == 2 and d.is_dir()]
        except (FileNotFoundError, NotADirectoryError):
            return removed
        for shard in sorted(shards):
            for build in sorted(shard.iterdir()):
                match = _BUILD_DIR.fullmatch(build.name)
                if match is None or not match[1].startswith(shard.name) or not build.is_dir():
                    continue
                # Every key with this 12-character prefix (one, but for a collision).
                locks = sorted(self.root.glob(f"{match[1]}*.lock"))
                with ExitStack() as held:
                    try:
                        for lock in locks:
                            held.enter_context(FileLock(str(lock), timeout=0))
                    except Timeout:
                        continue  # its builder is alive
                    shutil.rmtree(build, ignore_errors=True)
                    if not build.exists():
                        removed.append(build)
                        self.on_event(f"removed {build}, a killed cache builder's temporary")
        return removed

    def _verify(self, key: str, config: dict[str, Any], seed: int) -> CacheEntry:
        directory = self.entry_dir(key)
        meta_path = directory / _ENTRY
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CorruptEntry(f"{meta_path} is missing") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise CorruptEntry(f"{meta_path} is unreadable ({exc})") from None
        if not isinstance(meta, dict) or meta.get("config") != config:
            raise CorruptEntry(f"{meta_path} describes a different config")
        for name, digest in (meta.get("files") or {}).items():
            path = directory / name
            if not path.is_file():
                raise CorruptEntry(f"{path} is missing")
            if sha256_file(path) != digest:
                raise CorruptEntry(f"{path} does not match its recorded sha256")
        entry = CacheEntry(key, directory, seed, trained_now=False)
        if set(meta.get("files") or {}) != set(seed_files(seed)):
            raise CorruptEntry(f"{meta_path} lists the wrong files")
        return entry

    def lookup(self, config: dict[str, Any], seed: int) -> CacheEntry | None:
        """The verified entry for ``config``, or ``None`` (corrupt entries are removed)."""
        key = self.key(config)
        if not self.entry_dir(key).exists():
            return None
        try:
            return self._verify(key, config, seed)
        except CorruptEntry as exc:
            self.on_event(f"discarding corrupt cache entry {key[:12]}: {exc}")
            shutil.rmtree(self.entry_dir(key), ignore_errors=True)
            return None

    def get_or_build(
        self,
        config: dict[str, Any],
        seed: int,
        build: Callable[[Path], None],
    ) -> CacheEntry:
        """Return the entry for ``config``, calling ``build(tmp_dir)`` at most once across processes.

        ``build`` must write ``loso_seed{seed}.json`` and its predictions into
        the directory it is given.
        """
        key = self.key(config)
        if not self._swept:  # once per instance: what earlier, killed builders left
            self._swept = True
            self.remove_dead_builds()
        if (hit := self.lookup(config, seed)) is not None:
            return hit
        self.root.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self._lock_path(key))):
            if (hit := self.lookup(config, seed)) is not None:  # another process built it
                return hit
            final = self.entry_dir(key)
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{key[:12]}.", dir=final.parent))
            try:
                build(tmp)
                files = {name: sha256_file(tmp / name) for name in seed_files(seed)}
                write_json_atomic(tmp / _ENTRY, {"key": key, "config": config, "files": files})
                shutil.rmtree(final, ignore_errors=True)
                os.rename(tmp, final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            append_line(self.root / _TRAIN_LOG, f"{key} seed={seed} pid={os.getpid()}")
            self.on_event(f"trained seed {seed} (cache key {key[:12]})")
        return CacheEntry(key, final, seed, trained_now=True, built_sha256=files)

    def trained_count(self) -> int:
        """How many entries this cache has ever built (one line per build in ``trained.log``)."""
        try:
            return len((self.root / _TRAIN_LOG).read_text(encoding="utf-8").splitlines())
        except FileNotFoundError:
            return 0
