"""Video sources: raw YUV with explicit geometry, containers ffmpeg can probe, and built-ins.

A :class:`Source` is resolved once (geometry, frame count, content sha256)
and then treated as immutable; its :meth:`Source.describe` record is stored
in the corpus manifest and is part of every cell's cache key, so a changed
file can never reuse cells scored against the old one.

Raw YUV carries no header, so its width, height, pixel format and frame rate
are always given explicitly — never assumed from the file name. Containers
(Y4M, MKV, MP4, ...) are probed with ffmpeg.
"""

from __future__ import annotations

import json
import math
import os
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Final

from filelock import FileLock

from frreg._io import sha256_file, sha256_json
from frreg.errors import InputError, ToolError
from frreg.producer import ffmpeg as ff
from frreg.producer.encoders import check_cq, check_encoder, check_preset

#: File suffixes read as headerless raw video (they need explicit geometry).
RAW_SUFFIXES: Final = (".yuv", ".raw", ".nv12", ".p010")

#: Raw pixel formats the producer can size: (bytes per sample, chroma x shift,
#: chroma y shift, chroma planes). Frame size = luma + chroma planes.
RAW_PIX_FMTS: Final[dict[str, tuple[int, int, int, int]]] = {
    "yuv420p": (1, 1, 1, 2),
    "yuv422p": (1, 1, 0, 2),
    "yuv444p": (1, 0, 0, 2),
    "nv12": (1, 1, 1, 2),
    "nv21": (1, 1, 1, 2),
    "gray": (1, 0, 0, 0),
    "yuv420p10le": (2, 1, 1, 2),
    "yuv422p10le": (2, 1, 0, 2),
    "yuv444p10le": (2, 0, 0, 2),
    "yuv420p12le": (2, 1, 1, 2),
    "yuv422p12le": (2, 1, 0, 2),
    "yuv444p12le": (2, 0, 0, 2),
    "p010le": (2, 1, 1, 2),
    "gray10le": (2, 0, 0, 0),
}

#: Keys a manifest entry may have; the geometry keys are required for raw YUV.
GEOMETRY_KEYS: Final = ("width", "height", "pix_fmt", "framerate")
ENTRY_KEYS: Final = ("path", "id", *GEOMETRY_KEYS)
MANIFEST_KEYS: Final = ("sources", "encoders", "cqs", "presets")

#: Environment variable overriding where generated built-in sources are cached.
CACHE_ENV: Final = "FRREG_CACHE_DIR"


def frame_bytes(width: int, height: int, pix_fmt: str) -> int:
    """Bytes in one raw frame of ``pix_fmt`` at ``width`` x ``height``."""
    try:
        sample, sx, sy, chroma_planes = RAW_PIX_FMTS[pix_fmt]
    except KeyError:
        raise InputError(
            f"unsupported raw pix_fmt {pix_fmt!r}; choose from {', '.join(RAW_PIX_FMTS)}"
        ) from None
    chroma = math.ceil(width / (1 << sx)) * math.ceil(height / (1 << sy))
    return (width * height + chroma_planes * chroma) * sample


def parse_framerate(value: object) -> Fraction:
    """A positive frame rate from ``24``, ``29.97``, ``"30000/1001"``; InputError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InputError(f"framerate must be a number or 'N/D', not {value!r}")
    try:
        rate = Fraction(str(value).strip())
    except (ValueError, ZeroDivisionError):
        raise InputError(f"framerate {value!r} is not a number or 'N/D'") from None
    if rate <= 0:
        raise InputError(f"framerate {value!r} must be positive")
    return rate


def rate_str(rate: Fraction) -> str:
    """``24`` or ``30000/1001``: what ffmpeg's ``-framerate`` takes and manifests store."""
    return str(rate.numerator) if rate.denominator == 1 else f"{rate.numerator}/{rate.denominator}"


_ID_RE: Final = re.compile(r"[^\s/\\][^/\\\x00-\x1f]*")


def check_src_id(src_id: str) -> str:
    """Return ``src_id`` if usable as a ``src`` value (non-empty, no slashes or control chars)."""
    if not isinstance(src_id, str) or not _ID_RE.fullmatch(src_id) or src_id != src_id.strip():
        raise InputError(
            f"source id {src_id!r} must be non-empty text without slashes, "
            f"control characters or surrounding spaces"
        )
    return src_id


@dataclass(frozen=True)
class Source:
    """One resolved source video."""

    id: str
    path: Path
    width: int
    height: int
    pix_fmt: str
    framerate: Fraction
    frames: int
    raw: bool
    sha256: str
    #: The lavfi graph a built-in source was rendered from; ``None`` for files.
    generator: str | None = None

    def input_args(self) -> list[str]:
        """ffmpeg input options that read this source."""
        if self.raw:
            return ff.raw_input_args(
                self.path, self.width, self.height, self.pix_fmt, self.framerate
            )
        return ff.container_input_args(self.path)

    def describe(self) -> dict[str, Any]:
        """The JSON record stored in the corpus manifest."""
        return {
            "id": self.id,
            "path": str(self.path),
            "raw": self.raw,
            "width": self.width,
            "height": self.height,
            "pix_fmt": self.pix_fmt,
            "framerate": rate_str(self.framerate),
            "frames": self.frames,
            "sha256": self.sha256,
            "generator": self.generator,
        }

    def identity(self) -> dict[str, Any]:
        """What determines this source's pixels (``describe`` minus where the file lives)."""
        record = self.describe()
        del record["path"]
        return record


def is_raw_path(path: str | os.PathLike[str]) -> bool:
    """Whether ``path``'s suffix says headerless raw video."""
    return Path(path).suffix.lower() in RAW_SUFFIXES


def raw_source(
    path: str | os.PathLike[str],
    *,
    width: int,
    height: int,
    pix_fmt: str,
    framerate: object,
    src_id: str | None = None,
) -> Source:
    """A raw YUV source; checks the file exists and holds a whole number of frames."""
    p = Path(path)
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise InputError(f"{name} must be a positive integer, not {value!r}")
    if not isinstance(pix_fmt, str):
        raise InputError(f"pix_fmt must be a string, not {pix_fmt!r}")
    rate = parse_framerate(framerate)
    per_frame = frame_bytes(width, height, pix_fmt)
    size = _file_size(p)
    if size == 0 or size % per_frame:
        raise InputError(
            f"{p}: size {size} bytes is not a positive multiple of the frame size {per_frame} "
            f"({width}x{height} {pix_fmt}); check width, height and pix_fmt"
        )
    return Source(
        id=check_src_id(src_id if src_id is not None else p.stem),
        path=p.resolve(),
        width=width,
        height=height,
        pix_fmt=pix_fmt,
        framerate=rate,
        frames=size // per_frame,
        raw=True,
        sha256=sha256_file(p),
    )


def container_source(
    path: str | os.PathLike[str],
    *,
    ffmpeg: str | os.PathLike[str],
    src_id: str | None = None,
    timeout: float = ff.PROBE_TIMEOUT_S * 10,
) -> Source:
    """A source in any container ffmpeg reads; geometry and frame count are probed."""
    p = Path(path)
    _file_size(p)
    try:
        probed = ff.probe_video(ffmpeg, p, timeout=timeout)
    except ToolError as exc:
        first = exc.stderr_tail.splitlines()[-1] if exc.stderr_tail else str(exc)
        raise InputError(f"{p}: ffmpeg cannot read it as video ({first.strip()})") from None
    if probed.frames == 0:
        raise InputError(f"{p}: decodes to 0 frames")
    return Source(
        id=check_src_id(src_id if src_id is not None else p.stem),
        path=p.resolve(),
        width=probed.width,
        height=probed.height,
        pix_fmt=probed.pix_fmt,
        framerate=probed.framerate,
        frames=probed.frames,
        raw=False,
        sha256=sha256_file(p),
    )


def _file_size(path: Path) -> int:
    try:
        if not path.is_file():
            raise InputError(
                f"{path}: no such file" if not path.exists() else f"{path}: not a file"
            )
        return path.stat().st_size
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror}") from None


def check_unique_ids(sources: Iterable[Source]) -> None:
    """Raise InputError if two sources share an id (LOSO folds are keyed by it)."""
    seen: dict[str, Path] = {}
    for src in sources:
        if src.id in seen:
            raise InputError(
                f"source id {src.id!r} is used by both {seen[src.id]} and {src.path}; "
                f"give one of them an explicit id"
            )
        seen[src.id] = src.path


# --------------------------------------------------------------------------
# Manifest files
# --------------------------------------------------------------------------


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


def declared_source_ids(manifest: str | os.PathLike[str] | None = None) -> list[str]:
    """Source ids a manifest declares (``id``, else the path's stem), or the built-in ids.

    Reads only the manifest text — no probing, hashing or generating — so
    pytest can name its items before anything is produced. Full validation
    happens in :func:`load_manifest`.
    """
    if manifest is None:
        return list(BUILTIN_SOURCE_IDS)
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
    try:
        return tomllib.loads(text)
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


# --------------------------------------------------------------------------
# Built-in sources
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class BuiltinSpec:
    """One built-in source: a deterministic lavfi graph at a fixed frame rate."""

    id: str
    rate: int
    #: lavfi graph; ``{size}``, ``{rate}`` and ``{w_8}``, ``{h_8}``, ``{w7_8}``,
    #: ``{h7_8}`` (1/8 and 7/8 of the frame, in pixels) are filled in.
    graph: str
    #: What kind of content it adds to the corpus.
    content: str

    def render(self, width: int, height: int) -> str:
        """The full graph for ``width`` x ``height``, ending in limited-range yuv420p.

        Some generators (zoneplate) emit full-range YUV; limited range is what
        real video and encoders expect, and it keeps a decoded encode and its
        source in the same range without relying on range signalling.
        """
        body = self.graph.format(
            size=f"{width}x{height}",
            rate=self.rate,
            w_8=width // 8,
            h_8=height // 8,
            w7_8=width * 7 // 8,
            h7_8=height * 7 // 8,
        )
        return f"{body},scale=out_range=tv,format=yuv420p"


# Every generator with a random element has its seed pinned, so the same
# ffmpeg renders the same bytes every time. Ids carry the frame rate because
# it is part of what makes the source (and reads well in test ids).
BUILTIN_SPECS: Final = (
    BuiltinSpec(
        "testsrc2_30fps", 30, "testsrc2=size={size}:rate={rate}", "synthetic chart, motion"
    ),
    BuiltinSpec(
        "mandelbrot_24fps",
        24,
        "mandelbrot=size={size}:rate={rate}:maxiter=1024",
        "fractal zoom, fine detail",
    ),
    BuiltinSpec(
        "life_25fps",
        25,
        "life=size={size}:rate={rate}:seed=7:ratio=0.1:mold=8"
        ":life_color=#ffe080:death_color=#203050:mold_color=#603010",
        "cellular automaton, high temporal noise",
    ),
    BuiltinSpec(
        "cellauto_30fps",
        30,
        "cellauto=size={size}:rate={rate}:rule=30:seed=42:random_fill_ratio=0.5:scroll=1",
        "scrolling binary texture, maximum spatial detail",
    ),
    BuiltinSpec(
        "gradients_24fps",
        24,
        "gradients=size={size}:rate={rate}:seed=3:speed=0.03:nb_colors=5"
        ":x0={w_8}:y0={h_8}:x1={w7_8}:y1={h7_8}",
        "smooth rotating gradients, low detail",
    ),
    BuiltinSpec(
        "zoneplate_30fps",
        30,
        "zoneplate=size={size}:rate={rate}:kx2=256:ky2=256:kt2=10:kxt=12:kyt=6",
        "drifting zone plate, aliasing-prone frequencies",
    ),
    BuiltinSpec(
        "noise_25fps",
        25,
        "color=c=0x808080:size={size}:rate={rate},noise=alls=24:allf=t+u:all_seed=5",
        "flat grey with temporal noise (film grain)",
    ),
    BuiltinSpec(
        "testsrc_blur_50fps",
        50,
        "testsrc=size={size}:rate={rate},boxblur=luma_radius=3:luma_power=2",
        "blurred moving chart, high frame rate",
    ),
    BuiltinSpec(
        "smptehdbars_scroll_30fps",
        30,
        "smptehdbars=size={size}:rate={rate},scroll=horizontal=0.004",
        "colour bars panning, sharp edges",
    ),
    BuiltinSpec(
        "sierpinski_24fps",
        24,
        "sierpinski=size={size}:rate={rate}:seed=11:jump=2:type=carpet",
        "moving fractal carpet, hard edges",
    ),
)

#: Built-in source ids, known without generating anything (for pytest collection).
BUILTIN_SOURCE_IDS: Final = tuple(spec.id for spec in BUILTIN_SPECS)
#: Default built-in geometry and length.
BUILTIN_SIZE: Final = (320, 180)
BUILTIN_SECONDS: Final = 3


def default_cache_dir() -> Path:
    """``$FRREG_CACHE_DIR``, else ``$XDG_CACHE_HOME/frreg``, else ``~/.cache/frreg``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "frreg"


def builtin_sources(
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    ids: Sequence[str] | None = None,
    frames: int | None = None,
    size: tuple[int, int] = BUILTIN_SIZE,
    ffmpeg: str | os.PathLike[str] | None = None,
    timeout: float = 600.0,
) -> list[Source]:
    """The built-in sources (all, or ``ids``), rendered on demand into ``cache_dir``.

    Each is ``frames`` frames long (default :data:`BUILTIN_SECONDS` seconds
    at its own rate) at ``size``. Files are cached under a name derived from
    everything that determines their bytes, rendered under a file lock to a
    temporary name and renamed into place, so concurrent callers (xdist
    workers) never see a torn file.
    """
    chosen = list(dict.fromkeys(ids)) if ids is not None else list(BUILTIN_SOURCE_IDS)
    by_id = {spec.id: spec for spec in BUILTIN_SPECS}
    for sid in chosen:
        if sid not in by_id:
            raise InputError(
                f"unknown built-in source {sid!r}; choose from {', '.join(BUILTIN_SOURCE_IDS)}"
            )
    if frames is not None and (isinstance(frames, bool) or frames < 1):
        raise InputError(f"frames must be a positive integer, not {frames!r}")
    width, height = size
    if width < 32 or height < 32 or width % 2 or height % 2:
        raise InputError(f"built-in size {width}x{height} must be even and at least 32x32")
    exe = ff.resolve_ffmpeg(ffmpeg)
    info = ff.probe_ffmpeg(exe)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "sources"
    root.mkdir(parents=True, exist_ok=True)

    out: list[Source] = []
    for sid in chosen:
        spec = by_id[sid]
        n = frames if frames is not None else spec.rate * BUILTIN_SECONDS
        graph = spec.render(width, height)
        digest = sha256_json(
            {
                "graph": graph,
                "frames": n,
                "ffmpeg": info.version,
                "argv": ff.generate_argv("ffmpeg", graph, n, "OUT")[1:],
            }
        )[:12]
        path = root / f"{sid}_{width}x{height}_{n}f_{digest}.y4m"
        if not path.exists():
            with FileLock(str(path) + ".lock"):
                if not path.exists():
                    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
                    try:
                        ff.generate(exe, graph, n, tmp, timeout=timeout)
                        os.replace(tmp, path)
                    finally:
                        tmp.unlink(missing_ok=True)
        out.append(
            Source(
                id=sid,
                path=path.resolve(),
                width=width,
                height=height,
                pix_fmt="yuv420p",
                framerate=Fraction(spec.rate),
                frames=n,
                raw=False,
                sha256=sha256_file(path),
                generator=graph,
            )
        )
    return out
