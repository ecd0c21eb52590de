"""Data checks that make the LOSO evidence valid (the gate's ``data`` stage).

LOSO trusts source ids: the same content under two ids, or a source split into
tiny ids, turns a HOLD into a PROMOTE without any better model. These tests
make such corpora for real (synthetic rows, a real LOSO run, a real producer
run) and show that the verdict HOLDs under every profile with one line naming
both ids, that a producer manifest that disagrees with its rows fails, that a
missing manifest is a warning in the verdict, that the producer refuses one
file under two ids, and that a clean corpus is left alone.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gate_runs import LENIENT, run_session

from conftest import LENIENT_GATE
from frreg.cli import corpus as corpus_cli
from frreg.cli import gate as gate_cli
from frreg.cli import validate as validate_cli
from frreg.corpus import load_corpus, manifest_path
from frreg.corpus.validity import assess, content_shares
from frreg.errors import EvidenceWarning
from frreg.gate.checks import data_checks
from frreg.gate.criteria import (
    LABEL_ORACLE,
    PRODUCER_MANIFEST,
    PROFILE_ADR,
    SAME_CONTENT,
    SOURCE_ROWS,
    SOURCE_SPAN,
    STAGE_DATA,
    Check,
    Thresholds,
    by_stage,
    threshold_criteria,
)
from frreg.schema import (
    CANONICAL_6,
    DATA_NEAR_SD,
    DATA_SOURCE_ROWS_MIN,
    EXIT_FAIL,
    EXIT_OK,
    EXIT_USAGE,
    HOLD_FILE,
    PROMOTE_FILE,
)
from frreg.synthetic import synthetic_rows, write_corpus

pytest_plugins = ["pytester"]

Row = dict[str, Any]


def base_rows() -> list[Row]:
    """The rows of the shared ``trained_loso`` fixture: 4 sources x libx264 x 4 cq x 8 frames."""
    return synthetic_rows(n_sources=4, encoders=("libx264",), cqs=(22, 30, 38, 46), frames=8)


def copied(
    rows: list[Row], src: str = "synth01", as_: str = "synth01_copy", noise: float = 0.0
) -> list[Row]:
    """``rows`` plus ``src``'s rows under id ``as_``, each feature moved by Gaussian noise
    of ``noise`` times that feature's standard deviation over ``rows``."""
    sd = {c: float(np.std([r[c] for r in rows])) for c in CANONICAL_6}
    rng = np.random.default_rng(7)
    extra = []
    for r in rows:
        if r["src"] == src:
            moved = {
                c: round(float(r[c] + noise * sd[c] * rng.standard_normal()), 6)
                for c in CANONICAL_6
            }
            extra.append({**r, **moved, "src": as_})
    return rows + extra


def checks_of(rows: list[Row], path: Path, **kwargs: Any) -> dict[str, list[Check]]:
    """The data checks of ``rows`` written to ``path`` (and a manifest when asked), by name."""
    write_corpus(path, rows)
    if kwargs:
        write_manifest(path, rows, **kwargs)
    found: dict[str, list[Check]] = {}
    for check in data_checks(load_corpus(path), Thresholds()):
        found.setdefault(check.name, []).append(check)
    assert set(found) == {c.name for c in by_stage(STAGE_DATA)}
    return found


def deciding_failures(checks: dict[str, list[Check]]) -> list[str]:
    return [c.message for cs in checks.values() for c in cs if not c.passed and c.enforced]


def write_manifest(
    corpus: Path,
    rows: list[Row],
    *,
    cells: list[Row] | None = None,
    digests: dict[str, str] | None = None,
) -> Path:
    """``corpus.manifest.json`` in the producer's layout (the fields a reader checks): every
    (src, encoder, cq) of ``rows`` a done cell of its row count, unless ``cells`` is given."""
    if cells is None:
        counts: dict[tuple[str, str, int], int] = {}
        for r in rows:
            key = (r["src"], r["encoder"], r["cq"])
            counts[key] = counts.get(key, 0) + 1
        cells = [
            {"src": s, "encoder": e, "cq": q, "preset": "medium", "frames": n, "status": "done"}
            for (s, e, q), n in sorted(counts.items())
        ]
    ids = sorted({r["src"] for r in rows} | {c["src"] for c in cells})
    digests = digests or {}
    data = corpus.read_bytes()
    doc = {
        "producer": {"name": "frreg-corpus", "version": 2},
        "sources": [
            {"id": s, "sha256": digests.get(s, hashlib.sha256(s.encode()).hexdigest())} for s in ids
        ],
        "cells": cells,
        "missing": [],
        "complete": True,
        "allow_missing": False,
        "corpus": {
            "path": corpus.name,
            "rows": data.count(b"\n"),
            "sha256": hashlib.sha256(data).hexdigest(),
        },
    }
    path = manifest_path(corpus)
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


# --------------------------------------------------------------------------
# The same content under two ids
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def copied_loso(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A real LOSO run (5 seeds x 5 folds, 30 epochs) on a corpus where synth01 is also
    present as synth01_copy: ``(corpus, loso_dir)``."""
    from frreg.training.loso import run_loso
    from frreg.training.settings import TrainSettings

    root = tmp_path_factory.mktemp("copied-loso")
    corpus = write_corpus(root / "corpus.jsonl", copied(base_rows()))
    run_loso(load_corpus(corpus), (0, 1, 2, 3, 4), TrainSettings(epochs=30), root / "loso")
    return corpus, root / "loso"


THE_LINE = (
    "FAIL  data same-content: sources 'synth01' and 'synth01_copy' hold the same content: "
    "32 of the 32 rows of 'synth01' (100%) match a row of 'synth01_copy' "
    "(32 identical six-feature vectors); LOSO scores each on a model that trained on the other"
)


@pytest.mark.parametrize("profile", [[], ["--strict"]], ids=["adr-0303", "strict"])
def test_a_source_copied_under_a_second_id_holds_with_one_line_naming_both(
    copied_loso, profile, capsys
):
    _, loso = copied_loso
    code = validate_cli.main([str(loso), *LENIENT_GATE, "--audit", "0", *profile])
    assert code == EXIT_FAIL
    out = capsys.readouterr().out.splitlines()
    failing = [line for line in out if line.startswith("FAIL")]
    naming = [line for line in failing if "'synth01'" in line and "'synth01_copy'" in line]
    assert naming == [THE_LINE]
    verdict = json.loads((loso / HOLD_FILE).read_text())
    assert not (loso / PROMOTE_FILE).exists()
    assert verdict["verdict"] == "HOLD"
    assert THE_LINE.removeprefix("FAIL  ") in verdict["recommendation"]
    if not profile:
        # Under ADR-0303's default nothing else decides against this run: the data
        # check alone turns what would be a PROMOTE into a HOLD.
        failed = {c["name"] for c in verdict["gate"]["checks"] if c["status"] == "FAIL"}
        assert failed == {SAME_CONTENT.name}


def test_the_library_judges_the_copy_the_same_way(copied_loso):
    from frreg.gate.verdict import judge

    _, loso = copied_loso
    lenient = {
        key: c.most_permissive
        for key, c in threshold_criteria()
        if PROFILE_ADR in c.decides_under and c.default is not None
    }
    decision = judge(loso, Thresholds(values=lenient), audit_jobs=0)
    assert not decision.report.passed
    assert [c.name for c in decision.report.failures()] == [SAME_CONTENT.name]
    assert decision.loaded is not None
    (pair,) = assess(decision.loaded).shared
    assert (pair.of, pair.other, pair.rows, pair.n, pair.exact) == (
        "synth01",
        "synth01_copy",
        32,
        32,
        32,
    )


def test_the_forks_seed_files_on_a_copied_corpus_hold_even_when_unverified_is_accepted(
    copied_loso, tmp_path, capsys
):
    from test_fork_artifacts import fork_seed_doc, write_fork_dir

    corpus, _ = copied_loso
    loaded = load_corpus(corpus)
    sizes = {s: int((loaded.groups == s).sum()) for s in loaded.sources}
    plccs = dict.fromkeys(loaded.sources, 0.97)
    docs = {s: fork_seed_doc(s, plccs, corpus=str(corpus), sizes=sizes) for s in range(5)}
    loso = write_fork_dir(tmp_path / "fork", docs)
    assert gate_cli.main([str(loso)]) == EXIT_FAIL
    assert validate_cli.main([str(loso), "--accept-unverified"]) == EXIT_FAIL
    assert THE_LINE in capsys.readouterr().out.splitlines()
    assert (loso / HOLD_FILE).exists()


@pytest.mark.parametrize(
    ("noise", "same"),
    [(0.0, True), (0.03, True), (DATA_NEAR_SD / 4, True), (3.0, False)],
    ids=["exact", "noise-0.03sd", "noise-quarter-tolerance", "noise-3sd"],
)
def test_a_near_copy_is_the_same_content_and_a_far_one_is_not(tmp_path, noise, same):
    checks = checks_of(copied(base_rows(), noise=noise), tmp_path / "c.jsonl")
    [check] = checks[SAME_CONTENT.name]
    assert check.passed is not same
    assert check.enforced  # under the default profile too
    if same:
        assert check.message.startswith(
            f"{SAME_CONTENT.name}: sources 'synth01' and 'synth01_copy' hold the same content: "
        )
        exact = 32 if noise == 0 else 0
        assert f"({exact} identical six-feature vectors)" in check.message
        assert check.observed is not None
        assert check.observed >= 0.9
    else:
        assert "no two of the 5 sources share content" in check.message


def test_a_copy_relabelled_to_other_frames_and_cells_still_matches_exactly(tmp_path):
    rows = base_rows()
    copy = [
        {**r, "src": "relabelled", "cq": 60 - r["cq"], "frame_index": 100 - r["frame_index"]}
        for r in rows
        if r["src"] == "synth02"
    ]
    [check] = checks_of(rows + copy, tmp_path / "c.jsonl")[SAME_CONTENT.name]
    assert not check.passed
    assert "'relabelled' and 'synth02'" in check.message
    assert "(32 identical six-feature vectors)" in check.message


def test_the_clean_corpora_have_no_data_failure(trained_loso, tmp_path):
    corpus, _ = trained_loso
    checks = {c.name: c for c in data_checks(load_corpus(corpus), Thresholds())}
    # The synthetic target is no libvmaf model: without a manifest the oracle only reports.
    assert [c.status for c in checks.values()] == ["PASS", "PASS", "WARN", "PASS", "WARN", "WARN"]
    assert "no two of the 4 sources share content" in checks[SAME_CONTENT.name].message
    assert (
        "no producer manifest (corpus.jsonl.manifest.json" in checks[PRODUCER_MANIFEST.name].message
    )
    assert "'synth00' (8 frames < 24)" in checks[SOURCE_SPAN.name].message
    # The default synthetic corpus (33,840 rows, 9 sources): nothing near the bar, fast.
    big = load_corpus(write_corpus(tmp_path / "big.jsonl", synthetic_rows()))
    start = time.perf_counter()
    found = assess(big)
    elapsed = time.perf_counter() - start
    assert found.shared == ()
    assert found.largest is not None
    assert found.largest.share < 0.25
    assert elapsed < 3.0, f"data checks took {elapsed:.2f} s on {big.n_rows} rows"


def test_a_clean_run_promotes_and_the_missing_manifest_is_a_warning_in_the_verdict(loso_copy):
    _, loso = loso_copy
    assert validate_cli.main([str(loso), *LENIENT_GATE, "--audit", "0"]) == EXIT_OK
    verdict = json.loads((loso / PROMOTE_FILE).read_text())
    data = {c["name"]: c for c in verdict["gate"]["checks"] if c["name"].startswith("data ")}
    assert data[PRODUCER_MANIFEST.name]["status"] == "WARN"
    assert "the fork's producer writes none" in data[PRODUCER_MANIFEST.name]["message"]
    assert data[SAME_CONTENT.name]["status"] == "PASS"


def test_content_shares_rise_with_the_tolerance(tmp_path):
    corpus = load_corpus(write_corpus(tmp_path / "c.jsonl", copied(base_rows(), noise=0.1)))
    tight = {p.ids: p.share for p in content_shares(corpus, tolerance=0.01)}
    loose = {p.ids: p.share for p in content_shares(corpus, tolerance=1.0)}
    assert tight.get(("synth01", "synth01_copy"), 0.0) < 0.5
    assert loose[("synth01", "synth01_copy")] == 1.0
    assert all(loose.get(ids, 0.0) >= share for ids, share in tight.items())


# --------------------------------------------------------------------------
# Sources too small or too narrow to score
# --------------------------------------------------------------------------


def test_a_source_split_into_tiny_ids_fails(tmp_path):
    rows = base_rows()
    weak = [r for r in rows if r["src"] == "synth01"]
    others = [r for r in rows if r["src"] != "synth01"]
    split = others + [{**r, "src": f"synth01_p{i // 2:02d}"} for i, r in enumerate(weak)]
    # 16 two-row sources, each of whose held-out PLCC is +-1 by construction.
    checks = checks_of(split, tmp_path / "c.jsonl")
    [check] = checks[SOURCE_ROWS.name]
    assert not check.passed
    assert check.enforced
    assert check.message.startswith(
        f"{SOURCE_ROWS.name}: 16 source(s) with fewer than {DATA_SOURCE_ROWS_MIN} rows: "
        "'synth01_p00' (2), 'synth01_p01' (2), 'synth01_p02' (2), 'synth01_p03' (2), "
        "'synth01_p04' (2) and 11 more"
    )
    assert deciding_failures(checks) == [check.message]
    # Split in four: 8 rows each, the smallest a source may have.
    quarters = [
        {**r, "src": f"q{i % 4}"} if r["src"] == "synth01" else r for i, r in enumerate(rows)
    ]
    assert checks_of(quarters, tmp_path / "q.jsonl")[SOURCE_ROWS.name][0].passed


def test_narrow_and_short_sources_are_reported_never_decided(tmp_path):
    rows = synthetic_rows(n_sources=3, encoders=("libx264", "libx265"), cqs=(22, 38), frames=30)
    narrow = [
        r
        for r in rows
        if r["src"] != "synth01" or r["cq"] == 22  # synth01: one cq, two encoders
        if r["src"] != "synth02" or (r["cq"] == 22 and r["encoder"] == "libx264")  # one cell
    ]
    checks = checks_of(narrow, tmp_path / "c.jsonl")
    [check] = checks[SOURCE_SPAN.name]
    assert check.status == "WARN"
    assert check.message == (
        f"{SOURCE_SPAN.name}: 2 of 3 sources are narrow or short: 'synth01' (one cq only), "
        "'synth02' (one encoder and one cq only); their held-out PLCC measures little"
    )
    strict = [c for c in data_checks(load_corpus(tmp_path / "c.jsonl"), Thresholds(strict=True))]
    assert [c.status for c in strict if c.name == SOURCE_SPAN.name] == ["WARN"]
    assert checks_of(rows, tmp_path / "full.jsonl")[SOURCE_SPAN.name][0].passed


# --------------------------------------------------------------------------
# The producer manifest against the rows
# --------------------------------------------------------------------------


def test_a_manifest_that_agrees_with_its_rows_passes(tmp_path):
    [check] = checks_of(base_rows(), tmp_path / "c.jsonl", cells=None)[PRODUCER_MANIFEST.name]
    assert check.passed
    assert check.message == (
        f"{PRODUCER_MANIFEST.name}: the rows are the 16 cells c.jsonl.manifest.json records"
    )


def test_a_cell_with_fewer_rows_than_its_manifest_records_fails(tmp_path):
    rows = base_rows()
    manifest_cells = json.loads(
        write_manifest(write_corpus(tmp_path / "x.jsonl", rows), rows).read_text()
    )["cells"]
    # Every other frame of one cell dropped (the manifest's digest follows, so it loads).
    thinned = [
        r for r in rows if not (r["src"] == "synth02" and r["cq"] == 30 and r["frame_index"] % 2)
    ]
    [check] = checks_of(thinned, tmp_path / "c.jsonl", cells=manifest_cells)[PRODUCER_MANIFEST.name]
    assert not check.passed
    assert check.enforced
    assert check.message == (
        f"{PRODUCER_MANIFEST.name}: c.jsonl.manifest.json disagrees with the corpus: cell "
        "synth02/libx264/cq30 has 4 rows (frame indices up to 6); the manifest records 8 frames"
    )
    # A cell gone altogether.
    gone = [r for r in rows if not (r["src"] == "synth03" and r["cq"] == 46)]
    [check] = checks_of(gone, tmp_path / "g.jsonl", cells=manifest_cells)[PRODUCER_MANIFEST.name]
    assert "cell synth03/libx264/cq46 has no rows; the manifest records 8" in check.message
    # Rows the manifest does not record (a source renamed, or added by hand).
    renamed = [{**r, "src": "other"} if r["src"] == "synth00" else r for r in rows]
    [check] = checks_of(renamed, tmp_path / "r.jsonl", cells=manifest_cells)[PRODUCER_MANIFEST.name]
    assert "cell other/libx264/cq22 has 8 rows; the manifest does not record it" in check.message


def test_rows_rewritten_after_scoring_disagree_with_the_recorded_pooled_mean(tmp_path):
    # The producer records each cell's libvmaf pooled mean; a cell whose rows were
    # rewritten (a rogue cluster worker, a hand edit) no longer averages to it.
    rows = base_rows()
    cells = json.loads(write_manifest(write_corpus(tmp_path / "x.jsonl", rows), rows).read_text())[
        "cells"
    ]
    for cell in cells:
        scores = [
            r["vmaf"]
            for r in rows
            if (r["src"], r["encoder"], r["cq"]) == (cell["src"], cell["encoder"], cell["cq"])
        ]
        cell["vmaf_mean"] = sum(scores) / len(scores)
    [check] = checks_of(rows, tmp_path / "c.jsonl", cells=cells)[PRODUCER_MANIFEST.name]
    assert check.passed
    lowered = [
        {**r, "vmaf": r["vmaf"] - 15.0} if (r["src"], r["cq"]) == ("synth01", 38) else r
        for r in rows
    ]
    [check] = checks_of(lowered, tmp_path / "l.jsonl", cells=cells)[PRODUCER_MANIFEST.name]
    assert not check.passed
    assert "cell synth01/libx264/cq38: its rows' mean vmaf is" in check.message
    assert "the manifest records libvmaf's pooled mean" in check.message


def test_a_manifest_recording_one_file_under_two_ids_fails_naming_both(tmp_path):
    rows = base_rows()
    one = "ab" * 32
    checks = checks_of(
        rows, tmp_path / "c.jsonl", cells=None, digests={"synth00": one, "synth03": one}
    )
    [check] = checks[SAME_CONTENT.name]
    assert check.message == (
        f"{SAME_CONTENT.name}: sources 'synth00' and 'synth03' hold the same content: the "
        "producer manifest records one file for both (sha256 abababababab…); LOSO scores each "
        "on a model that trained on the other"
    )


@pytest.mark.slow
def test_a_real_producer_manifest_agrees_until_a_row_is_dropped(tmp_path, capsys):
    out = tmp_path / "c.jsonl"
    argv = ["--builtin", "testsrc2_30fps", "mandelbrot_24fps", "--frames", "4"]
    argv += ["--builtin-size", "64x48", "--cache-dir", str(tmp_path / "cache")]
    argv += ["--encoder", "libx264", "--cq", "30", "40", "--out", str(out), "--progress", "none"]
    assert corpus_cli.main(argv) == EXIT_OK
    checks = {c.name: c for c in data_checks(load_corpus(out), Thresholds())}
    assert checks[PRODUCER_MANIFEST.name].message == (
        f"{PRODUCER_MANIFEST.name}: the rows are the 4 cells c.jsonl.manifest.json records"
    )
    assert checks[SAME_CONTENT.name].passed
    # Real libvmaf labels are the label oracle's own scores of the six features.
    oracle = checks[LABEL_ORACLE.name]
    assert oracle.passed
    assert oracle.enforced is False  # the default profile reports it
    assert isinstance(oracle.observed, float)
    assert oracle.observed < 1e-3
    # One frame gone, and the manifest's digest and row count made to match (as a
    # careless or hostile edit would): it loads, and the data check fails.
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:-1]))
    manifest = json.loads(manifest_path(out).read_text())
    manifest["corpus"].update(
        rows=len(lines) - 1, sha256=hashlib.sha256(out.read_bytes()).hexdigest()
    )
    manifest_path(out).write_text(json.dumps(manifest))
    checks = {c.name: c for c in data_checks(load_corpus(out), Thresholds())}
    assert (
        "cell testsrc2_30fps/libx264/cq40 has 3 rows (frame indices up to 2); the manifest records 4 frames"
        in checks[PRODUCER_MANIFEST.name].message
    )


# --------------------------------------------------------------------------
# The producer refuses one file under two ids
# --------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["one-path", "a-copy"])
def test_the_producer_refuses_one_file_under_two_ids(tmp_path, capsys, how):
    clip = tmp_path / "clip.yuv"
    clip.write_bytes(bytes(range(256)) * 27)  # 2 frames of 64x36 yuv420p
    second = clip
    if how == "a-copy":
        second = tmp_path / "again.yuv"
        second.write_bytes(clip.read_bytes())
    entry = (
        '[[sources]]\npath = "{p}"\nid = "{i}"\nwidth = 64\nheight = 36\npix_fmt = "yuv420p"\n'
        "framerate = 25\n"
    )
    manifest = tmp_path / "sources.toml"
    manifest.write_text(
        entry.format(p=clip.name, i="weak") + entry.format(p=second.name, i="weak_again")
    )
    out = tmp_path / "c.jsonl"
    argv = ["--sources", str(manifest), "--encoder", "libx264", "--cq", "30", "--out", str(out)]
    assert corpus_cli.main(argv) == EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "Traceback" not in err[0]
    assert err[0].startswith(f"frreg-corpus: error: {manifest}: sources 'weak' (")
    assert f") and 'weak_again' ({second}) are one file (sha256 " in err[0]
    assert err[0].endswith(
        "LOSO would score each on a model that trained on the other; give the clip one id"
    )
    assert not out.exists()


# --------------------------------------------------------------------------
# The plugin's data items
# --------------------------------------------------------------------------


def test_the_sessions_data_items_fail_warn_and_pass(tmp_path):
    from frreg.session import GateConfig, GateSession
    from frreg.session.gate_session import GateFailure
    from frreg.training.settings import TrainSettings

    def session(rows: list[Row], name: str) -> GateSession:
        config = GateConfig(
            corpus=write_corpus(tmp_path / f"{name}.jsonl", rows),
            out_dir=tmp_path / name,
            cache_dir=tmp_path / "cache",
            settings=TrainSettings(epochs=3),
            thresholds=Thresholds(seeds=(0,)),
        )
        return GateSession(config, log=lambda message: None)

    dup = session(copied(base_rows()), "dup")
    with pytest.raises(GateFailure, match="sources 'synth01' and 'synth01_copy' hold the same"):
        dup.check_data(SAME_CONTENT.name)
    clean = session(base_rows(), "clean")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert clean.check_data(SAME_CONTENT.name)["status"] == "PASS"
        assert clean.check_data(PRODUCER_MANIFEST.name)["status"] == "WARN"
    assert [str(w.message) for w in caught if w.category is EvidenceWarning] == [
        "WARN " + next(c.message for c in clean.data_checks() if c.name == PRODUCER_MANIFEST.name)
    ]
    assert not (tmp_path / "cache").exists()  # nothing was trained to answer them


@pytest.mark.slow
def test_the_plugin_fails_the_data_item_and_holds(pytester_dup):
    result, out = pytester_dup
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            THE_LINE.removeprefix("FAIL  "),
            # fnmatch: "[[]" is a literal "[".
            "FAILED frreg-gate::data[[]same-content] - data same-content: sources 'synth01' *",
        ]
    )
    assert json.loads((out / HOLD_FILE).read_text())["verdict"] == "HOLD"
    assert not (out / PROMOTE_FILE).exists()


@pytest.fixture
def pytester_dup(pytester: pytest.Pytester) -> tuple[Any, Path]:
    corpus = write_corpus(pytester.path / "corpus.jsonl", copied(base_rows()))
    argv = [f"--frreg-corpus={corpus}", "--frreg-epochs=30", "-p", "no:cacheprovider"]
    result = run_session(pytester, *argv, *LENIENT)
    return result, pytester.path / "runs" / "frreg-gate"


def test_labels_off_vmafs_scale_fail_the_target_scale_check(tmp_path):
    """VMAF/100 labels make every check in VMAF points pass trivially (the gate-power
    benchmark's label-scale-all fault PROMOTEd under both profiles before this check)."""
    rows = base_rows()
    scaled = [dict(r, vmaf=r["vmaf"] / 100.0) for r in rows]
    assert [c.passed for c in checks_of(rows, tmp_path / "clean.jsonl")["data target-scale"]] == [
        True
    ]
    (check,) = checks_of(scaled, tmp_path / "scaled.jsonl")["data target-scale"]
    assert not check.passed
    assert check.enforced
    assert "not on VMAF's 0-100 scale" in check.message


def _oracle_rows() -> list[Row]:
    """Rows whose vmaf is the label oracle's score of their own features (as libvmaf's is)."""
    from frreg.corpus.label_oracle import oracle_scores

    rows = base_rows()
    features = np.array([[r[c] for c in CANONICAL_6] for r in rows])
    return [
        dict(r, vmaf=round(float(v), 6)) for r, v in zip(rows, oracle_scores(features), strict=True)
    ]


@pytest.mark.parametrize("offset", [0.0, 10.0])
def test_labels_offset_consistently_fail_the_label_oracle_under_strict(tmp_path, offset):
    """Every label +10 is consistent with itself: the model learns it and LOSO scores it on
    the same labels (the gate-power benchmark's label-offset-all PROMOTEd under both profiles
    before this check). Only the labels recomputed from the features show it."""
    rows = [dict(r, vmaf=min(100.0, r["vmaf"] + offset)) for r in _oracle_rows()]
    path = write_corpus(tmp_path / "c.jsonl", rows)
    write_manifest(path, rows)
    corpus = load_corpus(path)
    strict = {c.name: c for c in data_checks(corpus, Thresholds(strict=True))}
    default = {c.name: c for c in data_checks(corpus, Thresholds())}
    check = strict[LABEL_ORACLE.name]
    assert check.passed is (offset == 0.0)
    assert check.enforced
    assert default[LABEL_ORACLE.name].status == ("PASS" if offset == 0.0 else "WARN")
    if offset:
        assert "labels or features edited, offset or rescaled" in check.message
    # Without a producer manifest nothing says which model scored it: reported only.
    manifest_path(path).unlink()
    bare = {c.name: c for c in data_checks(load_corpus(path), Thresholds(strict=True))}
    assert bare[LABEL_ORACLE.name].enforced is False
