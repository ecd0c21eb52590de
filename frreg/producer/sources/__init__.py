"""Video sources: the resolved :class:`Source` (:mod:`.model`), manifests (:mod:`.manifest`)
and the built-in lavfi set (:mod:`.builtins`)."""

from frreg.producer.sources.builtins import (
    BUILTIN_SECONDS,
    BUILTIN_SIZE,
    BUILTIN_SOURCE_IDS,
    BUILTIN_SPECS,
    CACHE_ENV,
    BuiltinSpec,
    builtin_sources,
    default_cache_dir,
)
from frreg.producer.sources.manifest import (
    ENTRY_KEYS,
    MANIFEST_KEYS,
    ManifestError,
    SourceManifest,
    declared_source_ids,
    load_manifest,
)
from frreg.producer.sources.model import (
    GEOMETRY_KEYS,
    RAW_PIX_FMTS,
    RAW_SUFFIXES,
    Source,
    check_src_id,
    check_unique_ids,
    container_source,
    frame_bytes,
    is_raw_path,
    parse_framerate,
    rate_str,
    raw_source,
)

__all__ = [
    "BUILTIN_SECONDS",
    "BUILTIN_SIZE",
    "BUILTIN_SOURCE_IDS",
    "BUILTIN_SPECS",
    "CACHE_ENV",
    "ENTRY_KEYS",
    "GEOMETRY_KEYS",
    "MANIFEST_KEYS",
    "RAW_PIX_FMTS",
    "RAW_SUFFIXES",
    "BuiltinSpec",
    "ManifestError",
    "Source",
    "SourceManifest",
    "builtin_sources",
    "check_src_id",
    "check_unique_ids",
    "container_source",
    "declared_source_ids",
    "default_cache_dir",
    "frame_bytes",
    "is_raw_path",
    "load_manifest",
    "parse_framerate",
    "rate_str",
    "raw_source",
]
