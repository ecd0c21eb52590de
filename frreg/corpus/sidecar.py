"""The files a producer run keeps next to a corpus, and the check that reads them.

Next to corpus ``OUT`` live:

``OUT.manifest.json``
    The run's record (written by :mod:`frreg.producer`): settings, sources,
    ffmpeg and libvmaf versions, every cell's status, ``complete``,
    ``allow_missing`` and the sha256 of the corpus it wrote.
``OUT.parts/``
    One file per finished cell (the producer's resumable work).
``OUT.incomplete``
    Present while a run is in progress or after it failed; its first line
    says why. The corpus must not be used while it exists.

This module owns those names and what a reader may conclude from them, so the
loader can refuse an unfinished corpus without importing the producer.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Final

from frreg._io import atomic_writer, sha256_file
from frreg.errors import CorpusError


def manifest_path(corpus: str | os.PathLike[str]) -> Path:
    """``OUT.manifest.json``: the run record next to corpus ``OUT``."""
    p = Path(corpus)
    return p.with_name(p.name + ".manifest.json")


def parts_dir(corpus: str | os.PathLike[str]) -> Path:
    """``OUT.parts/``: one file per finished cell."""
    p = Path(corpus)
    return p.with_name(p.name + ".parts")


def incomplete_marker(corpus: str | os.PathLike[str]) -> Path:
    """``OUT.incomplete``: exists while the corpus must not be used."""
    p = Path(corpus)
    return p.with_name(p.name + ".incomplete")


def mark_incomplete(corpus: str | os.PathLike[str], why: str) -> None:
    """Put ``OUT.incomplete`` down (atomically), its first line saying ``why``."""
    with atomic_writer(incomplete_marker(corpus)) as fh:
        fh.write(why + "\n")


def clear_incomplete(corpus: str | os.PathLike[str]) -> None:
    """Remove ``OUT.incomplete``: the corpus next to it is whole."""
    incomplete_marker(corpus).unlink(missing_ok=True)


def read_producer_manifest(corpus: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The parsed ``OUT.manifest.json``, or ``None`` when there is none.

    Raises :class:`CorpusError` when it exists but cannot be read as JSON.
    """
    mpath = manifest_path(corpus)
    if not mpath.exists():
        return None
    if not mpath.is_file():  # a device or pipe would be read without end
        raise CorpusError(mpath, None, "unreadable producer manifest: not a regular file")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except RecursionError:
        raise CorpusError(mpath, None, "unreadable producer manifest: nested too deeply") from None
    except (OSError, ValueError) as exc:
        raise CorpusError(mpath, None, f"unreadable producer manifest: {exc}") from None
    if not isinstance(manifest, dict):
        raise CorpusError(
            mpath,
            None,
            f"unreadable producer manifest: a JSON {type(manifest).__name__}, not an object",
        )
    for key, kind in (("missing", list), ("corpus", dict)):
        if manifest.get(key) is not None and not isinstance(manifest[key], kind):
            raise CorpusError(
                mpath,
                None,
                f"unreadable producer manifest: '{key}' is {type(manifest[key]).__name__}, "
                f"not {kind.__name__}",
            )
    return manifest


def check_corpus_complete(path: str | os.PathLike[str], *, sha256: str | None = None) -> None:
    """Raise :class:`CorpusError` if the producer's records say ``path`` is not usable.

    Refused: an ``OUT.incomplete`` marker (a run failed or is in progress); a
    manifest with ``complete: false`` that was not written with
    ``allow_missing``; a corpus whose sha256 differs from the one its
    manifest recorded. A corpus with no manifest (not made by frreg-corpus)
    passes: there is nothing to check it against. Pass ``sha256`` when the
    caller already hashed the corpus bytes, to skip hashing them again.
    """
    corpus = Path(path)
    marker = incomplete_marker(corpus)
    if marker.exists():
        try:
            why = marker.read_text(encoding="utf-8").strip().splitlines()[0]
        except (OSError, IndexError):
            why = "a producer run did not finish"
        raise CorpusError(corpus, None, f"corpus is incomplete: {why} (see {marker.name})")
    manifest = read_producer_manifest(corpus)
    if manifest is None:
        return
    mname = manifest_path(corpus).name
    if not manifest.get("complete") and not manifest.get("allow_missing"):
        missing = manifest.get("missing") or []
        raise CorpusError(
            corpus,
            None,
            f"corpus is incomplete: {len(missing)} cells missing "
            f"({', '.join(map(str, missing[:5]))}{', ...' if len(missing) > 5 else ''}); "
            f"rerun frreg-corpus, or pass --allow-missing to accept the gaps",
        )
    _check_one_libvmaf(corpus, manifest)
    recorded = (manifest.get("corpus") or {}).get("sha256")
    if recorded is None:
        raise CorpusError(corpus, None, f"{mname} records no corpus; rerun frreg-corpus")
    if not corpus.exists():
        raise CorpusError(corpus, None, "no such file (its manifest exists; rerun frreg-corpus)")
    if (sha256 or sha256_file(corpus)) != recorded:
        raise CorpusError(
            corpus,
            None,
            f"contents differ from what {mname} recorded "
            f"(edited, or written by another run); rerun frreg-corpus",
        )


#: The manifest setting that accepts cells scored by different libvmaf builds.
ALLOW_MIXED_LIBVMAF: Final = "allow_mixed_libvmaf"


def _check_one_libvmaf(corpus: Path, manifest: dict[str, Any]) -> None:
    """Cells run on Dask workers record their libvmaf; features from different libvmaf
    builds are not comparable, so such a corpus is refused unless it was produced with
    ``--allow-mixed-libvmaf``."""
    seen: dict[str, list[str]] = {}
    for cell in manifest.get("cells") or []:
        worker = cell.get("worker") if isinstance(cell, dict) else None
        if isinstance(worker, dict):
            version = str(worker.get("libvmaf_version"))
            seen.setdefault(version, []).append(str(worker.get("address")))
    settings = manifest.get("settings")
    allowed = isinstance(settings, dict) and bool(settings.get(ALLOW_MIXED_LIBVMAF))
    if len(seen) > 1 and not allowed:
        which = "; ".join(
            f"libvmaf {v} on {', '.join(sorted(set(addrs)))}" for v, addrs in sorted(seen.items())
        )
        raise CorpusError(
            corpus,
            None,
            f"cells were scored by different libvmaf builds ({which}): their features are not "
            "comparable; rerun on workers with one build, or produce with --allow-mixed-libvmaf",
        )
