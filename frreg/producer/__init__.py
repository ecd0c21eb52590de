"""Phase A corpus producer: real encodes scored per frame by libvmaf.

The public surface the CLI (``frreg-corpus``) and the pytest plugin use::

    from frreg.producer import builtin_sources, produce_corpus, check_corpus_complete

    sources = builtin_sources(cache_dir, frames=24)
    result = produce_corpus(out, sources, ["libx264"], [23, 31, 39])
    check_corpus_complete(out)   # raises CorpusError if the run left gaps
"""

from frreg.producer.encoders import (
    CQ_RANGES,
    DEFAULT_PRESETS,
    PRODUCIBLE_ENCODERS,
    quality_args,
)
from frreg.producer.ffmpeg import (
    FFMPEG_ENV,
    VMAF_MODEL,
    FfmpegInfo,
    probe_ffmpeg,
    resolve_ffmpeg,
)
from frreg.producer.produce import (
    ROW_COLUMNS,
    CellFailure,
    ProduceResult,
    check_corpus_complete,
    incomplete_marker,
    manifest_path,
    parts_dir,
    produce_corpus,
    produce_for_gate,
    vmaf_log_path,
)
from frreg.producer.progress import ProgressEvent, auto_progress
from frreg.producer.sources import (
    BUILTIN_SOURCE_IDS,
    BUILTIN_SPECS,
    ManifestError,
    Source,
    SourceManifest,
    builtin_sources,
    container_source,
    declared_source_ids,
    default_cache_dir,
    load_manifest,
    raw_source,
)

__all__ = [
    "BUILTIN_SOURCE_IDS",
    "BUILTIN_SPECS",
    "CQ_RANGES",
    "DEFAULT_PRESETS",
    "FFMPEG_ENV",
    "PRODUCIBLE_ENCODERS",
    "ROW_COLUMNS",
    "VMAF_MODEL",
    "CellFailure",
    "FfmpegInfo",
    "ManifestError",
    "ProduceResult",
    "ProgressEvent",
    "Source",
    "SourceManifest",
    "auto_progress",
    "builtin_sources",
    "check_corpus_complete",
    "container_source",
    "declared_source_ids",
    "default_cache_dir",
    "incomplete_marker",
    "load_manifest",
    "manifest_path",
    "parts_dir",
    "probe_ffmpeg",
    "produce_corpus",
    "produce_for_gate",
    "quality_args",
    "raw_source",
    "resolve_ffmpeg",
    "vmaf_log_path",
]
