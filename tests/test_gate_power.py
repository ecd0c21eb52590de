"""The gate-power benchmark (benchmarks/gate_power.py), small: its faults are real and
its table complete, and the strict profile separates clean from harmful.

The benchmark runs once per module on a tiny synthetic corpus with a handful of
faults: one data label fault, one duplicated source, one code fault, one
harmless fault, and a clean set. The fault builders and code patches are
checked without training.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Tiny, but the ADR-0303 gate PROMOTEs its clean set: 4 sources x 2 encoders x 4 cq x
#: 60 frames (1,920 rows), 40 epochs.
CORPUS = {"n_sources": 4, "frames": 60}
EPOCHS = 40
FAULTS = (
    "label-scale-one:0.01",  # harmful: one source's labels at VMAF/100
    "duplicate-exact",  # harmful by kind: a held-out source leaks into its own training
    "code-target-rescaled",  # harmful: trained on vmaf/100, never rescaled back
    "feature-scale-all:vif_scale0*2",  # harmless: the in-fold scaler undoes it
)


def _load() -> ModuleType:
    name = "gate_power"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / "gate_power.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gp() -> ModuleType:
    return _load()


@pytest.fixture(scope="module")
def clean_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from frreg.synthetic import synthetic_rows, write_corpus

    return write_corpus(
        tmp_path_factory.mktemp("gp-corpus") / "corpus.jsonl", synthetic_rows(**CORPUS)
    )


@pytest.fixture(scope="module")
def result(gp: ModuleType, build_once) -> dict[str, Any]:
    """The benchmark's table (and its markdown), run once per run, whichever xdist worker
    asks first: it trains every set (minutes)."""
    from frreg.synthetic import synthetic_rows, write_corpus

    def build(root: Path) -> None:
        corpus = write_corpus(root / "corpus" / "corpus.jsonl", synthetic_rows(**CORPUS))
        argv = ["--out", str(root / "out"), "--corpus", str(corpus), "--epochs", str(EPOCHS)]
        argv += ["--clean-sets", "1", "--faults", ",".join(FAULTS)]
        assert gp.main(argv) == 0

    out = build_once("gate-power", build) / "out"
    doc: dict[str, Any] = json.loads((out / "gate_power.json").read_text(encoding="utf-8"))
    doc["markdown"] = (out / "gate_power.md").read_text(encoding="utf-8")
    return doc


def _row(result: dict[str, Any], spec: str) -> dict[str, Any]:
    (row,) = [r for r in result["runs"] if r["fault"] == spec]
    return row


# --------------------------------------------------------------------------
# Without training
# --------------------------------------------------------------------------


def test_every_code_fault_patches_this_checkout(gp: ModuleType, tmp_path: Path) -> None:
    """Each code fault's text is found exactly once in this checkout's package, so a
    refactor cannot silently turn a fault into a no-op."""
    pkg = gp.package_root() / "frreg"
    ctx = gp.FaultContext("synth00", False)
    for name in gp.CODE_FAMILIES:
        fault = gp.parse_fault(name, ctx)
        root = gp.make_code_copy(fault, pkg, "0" * 64, tmp_path)
        for rel, old, new in gp.CODE_FAMILIES[name].patches:
            text = (root / "frreg" / rel).read_text(encoding="utf-8")
            assert old not in text or old in new.replace("{arg}", str(fault.arg)), name
            assert new.replace("{arg}", str(fault.arg)) in text, name
        assert list((root / "frreg" / "training" / "batched").glob("_native*")), name


def test_a_patch_that_finds_nothing_fails(gp: ModuleType) -> None:
    with pytest.raises(RuntimeError, match="expected exactly one"):
        gp.patched_text("a = 1\n", "b = 2", "b = 3", "x.py")
    with pytest.raises(RuntimeError, match="found 2"):
        gp.patched_text("a\na\n", "a", "b", "x.py")


def test_every_data_fault_changes_the_rows_and_loads(
    gp: ModuleType, clean_corpus: Path, tmp_path: Path
) -> None:
    from frreg.corpus import load_corpus

    clean = load_corpus(clean_corpus)
    ctx = gp.FaultContext("synth01", False)
    clean_bytes = clean_corpus.read_bytes()
    for name in gp.DATA_FAMILIES:
        fault = gp.parse_fault(name, ctx)
        path = gp.make_fault_corpus(fault, clean_corpus, clean.sha256, ctx, tmp_path)
        assert path.read_bytes() != clean_bytes, name
        loaded = load_corpus(path)  # without a manifest every copy is a valid corpus
        if fault.family.startswith("duplicate"):
            assert set(loaded.sources) - set(clean.sources) == {
                gp.duplicate_id(ctx, "near" in name)
            }
        else:
            assert loaded.sources == clean.sources, name


def test_manifest_modes(gp: ModuleType, clean_corpus: Path, tmp_path: Path) -> None:
    """Beside a producer manifest: a content fault's copy gets one rewritten as produced
    (it loads), cells missing gets the manifest unchanged (the loader refuses it), and
    the resealed variant one whose digest alone was re-pointed (it loads)."""
    from frreg.corpus import load_corpus
    from frreg.errors import CorpusError

    corpus = tmp_path / "clean" / "corpus.jsonl"
    corpus.parent.mkdir()
    corpus.write_bytes(clean_corpus.read_bytes())
    clean = load_corpus(corpus)
    sha, rows = clean.sha256, clean.n_rows
    manifest = {"complete": True, "corpus": {"path": corpus.name, "rows": rows, "sha256": sha}}
    gp.manifest_of(corpus).write_text(json.dumps(manifest), encoding="utf-8")
    ctx = gp.FaultContext("synth00", True)
    built = {
        spec: gp.make_fault_corpus(gp.parse_fault(spec, ctx), corpus, sha, ctx, tmp_path)
        for spec in ("shuffle", "cells-missing", "cells-missing-resealed")
    }
    assert load_corpus(built["shuffle"]).n_rows == rows
    with pytest.raises(CorpusError, match="contents differ"):
        load_corpus(built["cells-missing"])
    resealed = json.loads(gp.manifest_of(built["cells-missing-resealed"]).read_text())
    assert resealed["corpus"]["rows"] == rows  # the rows it claims, not the rows it has
    assert load_corpus(built["cells-missing-resealed"]).n_rows < rows


def test_bad_fault_is_a_usage_error(gp: ModuleType) -> None:
    with pytest.raises(SystemExit) as exc:
        gp.main(["--faults", "no-such-fault"])
    assert exc.value.code == 2
    with pytest.raises(ValueError, match="not a canonical feature"):
        gp.parse_fault("shuffle:vmaf", gp.FaultContext("s", False))


# --------------------------------------------------------------------------
# The small benchmark
# --------------------------------------------------------------------------


@pytest.mark.slow
def test_table_has_every_row(result: dict[str, Any]) -> None:
    specs = [r["fault"] for r in result["runs"]]
    assert specs == ["clean", *FAULTS]
    for spec in specs:
        assert f"`{spec}`" in result["markdown"]
    for row in result["runs"]:
        assert set(row["gates"]) == {"default", "strict"}
    assert {(s["profile"], s["epochs"]) for s in result["summary"]} == {
        ("default", EPOCHS),
        ("strict", EPOCHS),
    }
    assert set(_row(result, "code-target-rescaled")["own_code_gates"]) == {"default", "strict"}


@pytest.mark.slow
def test_harm_is_measured(result: dict[str, Any]) -> None:
    clean = _row(result, "clean")
    assert clean["rmse_vs_clean_labels"] > 0
    label = _row(result, "label-scale-one:0.01")
    assert label["harmful"] is True
    assert label["rmse_vs_clean_labels"] > 1.25 * clean["rmse_vs_clean_labels"]
    assert _row(result, "code-target-rescaled")["harmful"] is True
    duplicate = _row(result, "duplicate-exact")
    assert duplicate["harmful"] is True
    assert "leaked LOSO" in duplicate["harm"]
    harmless = _row(result, "feature-scale-all:vif_scale0*2")
    assert harmless["harmful"] is False
    assert harmless["harm"].startswith("harmless")
    for s in result["summary"]:  # the harmless fault is counted in neither rate
        assert (s["harmful"], s["harmless"], s["clean"]) == (3, 1, 1)


@pytest.mark.slow
def test_strict_holds_every_harmful_fault_and_promotes_the_clean_set(
    result: dict[str, Any],
) -> None:
    verdicts = {r["fault"]: r["gates"]["strict"]["verdict"] for r in result["runs"]}
    harmful = [r["fault"] for r in result["runs"] if r["harmful"]]
    assert harmful
    assert {f: verdicts[f] for f in harmful} == dict.fromkeys(harmful, "HOLD")
    clean = _row(result, "clean")["gates"]["strict"]
    assert verdicts["clean"] == "PROMOTE", clean
