"""The corpus producer's options: ``frreg-corpus``'s, and the grid the plugin produces a
missing corpus with (``--frreg-sources``, ``--frreg-encoders``, ``--frreg-cqs``,
``--frreg-scheduler``).

Declared once here (see :mod:`frreg.options` for how); resolved once in
:func:`frreg.producer.settings.producer_settings`. An option both front ends
offer is one :class:`~frreg.options.Option` with one syntax: ``--encoder``
and ``--cq`` take lists written ``a,b`` or ``a b``, repeated or several after
one flag (``--encoder libx264 libx265``, the fork's argv), and the plugin's
``--frreg-encoders=libx264,libx265`` is the same option with its prefix.

Light: it reads only the encoder specs at import; the producer's heavier
vocabularies (sources, ffmpeg, the runner) load inside functions, so
``pytest --help`` stays cheap.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from frreg.options import (
    Option,
    OptionGroup,
    nonnegative_int,
    positive_float,
    positive_int,
    split_list,
)
from frreg.producer.encoders import CQ_BOUNDS, ENCODER_SPECS, PRODUCIBLE_ENCODERS
from frreg.schema import DEFAULT_AUDIT_CELLS, DEMO_CQS, DEMO_ENCODERS

# --------------------------------------------------------------------------
# Value checks: one per kind of value (an encoder, a cq, a preset, ...)
# --------------------------------------------------------------------------

_ENCODER_CHOICES = f"choose from {', '.join(PRODUCIBLE_ENCODERS)}"


def producible_encoder(text: str) -> str:
    """One encoder the producer can drive (the vocabulary minus ``unknown``, and the
    VAAPI and VideoToolbox encoders, whose rows train the ``unknown`` slot)."""
    if text not in PRODUCIBLE_ENCODERS:
        raise argparse.ArgumentTypeError(f"invalid encoder {text!r}; {_ENCODER_CHOICES}")
    return text


def _non_negative_int(text: str) -> int | None:
    digits = text.strip()
    return int(digits) if digits.isdecimal() else None


def cq_value(text: str) -> int:
    """A non-negative integer quality value (its range per encoder is checked later)."""
    cq = _non_negative_int(text)
    if cq is None:
        lo, hi = CQ_BOUNDS
        raise argparse.ArgumentTypeError(
            f"invalid cq {text!r}; expected an integer in {lo}..{hi} (range depends on the encoder)"
        )
    return cq


def encoder_preset(text: str) -> tuple[str, str]:
    """``ENCODER=PRESET`` with the preset on that encoder's ladder."""
    encoder, sep, preset = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(
            f"invalid preset {text!r}; expected ENCODER=VALUE, e.g. libx264=medium"
        )
    ladder = ENCODER_SPECS[producible_encoder(encoder)].ladder
    if not ladder:
        raise argparse.ArgumentTypeError(f"invalid preset {text!r}: {encoder} has no speed preset")
    if preset not in ladder:
        raise argparse.ArgumentTypeError(
            f"invalid preset {preset!r} for {encoder}; choose from {', '.join(ladder)}"
        )
    return encoder, preset


def encoder_list(text: str) -> tuple[str, ...]:
    """Parse ``"libx264,libx265"`` (or ``"libx264 libx265"``): producible encoders, no
    repeats. One encoder is refused with :func:`producible_encoder`'s message."""
    names = split_list(text)
    if len(names) == 1:
        return (producible_encoder(names[0]),)
    for name in names:
        try:
            producible_encoder(name)
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(
                f"invalid encoder {name!r} in {text!r}: {_ENCODER_CHOICES}"
            ) from None
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(
            f"invalid encoder list {text!r}: an encoder is listed twice"
        )
    return tuple(names)


def cq_list(text: str) -> tuple[int, ...]:
    """Parse ``"22,30,38"`` (or ``"22 30 38"``): non-negative integer quality settings,
    no repeats. One value is refused with :func:`cq_value`'s message."""
    items = split_list(text)
    if len(items) == 1:
        return (cq_value(items[0]),)
    values = [_non_negative_int(p) for p in items]
    if any(v is None for v in values):
        raise argparse.ArgumentTypeError(
            f"invalid cq list {text!r}: expected non-negative integers separated by commas "
            "or spaces, e.g. 22,30,38"
        )
    cqs = tuple(v for v in values if v is not None)
    if len(set(cqs)) != len(cqs):
        raise argparse.ArgumentTypeError(f"invalid cq list {text!r}: a value is listed twice")
    return cqs


def frame_size(text: str) -> tuple[int, int]:
    """``WxH`` with both even and >= 32 (a built-in source's size)."""
    width, sep, height = text.lower().partition("x")
    if sep and width.isdigit() and height.isdigit():
        w, h = int(width), int(height)
        if w >= 32 and h >= 32 and w % 2 == 0 and h % 2 == 0:
            return w, h
    raise argparse.ArgumentTypeError(
        f"invalid size {text!r}; expected WxH, both even and at least 32, e.g. 320x180"
    )


def raw_pix_fmt(text: str) -> str:
    """A raw pixel format the producer can size."""
    from frreg.producer.sources import RAW_PIX_FMTS

    if text not in RAW_PIX_FMTS:
        raise argparse.ArgumentTypeError(
            f"invalid pix_fmt {text!r}; choose from {', '.join(RAW_PIX_FMTS)}"
        )
    return text


def frame_rate(text: str) -> str:
    """A positive rate: ``24``, ``29.97`` or ``30000/1001`` (kept as text)."""
    from frreg.errors import InputError
    from frreg.producer.sources import parse_framerate

    try:
        parse_framerate(text)
    except InputError:
        raise argparse.ArgumentTypeError(
            f"invalid framerate {text!r}; expected a positive number or N/D, e.g. 30000/1001"
        ) from None
    return text


def builtin_id(text: str) -> str:
    """One of the built-in source ids."""
    from frreg.producer.sources import BUILTIN_SOURCE_IDS

    if text not in BUILTIN_SOURCE_IDS:
        raise argparse.ArgumentTypeError(
            f"invalid built-in source {text!r}; choose from {', '.join(BUILTIN_SOURCE_IDS)}"
        )
    return text


# --------------------------------------------------------------------------
# The options both front ends offer
# --------------------------------------------------------------------------

#: frreg-corpus ``--sources`` (the plugin's ``--frreg-sources`` is this option with
#: the plugin's help: :data:`frreg.session_options.GATE_SOURCES`).
SOURCES = Option(
    "sources",
    "sources",
    "TOML or JSON manifest listing sources (and optionally encoders, cqs, presets)",
    type=Path,
    metavar="MANIFEST",
    show_default=False,
)
#: frreg-corpus ``--encoder``/``--encoders``; the plugin's ``--frreg-encoder``/
#: ``--frreg-encoders`` and ini key ``frreg_encoders``.
ENCODERS = Option(
    "encoder",
    "encoders",
    # The same set as a manifest's encoders: one check for every front end,
    # and the trainer warns how many rows it maps to 'unknown'.
    "encoders, comma- or space-separated, repeatable: "
    f"{', '.join(PRODUCIBLE_ENCODERS)} (those outside the trainer's vocabulary, the "
    "VAAPI and VideoToolbox ones, train its 'unknown' slot)",
    None,
    encoder_list,
    "E[,E...]",
    shown_default=f"the manifest's, else {','.join(DEMO_ENCODERS)}",
    aliases=("encoders",),
    repeatable=True,
)
#: frreg-corpus ``--cq``/``--cqs``; the plugin's ``--frreg-cq``/``--frreg-cqs`` and
#: ini key ``frreg_cqs``.
CQS = Option(
    "cq",
    "cqs",
    "quality values, comma- or space-separated, repeatable: -crf for x264/x265/svtav1/vp9, "
    "-qp for vvenc and VAAPI, -cq for NVENC, -global_quality for QSV, -q:v 100-2*N "
    "(N < 50) or N for VideoToolbox",
    None,
    cq_list,
    "N[,N...]",
    shown_default=f"the manifest's, else {','.join(map(str, DEMO_CQS))}",
    aliases=("cqs",),
    repeatable=True,
)
#: frreg-corpus ``--scheduler``; the plugin's ``--frreg-scheduler`` (ini ``frreg_scheduler``).
SCHEDULER = Option(
    "scheduler",
    "scheduler",
    "run the corpus cells on the Dask cluster whose scheduler listens at ADDRESS "
    "(tcp://HOST:PORT; the cluster extra); the parts, manifest and corpus are still written "
    "here (default: a local process pool)",
    None,
    metavar="ADDRESS",
    show_default=False,
)


def corpus_option_groups() -> tuple[OptionGroup, ...]:
    """frreg-corpus's options, by help group; built on call, as some help reads the machine.

    Every help text states its own default, as the defaults here are rules
    ("the manifest's, else ...") rather than values.
    """
    from frreg.producer.encoders import DEFAULT_PRESETS, DEFAULT_QSV_DEVICE, DEFAULT_VAAPI_DEVICE
    from frreg.producer.ffmpeg import FFMPEG_ENV
    from frreg.producer.runner import default_jobs
    from frreg.producer.sources import (
        BUILTIN_SECONDS,
        BUILTIN_SIZE,
        BUILTIN_SOURCE_IDS,
        RAW_DEFAULTS,
        default_cache_dir,
    )

    def opt(name: str, dest: str, help: str, **kw: Any) -> Option:
        return Option(name, dest, help, show_default=False, **kw)

    software_presets = ", ".join(
        f"{e}={p}" for e, p in DEFAULT_PRESETS.items() if ENCODER_SPECS[e].hardware is None
    )
    sources = OptionGroup(
        "sources (exactly one of --source, --sources, --builtin, --merge)",
        exclusive=(
            opt(
                "source",
                "source",
                "one source file: raw YUV (needs --width/--height; --pix-fmt/--framerate "
                "have defaults) or any container ffmpeg reads (geometry probed)",
                type=Path,
                metavar="PATH",
            ),
            SOURCES,
            opt(
                "builtin",
                "builtin",
                "built-in sources, made on demand: the ten lavfi generators, or the ids given "
                f"({', '.join(BUILTIN_SOURCE_IDS)}; the *_natural clips need the natural extra)",
                type=builtin_id,
                metavar="ID",
                nargs="*",
            ),
            opt(
                "merge",
                "merge",
                "produce nothing: merge finished corpora (each with its manifest beside it, "
                "e.g. made on other machines) into --out, every cell once; only --out, "
                "--replace, --allow-missing, --allow-mixed-libvmaf and --progress apply",
                type=Path,
                metavar="CORPUS",
                nargs="+",
            ),
        ),
        exclusive_required=True,
        options=(
            opt("src-id", "src_id", "src id for --source (default: file stem)", metavar="ID"),
            opt("width", "width", "raw --source width", type=positive_int, metavar="W"),
            opt("height", "height", "raw --source height", type=positive_int, metavar="H"),
            opt(
                "pix-fmt",
                "pix_fmt",
                f"raw --source pixel format (default: {RAW_DEFAULTS['pix_fmt']}, as the "
                "fork's producer, with a warning)",
                type=raw_pix_fmt,
                metavar="F",
            ),
            opt(
                "framerate",
                "framerate",
                "raw --source frame rate, e.g. 24, 25.0, 30000/1001 "
                f"(default: {RAW_DEFAULTS['framerate']}, as the fork's producer, with a warning)",
                type=frame_rate,
                metavar="R",
            ),
            opt(
                "frames",
                "frames",
                "use only the first N frames of each source (built-ins are generated that "
                f"long); default: all (built-ins: {BUILTIN_SECONDS} s)",
                type=positive_int,
                metavar="N",
            ),
            opt(
                "builtin-size",
                "builtin_size",
                f"built-in source size (default: {BUILTIN_SIZE[0]}x{BUILTIN_SIZE[1]})",
                default=BUILTIN_SIZE,
                type=frame_size,
                metavar="WxH",
            ),
            opt(
                "cache-dir",
                "cache_dir",
                f"where built-in sources are cached (default: {default_cache_dir() / 'sources'})",
                type=Path,
                metavar="DIR",
            ),
        ),
    )
    grid = OptionGroup(
        "grid",
        options=(
            ENCODERS,
            CQS,
            opt(
                "preset",
                "presets",
                f"speed preset override, repeatable (default: {software_presets})",
                type=encoder_preset,
                metavar="ENCODER=VALUE",
                action="append",
            ),
        ),
    )
    hardware = OptionGroup(
        "hardware encoders",
        options=(
            opt(
                "qsv-device",
                "qsv_device",
                "render node QSV cells open (-init_hw_device qsv:hw,child_device=PATH) "
                f"(default: {DEFAULT_QSV_DEVICE})",
                default=DEFAULT_QSV_DEVICE,
                metavar="PATH",
            ),
            opt(
                "vaapi-device",
                "vaapi_device",
                "render node VAAPI cells open (-init_hw_device vaapi=va:PATH) "
                f"(default: {DEFAULT_VAAPI_DEVICE})",
                default=DEFAULT_VAAPI_DEVICE,
                metavar="PATH",
            ),
        ),
    )
    run = OptionGroup(
        "output and run",
        options=(
            opt("out", "out", "corpus JSONL to write", type=Path, metavar="PATH", required=True),
            opt(
                "jobs",
                "jobs",
                f"cells run side by side (default: one per core, here {default_jobs()})",
                type=positive_int,
                metavar="N",
            ),
            opt(
                "vmaf-threads",
                "vmaf_threads",
                "libvmaf threads per cell (default: cores / jobs, at least 1)",
                type=positive_int,
                metavar="N",
            ),
            opt(
                "ffmpeg",
                "ffmpeg",
                f"ffmpeg binary with libvmaf (default: ${FFMPEG_ENV}, else imageio-ffmpeg's)",
                metavar="PATH",
            ),
            opt(
                "vmaf-bin",
                "vmaf_bin",
                "the fork's standalone libvmaf binary: accepted for its argv, must be a file, "
                "never run (every cell is scored by ffmpeg's libvmaf filter, one libvmaf "
                "build per corpus); the manifest records it (default: none)",
                type=Path,
                metavar="PATH",
            ),
            opt(
                "timeout",
                "timeout",
                "limit for each ffmpeg call (default: max(300, 2 s per frame per 720p of pixels))",
                type=positive_float,
                metavar="SECONDS",
            ),
            opt(
                "replace",
                "replace_corpus",
                "make --out exactly this run's cells (or the merged corpora's), dropping those "
                "already there (default: they are kept and this run's are added; a cell of "
                "other settings at one (src, encoder, cq) is refused, exit 2)",
                action="store_true",
                default=False,
            ),
            opt(
                "allow-missing",
                "allow_missing",
                "write the corpus even if cells failed, recording the gaps in the manifest; "
                "also keeps gaps recorded at --out or in merged corpora (default: failed "
                "cells leave no corpus and exit 1; recorded gaps are refused, exit 2)",
                action="store_true",
                default=False,
            ),
            SCHEDULER,
            opt(
                "audit-cells",
                "audit_cells",
                "with --scheduler: recompute this many randomly chosen cells here, with this "
                "machine's ffmpeg, and fail any whose worker's numbers differ (every cell is "
                f"also checked against its own libvmaf log and libvmaf's model) (default: "
                f"{DEFAULT_AUDIT_CELLS})",
                type=nonnegative_int,
                metavar="K",
                default=DEFAULT_AUDIT_CELLS,
            ),
            opt(
                "allow-mixed-libvmaf",
                "allow_mixed_libvmaf",
                "accept cells scored by different libvmaf builds: on workers with different "
                "builds, or kept from --out or merged corpora scored by another (their "
                "features are not comparable; otherwise refused) (default: off)",
                action="store_true",
                default=False,
            ),
            opt(
                "progress",
                "progress",
                "progress on stderr: a live line on a terminal, occasional lines otherwise "
                "(default: auto)",
                default="auto",
                choices=("auto", "tty", "plain", "none"),
            ),
        ),
    )
    return sources, grid, hardware, run
