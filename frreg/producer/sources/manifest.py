"""Sources manifests: a TOML or JSON list of sources, optionally with the grid to run.

Every problem raises :class:`ManifestError`, which reads
``MANIFEST[:LINE]: [entry: ]problem``. :func:`declared_source_ids` reads only
the text (no probing, hashing or generating), so pytest can name its items
before anything is produced.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from frreg.errors import InputError
from frreg.producer.encoders import check_cq, check_encoder, check_preset
from frreg.producer.sources.builtins import DEFAULT_BUILTIN_IDS
from frreg.producer.sources.model import (
    GEOMETRY_KEYS,
    Source,
    check_distinct_files,
    check_src_id,
    check_unique_ids,
    container_source,
    is_raw_path,
    raw_source,
)

#: Keys a manifest entry may have; the geometry keys are required for raw YUV.
ENTRY_KEYS: Final = ("path", "id", *GEOMETRY_KEYS)
#: Top-level keys a manifest may have.
MANIFEST_KEYS: Final = ("sources", "encoders", "cqs", "presets")


class ManifestError(InputError):
    """A sources manifest is unusable; reads ``MANIFEST[:LINE]: [entry: ]problem``."""

    def __init__(self, path: object, problem: str, line: int | None = None) -> None:
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class SourceManifest:
    """A parsed sources manifest: its sources and the optional grid it carries."""

    path: Path
    sources: tuple[Source, ...]
    encoders: tuple[str, ...] | None = None
    cqs: tuple[int, ...] | None = None
    presets: Mapping[str, str] | None = None


def load_manifest(
    path: str | os.PathLike[str], *, ffmpeg: str | os.PathLike[str]
) -> SourceManifest:
    """Read a TOML (``.toml``) or JSON manifest of sources and, optionally, the grid.

    ``sources`` is a list of tables with ``path`` (relative paths resolve
    against the manifest's directory), an optional ``id`` (default: the file
    stem) and, for raw YUV, ``width``, ``height``, ``pix_fmt`` and
    ``framerate``. Top-level ``encoders``, ``cqs`` and ``presets`` (a table
    encoder → preset) are optional defaults for the CLI's grid options.
    Every problem raises :class:`ManifestError` naming the manifest and entry.
    """
    mpath = Path(path)
    text, data = _read_manifest(mpath)
    entries = data["sources"]
    encoders = _manifest_encoders(mpath, text, data.get("encoders"))
    cqs = _manifest_cqs(mpath, text, data.get("cqs"), encoders)
    presets = _manifest_presets(mpath, text, data.get("presets"))

    sources: list[Source] = []
    for index, entry in enumerate(entries):
        sources.append(_manifest_entry(mpath, text, index, entry, ffmpeg))
    try:
        check_unique_ids(sources)
        check_distinct_files(sources)
    except InputError as exc:
        raise ManifestError(mpath, str(exc)) from None
    return SourceManifest(mpath, tuple(sources), encoders, cqs, presets)


def _read_manifest(mpath: Path) -> tuple[str, dict[str, Any]]:
    """The manifest's text and its parsed top level, with the top-level keys checked."""
    try:
        text = mpath.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(mpath, "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(mpath, f"cannot read: {exc}") from None
    data = _parse_manifest_text(mpath, text)
    if not isinstance(data, dict):
        raise ManifestError(mpath, "top level must be a table/object with a 'sources' list")
    unknown = sorted(set(data) - set(MANIFEST_KEYS))
    if unknown:
        raise ManifestError(
            mpath, f"unknown key {unknown[0]!r}; allowed: {', '.join(MANIFEST_KEYS)}"
        )
    entries = data.get("sources")
    if not isinstance(entries, list) or not entries:
        raise ManifestError(mpath, "'sources' must be a non-empty list of source entries")
    return text, data


def declared_source_ids(
    manifest: str | os.PathLike[str] | None = None, *, distribution: str | None = None
) -> list[str]:
    """Source ids a manifest declares (``id``, else the path's stem), or the built-in ids.

    Reads only the manifest text — no probing, hashing or generating — so
    pytest can name its items before anything is produced. Full validation
    happens in :func:`load_manifest`. Without a manifest: the default built-in
    set (:data:`~.builtins.DEFAULT_BUILTIN_IDS`); ``distribution`` is kept for
    callers that list what is installed.
    """
    if manifest is None:
        return list(DEFAULT_BUILTIN_IDS)
    mpath = Path(manifest)
    _, data = _read_manifest(mpath)
    ids = []
    for index, entry in enumerate(data["sources"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            raise ManifestError(mpath, f"sources[{index}]: missing field 'path'")
        src_id = entry.get("id", Path(entry["path"]).stem)
        try:
            ids.append(check_src_id(src_id))
        except InputError as exc:
            raise ManifestError(mpath, f"sources[{index}]: {exc}") from None
    return ids


def _parse_manifest_text(mpath: Path, text: str) -> Any:
    if mpath.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ManifestError(mpath, f"invalid JSON: {exc.msg}", exc.lineno) from None
        except RecursionError:
            raise ManifestError(mpath, "invalid JSON: nested too deeply") from None
        except ValueError as exc:  # an integer past Python's digit limit
            raise ManifestError(mpath, f"invalid JSON: {exc}".split(";")[0]) from None
    try:
        return tomllib.loads(text)
    except RecursionError:
        raise ManifestError(mpath, "invalid TOML: nested too deeply") from None
    except tomllib.TOMLDecodeError as exc:
        # tomllib puts the position in the message: "... (at line 3, column 7)".
        match = re.search(r"\(at line (\d+), column \d+\)$", str(exc))
        msg = str(exc)[: match.start()].strip() if match else str(exc)
        line = int(match.group(1)) if match else None
        raise ManifestError(mpath, f"invalid TOML: {msg}", line) from None


def _line_of(text: str, key: str, value: object) -> int | None:
    """Line of ``key = value`` / ``"key": value`` if it appears exactly once; else None.

    tomllib and json keep no positions, and a best-effort line number still
    beats none for a human looking for the entry.
    """
    if value is None:
        return None
    literal = json.dumps(value) if isinstance(value, str) else str(value)
    pattern = re.compile(rf"""["']?{re.escape(key)}["']?\s*[:=]\s*{re.escape(literal)}""")
    hits = [i for i, line in enumerate(text.splitlines(), 1) if pattern.search(line)]
    if len(hits) == 1:
        return hits[0]
    if isinstance(value, str):
        # TOML literal strings use single quotes.
        pattern = re.compile(rf"""{re.escape(key)}\s*=\s*'{re.escape(value)}'""")
        hits = [i for i, line in enumerate(text.splitlines(), 1) if pattern.search(line)]
        if len(hits) == 1:
            return hits[0]
    return None


def _key_line(text: str, key: str) -> int | None:
    """Line where top-level ``key`` is set, if exactly one line sets it."""
    pattern = re.compile(rf"""^\s*["']?{re.escape(key)}["']?\s*[:=]""")
    hits = [i for i, line in enumerate(text.splitlines(), 1) if pattern.search(line)]
    return hits[0] if len(hits) == 1 else None


def _manifest_entry(mpath: Path, text: str, index: int, entry: object, ffmpeg: Any) -> Source:
    label = f"sources[{index}]"
    if not isinstance(entry, dict):
        raise ManifestError(mpath, f"{label}: must be a table/object, not {type(entry).__name__}")
    raw_path = entry.get("path")
    line = _line_of(text, "path", raw_path)
    if isinstance(raw_path, str):
        label = f"{label} ({raw_path!r})"

    def fail(problem: str) -> ManifestError:
        return ManifestError(mpath, f"{label}: {problem}", line)

    unknown = sorted(set(entry) - set(ENTRY_KEYS))
    if unknown:
        raise fail(f"unknown key {unknown[0]!r}; allowed: {', '.join(ENTRY_KEYS)}")
    if not isinstance(raw_path, str) or not raw_path:
        raise fail("missing field 'path'")
    src_path = Path(raw_path)
    if not src_path.is_absolute():
        src_path = mpath.parent / src_path
    src_id = entry.get("id")
    if src_id is not None and not isinstance(src_id, str):
        raise fail(f"'id' must be a string, not {src_id!r}")
    given = [k for k in GEOMETRY_KEYS if k in entry]
    try:
        if given or is_raw_path(src_path):
            missing = [k for k in GEOMETRY_KEYS if k not in entry]
            if missing:
                kind = "raw YUV" if is_raw_path(src_path) else "a source with geometry"
                raise fail(
                    f"missing field{'s' if len(missing) > 1 else ''} "
                    f"{', '.join(repr(m) for m in missing)} ({kind} needs {', '.join(GEOMETRY_KEYS)})"
                )
            return raw_source(
                src_path,
                width=entry["width"],
                height=entry["height"],
                pix_fmt=entry["pix_fmt"],
                framerate=entry["framerate"],
                src_id=src_id,
            )
        return container_source(src_path, ffmpeg=ffmpeg, src_id=src_id)
    except ManifestError:
        raise
    except InputError as exc:
        raise fail(str(exc)) from None


def _manifest_encoders(mpath: Path, text: str, value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(e, str) for e in value):
        raise ManifestError(mpath, "'encoders' must be a non-empty list of encoder names")
    for enc in value:
        try:
            check_encoder(enc)
        except InputError as exc:
            raise ManifestError(mpath, f"encoders: {exc}", _key_line(text, "encoders")) from None
    return tuple(dict.fromkeys(value))


def _manifest_cqs(
    mpath: Path, text: str, value: object, encoders: tuple[str, ...] | None
) -> tuple[int, ...] | None:
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(q, int) and not isinstance(q, bool) for q in value)
    ):
        raise ManifestError(mpath, "'cqs' must be a non-empty list of integers")
    for enc in encoders or ():
        for cq in value:
            try:
                check_cq(enc, cq)
            except InputError as exc:
                raise ManifestError(mpath, f"cqs: {exc}", _key_line(text, "cqs")) from None
    return tuple(sorted(set(value)))


def _manifest_presets(mpath: Path, text: str, value: object) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ManifestError(mpath, "'presets' must be a table/object of encoder = preset")
    presets: dict[str, str] = {}
    for enc, preset in value.items():
        try:
            check_encoder(enc)
            presets[enc] = check_preset(enc, str(preset))
        except InputError as exc:
            raise ManifestError(mpath, f"presets: {exc}", _line_of(text, enc, preset)) from None
    return presets
