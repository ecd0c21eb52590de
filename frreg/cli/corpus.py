"""``frreg-corpus``: produce the Phase A per-frame corpus (real encodes + libvmaf).

Three ways to name sources, one grid::

    frreg-corpus --source clip_352x288.yuv --width 352 --height 288 --pix-fmt yuv420p \\
                 --framerate 30 --encoder libx264 --cq 23 --cq 31 --out corpus.jsonl
    frreg-corpus --sources sources.toml --encoder libx264 libx265 --cq 23 31 39 --out corpus.jsonl
    frreg-corpus --builtin --frames 24 --encoder libx264 --cq 23 31 39 --out corpus.jsonl

Exit codes: 0 corpus written, 1 a cell failed (corpus not written unless
``--allow-missing``), 2 bad usage or input (one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NoReturn

from frreg.errors import FrregError, InputError
from frreg.options import StrictParser
from frreg.producer import ffmpeg as ff
from frreg.producer.encoders import (
    CQ_RANGES,
    DEFAULT_PRESETS,
    PRODUCIBLE_ENCODERS,
    check_cq,
    check_preset,
)
from frreg.producer.produce import (
    default_jobs,
    incomplete_marker,
    produce_corpus,
    usable_cores,
)
from frreg.producer.progress import PlainProgress, TerminalProgress, auto_progress
from frreg.producer.sources import (
    BUILTIN_SECONDS,
    BUILTIN_SIZE,
    BUILTIN_SOURCE_IDS,
    GEOMETRY_KEYS,
    RAW_PIX_FMTS,
    Source,
    builtin_sources,
    container_source,
    default_cache_dir,
    is_raw_path,
    load_manifest,
    parse_framerate,
    raw_source,
)
from frreg.schema import (
    DEMO_CQS,
    DEMO_ENCODERS,
    EXIT_FAIL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    PRESET_LADDERS,
)

PROG = "frreg-corpus"


class _OneLineParser(StrictParser):
    """An ArgumentParser whose errors are one line on stderr, exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


# --------------------------------------------------------------------------
# argparse type= callables: each quotes the bad value and the allowed set
# --------------------------------------------------------------------------


def encoder_arg(value: str) -> str:
    """An encoder of the vocabulary (``unknown`` excluded)."""
    if value not in PRODUCIBLE_ENCODERS:
        raise argparse.ArgumentTypeError(
            f"invalid encoder {value!r}; choose from {', '.join(PRODUCIBLE_ENCODERS)}"
        )
    return value


def cq_arg(value: str) -> int:
    """A non-negative integer quality value (its range per encoder is checked later)."""
    try:
        cq = int(value)
    except ValueError:
        cq = -1
    if cq < 0:
        lo = min(r[0] for r in CQ_RANGES.values())
        hi = max(r[1] for r in CQ_RANGES.values())
        raise argparse.ArgumentTypeError(
            f"invalid cq {value!r}; expected an integer in {lo}..{hi} (range depends on the encoder)"
        )
    return cq


def preset_arg(value: str) -> tuple[str, str]:
    """``ENCODER=PRESET`` with the preset on that encoder's ladder."""
    encoder, sep, preset = value.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(
            f"invalid preset {value!r}; expected ENCODER=VALUE, e.g. libx264=medium"
        )
    encoder_arg(encoder)
    if preset not in PRESET_LADDERS[encoder]:
        raise argparse.ArgumentTypeError(
            f"invalid preset {preset!r} for {encoder}; "
            f"choose from {', '.join(PRESET_LADDERS[encoder])}"
        )
    return encoder, preset


def positive_int_arg(value: str) -> int:
    """An integer >= 1."""
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"invalid value {value!r}; expected an integer >= 1")
    return number


def positive_float_arg(value: str) -> float:
    """A number > 0."""
    try:
        number = float(value)
    except ValueError:
        number = 0.0
    if not number > 0:
        raise argparse.ArgumentTypeError(f"invalid value {value!r}; expected a number > 0")
    return number


def size_arg(value: str) -> tuple[int, int]:
    """``WxH`` with both even and >= 32."""
    width, sep, height = value.lower().partition("x")
    if sep and width.isdigit() and height.isdigit():
        w, h = int(width), int(height)
        if w >= 32 and h >= 32 and w % 2 == 0 and h % 2 == 0:
            return w, h
    raise argparse.ArgumentTypeError(
        f"invalid size {value!r}; expected WxH, both even and at least 32, e.g. 320x180"
    )


def pix_fmt_arg(value: str) -> str:
    """A raw pixel format the producer can size."""
    if value not in RAW_PIX_FMTS:
        raise argparse.ArgumentTypeError(
            f"invalid pix_fmt {value!r}; choose from {', '.join(RAW_PIX_FMTS)}"
        )
    return value


def framerate_arg(value: str) -> str:
    """A positive rate: ``24``, ``29.97`` or ``30000/1001``."""
    try:
        parse_framerate(value)
    except InputError:
        raise argparse.ArgumentTypeError(
            f"invalid framerate {value!r}; expected a positive number or N/D, e.g. 30000/1001"
        ) from None
    return value


def builtin_id_arg(value: str) -> str:
    """One of the built-in source ids."""
    if value not in BUILTIN_SOURCE_IDS:
        raise argparse.ArgumentTypeError(
            f"invalid built-in source {value!r}; choose from {', '.join(BUILTIN_SOURCE_IDS)}"
        )
    return value


# --------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The ``frreg-corpus`` argument parser (tests and docs read flags from here)."""
    cores = usable_cores()
    parser = _OneLineParser(
        prog=PROG,
        description=(
            "Encode every (source, encoder, cq) cell, decode it and score it against its "
            "source with libvmaf, writing one JSONL row per frame. Resumable: rerun the same "
            "command after an interruption and only unfinished cells run."
        ),
        allow_abbrev=False,
    )
    src = parser.add_argument_group("sources (exactly one of --source, --sources, --builtin)")
    which = src.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--source",
        dest="source",
        metavar="PATH",
        type=Path,
        help="one source file: raw YUV (needs --width/--height/--pix-fmt/--framerate) "
        "or any container ffmpeg reads (geometry probed)",
    )
    which.add_argument(
        "--sources",
        dest="sources",
        metavar="MANIFEST",
        type=Path,
        help="TOML or JSON manifest listing sources (and optionally encoders, cqs, presets)",
    )
    which.add_argument(
        "--builtin",
        dest="builtin",
        metavar="ID",
        nargs="*",
        type=builtin_id_arg,
        help="built-in lavfi sources, generated on demand: all of them, or the ids given "
        f"({', '.join(BUILTIN_SOURCE_IDS)})",
    )
    src.add_argument(
        "--src-id", dest="src_id", metavar="ID", help="src id for --source (default: file stem)"
    )
    src.add_argument(
        "--width", dest="width", metavar="W", type=positive_int_arg, help="raw --source width"
    )
    src.add_argument(
        "--height", dest="height", metavar="H", type=positive_int_arg, help="raw --source height"
    )
    src.add_argument(
        "--pix-fmt", dest="pix_fmt", metavar="F", type=pix_fmt_arg, help="raw --source pixel format"
    )
    src.add_argument(
        "--framerate",
        dest="framerate",
        metavar="R",
        type=framerate_arg,
        help="raw --source frame rate (24, 30000/1001)",
    )
    src.add_argument(
        "--frames",
        dest="frames",
        metavar="N",
        type=positive_int_arg,
        help="use only the first N frames of each source (built-ins are generated that long); "
        f"default: all (built-ins: {BUILTIN_SECONDS} s)",
    )
    src.add_argument(
        "--builtin-size",
        dest="builtin_size",
        metavar="WxH",
        type=size_arg,
        default=BUILTIN_SIZE,
        help=f"built-in source size (default: {BUILTIN_SIZE[0]}x{BUILTIN_SIZE[1]})",
    )
    src.add_argument(
        "--cache-dir",
        dest="cache_dir",
        metavar="DIR",
        type=Path,
        help=f"where built-in sources are cached (default: {default_cache_dir() / 'sources'})",
    )

    grid = parser.add_argument_group("grid")
    grid.add_argument(
        "--encoder",
        dest="encoders",
        metavar="E",
        action="extend",
        nargs="+",
        type=encoder_arg,
        help=f"encoder(s), repeatable ({', '.join(PRODUCIBLE_ENCODERS)}); "
        f"default: the manifest's, else {' '.join(DEMO_ENCODERS)}",
    )
    grid.add_argument(
        "--cq",
        dest="cqs",
        metavar="N",
        action="extend",
        nargs="+",
        type=cq_arg,
        help="quality value(s), repeatable: -crf for x264/x265/svtav1/vp9, -qp for vvenc, "
        "-cq for NVENC, -global_quality for QSV; "
        f"default: the manifest's, else {' '.join(map(str, DEMO_CQS))}",
    )
    grid.add_argument(
        "--preset",
        dest="presets",
        metavar="ENCODER=VALUE",
        action="append",
        type=preset_arg,
        help="speed preset override, repeatable (default: "
        + ", ".join(
            f"{e}={p}" for e, p in DEFAULT_PRESETS.items() if not e.endswith(("_nvenc", "_qsv"))
        )
        + ")",
    )

    run = parser.add_argument_group("output and run")
    run.add_argument(
        "--out", dest="out", metavar="PATH", type=Path, required=True, help="corpus JSONL to write"
    )
    run.add_argument(
        "--jobs",
        dest="jobs",
        metavar="N",
        type=positive_int_arg,
        help=f"cells run side by side (default: one per core, here {default_jobs(cores)})",
    )
    run.add_argument(
        "--vmaf-threads",
        dest="vmaf_threads",
        metavar="N",
        type=positive_int_arg,
        help="libvmaf threads per cell (default: cores / jobs, at least 1)",
    )
    run.add_argument(
        "--ffmpeg",
        dest="ffmpeg",
        metavar="PATH",
        help=f"ffmpeg binary with libvmaf (default: ${ff.FFMPEG_ENV}, else imageio-ffmpeg's)",
    )
    run.add_argument(
        "--timeout",
        dest="timeout",
        metavar="SECONDS",
        type=positive_float_arg,
        help="limit for each ffmpeg call (default: max(300, 2 s per frame per 720p of pixels))",
    )
    run.add_argument(
        "--allow-missing",
        dest="allow_missing",
        action="store_true",
        help="write the corpus even if cells failed, recording the gaps in the manifest "
        "(default: failed cells leave no corpus and exit 1)",
    )
    run.add_argument(
        "--progress",
        dest="progress",
        choices=("auto", "tty", "plain", "none"),
        default="auto",
        help="progress on stderr: a live line on a terminal, occasional lines otherwise "
        "(default: auto)",
    )
    return parser


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run ``frreg-corpus``; return the exit code (never raises for bad input)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        with _terminate_on_sigterm():
            return _run(args, list(sys.argv[1:] if argv is None else argv))
    except FrregError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; rerun the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED


@contextlib.contextmanager
def _terminate_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt so running ffmpeg processes get killed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _usage(message: str) -> InputError:
    return InputError(message)


def _check_source_flags(args: argparse.Namespace) -> None:
    geometry = {k: getattr(args, k) for k in GEOMETRY_KEYS}
    given = [f"--{k.replace('_', '-')}" for k, v in geometry.items() if v is not None]
    if args.source is None:
        if given:
            raise _usage(f"{given[0]} applies only to --source")
        if args.src_id is not None:
            raise _usage("--src-id applies only to --source")
    if args.builtin is None and args.builtin_size != BUILTIN_SIZE:
        raise _usage("--builtin-size applies only to --builtin")


def _cli_source(args: argparse.Namespace, exe: Path) -> Source:
    geometry = {k: getattr(args, k) for k in GEOMETRY_KEYS}
    if any(v is not None for v in geometry.values()) or is_raw_path(args.source):
        missing = [f"--{k.replace('_', '-')}" for k, v in geometry.items() if v is None]
        if missing:
            raise _usage(
                f"raw source {args.source} needs {', '.join(missing)} "
                f"(raw YUV has no header; geometry is never guessed)"
            )
        return raw_source(args.source, src_id=args.src_id, **geometry)
    return container_source(args.source, ffmpeg=exe, src_id=args.src_id)


def _run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    _check_source_flags(args)
    exe = ff.resolve_ffmpeg(args.ffmpeg)
    info = ff.probe_ffmpeg(exe)
    # Refuse an unusable ffmpeg before generating or probing anything.
    ff.require_capabilities(info, args.encoders or ())

    encoders, cqs = args.encoders, args.cqs
    presets: dict[str, str] = {}
    if args.sources is not None:
        manifest = load_manifest(args.sources, ffmpeg=exe)
        sources = list(manifest.sources)
        encoders = encoders or list(manifest.encoders or ())
        cqs = cqs or list(manifest.cqs or ())
        presets.update(manifest.presets or {})
    elif args.builtin is not None:
        sources = []  # generated below, once the grid is known to be valid
    else:
        sources = [_cli_source(args, exe)]
    # Neither the command line nor a manifest chose a grid: the built-in default.
    encoders = encoders or list(DEMO_ENCODERS)
    cqs = cqs or list(DEMO_CQS)
    ff.require_capabilities(info, encoders)
    presets.update(dict(args.presets or ()))
    for enc in encoders:
        for cq in cqs:
            try:
                check_cq(enc, cq)
            except InputError as exc:
                raise _usage(f"--cq: {exc}") from None
    for enc, preset in presets.items():
        check_preset(enc, preset)
    ff.require_capabilities(info, encoders)
    if args.builtin is not None:
        sources = builtin_sources(
            args.cache_dir,
            ids=args.builtin or None,
            frames=args.frames,
            size=args.builtin_size,
            ffmpeg=exe,
        )

    progress = {
        "auto": auto_progress(sys.stderr),
        "tty": TerminalProgress(sys.stderr),
        "plain": PlainProgress(sys.stderr),
        "none": None,
    }[args.progress]
    result = produce_corpus(
        args.out,
        sources,
        encoders,
        cqs,
        presets=presets,
        max_frames=args.frames,
        ffmpeg=exe,
        jobs=args.jobs,
        vmaf_threads=args.vmaf_threads,
        allow_missing=args.allow_missing,
        timeout=args.timeout,
        progress=progress,
        argv=[PROG, *argv],
    )

    if result.failed:
        for failure in result.failed:
            print(failure.format(), file=sys.stderr)
    if not result.written:
        marker = incomplete_marker(result.corpus)
        print(
            f"{PROG}: {len(result.failed)} of {result.cells_total} cells failed; "
            f"corpus incomplete, {result.corpus} not written (see {marker}). "
            f"Rerun to retry the failed cells, or pass --allow-missing to write it without them.",
            file=sys.stderr,
        )
        return EXIT_FAIL
    if result.missing:
        print(
            f"{PROG}: warning: --allow-missing: wrote {result.corpus} without "
            f"{len(result.missing)} failed cells (recorded in {result.manifest})",
            file=sys.stderr,
        )
    print(
        f"wrote {result.corpus}: {result.rows} rows from {result.cells_total - len(result.missing)} "
        f"cells ({result.cells_reused} reused, {result.cells_run} run); manifest {result.manifest}"
    )
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
