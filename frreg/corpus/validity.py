"""Whether a corpus can give valid LOSO evidence: what the data checks of the gate judge.

Leave-one-source-out trusts source ids: it holds out one id and trains on the
others. The same clip under two ids is scored by a model that trained on it,
and a weak source split into many tiny ids scores a PLCC of about 1.0 on each;
either lifts a HOLD to a PROMOTE without any model being better. The loader
cannot refuse these (each row is valid on its own), so :func:`assess` measures
them and the gate's data criteria (:mod:`frreg.gate.criteria`, stage ``data``)
judge the result under every profile:

- **the same content under two ids**: the share of each source's rows that have a
  match under another id, a match being an identical six-feature vector, or a row
  of the same (encoder, cq) within one frame index whose six features all lie
  within :data:`~frreg.schema.DATA_NEAR_SD` of the corpus's standard deviations;
  and ids the producer manifest records with one file sha256;
- **sources too small to score** (fewer than :data:`~frreg.schema.DATA_SOURCE_ROWS_MIN` rows);
- **the producer manifest against the rows**: every cell it records as done has
  exactly its frames, and no row is outside a recorded cell; a corpus without a
  manifest (the fork's producer writes none) is said to have none;
- **narrow or short sources** (one cq, one cell, or fewer than
  :data:`~frreg.schema.DATA_SOURCE_FRAMES_MIN` frames), reported only.

Everything is vectorised: about 0.1 s for the 33,840-row synthetic corpus.
docs/verdict.md ("Data validity") has the measurements behind the tolerances.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from frreg.corpus.loader import Corpus
from frreg.corpus.sidecar import manifest_path, read_producer_manifest
from frreg.errors import CorpusError
from frreg.schema import (
    CELL_VMAF_MEAN_ATOL,
    DATA_NEAR_SD,
    DATA_SHARED_ROWS_MIN,
    DATA_SOURCE_FRAMES_MIN,
    DATA_SOURCE_ROWS_MIN,
)

#: Candidate row pairs compared at once (bounds memory: 2**21 pairs x 6 features).
_CHUNK: Final = 1 << 21


@dataclass(frozen=True)
class SharedContent:
    """Two source ids whose rows match: ``rows`` of ``of``'s ``n`` rows have a match
    under ``other`` (``exact`` of them an identical six-feature vector)."""

    of: str
    other: str
    rows: int
    n: int
    exact: int

    @property
    def share(self) -> float:
        return self.rows / self.n

    def same_content(self) -> bool:
        """At least :data:`~frreg.schema.DATA_SHARED_ROWS_MIN` of ``of``'s rows, and at least
        :data:`~frreg.schema.DATA_SOURCE_ROWS_MIN` rows: fewer is chance on a source too
        small to score, which the source-rows check fails anyway."""
        return self.share >= DATA_SHARED_ROWS_MIN and self.rows >= DATA_SOURCE_ROWS_MIN

    @property
    def ids(self) -> tuple[str, str]:
        first, second = sorted((self.of, self.other))
        return first, second


@dataclass(frozen=True)
class SameFile:
    """Two source ids the producer manifest records with one file digest."""

    first: str
    second: str
    sha256: str


@dataclass(frozen=True)
class SourceShape:
    """What one source spans: rows, encoders, cqs, (encoder, cq) cells, distinct frames."""

    source: str
    rows: int
    encoders: int
    cqs: int
    cells: int
    frames: int

    def narrow(self) -> str | None:
        """Why its held-out PLCC measures little, or ``None``."""
        why = []
        if self.cells == 1:
            why.append("one encoder and one cq only")
        elif self.cqs == 1:
            why.append("one cq only")
        if self.frames < DATA_SOURCE_FRAMES_MIN:
            why.append(f"{self.frames} frames < {DATA_SOURCE_FRAMES_MIN}")
        return ", ".join(why) or None


@dataclass(frozen=True)
class ManifestAgreement:
    """The producer manifest beside the corpus against the corpus's rows."""

    path: Path
    present: bool
    problems: tuple[str, ...] = ()
    cells_done: int = 0
    cells_missing: int = 0


@dataclass(frozen=True)
class LabelAgreement:
    """The corpus's target against the label oracle (:mod:`frreg.corpus.label_oracle`)."""

    model: str
    rmse: float
    worst_source: str
    worst_rmse: float


@dataclass(frozen=True)
class DataValidity:
    """What :func:`assess` found (the data criteria turn it into checks)."""

    corpus: Path
    n_rows: int
    sources: tuple[str, ...]
    #: Every pair that holds the same content (:meth:`SharedContent.same_content`), largest
    #: share first.
    shared: tuple[SharedContent, ...]
    #: The largest share of any pair (``None``: no row matches across ids).
    largest: SharedContent | None
    same_files: tuple[SameFile, ...]
    shapes: tuple[SourceShape, ...]
    manifest: ManifestAgreement
    #: The largest target value in the corpus (the scale the labels are on).
    target_max: float
    #: The target against libvmaf's model recomputed from the six features.
    labels: LabelAgreement

    def small_sources(self) -> list[SourceShape]:
        return [s for s in self.shapes if s.rows < DATA_SOURCE_ROWS_MIN]

    def narrow_sources(self) -> list[tuple[SourceShape, str]]:
        return [(s, why) for s in self.shapes if (why := s.narrow()) is not None]


def assess(corpus: Corpus) -> DataValidity:
    """Measure ``corpus`` for the data criteria (see the module docstring)."""
    cols = _Columns.of(corpus)
    pairs = _content_shares(corpus, cols, DATA_NEAR_SD)
    manifest_doc, manifest = _read_manifest(corpus)
    return DataValidity(
        corpus=corpus.path,
        n_rows=corpus.n_rows,
        sources=corpus.sources,
        shared=tuple(p for p in pairs if p.same_content()),
        largest=pairs[0] if pairs else None,
        same_files=_same_files(manifest_doc),
        shapes=_shapes(corpus.sources, cols),
        manifest=manifest
        if manifest_doc is None
        else _agreement(corpus, manifest_doc, manifest.path),
        target_max=float(np.max(corpus.target)),
        labels=_labels(corpus),
    )


def _labels(corpus: Corpus) -> LabelAgreement:
    from frreg.corpus.label_oracle import ORACLE_MODEL, oracle_scores

    err = (oracle_scores(corpus.features) - corpus.target) ** 2
    per_source = {
        str(src): math.sqrt(float(err[corpus.groups == src].mean())) for src in corpus.sources
    }
    worst = max(per_source, key=lambda s: per_source[s])
    return LabelAgreement(ORACLE_MODEL, math.sqrt(float(err.mean())), worst, per_source[worst])


def content_shares(corpus: Corpus, tolerance: float = DATA_NEAR_SD) -> tuple[SharedContent, ...]:
    """Every pair of sources with any matching row, in the direction of its larger share,
    largest share first; a near match is within ``tolerance`` standard deviations."""
    return _content_shares(corpus, _Columns.of(corpus), tolerance)


@dataclass(frozen=True)
class _Columns:
    """The corpus's key columns as integer codes: source (indexing ``corpus.sources``),
    encoder, cq, their (encoder, cq) cell, and the frame index."""

    groups: np.ndarray
    encoders: np.ndarray
    cqs: np.ndarray
    cells: np.ndarray
    frames: np.ndarray

    @classmethod
    def of(cls, corpus: Corpus) -> _Columns:
        columns = corpus.columns
        encoders = _codes(columns["encoder"])
        cqs = _codes(columns["cq"].astype(np.float64))
        return cls(
            groups=_codes(columns["src"]),  # sorted, as corpus.sources
            encoders=encoders,
            cqs=cqs,
            cells=encoders * (int(cqs.max()) + 1) + cqs,
            frames=columns["frame_index"].astype(np.int64),
        )


def _distinct(values: np.ndarray) -> np.ndarray:
    """The sorted distinct values (``np.unique`` by sorting: its hash path is slower here)."""
    ordered = np.sort(values)
    return ordered[np.r_[True, ordered[1:] != ordered[:-1]]] if len(ordered) else ordered


def _codes(column: np.ndarray) -> np.ndarray:
    """Each value's index among the column's sorted distinct values."""
    _, codes = np.unique(column, return_inverse=True)
    return np.asarray(codes, dtype=np.int64).ravel()


# --------------------------------------------------------------------------
# The same content under two ids
# --------------------------------------------------------------------------


def _content_shares(corpus: Corpus, cols: _Columns, tolerance: float) -> tuple[SharedContent, ...]:
    n_src = len(corpus.sources)
    exact = _identical(corpus.features, cols.groups, n_src)
    near = _near(corpus.features, cols, n_src, tolerance)
    matched = _distinct(np.concatenate([exact, near]))
    return _pairs(matched, exact, cols.groups, corpus.sources)


def _identical(features: np.ndarray, groups: np.ndarray, n_src: int) -> np.ndarray:
    """Rows whose six-feature vector appears, anywhere, under another id."""
    # + 0.0 turns -0.0 into 0.0, so equal numbers have equal bytes.
    rows = np.ascontiguousarray(features + 0.0).view(np.dtype((np.void, features.shape[1] * 8)))
    _, vector = np.unique(rows.ravel(), return_inverse=True)
    vector = vector.ravel()
    held = _distinct(vector * n_src + groups)  # each (vector, source) once
    per_vector = np.bincount(held // n_src)
    shared = per_vector[vector] > 1
    if not shared.any():
        return np.empty(0, dtype=np.int64)
    # For each row of a shared vector, every other source that holds the vector.
    row = np.flatnonzero(shared)
    start = np.searchsorted(held, vector[row] * n_src)
    count = per_vector[vector[row]]
    pos = np.repeat(start - np.cumsum(count) + count, count) + np.arange(count.sum())
    rows_rep = np.repeat(row, count)
    other = held[pos] % n_src
    keep = other != groups[rows_rep]
    return _distinct(rows_rep[keep] * n_src + other[keep])


def _near(features: np.ndarray, cols: _Columns, n_src: int, tolerance: float) -> np.ndarray:
    """Rows with a row of another id in the same cell, one frame index apart at most,
    whose features all lie within ``tolerance`` standard deviations.

    The candidates are the rows of one (cell, frame) key and the next one: about
    1.5 x rows x sources pairs, compared in chunks.
    """
    sd = features.std(axis=0)
    columns = list(np.ascontiguousarray((features / np.where(sd > 0, sd, 1.0)).T))
    groups = cols.groups
    key = cols.cells * (int(cols.frames.max()) + 2) + cols.frames
    order = np.argsort(key, kind="stable")
    ks = key[order]
    out = []
    for lag in (0, 1):
        lo = np.searchsorted(ks, ks + lag, side="left")
        hi = np.searchsorted(ks, ks + lag, side="right")
        if lag == 0:  # each unordered pair once, never a row with itself
            lo = np.maximum(lo, np.arange(len(ks)) + 1)
        count = np.maximum(hi - lo, 0)
        ends = np.cumsum(count)
        first = 0
        while first < len(ks):
            # Positions [first, last) hold at most _CHUNK candidate pairs (or one row's).
            base = ends[first] - count[first]
            last = max(int(np.searchsorted(ends, base + _CHUNK, side="right")), first + 1)
            last = min(last, len(ks))
            c = count[first:last]
            total = int(c.sum())
            if total:
                at = np.repeat(np.arange(first, last), c)
                offset = np.arange(total) - np.repeat(np.cumsum(c) - c, c)
                i = order[at]
                j = order[lo[at] + offset]
                for column in columns:  # most candidates are far in the first column
                    close = np.abs(column[i] - column[j]) <= tolerance
                    i, j = i[close], j[close]
                cross = groups[i] != groups[j]
                i, j = i[cross], j[cross]
                out += [i * n_src + groups[j], j * n_src + groups[i]]
            first = last
    return _distinct(np.concatenate(out)) if out else np.empty(0, dtype=np.int64)


def _pairs(
    matched: np.ndarray, exact: np.ndarray, groups: np.ndarray, sources: tuple[str, ...]
) -> tuple[SharedContent, ...]:
    """Per pair of sources with a match, the direction with the larger share; largest first.

    ``matched`` and ``exact`` code (row, other source) as ``row * n_src + source``.
    """
    n_src = len(sources)
    n = np.bincount(groups, minlength=n_src)

    def per_pair(codes: np.ndarray) -> np.ndarray:
        of = groups[codes // n_src]
        counts = np.bincount(of * n_src + codes % n_src, minlength=n_src * n_src)
        return counts.reshape(n_src, n_src)

    rows, same = per_pair(matched), per_pair(exact)
    share = rows / n[:, None]
    found = []
    for a, b in zip(*np.nonzero(np.triu(rows + rows.T, k=1)), strict=True):
        of, other = (a, b) if share[a, b] >= share[b, a] else (b, a)
        found.append(
            SharedContent(
                sources[of], sources[other], int(rows[of, other]), int(n[of]), int(same[of, other])
            )
        )
    found.sort(key=lambda p: (-p.share, p.ids))
    return tuple(found)


def _same_files(manifest: dict[str, Any] | None) -> tuple[SameFile, ...]:
    """Ids the producer manifest records with one file sha256 (a clip under two ids)."""
    entries = (manifest or {}).get("sources")
    by_digest: dict[str, list[str]] = {}
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("sha256"), str):
            by_digest.setdefault(entry["sha256"], []).append(str(entry.get("id")))
    return tuple(
        SameFile(first, other, digest)
        for digest, ids in sorted(by_digest.items())
        for first, *rest in [sorted(ids)]
        for other in rest
    )


# --------------------------------------------------------------------------
# What each source spans
# --------------------------------------------------------------------------


def _shapes(sources: tuple[str, ...], cols: _Columns) -> tuple[SourceShape, ...]:
    groups = cols.groups

    def distinct(values: np.ndarray) -> np.ndarray:
        width = int(values.max()) + 1
        held = _distinct(groups * width + values)
        return np.bincount(held // width, minlength=len(sources))

    rows = np.bincount(groups, minlength=len(sources))
    per = [distinct(v) for v in (cols.encoders, cols.cqs, cols.cells, cols.frames)]
    return tuple(
        SourceShape(src, int(rows[i]), *(int(p[i]) for p in per)) for i, src in enumerate(sources)
    )


# --------------------------------------------------------------------------
# The producer manifest against the rows
# --------------------------------------------------------------------------


def _read_manifest(corpus: Corpus) -> tuple[dict[str, Any] | None, ManifestAgreement]:
    path = manifest_path(corpus.path)
    try:
        doc = read_producer_manifest(corpus.path)
    except CorpusError as exc:  # the loader read it a moment ago; it changed since
        return None, ManifestAgreement(path, True, (str(exc),))
    return doc, ManifestAgreement(path, doc is not None)


def _agreement(corpus: Corpus, manifest: dict[str, Any], path: Path) -> ManifestAgreement:
    """Every cell the manifest records as done has exactly its frames (indices 0..n-1) in
    the corpus, and every row belongs to such a cell."""
    cells = manifest.get("cells")
    if not isinstance(cells, list):
        return ManifestAgreement(path, True, ("records no cells",))
    problems: list[str] = []
    expected: dict[tuple[str, str, float], int] = {}
    means: dict[tuple[str, str, float], float] = {}
    status: dict[tuple[str, str, float], str] = {}
    missing = 0
    for i, cell in enumerate(cells):
        key = _cell_key(cell)
        frames = cell.get("frames") if isinstance(cell, dict) else None
        if key is None or not isinstance(frames, int) or isinstance(frames, bool):
            problems.append(f"cells[{i}] is not a cell record (src, encoder, cq, frames)")
            continue
        status[key] = str(cell.get("status"))
        if cell.get("status") == "done":
            expected[key] = frames
            mean = cell.get("vmaf_mean")
            if isinstance(mean, int | float) and not isinstance(mean, bool):
                means[key] = float(mean)
        else:
            missing += 1
    cells_seen, sizes, tops, row_means = _cells(corpus)
    seen = set()
    for key, size, top, got in zip(cells_seen, sizes, tops, row_means, strict=True):
        seen.add(key)
        label = _label(key)
        if key not in expected:
            recorded = status.get(key)
            why = "does not record it" if recorded is None else f"records it as {recorded}"
            problems.append(f"cell {label} has {size} rows; the manifest {why}")
        elif size != expected[key] or top >= expected[key]:
            problems.append(
                f"cell {label} has {size} rows (frame indices up to {top}); the manifest "
                f"records {expected[key]} frames"
            )
        elif key in means and not abs(got - means[key]) <= CELL_VMAF_MEAN_ATOL:
            problems.append(
                f"cell {label}: its rows' mean vmaf is {got:.4f}; the manifest records "
                f"libvmaf's pooled mean {means[key]:.4f}"
            )
    for key in sorted(set(expected) - seen, key=_label):
        problems.append(f"cell {_label(key)} has no rows; the manifest records {expected[key]}")
    recorded_rows = (manifest.get("corpus") or {}).get("rows")
    if isinstance(recorded_rows, int) and recorded_rows != corpus.n_rows:
        problems.append(
            f"the manifest records {recorded_rows} rows, the corpus has {corpus.n_rows}"
        )
    return ManifestAgreement(path, True, tuple(problems), len(expected), missing)


def _cells(
    corpus: Corpus,
) -> tuple[list[tuple[str, str, float]], list[int], list[int], list[float]]:
    """The corpus's (src, encoder, cq) cells, sorted, with each one's row count, largest
    frame index and mean target."""
    cols = _Columns.of(corpus)
    n_enc, n_cq = int(cols.encoders.max()) + 1, int(cols.cqs.max()) + 1
    code = (cols.groups * n_enc + cols.encoders) * n_cq + cols.cqs
    order = np.argsort(code, kind="stable")
    starts = np.flatnonzero(np.r_[True, code[order][1:] != code[order][:-1]])
    bounds = [*starts.tolist(), len(order)]
    src, encoder = corpus.columns["src"], corpus.columns["encoder"]
    cq = corpus.columns["cq"].astype(np.float64)
    keys, sizes, tops, means = [], [], [], []
    for lo, hi in itertools.pairwise(bounds):
        rows = order[lo:hi]
        first = rows[0]
        keys.append((str(src[first]), str(encoder[first]), float(cq[first])))
        sizes.append(hi - lo)
        tops.append(int(cols.frames[rows].max()))
        means.append(math.fsum(corpus.target[rows].tolist()) / (hi - lo))
    return keys, sizes, tops, means


def _cell_key(cell: Any) -> tuple[str, str, float] | None:
    if not isinstance(cell, dict):
        return None
    src, encoder, cq = cell.get("src"), cell.get("encoder"), cell.get("cq")
    if not isinstance(src, str) or not isinstance(encoder, str):
        return None
    if not isinstance(cq, int | float) or isinstance(cq, bool) or not math.isfinite(cq):
        return None
    return src, encoder, float(cq)


def _label(key: tuple[str, str, float]) -> str:
    src, encoder, cq = key
    return ascii(f"{src}/{encoder}/cq{cq:g}")[1:-1]
