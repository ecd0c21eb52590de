"""A resolved video source: raw YUV with explicit geometry, or a container ffmpeg probes.

A :class:`Source` is resolved once (geometry, frame count, content sha256)
and then treated as immutable; its :meth:`Source.describe` record is stored
in the corpus manifest and is part of every cell's cache key, so a changed
file can never reuse cells scored against the old one.

Raw YUV carries no header, so its width, height, pixel format and frame rate
are always given explicitly — never assumed from the file name. Containers
(Y4M, MKV, MP4, ...) are probed with ffmpeg.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Final

from frreg._io import sha256_file
from frreg.corpus.ids import SRC_ID_RULE, src_id_key, src_id_problem
from frreg.errors import InputError, ToolError
from frreg.producer import ffmpeg as ff

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

#: What a raw YUV source needs, since it has no header to read them from.
GEOMETRY_KEYS: Final = ("width", "height", "pix_fmt", "framerate")
#: What a raw ``--source`` assumes when these are not given, with a warning:
#: the fork's producer's defaults (its ``--pix-fmt`` and ``--framerate 25.0``).
#: The size is never assumed; manifests state all four.
RAW_DEFAULTS: Final[dict[str, str]] = {"pix_fmt": "yuv420p", "framerate": "25"}


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


def check_src_id(src_id: str) -> str:
    """Return ``src_id`` if it may name a source (:mod:`frreg.corpus.ids`'s rule, the loader's)."""
    problem = src_id_problem(src_id)
    if problem is not None:
        raise InputError(f"source id {src_id!a} {problem}; {SRC_ID_RULE}")
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
    """Raise InputError if two sources share an id (LOSO folds are keyed by it).

    Ids equal after Unicode normalisation (:func:`~frreg.corpus.ids.src_id_key`)
    count as the same: they would look alike but make two folds.
    """
    seen: dict[str, Source] = {}
    for src in sources:
        first = seen.get(src_id_key(src.id))
        if first is not None:
            same = (
                ""
                if first.id == src.id
                else f" ({first.id!a} and {src.id!a} in different Unicode forms)"
            )
            raise InputError(
                f"source id {src.id!r} is used by both {first.path} and {src.path}{same}; "
                f"give one of them an explicit id"
            )
        seen[src_id_key(src.id)] = src


def check_distinct_files(sources: Iterable[Source]) -> None:
    """Raise InputError if two sources are one file (the same content sha256) under two ids.

    LOSO holds out one id at a time: the same clip under a second id is in the training
    set of its own fold, and the gate would score a model on what it trained on.
    """
    seen: dict[str, Source] = {}
    for src in sources:
        first = seen.setdefault(src.sha256, src)
        if first is not src and first.id != src.id:
            raise InputError(
                f"sources {first.id!a} ({first.path}) and {src.id!a} ({src.path}) are one file "
                f"(sha256 {src.sha256[:12]}…): LOSO would score each on a model that trained on "
                "the other; give the clip one id"
            )
