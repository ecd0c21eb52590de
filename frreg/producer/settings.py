"""What a producer run is asked to make: one frozen record, built one way.

``frreg-corpus`` (from its argparse namespace) and the pytest plugin (from its
resolved ``--frreg-*`` values, via :func:`~frreg.producer.runner.produce_for_gate`)
both go through :func:`producer_settings`, so a source set, grid or default
cannot mean one thing on the command line and another in the gate. The same
object, completed by :meth:`ProducerSettings.for_run`, is what
:func:`~frreg.producer.runner.produce_corpus` runs: no setting travels as a
separate keyword.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from frreg.errors import InputError
from frreg.producer.encoders import DEFAULT_QSV_DEVICE, DEFAULT_VAAPI_DEVICE, HardwareDevices
from frreg.producer.sources import (
    BUILTIN_SIZE,
    GEOMETRY_KEYS,
    RAW_DEFAULTS,
    Source,
    SourceManifest,
    builtin_sources,
    container_source,
    is_raw_path,
    raw_source,
)
from frreg.schema import DEFAULT_AUDIT_CELLS, DEMO_CQS, DEMO_ENCODERS


@dataclass(frozen=True)
class Grid:
    """The encoders, cqs and preset overrides a run uses, after defaults were applied."""

    encoders: tuple[str, ...]
    cqs: tuple[int, ...]
    presets: dict[str, str]


@dataclass(frozen=True)
class ProducerSettings:
    """Sources and grid of one producer run, as the user asked for them.

    Sources are a manifest (``manifest``), one file (``source``, with
    ``geometry`` when it is raw YUV) or, when neither is set, the built-in set
    (``builtin`` ids; empty means all). ``encoders``/``cqs`` of ``None`` mean
    "the manifest's, else the demo grid"; ``presets`` override the manifest's.
    """

    manifest: Path | None = None
    source: Path | None = None
    src_id: str | None = None
    #: ``width``, ``height``, ``pix_fmt``, ``framerate`` given for ``source`` (absent: not given).
    geometry: Mapping[str, Any] = field(default_factory=dict)
    builtin: tuple[str, ...] = ()
    builtin_size: tuple[int, int] = BUILTIN_SIZE
    cache_dir: Path | None = None
    encoders: tuple[str, ...] | None = None
    cqs: tuple[int, ...] | None = None
    presets: Mapping[str, str] = field(default_factory=dict)
    #: Built-ins are rendered this many frames long; a run cuts every source to its first
    #: ``frames`` (``None``: whole sources).
    frames: int | None = None
    #: As given: a path, or a bare name looked up on ``PATH``; ``None``: see ``resolve_ffmpeg``.
    ffmpeg: str | None = None
    jobs: int | None = None
    vmaf_threads: int | None = None
    timeout: float | None = None
    allow_missing: bool = False
    #: The nodes QSV and VAAPI cells open.
    devices: HardwareDevices = field(default_factory=HardwareDevices)
    #: The fork's ``--vmaf-bin``: checked to be a file, recorded, never run.
    vmaf_bin: Path | None = None
    #: A Dask scheduler (``tcp://HOST:PORT``) to run the cells on; ``None``: locally.
    scheduler: str | None = None
    #: Accept cells scored by workers with different libvmaf builds.
    allow_mixed_libvmaf: bool = False
    #: With a scheduler: cells the client recomputes to check the workers.
    audit_cells: int = DEFAULT_AUDIT_CELLS
    #: Replace a complete corpus of another grid at the output path (``--replace``).
    replace_corpus: bool = False

    @property
    def uses_builtin(self) -> bool:
        """Whether the sources are the built-in set (neither a manifest nor a file was named)."""
        return self.manifest is None and self.source is None

    def grid(self, manifest: SourceManifest | None = None) -> Grid:
        """The grid: these settings' values, else the manifest's, else the demo defaults."""
        encoders = self.encoders or (manifest.encoders if manifest else None) or DEMO_ENCODERS
        cqs = self.cqs or (manifest.cqs if manifest else None) or DEMO_CQS
        presets = {**((manifest.presets or {}) if manifest else {}), **self.presets}
        return Grid(tuple(encoders), tuple(cqs), presets)

    def for_run(
        self, ffmpeg: str | os.PathLike[str], manifest: SourceManifest | None = None
    ) -> ProducerSettings:
        """These settings as :func:`~frreg.producer.runner.produce_corpus` runs them:
        ``ffmpeg`` the binary the caller resolved (and probed, and rendered sources
        with), and the grid filled in from ``manifest`` and the demo defaults, so that
        :meth:`grid` needs no manifest."""
        grid = self.grid(manifest)
        return replace(
            self,
            ffmpeg=os.fspath(ffmpeg),
            encoders=grid.encoders,
            cqs=grid.cqs,
            presets=grid.presets,
        )

    @property
    def raw(self) -> bool:
        """Whether ``source`` is read as raw YUV: a raw suffix, or geometry given for it."""
        return self.source is not None and (bool(self.geometry) or is_raw_path(self.source))

    def raw_assumptions(self) -> dict[str, str]:
        """What a raw ``source`` takes from :data:`RAW_DEFAULTS` because it was not given."""
        if not self.raw:
            return {}
        return {k: v for k, v in RAW_DEFAULTS.items() if k not in self.geometry}

    def single_source(self, ffmpeg: str | os.PathLike[str]) -> Source:
        """The one ``source`` file: raw (size required, never guessed; pixel format and
        rate default to :data:`RAW_DEFAULTS`) or probed."""
        if self.source is None:
            raise InputError("no --source given")
        if self.raw:
            missing = [
                f"--{k}" for k in GEOMETRY_KEYS if k not in self.geometry and k not in RAW_DEFAULTS
            ]
            if missing:
                raise InputError(
                    f"raw source {self.source} needs {', '.join(missing)} "
                    f"(raw YUV has no header; its size is never guessed)"
                )
            geometry = {**self.raw_assumptions(), **self.geometry}
            return raw_source(self.source, src_id=self.src_id, **geometry)
        return container_source(self.source, ffmpeg=ffmpeg, src_id=self.src_id)

    def builtin_sources(self, ffmpeg: str | os.PathLike[str]) -> list[Source]:
        """The chosen built-in sources, rendered (or found in the cache)."""
        return builtin_sources(
            self.cache_dir,
            ids=self.builtin or None,
            frames=self.frames,
            size=self.builtin_size,
            ffmpeg=ffmpeg,
        )


def producer_settings(values: Mapping[str, Any], base: Path) -> ProducerSettings:
    """Settings from resolved option values keyed by option dest.

    ``values`` is ``vars()`` of frreg-corpus's namespace or the plugin's
    resolved ``--frreg-*`` dict (keys ``sources``, ``encoders``, ``cqs``);
    missing keys and ``None`` mean "not given" (for the devices: the fork's
    default nodes). Relative paths resolve
    against ``base`` (``Path()`` keeps them as typed); ``ffmpeg`` is kept as
    given, since a bare name is looked up on ``PATH``.
    """

    def path(key: str) -> Path | None:
        value = values.get(key)
        return None if value is None else base / Path(value)

    encoders = values.get("encoders")
    cqs = values.get("cqs")
    ffmpeg = values.get("ffmpeg")
    size = values.get("builtin_size")
    return ProducerSettings(
        manifest=path("sources"),
        source=path("source"),
        src_id=values.get("src_id"),
        geometry={k: values[k] for k in GEOMETRY_KEYS if values.get(k) is not None},
        builtin=tuple(values.get("builtin") or ()),
        builtin_size=(int(size[0]), int(size[1])) if size else BUILTIN_SIZE,
        cache_dir=path("cache_dir"),
        encoders=None if encoders is None else tuple(encoders),
        cqs=None if cqs is None else tuple(cqs),
        presets=dict(values.get("presets") or ()),
        frames=values.get("frames"),
        ffmpeg=None if ffmpeg is None else os.fspath(ffmpeg),
        jobs=values.get("jobs"),
        vmaf_threads=values.get("vmaf_threads"),
        timeout=values.get("timeout"),
        allow_missing=bool(values.get("allow_missing", False)),
        devices=HardwareDevices(
            qsv=os.fspath(values.get("qsv_device") or DEFAULT_QSV_DEVICE),
            vaapi=os.fspath(values.get("vaapi_device") or DEFAULT_VAAPI_DEVICE),
        ),
        vmaf_bin=path("vmaf_bin"),
        scheduler=values.get("scheduler"),
        allow_mixed_libvmaf=bool(values.get("allow_mixed_libvmaf")),
        audit_cells=int(values.get("audit_cells", DEFAULT_AUDIT_CELLS)),
        replace_corpus=bool(values.get("replace_corpus", False)),
    )
