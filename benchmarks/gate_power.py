"""Gate power: does each gate profile HOLD harmful faults and PROMOTE clean ensembles?

On a real corpus (by default produced with ``frreg-corpus`` from every built-in
source, the natural clips included, x libx264/libx265 x CRF 22/30/38/46), it
trains

* **clean** ensembles over disjoint 5-seed sets (0-4, 5-9, ...), and
* ensembles with an injected **fault**, of two kinds:

  - *data faults*: a corrupted copy of the corpus (a feature column shuffled
    or rescaled, labels offset or rescaled on one source or all, a source
    present twice under two ids, frames subsampled, cells missing);
  - *code faults*: one textual patch to a copy of the ``frreg`` package (the
    built native kernel included), trained by that copy
    (``PYTHONPATH=<copy> python -m frreg.cli.train``): the scaler fit on the
    held-out rows, the codec block or the features zeroed, the target
    rescaled, a constant predictor, undertraining;

then gates each with every profile using *this* checkout's code, in-process
(:func:`frreg.gate.verdict.judge`), and each code fault also with the faulty
copy's own ``frreg-gate`` (the self-audit column). It prints, and writes to
``<out>/gate_power.md`` and ``<out>/gate_power.json``, one row per trained
ensemble -- fault, kind, seeds, epochs, harm, verdict per profile and the
checks that fired -- and per profile and epoch count the catch rate (harmful
faults that do not PROMOTE) and the false-HOLD rate (clean sets that do not
PROMOTE).

**Harm is measured, not assumed.** Every ensemble's mean is scored against the
*clean* corpus's labels: the pooled leave-one-source-out RMSE over the
held-out predictions (``loso_seed{N}.predictions.csv``), rows matched to the
clean corpus by ``src``/``encoder``/``cq``/``frame_index`` (a duplicated
source's extra rows are not scored). A fault is **harmful** when that RMSE is
both more than ``HARM_RATIO`` (1.25) times and more than ``HARM_DELTA`` (0.5)
VMAF points above the worst clean set's at the same epochs, or when the
evaluation itself is invalid whatever the RMSE says: a source present twice
(leaked LOSO), rows missing against the producer manifest (integrity). A
fault under the margin is reported as harmless and counted in neither rate.

Everything trained is cached under ``--out`` by a key of (clean corpus digest,
fault and its definition, seed set, epochs, the digest of the ``frreg``
package that trains), so a rerun resumes; gating is never cached.

    python benchmarks/gate_power.py --out runs/gate_power                    # the full table
    python benchmarks/gate_power.py --out runs/gp --builtin-size 160x90 --frames 24 \\
        --epochs 10 --clean-sets 2                                           # a modest one
    python benchmarks/gate_power.py --out runs/gp --corpus other.jsonl --faults shuffle:vif_scale2
    python benchmarks/gate_power.py --list-faults

Exit status: 0 when it ran (whatever the table says), 1 when it could not run
(the reason on one line), 2 for bad options.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import hashlib
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np

# benchmarks/_machine.py, beside this file (also when this file is loaded by path)
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import load_line, machine

#: Bumped when what the benchmark trains changes (fault builders, the run layout).
BENCH_VERSION: Final = 1
#: A fault is harmful when its clean-label RMSE exceeds the worst clean set's by both.
HARM_RATIO: Final = 1.25
HARM_DELTA: Final = 0.5
SEED_SET_SIZE: Final = 5
DEFAULT_EPOCHS: Final = (30, 200)
DEFAULT_ENCODERS: Final = ("libx264", "libx265")
DEFAULT_CQS: Final = (22, 30, 38, 46)
#: Profile name -> ``Thresholds(strict=...)``.
PROFILES: Final = {"default": False, "strict": True}
KEY_COLUMNS: Final = ("src", "encoder", "cq", "frame_index")
PROG: Final = "gate_power"

Row = dict[str, Any]


# --------------------------------------------------------------------------
# The machine (benchmarks/_machine.py)
# --------------------------------------------------------------------------


def machine_lines() -> list[str]:
    """CPU model, vector extensions, cores, torch threads and the load, one line each."""
    import torch

    model, flags = machine()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count() or 1
    return [
        f"cpu: {model}; {os.cpu_count()} logical cores ({usable} usable); "
        f"vector extensions: {' '.join(flags) or 'none found'}",
        f"torch {torch.__version__}, {torch.get_num_threads()} intra-op threads; {load_line()}",
    ]


# --------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class FaultContext:
    """What a data fault needs beyond the rows: the source it corrupts, a seed."""

    source: str
    has_manifest: bool
    seed: int = 0


@dataclass(frozen=True)
class Fault:
    """One injected fault (or ``clean``): its spec (``family[:arg]``), kind and recipe."""

    spec: str
    family: str
    kind: str  # "clean", "data" or "code"
    arg: Any
    description: str

    @property
    def safe_name(self) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", self.spec)


CLEAN: Final = Fault("clean", "clean", "clean", None, "the recipe, no fault")


@dataclass(frozen=True)
class DataFamily:
    """A family of data faults: how it corrupts the rows and what the copy's manifest says.

    ``manifest``: ``as-produced`` (the clean manifest rewritten as if the producer
    had written these rows: the fault happened upstream of it), ``unchanged``
    (copied as is: the corpus disagrees with it) or ``repointed`` (only its
    digest re-pointed at the edited corpus, as a hand edit to silence the loader
    would: rows and cells still disagree). ``invalid`` says why the evaluation
    itself is invalid whatever the RMSE (``None``: harm is measured).
    """

    build: Callable[[list[Row], Any, FaultContext], list[Row]]
    parse: Callable[[str], Any] | None
    default: str | None
    describe: Callable[[Any, FaultContext], str]
    manifest: str = "as-produced"
    invalid: Callable[[Any, FaultContext], str | None] = lambda arg, ctx: None
    #: The variant needs a producer manifest (skipped on a corpus without one).
    needs_manifest: bool = False


def _canonical_column(text: str) -> str:
    from frreg.schema import CANONICAL_6

    if text not in CANONICAL_6:
        raise ValueError(f"{text!r} is not a canonical feature ({', '.join(CANONICAL_6)})")
    return text


def _column_factor(text: str) -> tuple[str, float]:
    col, sep, factor = text.partition("*")
    if not sep:
        raise ValueError(f"{text!r} is not COLUMN*FACTOR")
    value = float(factor)
    if not math.isfinite(value) or value == 0:
        raise ValueError(f"factor {factor!r} must be finite and non-zero")
    return _canonical_column(col), value


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise ValueError(f"{text!r} is not a fraction in (0, 1)")
    return value


def _every(text: str) -> int:
    value = int(text)
    if value < 2:
        raise ValueError(f"{text!r}: keeping 1 frame in N needs N >= 2")
    return value


def _rng(ctx: FaultContext, salt: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{ctx.seed}:{salt}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _round(x: float) -> float:
    return round(float(x), 6)


def _shuffle(rows: list[Row], col: str, ctx: FaultContext) -> list[Row]:
    values = [r[col] for r in rows]
    perm = _rng(ctx, f"shuffle:{col}").permutation(len(rows))
    return [{**r, col: values[j]} for r, j in zip(rows, perm, strict=True)]


def _feature_scale(one: bool) -> Callable[[list[Row], tuple[str, float], FaultContext], list[Row]]:
    def build(rows: list[Row], arg: tuple[str, float], ctx: FaultContext) -> list[Row]:
        col, factor = arg
        return [
            {**r, col: _round(r[col] * factor)} if not one or r["src"] == ctx.source else r
            for r in rows
        ]

    return build


def _label(one: bool, op: Callable[[float, float], float]) -> Callable[..., list[Row]]:
    def build(rows: list[Row], arg: float, ctx: FaultContext) -> list[Row]:
        return [
            {**r, "vmaf": _round(min(100.0, max(0.0, op(r["vmaf"], arg))))}
            if not one or r["src"] == ctx.source
            else r
            for r in rows
        ]

    return build


def duplicate_id(ctx: FaultContext, near: bool) -> str:
    return f"{ctx.source}-{'near' if near else 'copy'}"


def _duplicate(near: bool) -> Callable[[list[Row], Any, FaultContext], list[Row]]:
    def build(rows: list[Row], noise: float | None, ctx: FaultContext) -> list[Row]:
        from frreg.schema import CANONICAL_6

        rng = _rng(ctx, f"duplicate:{near}")
        new = duplicate_id(ctx, near)
        copies = []
        for r in rows:
            if r["src"] != ctx.source:
                continue
            c = {**r, "src": new}
            if near:
                assert noise is not None
                for col in CANONICAL_6:
                    c[col] = _round(r[col] * (1.0 + rng.normal(0.0, noise)))
                c["vmaf"] = _round(min(100.0, max(0.0, r["vmaf"] + rng.normal(0.0, 50 * noise))))
            copies.append(c)
        return _sorted_like(rows, rows + copies)

    return build


def _key(r: Row) -> tuple[Any, ...]:
    return tuple(r[c] for c in KEY_COLUMNS)


def _sorted_like(original: list[Row], rows: list[Row]) -> list[Row]:
    """``rows`` sorted by key when ``original`` was (as the producer writes)."""
    keys = [_key(r) for r in original]
    return sorted(rows, key=_key) if keys == sorted(keys) else rows


def _subsample(rows: list[Row], every: int, ctx: FaultContext) -> list[Row]:
    return [r for r in rows if r["frame_index"] % every == 0]


def _cells_missing(rows: list[Row], fraction: float, ctx: FaultContext) -> list[Row]:
    cells = sorted({(r["src"], r["encoder"], r["cq"]) for r in rows})
    order = _rng(ctx, "cells").permutation(len(cells))
    want = max(1, round(fraction * len(cells)))
    left = Counter(src for src, _, _ in cells)
    drop: set[tuple[Any, ...]] = set()
    for i in order:
        if len(drop) == want:
            break
        cell = cells[i]
        if left[cell[0]] > 1:  # every source keeps a cell: LOSO still scores it
            drop.add(cell)
            left[cell[0]] -= 1
    return [r for r in rows if (r["src"], r["encoder"], r["cq"]) not in drop]


def _leak(near: bool) -> Callable[[Any, FaultContext], str]:
    def invalid(arg: Any, ctx: FaultContext) -> str:
        return (
            f"leaked LOSO: {ctx.source} is in its own fold's training as {duplicate_id(ctx, near)}"
        )

    return invalid


def _integrity(arg: Any, ctx: FaultContext) -> str | None:
    return "integrity: rows missing against the producer manifest" if ctx.has_manifest else None


def _one(ctx: FaultContext) -> str:
    return f"on {ctx.source}"


DATA_FAMILIES: Final[dict[str, DataFamily]] = {
    "shuffle": DataFamily(
        _shuffle, _canonical_column, "motion2", lambda a, c: f"{a} column shuffled across rows"
    ),
    "feature-scale-all": DataFamily(
        _feature_scale(False),
        _column_factor,
        "vif_scale0*2",
        lambda a, c: f"{a[0]} x {a[1]:g} on every row",
    ),
    "feature-scale-one": DataFamily(
        _feature_scale(True),
        _column_factor,
        "vif_scale0*2",
        lambda a, c: f"{a[0]} x {a[1]:g} {_one(c)}",
    ),
    "label-offset-one": DataFamily(
        _label(True, lambda v, d: v + d),
        _finite,
        "10",
        lambda a, c: f"vmaf {a:+g} (clipped to [0, 100]) {_one(c)}",
    ),
    "label-offset-all": DataFamily(
        _label(False, lambda v, d: v + d),
        _finite,
        "10",
        lambda a, c: f"vmaf {a:+g} (clipped to [0, 100]) on every source",
    ),
    "label-scale-one": DataFamily(
        _label(True, lambda v, f: v * f), _finite, "0.01", lambda a, c: f"vmaf x {a:g} {_one(c)}"
    ),
    "label-scale-all": DataFamily(
        _label(False, lambda v, f: v * f),
        _finite,
        "0.01",
        lambda a, c: f"vmaf x {a:g} on every source",
    ),
    "duplicate-exact": DataFamily(
        _duplicate(False),
        None,
        None,
        lambda a, c: f"{c.source} present twice, exact copy as {duplicate_id(c, False)}",
        invalid=_leak(False),
    ),
    "duplicate-near": DataFamily(
        _duplicate(True),
        _finite,
        "0.01",
        lambda a, c: (
            f"{c.source} present twice as {duplicate_id(c, True)}: features x (1 + N(0, {a:g})), "
            f"vmaf + N(0, {50 * a:g})"
        ),
        invalid=_leak(True),
    ),
    "frames-subsampled": DataFamily(
        _subsample,
        _every,
        "2",
        lambda a, c: f"1 frame in {a} kept; manifest copied unchanged",
        manifest="unchanged",
        invalid=_integrity,
    ),
    "frames-subsampled-resealed": DataFamily(
        _subsample,
        _every,
        "2",
        lambda a, c: f"1 frame in {a} kept; manifest digest re-pointed, rows/cells not",
        manifest="repointed",
        invalid=_integrity,
        needs_manifest=True,
    ),
    "cells-missing": DataFamily(
        _cells_missing,
        _fraction,
        "0.25",
        lambda a, c: f"{a:g} of the (src, encoder, cq) cells dropped; manifest copied unchanged",
        manifest="unchanged",
        invalid=_integrity,
    ),
    "cells-missing-resealed": DataFamily(
        _cells_missing,
        _fraction,
        "0.25",
        lambda a, c: f"{a:g} of the cells dropped; manifest digest re-pointed, rows/cells not",
        manifest="repointed",
        invalid=_integrity,
        needs_manifest=True,
    ),
}


@dataclass(frozen=True)
class CodeFamily:
    """A code fault: textual patches ``(file under frreg/, old, new)``; ``{arg}`` in
    ``new`` is the fault's argument. Each ``old`` must occur exactly once."""

    patches: tuple[tuple[str, str, str], ...]
    description: str
    parse: Callable[[str], Any] | None = None
    default: str | None = None


_SETTINGS = "training/settings.py"
_ENGINE = "training/batched/engine.py"
_FOLD_INPUTS_RETURN = (
    "return np.hstack([scaler.transform(features[idx]), codec[idx]]).astype(np.float32)"
)


def _epochs(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(f"{text!r} is not a positive epoch count")
    return value


CODE_FAMILIES: Final[dict[str, CodeFamily]] = {
    "code-scaler-heldout": CodeFamily(
        (
            (
                _SETTINGS,
                "scaler = Scaler.fit(features[train_idx])",
                "scaler = Scaler.fit(features[idx])",
            ),
        ),
        "the feature scaler is fit on the rows it transforms: the held-out fold's own at prediction",
    ),
    "code-codec-zeroed": CodeFamily(
        (
            (
                _SETTINGS,
                "codec[idx]]).astype(np.float32)",
                "np.zeros_like(codec[idx])]).astype(np.float32)",
            ),
        ),
        "the codec block (encoder one-hot, preset, cq) is zeroed in every model input",
    ),
    "code-features-zeroed": CodeFamily(
        ((_SETTINGS, "scaler.transform(features[idx])", "np.zeros_like(features[idx])"),),
        "the six canonical features are zeroed in every model input: a codec-only model",
    ),
    "code-target-rescaled": CodeFamily(
        (
            (
                _ENGINE,
                "ys.append(np.asarray(target, dtype=np.float64)[train_idx])",
                "ys.append(np.asarray(target, dtype=np.float64)[train_idx] / 100.0)",
            ),
        ),
        "trained on vmaf/100; predictions never rescaled back",
    ),
    "code-constant": CodeFamily(
        (
            (
                _SETTINGS,
                _FOLD_INPUTS_RETURN,
                "return np.zeros((len(idx), features.shape[1] + codec.shape[1]), dtype=np.float32)",
            ),
        ),
        "every model input is zero: each model predicts one constant",
    ),
    "code-undertrained": CodeFamily(
        (
            (
                _ENGINE,
                "_train_groups(groups, settings.epochs, progress)",
                "_train_groups(groups, min(settings.epochs, {arg}), progress)",
            ),
        ),
        "trains at most {arg} epochs whatever the recipe; the artifacts record the recipe",
        _epochs,
        "2",
    ),
}

DEFAULT_FAULTS: Final = (
    "shuffle:motion2",
    "shuffle:adm2",
    "feature-scale-all:vif_scale0*2",
    "feature-scale-one:vif_scale0*2",
    "label-offset-one:10",
    "label-offset-all:10",
    "label-scale-one:0.01",
    "label-scale-all:0.01",
    "duplicate-exact",
    "duplicate-near:0.01",
    "frames-subsampled:2",
    "frames-subsampled-resealed:2",
    "cells-missing:0.25",
    "cells-missing-resealed:0.25",
    "code-scaler-heldout",
    "code-codec-zeroed",
    "code-features-zeroed",
    "code-target-rescaled",
    "code-constant",
    "code-undertrained:2",
)
#: Faults for a held-out check (``--faults held-out``): the same families with other
#: columns, sizes and arguments than :data:`DEFAULT_FAULTS`, so thresholds tuned on
#: those are judged on faults they were not tuned on (docs/evidence.md, "Gate power").
HELD_OUT_FAULTS: Final = (
    "shuffle:vif_scale2",
    "feature-scale-one:adm2*0.8",
    "label-offset-one:-6",
    "label-scale-one:0.5",
    "duplicate-near:0.03",
    "frames-subsampled:3",
    "cells-missing-resealed:0.4",
    "code-undertrained:5",
)
#: Names ``--faults`` accepts for a whole set.
FAULT_SETS: Final = {"all": DEFAULT_FAULTS, "held-out": HELD_OUT_FAULTS}


def fault_specs(text: str) -> list[str]:
    """``--faults``: comma-separated specs and set names (:data:`FAULT_SETS`), in order."""
    out: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if part:
            out += FAULT_SETS.get(part, (part,))
    return out


def parse_fault(spec: str, ctx: FaultContext) -> Fault:
    """``family[:arg]`` -> :class:`Fault`; ``ValueError`` names the families on a bad one."""
    family, sep, text = spec.strip().partition(":")
    found: DataFamily | CodeFamily | None = DATA_FAMILIES.get(family) or CODE_FAMILIES.get(family)
    if found is None:
        known = ", ".join([*DATA_FAMILIES, *CODE_FAMILIES])
        raise ValueError(f"unknown fault {family!r}; choose from {known}")
    if found.parse is None:
        if sep:
            raise ValueError(f"fault {family} takes no argument, got {text!r}")
        arg, canonical = None, family
    else:
        raw = text if sep else found.default
        assert raw is not None
        try:
            arg = found.parse(raw)
        except ValueError as exc:
            raise ValueError(f"fault {family}: {exc}") from None
        canonical = f"{family}:{raw}"
    if isinstance(found, DataFamily):
        return Fault(canonical, family, "data", arg, found.describe(arg, ctx))
    return Fault(canonical, family, "code", arg, found.description.replace("{arg}", str(arg)))


def fault_invalid(fault: Fault, ctx: FaultContext) -> str | None:
    """Why ``fault`` makes the evaluation itself invalid (``None``: harm is measured)."""
    family = DATA_FAMILIES.get(fault.family)
    return None if family is None else family.invalid(fault.arg, ctx)


# --------------------------------------------------------------------------
# Digests and files
# --------------------------------------------------------------------------


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_json(obj: Any) -> str:
    return sha256_bytes(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode())


def package_root() -> Path:
    """The directory holding this checkout's ``frreg`` package (what trains the pinned runs)."""
    import frreg

    return Path(frreg.__file__).resolve().parent.parent


def package_digest(pkg: Path) -> str:
    """sha256 of the ``frreg`` package's sources and native kernel (what trains)."""
    h = hashlib.sha256()
    files = sorted(
        p
        for p in pkg.rglob("*")
        if p.is_file()
        and "__pycache__" not in p.parts
        and (
            p.suffix in (".py", ".c", ".h") or (p.name.startswith("_native") and p.suffix == ".so")
        )
    )
    for path in files:
        data = path.read_bytes()
        h.update(f"{path.relative_to(pkg).as_posix()}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def read_rows(path: Path) -> list[Row]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def write_rows(path: Path, rows: Iterable[Row]) -> bytes:
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    path.write_bytes(data)
    return data


def _replace_dir(tmp: Path, final: Path) -> None:
    """Move a finished build directory into place (a concurrent builder's copy wins)."""
    try:
        tmp.rename(final)
    except OSError:
        if not final.exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)


def _tmp_dir(final: Path) -> Path:
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.{random.getrandbits(32):08x}")
    tmp.mkdir()
    return tmp


def manifest_of(corpus: Path) -> Path:
    from frreg.corpus.sidecar import manifest_path

    return manifest_path(corpus)


# --------------------------------------------------------------------------
# Data faults: the corrupted copies
# --------------------------------------------------------------------------


def _fault_manifest(
    clean: dict[str, Any], mode: str, name: str, rows: list[Row], data: bytes, ctx: FaultContext
) -> dict[str, Any]:
    m = copy.deepcopy(clean)
    if mode == "unchanged":
        return m
    corpus = dict(m.get("corpus") or {})
    corpus["sha256"] = sha256_bytes(data)
    if mode == "as-produced":
        corpus["path"], corpus["rows"] = name, len(rows)
        present = {r["src"] for r in rows}
        for near in (False, True):  # a duplicated source is listed like any other
            new = duplicate_id(ctx, near)
            if new not in present:
                continue
            m["sources"] = [
                *m.get("sources", []),
                *({**s, "id": new} for s in m.get("sources", []) if s.get("id") == ctx.source),
            ]
            cells = [
                {**c, "src": new, "key": sha256_bytes(f"{c.get('key')}:{new}".encode())}
                for c in m.get("cells", [])
                if c.get("src") == ctx.source
            ]
            m["cells"] = [*m.get("cells", []), *cells]
            for k in ("cells_total", "cells_done"):
                if isinstance(m.get(k), int):
                    m[k] += len(cells)
    m["corpus"] = corpus
    return m


def make_fault_corpus(
    fault: Fault, clean: Path, clean_sha256: str, ctx: FaultContext, out: Path
) -> Path:
    """The corrupted copy of ``clean`` for a data fault (built once, then reused)."""
    family = DATA_FAMILIES[fault.family]
    final = out / "data" / f"{fault.safe_name}-{ctx.source}-{clean_sha256[:12]}-v{BENCH_VERSION}"
    path = final / "corpus.jsonl"
    if path.is_file():
        return path
    tmp = _tmp_dir(final)
    rows = family.build(read_rows(clean), fault.arg, ctx)
    data = write_rows(tmp / path.name, rows)
    clean_manifest = manifest_of(clean)
    if clean_manifest.is_file():
        doc = json.loads(clean_manifest.read_text(encoding="utf-8"))
        doc = _fault_manifest(doc, family.manifest, path.name, rows, data, ctx)
        (tmp / manifest_of(path).name).write_text(json.dumps(doc, indent=1), encoding="utf-8")
    record = {"fault": fault.spec, "description": fault.description, "rows": len(rows)}
    record |= {"manifest": family.manifest, "clean": str(clean), "clean_sha256": clean_sha256}
    (tmp / "fault.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
    _replace_dir(tmp, final)
    return path


# --------------------------------------------------------------------------
# Code faults: the patched copies of the package
# --------------------------------------------------------------------------


def patched_text(text: str, old: str, new: str, where: str) -> str:
    """``text`` with its one ``old`` replaced: a patch that finds nothing (a refactor
    moved the code) or finds it twice fails here, never becomes a silent no-op."""
    count = text.count(old)
    if count != 1:
        raise RuntimeError(
            f"code fault patch for {where}: expected exactly one {old!r}, found {count}; "
            "update the fault to the refactored code"
        )
    return text.replace(old, new)


def make_code_copy(fault: Fault, pkg: Path, pkg_sha256: str, out: Path) -> Path:
    """A patched copy of the ``frreg`` package (its native kernel included); returns the
    directory to put on ``PYTHONPATH``."""
    family = CODE_FAMILIES[fault.family]
    final = out / "code" / f"{fault.safe_name}-{pkg_sha256[:12]}"
    if (final / "frreg" / "__init__.py").is_file():
        return final
    tmp = _tmp_dir(final)
    shutil.copytree(pkg, tmp / "frreg", ignore=shutil.ignore_patterns("__pycache__"))
    for rel, old, new in family.patches:
        target = tmp / "frreg" / rel
        new = new.replace("{arg}", str(fault.arg))
        target.write_text(patched_text(target.read_text(encoding="utf-8"), old, new, rel))
    _replace_dir(tmp, final)
    return final


# --------------------------------------------------------------------------
# Training (cached)
# --------------------------------------------------------------------------


@dataclass
class Outcome:
    """One gate's decision: PROMOTE, HOLD or REFUSED (an input error), the enforced
    checks that failed and the reported ones that warned (names, per source folded)."""

    verdict: str
    failed: list[str] = field(default_factory=list)
    warned: list[str] = field(default_factory=list)
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "failed": self.failed,
            "warned": self.warned,
            "note": self.note,
        }

    def cell(self) -> str:
        if self.verdict == "REFUSED":
            note = self.note or ""
            return f"REFUSED ({note if len(note) <= 100 else note[:99] + '…'})"
        return self.verdict + (f": {', '.join(self.failed)}" if self.failed else "")


@dataclass
class Run:
    """One ensemble: a fault (or clean), a seed set, an epoch count; trained and judged."""

    fault: Fault
    seeds: tuple[int, ...]
    epochs: int
    corpus: Path | None = None
    run_dir: Path | None = None
    key: str | None = None
    code_root: Path | None = None
    skipped: str | None = None
    refused: str | None = None
    train_s: float | None = None
    gate_s: float | None = None
    cached: bool = False
    rmse: float | None = None
    rows_scored: int = 0
    harmful: bool | None = None
    harm: str = ""
    gates: dict[str, Outcome] = field(default_factory=dict)
    self_gates: dict[str, Outcome] = field(default_factory=dict)
    #: The pinned code's ensemble evidence and per-seed means (what the thresholds judge).
    evidence: dict[str, Any] | None = None

    @property
    def label(self) -> str:
        return f"{self.fault.spec} seeds {self.seeds[0]}-{self.seeds[-1]} epochs {self.epochs}"

    def to_json(self) -> dict[str, Any]:
        return {
            "fault": self.fault.spec,
            "kind": self.fault.kind,
            "description": self.fault.description,
            "seeds": list(self.seeds),
            "epochs": self.epochs,
            "corpus": None if self.corpus is None else str(self.corpus),
            "run_dir": None if self.run_dir is None else str(self.run_dir),
            "key": self.key,
            "skipped": self.skipped,
            "refused_by_trainer": self.refused,
            "train_s": self.train_s,
            "gate_s": self.gate_s,
            "cached": self.cached,
            "rmse_vs_clean_labels": self.rmse,
            "rows_scored": self.rows_scored,
            "harmful": self.harmful,
            "harm": self.harm,
            "gates": {p: o.to_json() for p, o in self.gates.items()},
            "own_code_gates": {p: o.to_json() for p, o in self.self_gates.items()},
            "evidence": self.evidence,
        }


def _env(pythonpath: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(pythonpath)
    env.pop("FRREG_DEBUG", None)
    return env


def _tail(text: str, n: int = 1) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(lines[-n:]) if lines else "(no output)"


def run_key(run: Run, clean_sha256: str, ctx: FaultContext, pkg_sha256: str) -> dict[str, Any]:
    """Everything a trained run depends on: its cache key is this dict's sha256."""
    fault = run.fault
    definition: Any = None
    if fault.kind == "code":
        definition = [list(p) for p in CODE_FAMILIES[fault.family].patches]
    elif fault.kind == "data":
        definition = {
            "source": ctx.source,
            "seed": ctx.seed,
            "manifest": DATA_FAMILIES[fault.family].manifest,
        }
    return {
        "bench": BENCH_VERSION,
        "corpus_sha256": clean_sha256,
        "fault": fault.spec,
        "definition": definition,
        "seeds": list(run.seeds),
        "epochs": run.epochs,
        "frreg": pkg_sha256,
    }


def train(run: Run, pinned_root: Path, python: str = sys.executable) -> None:
    """Train ``run`` with ``frreg-train`` (the patched copy's for a code fault) unless its
    run directory already holds a finished run of the same key. The run is finished
    when ``bench_run.json`` exists (written last, atomically)."""
    assert run.run_dir is not None
    assert run.corpus is not None
    assert run.key is not None
    marker = run.run_dir / "bench_run.json"
    if marker.is_file():
        doc = json.loads(marker.read_text(encoding="utf-8"))
        if doc.get("key") == run.key:
            run.cached, run.train_s, run.refused = True, doc.get("train_s"), doc.get("refused")
            return
    if run.run_dir.exists():
        shutil.rmtree(run.run_dir)  # an interrupted or stale run: start over
    run.run_dir.mkdir(parents=True)
    root = run.code_root or pinned_root
    flags = {
        "--seeds": ",".join(map(str, run.seeds)),
        "--corpus": str(run.corpus),
        "--out-dir": str(run.run_dir),
        "--epochs": str(run.epochs),
    }
    argv = [python, "-m", "frreg.cli.train", *(x for flag in flags.items() for x in flag)]
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=root, env=_env(root), capture_output=True, text=True)
    run.train_s = round(time.perf_counter() - t0, 2)
    if proc.returncode == 2:  # the trainer refused its input: that is the outcome
        line = _tail(proc.stderr).replace(str(run.corpus), run.corpus.name)
        run.refused = re.sub(r"^frreg-train: (error: )?", "", line)
    elif proc.returncode != 0:
        raise RuntimeError(
            f"training {run.label} failed (exit {proc.returncode}): {_tail(proc.stderr, 3)}"
        )
    doc = {
        "key": run.key,
        "argv": argv,
        "pythonpath": str(root),
        "train_s": run.train_s,
        "refused": run.refused,
    }
    tmp = marker.with_name(".bench_run.json.tmp")
    tmp.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    tmp.replace(marker)


# --------------------------------------------------------------------------
# Harm
# --------------------------------------------------------------------------


RowKey = tuple[str, str, float, int]


def _row_key(row: Mapping[str, Any]) -> RowKey:
    """A row's key from a corpus row or a predictions CSV row (cq as a float, so 22 and
    22.0 are one key)."""
    return (str(row["src"]), str(row["encoder"]), float(row["cq"]), int(row["frame_index"]))


def clean_labels(corpus: Path) -> dict[RowKey, float]:
    """The clean corpus's vmaf of every row, by row key."""
    return {_row_key(row): float(row["vmaf"]) for row in read_rows(corpus)}


def pooled_rmse(
    run_dir: Path, seeds: Sequence[int], labels: Mapping[RowKey, float]
) -> tuple[float, int]:
    """The ensemble mean's pooled held-out RMSE against the clean labels, and the rows
    scored (rows absent from the clean corpus, such as a duplicate's, are not)."""
    from frreg.schema import seed_predictions_name

    preds: dict[RowKey, list[float]] = {}
    for seed in seeds:
        with open(run_dir / seed_predictions_name(seed), encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                preds.setdefault(_row_key(row), []).append(float(row["pred"]))
    err = np.array([math.fsum(p) / len(p) - labels[k] for k, p in preds.items() if k in labels])
    if not err.size:
        raise RuntimeError(f"{run_dir}: no held-out row matches the clean corpus")
    return float(np.sqrt(np.mean(err**2))), len(err)


def judge_harm(runs: Sequence[Run], ctx: FaultContext) -> None:
    """Set each run's ``harmful``/``harm``: by kind (an invalid evaluation), else by its
    clean-label RMSE against the worst clean set's at the same epochs."""
    ref: dict[int, float] = {}
    for r in runs:
        if r.fault.kind == "clean" and r.rmse is not None:
            ref[r.epochs] = max(ref.get(r.epochs, 0.0), r.rmse)
    for r in runs:
        if r.fault.kind == "clean":
            r.harm = "clean"
            continue
        if r.skipped is not None:
            r.harmful, r.harm = None, "skipped"
            continue
        invalid = fault_invalid(r.fault, ctx)
        base = ref.get(r.epochs)
        ratio = None if r.rmse is None or not base else r.rmse / base
        measured = "" if ratio is None else f" ({ratio:.2f}x)"
        if invalid is not None:
            r.harmful, r.harm = True, f"harmful: {invalid}{measured}"
        elif r.rmse is None:
            r.harmful, r.harm = None, "unmeasured: nothing trained"
        elif base is None:
            r.harmful, r.harm = None, "unmeasured: no clean set at these epochs"
        else:
            r.harmful = r.rmse > HARM_RATIO * base and r.rmse - base > HARM_DELTA
            r.harm = f"{'harmful' if r.harmful else 'harmless'}{measured}"


# --------------------------------------------------------------------------
# Gating
# --------------------------------------------------------------------------


def _folded(names: Iterable[str]) -> list[str]:
    """Check names with seeds and sources folded: ``seed N mean PLCC x5``, ``evidence bias x2``."""
    from frreg.gate.criteria import CRITERIA

    per_source = sorted(
        (c.name for c in CRITERIA if c.scope == "per-source"), key=len, reverse=True
    )
    counts: Counter[str] = Counter()
    for name in names:
        name = re.sub(r"^seed \d+ ", "seed N ", name)
        name = next((p for p in per_source if name.startswith(p + "-")), name)
        counts[name] += 1
    return [n if k == 1 else f"{n} x{k}" for n, k in counts.items()]


@contextlib.contextmanager
def evidence_computed_once() -> Iterator[None]:
    """Within one run's profiles, compute the ensemble evidence once.

    :func:`frreg.gate.verdict.judge` decides one profile per call and recomputes the
    ensemble evidence (its SVR baseline is most of a judge's time) each time,
    though the evidence depends only on the corpus and the predictions. Until the
    library can decide several profiles from one evidence, this memoises
    ``ensemble_evidence`` as the verdict module calls it, keyed by the corpus
    digest, every seed's prediction bytes and every other argument: a call with
    other inputs computes afresh, and if the call moves, nothing is memoised
    (slower, never wrong).
    """
    import frreg.gate.verdict as verdict

    original = getattr(verdict, "ensemble_evidence", None)
    if original is None:
        yield
        return
    memo: dict[tuple[Any, ...], Any] = {}

    def once(corpus: Any, predictions: Mapping[int, Any], *args: Any, **kwargs: Any) -> Any:
        preds = tuple(
            (s, sha256_bytes(np.ascontiguousarray(p).tobytes()))
            for s, p in sorted(predictions.items())
        )
        key = (corpus.sha256, preds, repr(args), repr(sorted(kwargs.items())))
        if key not in memo:
            memo[key] = original(corpus, predictions, *args, **kwargs)
        return memo[key]

    verdict.ensemble_evidence = once
    try:
        yield
    finally:
        verdict.ensemble_evidence = original


def gate_pinned(run: Run, profiles: Sequence[str], audit_jobs: int) -> None:
    """Gate ``run`` with this checkout's code under every profile. The audit (retraining
    ``audit_jobs`` jobs, drawn by a seeded generator) runs once, with the first profile,
    and its check is added to the others: it does not depend on the profile."""
    if run.skipped is not None:
        return
    if run.refused is not None:  # nothing trained: no verdict can promote it
        for p in profiles:
            run.gates[p] = Outcome("REFUSED", note=f"frreg-train: {run.refused}")
        return
    assert run.run_dir is not None
    assert run.corpus is not None
    with evidence_computed_once():
        _judge_profiles(run, profiles, audit_jobs)


def _judge_profiles(run: Run, profiles: Sequence[str], audit_jobs: int) -> None:
    from frreg.errors import FrregError
    from frreg.gate.checks import AUDIT_CHECK
    from frreg.gate.criteria import Thresholds
    from frreg.gate.verdict import judge

    assert run.run_dir is not None
    audit: list[Any] | None = None  # the audit's checks, once it has run
    for profile in profiles:
        thresholds = Thresholds(seeds=run.seeds, strict=PROFILES[profile])
        rng = random.Random(sha256_json([run.fault.spec, list(run.seeds), run.epochs]))
        try:
            decision = judge(
                run.run_dir,
                thresholds,
                corpus=run.corpus,
                audit_jobs=audit_jobs if audit is None else 0,
                rng=rng,
                extra_checks=audit or (),
                strong_baseline=False,  # the SVR is reported, never judged
            )
        except FrregError as err:
            run.gates[profile] = Outcome("REFUSED", note=str(err).splitlines()[0])
            continue
        if audit is None:
            audit = [c for c in decision.report.checks if c.name == AUDIT_CHECK]
        if run.evidence is None and decision.ensemble is not None:
            run.evidence = {
                **decision.ensemble.to_json(),
                "seed_means": {str(k): v for k, v in decision.report.seed_means.items()},
            }
        report = decision.report
        promote = report.passed and decision.recomputed
        run.gates[profile] = Outcome(
            "PROMOTE" if promote else "HOLD",
            _folded(c.name for c in report.failures()),
            _folded(c.name for c in report.warnings()),
            None if decision.recomputed else f"not recomputed: {decision.unverified}",
        )


def gate_own_code(
    run: Run, profiles: Sequence[str], audit_jobs: int, python: str = sys.executable
) -> None:
    """Gate a code fault's run with the faulty copy's own ``frreg-gate`` (the self-audit)."""
    if run.code_root is None or run.refused is not None or run.skipped is not None:
        return
    assert run.run_dir is not None
    assert run.corpus is not None
    for profile in profiles:
        flags = {"--corpus": str(run.corpus), "--seeds": ",".join(map(str, run.seeds))}
        flags["--audit"] = str(audit_jobs)
        argv = [python, "-m", "frreg.cli.gate", str(run.run_dir), "--json"]
        argv += [*(x for flag in flags.items() for x in flag)]
        argv += ["--strict"] if PROFILES[profile] else []
        proc = subprocess.run(
            argv, cwd=run.code_root, env=_env(run.code_root), capture_output=True, text=True
        )
        if proc.returncode not in (0, 1):
            verdict = "REFUSED" if proc.returncode == 2 else f"ERROR (exit {proc.returncode})"
            run.self_gates[profile] = Outcome(verdict, note=_tail(proc.stderr))
            continue
        doc = json.loads(proc.stdout)
        checks = doc.get("checks", [])
        run.self_gates[profile] = Outcome(
            "PROMOTE" if doc.get("passed") and doc.get("recomputed") else "HOLD",
            _folded(c["name"] for c in checks if c.get("status") == "FAIL"),
            _folded(c["name"] for c in checks if c.get("status") == "WARN"),
        )


# --------------------------------------------------------------------------
# Summary and output
# --------------------------------------------------------------------------


def summarize(runs: Sequence[Run], profiles: Sequence[str]) -> list[dict[str, Any]]:
    """Per profile and epoch count: catch rate over harmful runs, false-HOLD rate over
    clean ones (a REFUSED counts as not promoted), with counts and what slipped through."""
    out = []
    for profile in profiles:
        for epochs in sorted({r.epochs for r in runs}):
            at = [r for r in runs if r.epochs == epochs and profile in r.gates]
            harmful = [r for r in at if r.harmful]
            clean = [r for r in at if r.fault.kind == "clean"]
            harmless = [r for r in at if r.harmful is False]
            caught = [r for r in harmful if r.gates[profile].verdict != "PROMOTE"]
            held = [r for r in clean if r.gates[profile].verdict != "PROMOTE"]
            out.append(
                {
                    "profile": profile,
                    "epochs": epochs,
                    "harmful": len(harmful),
                    "caught": len(caught),
                    "catch_rate": len(caught) / len(harmful) if harmful else None,
                    "missed": [
                        f"{r.fault.spec} (seeds {r.seeds[0]}-{r.seeds[-1]})"
                        for r in harmful
                        if r not in caught
                    ],
                    "clean": len(clean),
                    "false_hold": len(held),
                    "false_hold_rate": len(held) / len(clean) if clean else None,
                    "harmless": len(harmless),
                    "harmless_held": sum(r.gates[profile].verdict != "PROMOTE" for r in harmless),
                    "unmeasured": sum(r.harmful is None and r.fault.kind != "clean" for r in at),
                }
            )
    return out


def _rate(n: int, d: int) -> str:
    return "—" if d == 0 else f"{n}/{d} ({100 * n / d:.0f} %)"


def markdown(
    runs: Sequence[Run], summary: Sequence[Mapping[str, Any]], profiles: Sequence[str], own: bool
) -> str:
    own_cols = own and any(r.self_gates for r in runs)
    head = [
        "fault",
        "kind",
        "seeds",
        "epochs",
        "RMSE (clean labels)",
        "harm",
        *(f"{p} (checks that HOLD)" for p in profiles),
        *((f"own code: {p}" for p in profiles) if own_cols else ()),
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in runs:
        cells = [
            f"`{r.fault.spec}`",
            r.fault.kind,
            f"{r.seeds[0]}-{r.seeds[-1]}",
            str(r.epochs),
            "—" if r.rmse is None else f"{r.rmse:.2f}",
            r.harm,
            *(r.gates[p].cell() if p in r.gates else "—" for p in profiles),
        ]
        if own_cols:
            cells += [r.self_gates[p].cell() if p in r.self_gates else "" for p in profiles]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    lines += [
        "",
        "| profile | epochs | harmful faults caught (HOLD) | clean sets held (false HOLD) "
        "| harmless faults held | missed |",
        "|---|---|---|---|---|---|",
    ]
    for s in summary:
        lines.append(
            f"| {s['profile']} | {s['epochs']} | {_rate(s['caught'], s['harmful'])} "
            f"| {_rate(s['false_hold'], s['clean'])} | {s['harmless_held']}/{s['harmless']} "
            f"| {', '.join(s['missed']) or '—'} |"
        )
    if own_cols:
        lines.append("")
        for p in profiles:
            code = [r for r in runs if r.self_gates.get(p) and r.harmful]
            promoted = [r for r in code if r.self_gates[p].verdict == "PROMOTE"]
            lines.append(
                f"- own code, {p}: {len(promoted)} of {len(code)} harmful code-fault runs PROMOTE "
                "when the faulty copy gates itself"
            )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------
# The corpus
# --------------------------------------------------------------------------


def produce_builtin(out: Path, size: str, frames: int | None, pinned_root: Path) -> Path:
    """Produce (or resume) the built-in corpus with every built-in source available."""
    from frreg.producer.sources.builtins import BUILTIN_SOURCE_IDS, available_builtin_ids

    ids = available_builtin_ids()
    missing = [i for i in BUILTIN_SOURCE_IDS if i not in ids]
    if missing:
        print(
            f"{PROG}: warning: built-ins not available here (the natural extra?): "
            f"{', '.join(missing)}",
            flush=True,
        )
    from frreg.corpus.sidecar import incomplete_marker

    path = out / "corpus" / f"builtin{len(ids)}-{size}-f{frames or 'default'}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file() and not incomplete_marker(path).exists():
        return path
    grid = ["--encoder", *DEFAULT_ENCODERS, "--cq", *map(str, DEFAULT_CQS)]
    grid += ["--builtin-size", size, *(["--frames", str(frames)] if frames else [])]
    argv = [sys.executable, "-m", "frreg.cli.corpus", "--builtin", *ids, *grid]
    argv += ["--out", str(path), "--progress", "plain"]
    print(f"{PROG}: producing the corpus: {' '.join(argv[1:])}", flush=True)
    proc = subprocess.run(argv, cwd=pinned_root, env=_env(pinned_root))
    if proc.returncode != 0:
        raise RuntimeError(f"frreg-corpus failed (exit {proc.returncode}); see its output above")
    return path


# --------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------


def _size(text: str) -> str:
    if not re.fullmatch(r"[1-9][0-9]*x[1-9][0-9]*", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not WxH, e.g. 320x180")
    return text


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


def _nonnegative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a non-negative integer")
    return value


def _profiles(text: str) -> list[str]:
    names = [p.strip() for p in text.split(",") if p.strip()]
    bad = [p for p in names if p not in PROFILES]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"{text!r}: profiles are a comma-separated subset of {', '.join(PROFILES)}"
        )
    return list(dict.fromkeys(names))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gate_power.py",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="Exit status: 0 ran, 1 could not run, 2 bad options.",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("runs/gate_power"),
        metavar="DIR",
        help="where corpora, trained runs and the table go (default: runs/gate_power)",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--corpus",
        type=Path,
        metavar="PATH",
        help="the clean corpus (default: produce the built-in one)",
    )
    p.add_argument(
        "--builtin-size",
        type=_size,
        default="320x180",
        metavar="WxH",
        help="built-in corpus size (default: 320x180)",
    )
    p.add_argument(
        "--frames",
        type=_positive,
        default=None,
        metavar="N",
        help="built-in frames per source (default: the producer's, 3 s)",
    )
    p.add_argument(
        "--epochs",
        type=_positive,
        nargs="+",
        default=list(DEFAULT_EPOCHS),
        metavar="N",
        help=f"epoch counts, each a full table (default: {' '.join(map(str, DEFAULT_EPOCHS))})",
    )
    p.add_argument(
        "--clean-sets",
        type=_nonnegative,
        default=4,
        metavar="N",
        help="disjoint 5-seed clean ensembles (default: 4)",
    )
    p.add_argument(
        "--fault-sets",
        type=_positive,
        default=1,
        metavar="N",
        help="5-seed sets each fault is trained with (default: 1)",
    )
    p.add_argument(
        "--first-set",
        type=_nonnegative,
        default=0,
        metavar="K",
        help="number of the first seed set: seeds 5K..5K+4 (default: 0); a held-out "
        "check uses sets the thresholds were not tuned on",
    )
    p.add_argument(
        "--faults",
        default="all",
        metavar="SPEC[,SPEC...]",
        help="faults, FAMILY[:ARG] each, or a set: all, held-out (default: all; --list-faults)",
    )
    p.add_argument(
        "--fault-source",
        default=None,
        metavar="ID",
        help="the source one-source faults corrupt (default: the first sorted id)",
    )
    p.add_argument(
        "--profiles",
        type=_profiles,
        default=list(PROFILES),
        metavar="P[,P...]",
        help=f"gate profiles (default: {','.join(PROFILES)})",
    )
    p.add_argument(
        "--audit",
        type=_nonnegative,
        default=1,
        metavar="K",
        help="(seed, fold) jobs each gate retrains, as frreg-validate's --audit (default: 1)",
    )
    p.add_argument(
        "--trained-by",
        metavar="SHA256",
        help="reuse the runs under --out that the frreg package with this digest trained "
        "(a previous table's frreg_sha256) and gate them with this checkout: after a change "
        "to the gate alone, nothing retrains (default: this checkout's digest)",
    )
    p.add_argument(
        "--no-own-code",
        dest="own_code",
        action="store_false",
        help="skip gating code faults with the faulty copy's own frreg-gate",
    )
    p.add_argument(
        "--jobs",
        type=_positive,
        default=1,
        metavar="N",
        help="trainings run side by side (default: 1; each uses every core)",
    )
    p.add_argument("--list-faults", action="store_true", help="list the fault families and exit")
    return p


def list_faults() -> str:
    ctx = FaultContext("<source>", True)
    lines = []
    for name in [*DATA_FAMILIES, *CODE_FAMILIES]:
        fault = parse_fault(name, ctx)
        lines.append(f"{fault.spec:34} {fault.kind:5} {fault.description}")
    for name, specs in FAULT_SETS.items():
        lines.append(f"--faults {name}: {','.join(specs)}")
    return "\n".join(lines)


def seed_set(k: int) -> tuple[int, ...]:
    return tuple(range(SEED_SET_SIZE * k, SEED_SET_SIZE * (k + 1)))


def plan(
    faults: Sequence[Fault], epochs: Sequence[int], clean_sets: int, fault_sets: int, first: int
) -> list[Run]:
    runs = []
    for e in epochs:
        runs += [Run(CLEAN, seed_set(first + k), e) for k in range(clean_sets)]
        for fault in faults:
            runs += [Run(fault, seed_set(first + k), e) for k in range(fault_sets)]
    return runs


def run_benchmark(
    args: argparse.Namespace, command: Sequence[str], log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Train, gate, judge harm and write the table; returns the JSON document.
    ``command`` is the command line, as recorded in the JSON."""
    started = time.perf_counter()
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    start_machine = machine_lines()
    for line in start_machine:
        log(f"{PROG}: {line}")
    pinned_root = package_root()
    pkg = pinned_root / "frreg"
    gated_by = package_digest(pkg)
    # The digest in every run's key: the package that trained it.
    pkg_sha256 = args.trained_by or gated_by

    corpus = (
        args.corpus.resolve()
        if args.corpus is not None
        else produce_builtin(out, args.builtin_size, args.frames, pinned_root)
    )
    if not corpus.is_file():
        raise RuntimeError(f"corpus {corpus} not found")
    from frreg.corpus import load_corpus

    loaded = load_corpus(corpus)  # the clean corpus must itself be valid
    clean_sha256, sources = loaded.sha256, loaded.sources
    source = args.fault_source or sources[0]
    if source not in sources:
        raise RuntimeError(f"--fault-source {source!r} is not a source of {corpus}")
    ctx = FaultContext(source, manifest_of(corpus).is_file())
    faults = [parse_fault(s, ctx) for s in fault_specs(args.faults)]
    faults = list({f.spec: f for f in faults}.values())
    log(
        f"{PROG}: corpus {corpus}: {loaded.n_rows} rows, {len(sources)} sources "
        f"({', '.join(sources)}), sha256 {clean_sha256[:12]}…, "
        f"{'with' if ctx.has_manifest else 'without'} a producer manifest; "
        f"one-source faults corrupt {source}"
    )
    del loaded

    runs = plan(faults, args.epochs, args.clean_sets, args.fault_sets, args.first_set)
    for r in runs:
        family = DATA_FAMILIES.get(r.fault.family)
        if family is not None and family.needs_manifest and not ctx.has_manifest:
            r.skipped = "the corpus has no producer manifest"
            continue
        if r.fault.kind == "data":
            r.corpus = make_fault_corpus(r.fault, corpus, clean_sha256, ctx, out)
        else:
            r.corpus = corpus
        if r.fault.kind == "code":
            r.code_root = make_code_copy(r.fault, pkg, pkg_sha256, out)
        key = run_key(r, clean_sha256, ctx, pkg_sha256)
        r.key = sha256_json(key)
        r.run_dir = (
            out
            / "runs"
            / (f"{r.fault.safe_name}-s{r.seeds[0]}-{r.seeds[-1]}-e{r.epochs}-{r.key[:10]}")
        )

    todo = [r for r in runs if r.skipped is None]
    log(
        f"{PROG}: {len(runs)} ensembles ({len(todo)} to train or reuse), "
        f"{len(args.profiles)} profile(s), audit {args.audit}"
    )
    done = 0
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(train, r, pinned_root): r for r in todo}
        for future in as_completed(futures):
            r = futures[future]
            future.result()
            done += 1
            how = ("cached" if r.cached else f"trained in {r.train_s:.1f} s") + (
                f"; REFUSED by frreg-train: {r.refused}" if r.refused else ""
            )
            log(f"{PROG}: [{done}/{len(todo)}] {r.label}: {how}")

    labels = clean_labels(corpus)
    for r in todo:
        if r.refused is None:
            assert r.run_dir is not None
            r.rmse, r.rows_scored = pooled_rmse(r.run_dir, r.seeds, labels)
    judge_harm(runs, ctx)
    for i, r in enumerate(runs, 1):
        t0 = time.perf_counter()
        gate_pinned(r, args.profiles, args.audit)
        if args.own_code:
            gate_own_code(r, args.profiles, args.audit)
        r.gate_s = round(time.perf_counter() - t0, 2)
        verdicts = ", ".join(f"{p} {o.verdict}" for p, o in r.gates.items())
        own = ", ".join(f"{p} {o.verdict}" for p, o in r.self_gates.items())
        log(
            f"{PROG}: gate [{i}/{len(runs)}] {r.label}: {r.harm}; {verdicts}"
            + (f"; own code: {own}" if own else "")
            + f" ({r.gate_s:.1f} s)"
        )

    summary = summarize(runs, args.profiles)
    table = markdown(runs, summary, args.profiles, args.own_code)
    end_load = load_line()
    wall = time.perf_counter() - started
    doc = {
        "command": list(command),
        "machine": {"start": start_machine, "end_load": end_load},
        "wall_s": round(wall, 1),
        "corpus": {
            "path": str(corpus),
            "sha256": clean_sha256,
            "sources": list(sources),
            "producer_manifest": ctx.has_manifest,
            "fault_source": source,
        },
        "harm_rule": {
            "ratio": HARM_RATIO,
            "delta_vmaf": HARM_DELTA,
            "reference": "the worst clean set's pooled RMSE at the same epochs",
        },
        "profiles": list(args.profiles),
        "audit_jobs": args.audit,
        "frreg_sha256": pkg_sha256,
        "gated_by_frreg_sha256": gated_by,
        "runs": [r.to_json() for r in runs],
        "summary": summary,
    }
    (out / "gate_power.json").write_text(json.dumps(doc, indent=1), encoding="utf-8")
    header = [
        f"Command: `{' '.join(command)}`",
        f"Corpus: {corpus.name} ({len(sources)} sources, sha256 {clean_sha256[:12]}…); "
        f"one-source faults on {source}; audit {args.audit}.",
        f"Trained by frreg {pkg_sha256[:12]}…, gated by frreg {gated_by[:12]}…"
        + (" (the same code)." if pkg_sha256 == gated_by else " (reused runs, --trained-by)."),
        *start_machine,
        f"at the end: {end_load}; wall {wall:.0f} s",
    ]
    text = "\n".join(f"- {line}" for line in header) + "\n\n" + table
    (out / "gate_power.md").write_text(text, encoding="utf-8")
    log("")
    log(table)
    log(
        f"{PROG}: at the end: {end_load}; wall {wall:.0f} s; "
        f"written {out / 'gate_power.md'} and {out / 'gate_power.json'}"
    )
    return doc


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list_faults:
        print(list_faults())
        return 0
    if args.corpus is not None and (args.frames is not None):
        parser.error("--frames applies to the built-in corpus, not --corpus")
    try:
        ctx = FaultContext("<source>", True)
        for spec in fault_specs(args.faults):
            parse_fault(spec, ctx)
    except ValueError as exc:
        parser.error(f"--faults: {exc}")
    try:
        run_benchmark(args, ["benchmarks/gate_power.py", *(sys.argv[1:] if argv is None else argv)])
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a benchmark that cannot run says why, in one line
        print(f"{PROG}: cannot run: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
