"""Phase A corpus producer: real encodes scored per frame by libvmaf.

The public surface the CLI (``frreg-corpus``) and the pytest plugin use::

    from frreg.producer import (
        ProducerSettings, builtin_sources, check_corpus_complete, produce_corpus,
    )

    sources = builtin_sources(cache_dir, frames=24)
    settings = ProducerSettings(encoders=("libx264",), cqs=(23, 31, 39))
    result = produce_corpus(out, sources, settings)
    check_corpus_complete(out)   # raises CorpusError if the run left gaps

By concern: :mod:`.encoders` (one spec per encoder), :mod:`.ffmpeg` (one
function per tool call), :mod:`.sources` (what is encoded), :mod:`.cells`
(one cell: key, run, rows), :mod:`.runner` (the grid, assembly, manifest),
:mod:`.merge` (what cells one corpus may take from another: appending to
``--out``, merging shards), :mod:`.settings` (what a run is asked for) and
:mod:`.progress`. The files next to a corpus belong to
:mod:`frreg.corpus.sidecar`.

Names load on first use, so importing one submodule (``frreg.options`` reads
:mod:`.encoders`) does not import the others.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from frreg._lazy import lazy_getattr

if TYPE_CHECKING:
    from frreg.corpus.sidecar import (
        check_corpus_complete,
        incomplete_marker,
        manifest_path,
        parts_dir,
    )
    from frreg.producer.cells import ROW_COLUMNS, CellFailure, vmaf_log_path
    from frreg.producer.encoders import (
        CQ_RANGES,
        DEFAULT_PRESETS,
        ENCODER_SPECS,
        PRODUCIBLE_ENCODERS,
        EncoderSpec,
        HardwareDevices,
        quality_args,
    )
    from frreg.producer.ffmpeg import (
        FFMPEG_ENV,
        VMAF_MODEL,
        FfmpegInfo,
        probe_ffmpeg,
        resolve_ffmpeg,
    )
    from frreg.producer.progress import ProgressEvent, auto_progress
    from frreg.producer.runner import (
        ProduceResult,
        merge_corpora,
        produce_corpus,
        produce_for_gate,
    )
    from frreg.producer.settings import ProducerSettings, producer_settings
    from frreg.producer.sources import (
        BUILTIN_SOURCE_IDS,
        BUILTIN_SPECS,
        NATURAL_INSTALL,
        NATURAL_SOURCE_IDS,
        ManifestError,
        Source,
        SourceManifest,
        available_builtin_ids,
        builtin_sources,
        container_source,
        declared_source_ids,
        default_cache_dir,
        load_manifest,
        raw_source,
    )

_EXPORTS: dict[str, str] = {
    **dict.fromkeys(
        ("check_corpus_complete", "incomplete_marker", "manifest_path", "parts_dir"),
        "frreg.corpus.sidecar",
    ),
    **dict.fromkeys(("ROW_COLUMNS", "CellFailure", "vmaf_log_path"), "frreg.producer.cells"),
    **dict.fromkeys(
        (
            "CQ_RANGES",
            "DEFAULT_PRESETS",
            "ENCODER_SPECS",
            "PRODUCIBLE_ENCODERS",
            "EncoderSpec",
            "HardwareDevices",
            "quality_args",
        ),
        "frreg.producer.encoders",
    ),
    **dict.fromkeys(
        ("FFMPEG_ENV", "VMAF_MODEL", "FfmpegInfo", "probe_ffmpeg", "resolve_ffmpeg"),
        "frreg.producer.ffmpeg",
    ),
    **dict.fromkeys(("ProgressEvent", "auto_progress"), "frreg.producer.progress"),
    **dict.fromkeys(
        ("ProduceResult", "merge_corpora", "produce_corpus", "produce_for_gate"),
        "frreg.producer.runner",
    ),
    **dict.fromkeys(("ProducerSettings", "producer_settings"), "frreg.producer.settings"),
    **dict.fromkeys(
        (
            "BUILTIN_SOURCE_IDS",
            "BUILTIN_SPECS",
            "NATURAL_INSTALL",
            "NATURAL_SOURCE_IDS",
            "ManifestError",
            "Source",
            "SourceManifest",
            "available_builtin_ids",
            "builtin_sources",
            "container_source",
            "declared_source_ids",
            "default_cache_dir",
            "load_manifest",
            "raw_source",
        ),
        "frreg.producer.sources",
    ),
}

__all__ = [
    "BUILTIN_SOURCE_IDS",
    "BUILTIN_SPECS",
    "CQ_RANGES",
    "DEFAULT_PRESETS",
    "ENCODER_SPECS",
    "FFMPEG_ENV",
    "NATURAL_INSTALL",
    "NATURAL_SOURCE_IDS",
    "PRODUCIBLE_ENCODERS",
    "ROW_COLUMNS",
    "VMAF_MODEL",
    "CellFailure",
    "EncoderSpec",
    "FfmpegInfo",
    "HardwareDevices",
    "ManifestError",
    "ProduceResult",
    "ProducerSettings",
    "ProgressEvent",
    "Source",
    "SourceManifest",
    "auto_progress",
    "available_builtin_ids",
    "builtin_sources",
    "check_corpus_complete",
    "container_source",
    "declared_source_ids",
    "default_cache_dir",
    "incomplete_marker",
    "load_manifest",
    "manifest_path",
    "merge_corpora",
    "parts_dir",
    "probe_ffmpeg",
    "produce_corpus",
    "produce_for_gate",
    "producer_settings",
    "quality_args",
    "raw_source",
    "resolve_ffmpeg",
    "vmaf_log_path",
]


__getattr__ = lazy_getattr(__name__, _EXPORTS)


def __dir__() -> list[str]:
    return sorted(__all__)
