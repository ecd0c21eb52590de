"""``frreg-corpus``: produce the Phase A per-frame corpus (real encodes + libvmaf).

Three ways to name sources, one grid::

    frreg-corpus --source clip_352x288.yuv --width 352 --height 288 --pix-fmt yuv420p \\
                 --framerate 30 --encoder libx264 --cq 23 --cq 31 --out corpus.jsonl
    frreg-corpus --sources sources.toml --encoder libx264 libx265 --cq 23 31 39 --out corpus.jsonl
    frreg-corpus --builtin --frames 24 --encoder libx264 --cq 23 31 39 --out corpus.jsonl

The fork's per-call producer argv (``hw_encoder_corpus.py``) is accepted as
it is: ``--vmaf-bin`` (checked, never run), ``--qsv-device``/``--vaapi-device``,
and a raw ``--source`` without ``--pix-fmt``/``--framerate`` (its defaults,
with a warning).

A run onto an ``--out`` that already holds a corpus keeps its cells and adds
its own, as the fork's producer appends (a rerun adds nothing; a cell of other
settings at a taken (src, encoder, cq) is refused unless ``--replace``), and
corpora produced separately merge into one::

    frreg-corpus --merge nvidia_box.jsonl intel_box.jsonl --out corpus.jsonl

Exit codes: 0 corpus written or merged, 1 a cell failed (corpus not written unless
``--allow-missing``), 2 bad usage or input (one line on stderr, no traceback;
for a merged corpus ``PATH:LINE: problem``), 3 internal error, 130 interrupted.
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

from frreg.cli._common import guarded
from frreg.corpus.sidecar import incomplete_marker
from frreg.errors import FrregError, InputError
from frreg.options import StrictParser
from frreg.producer import ffmpeg as ff
from frreg.producer.encoders import HARDWARE_ENCODERS, check_cq
from frreg.producer.options import corpus_option_groups
from frreg.producer.progress import CorpusProgress
from frreg.producer.runner import check_out_path, merge_corpora, produce_corpus
from frreg.producer.settings import ProducerSettings, producer_settings
from frreg.producer.sources import BUILTIN_SIZE, GEOMETRY_KEYS, Source, load_manifest
from frreg.schema import EXIT_FAIL, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE

PROG = "frreg-corpus"


class _OneLineParser(StrictParser):
    """An ArgumentParser whose errors are one line on stderr, exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


# --------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The ``frreg-corpus`` argument parser (tests and docs read flags from here)."""
    parser = _OneLineParser(
        prog=PROG,
        description=(
            "Encode every (source, encoder, cq) cell, decode it and score it against its "
            "source with libvmaf, writing one JSONL row per frame. Resumable: rerun the same "
            "command after an interruption and only unfinished cells run. An --out that "
            "already holds a corpus keeps its cells and this run's are added (as the fork's "
            "producer appends): a rerun adds nothing. --merge combines corpora produced "
            "separately instead."
        ),
        epilog="Exit status: 0 corpus written (or merged), 1 cells failed (no corpus; see "
        "OUT.incomplete), 2 input error (with a cell of other settings already at --out: "
        "see --replace), 3 internal error, 130 interrupted.",
        allow_abbrev=False,
    )
    for group in corpus_option_groups():
        group.add_to(parser)
    return parser


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------


@guarded(PROG)
def main(argv: list[str] | None = None) -> int:
    """Run ``frreg-corpus``; return the exit code (never raises for bad input;
    a crash exits 3, never 1, which means a cell failed)."""
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


def _check_source_flags(settings: ProducerSettings) -> None:
    """Refuse source flags that do not apply to the chosen kind of source."""
    if settings.source is None:
        given = [f"--{k.replace('_', '-')}" for k in GEOMETRY_KEYS if k in settings.geometry]
        if given:
            raise InputError(f"{given[0]} applies only to --source")
        if settings.src_id is not None:
            raise InputError("--src-id applies only to --source")
    if not settings.uses_builtin and settings.builtin_size != BUILTIN_SIZE:
        raise InputError("--builtin-size applies only to --builtin")


def _warn(message: str) -> None:
    print(f"{PROG}: warning: {message}", file=sys.stderr)


#: The options that mean something to ``--merge`` (it produces nothing).
_MERGE_OPTIONS = frozenset(
    {"merge", "out", "replace_corpus", "allow_missing", "allow_mixed_libvmaf", "progress"}
)


def _merge(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """``--merge CORPUS... --out OUT``: one corpus and one manifest from several."""
    parser = build_parser()
    for action in parser._actions:
        if action.dest in _MERGE_OPTIONS or not action.option_strings:
            continue
        if getattr(args, action.dest, action.default) != action.default:
            raise InputError(f"{action.option_strings[0]} applies to producing, not to --merge")
    settings = producer_settings(vars(args), Path())
    result = merge_corpora(args.out, args.merge, settings, argv=[PROG, *argv])
    if result.missing:
        _warn(
            f"--allow-missing: {result.corpus} records {len(result.missing)} missing cells "
            f"from the merged corpora (in {result.manifest})"
        )
    print(
        f"merged {len(args.merge)} corpora into {result.corpus}: {result.rows} rows from "
        f"{result.cells_written} cells; manifest {result.manifest}"
    )
    return EXIT_OK


def _run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    if args.merge is not None:
        return _merge(args, argv)
    settings = producer_settings(vars(args), Path())
    _check_source_flags(settings)
    if settings.vmaf_bin is not None:
        ff.check_vmaf_bin(settings.vmaf_bin)
    out = check_out_path(args.out)  # before anything is probed, rendered or encoded
    exe = ff.resolve_ffmpeg(settings.ffmpeg)
    info = ff.probe_ffmpeg(exe)
    # Refuse an unusable ffmpeg before generating or probing anything.
    ff.require_capabilities(info, settings.encoders or (), hardware=HARDWARE_ENCODERS)

    manifest = None
    sources: list[Source] = []  # built-ins are generated below, once the grid is valid
    if settings.manifest is not None:
        manifest = load_manifest(settings.manifest, ffmpeg=exe)
        sources = list(manifest.sources)
    elif settings.source is not None:
        sources = [settings.single_source(exe)]
    grid = settings.grid(manifest)
    ff.require_capabilities(info, grid.encoders, hardware=HARDWARE_ENCODERS)
    for enc in grid.encoders:
        for cq in grid.cqs:
            try:
                check_cq(enc, cq)
            except InputError as exc:
                raise InputError(f"--cq: {exc}") from None
    # Warnings once the input is known to be good, so bad input stays one line.
    if settings.vmaf_bin is not None:
        _warn(
            f"--vmaf-bin {settings.vmaf_bin} is not run: frreg scores every cell through "
            f"{info.scorer()}, one libvmaf build per corpus (the manifest records both)"
        )
    for key, value in settings.raw_assumptions().items():
        _warn(
            f"--source {settings.source}: no --{key.replace('_', '-')} given, "
            f"assuming {value} (the fork's default)"
        )
    if settings.uses_builtin:
        sources = settings.builtin_sources(exe)

    # --progress auto|tty|plain|none: the modes of frreg's one progress display.
    progress = None if args.progress == "none" else CorpusProgress(sys.stderr, mode=args.progress)
    result = produce_corpus(
        out, sources, settings.for_run(exe, manifest), progress=progress, argv=[PROG, *argv]
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
        _warn(
            f"--allow-missing: wrote {result.corpus} without "
            f"{len(result.missing)} missing cells (recorded in {result.manifest})"
        )
    kept = f"{result.cells_carried} kept from earlier runs, " if result.cells_carried else ""
    print(
        f"wrote {result.corpus}: {result.rows} rows from {result.cells_written} cells "
        f"({kept}{result.cells_reused} reused, {result.cells_run} run); manifest {result.manifest}"
    )
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
