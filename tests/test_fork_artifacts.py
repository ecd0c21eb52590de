"""The fork's artifacts and argv through frreg: its seed files, its pinned gate outcomes,
its exit codes, and the fields both write under the same name with the same meaning."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from frreg.cli import gate as gate_cli
from frreg.cli import validate as validate_cli
from frreg.schema import (
    EXIT_FAIL,
    EXIT_OK,
    EXIT_USAGE,
    HOLD_FILE,
    PROMOTE_FILE,
    PROMOTE_UNVERIFIED_FILE,
)
from frreg.training.record import SeedRecord

FORK_SOURCES = (
    "BigBuckBunny_25fps", "BirdsInCage_30fps", "CrowdRun_25fps", "ElFuente1_30fps",
    "ElFuente2_30fps", "FoxBird_25fps", "OldTownCross_25fps", "Seeking_25fps", "Tennis_24fps",
)  # fmt: skip
FORK_CORPUS = "runs/phase_a/full_grid/per_frame_canonical6.jsonl"


def fork_seed_doc(
    seed: int,
    plccs: dict[str, float],
    *,
    note: str | None = None,
    corpus: str = FORK_CORPUS,
    sizes: dict[str, int] | None = None,
) -> dict[str, Any]:
    """A ``loso_seed{N}.json`` as the fork's trainer writes it: its key set, its summary
    (NaN folds left out of the mean, std with ddof=1, NaN where undefined), no predictions."""
    sizes = sizes or {s: 3760 for s in plccs}
    total = sum(sizes.values())
    values = list(plccs.values())
    finite = np.array([v for v in values if not math.isnan(v)])
    doc: dict[str, Any] = {
        "seed": seed,
        "corpus": corpus,
        "n_folds": len(plccs),
        "folds": [
            {
                "held_out": src,
                "n_train": total - sizes[src],
                "n_val": sizes[src],
                "plcc": p,
                "srocc": p - 0.01,
                "rmse": 3.5,
            }
            for src, p in plccs.items()
        ],
        "mean_plcc": float(finite.mean()) if finite.size else math.nan,
        "std_plcc": float(finite.std(ddof=1)) if finite.size >= 2 else math.nan,
        "min_plcc": min(values),
        "max_plcc": max(values),
        "mean_srocc": float(np.nanmean([v - 0.01 for v in values])),
        "mean_rmse": 3.5,
        "epochs": 200,
        "batch_size": 32,
        "lr": 0.0005,
        "weight_decay": 1e-05,
        "num_codecs": 14,
        "encoder_vocab_version": 2,
        "wall_time_s": 1234.5 + seed,
    }
    if note is not None:
        doc["note"] = note
    return doc


def write_fork_dir(directory: Path, docs: dict[int, dict[str, Any]]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for seed, doc in docs.items():
        # json.dump's defaults, as the fork's trainer: NaN literals, sorted keys.
        text = json.dumps(doc, indent=2, sort_keys=True) + "\n"
        (directory / f"loso_seed{seed}.json").write_text(text, encoding="utf-8")
    return directory


def uniform(value: float) -> dict[str, float]:
    return dict.fromkeys(FORK_SOURCES, value)


def fork_dir(tmp_path: Path, per_seed: list[float], **kwargs: Any) -> Path:
    docs = {s: fork_seed_doc(s, uniform(v), **kwargs) for s, v in enumerate(per_seed)}
    return write_fork_dir(tmp_path / "loso", docs)


# --------------------------------------------------------------------------
# Reading the fork's seed files
# --------------------------------------------------------------------------


def test_a_fork_seed_file_reads_as_self_reported(tmp_path):
    doc = fork_seed_doc(2, {**uniform(0.96), "Tennis_24fps": math.nan})
    path = write_fork_dir(tmp_path, {2: doc}) / "loso_seed2.json"
    assert "NaN" in path.read_text()  # the fork writes NaN literals
    rec = SeedRecord.read(path)
    assert rec.from_fork
    assert rec.corpus_sha256 == ""
    assert rec.predictions is None
    assert rec.sources == tuple(sorted(FORK_SOURCES))
    assert rec.folds[-1].plcc is not None
    assert math.isnan(rec.folds[-1].plcc)
    assert rec.wall_time_s == 1236.5


def test_a_frreg_file_stripped_of_its_version_is_not_taken_for_a_fork_file(tmp_path):
    from factories import seed_doc

    doc = seed_doc(0, 0.97)
    del doc["schema_version"]
    path = tmp_path / "loso_seed0.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(Exception, match="missing field 'schema_version'"):
        SeedRecord.read(path)


def test_a_file_of_neither_layout_names_the_missing_field(tmp_path):
    doc = fork_seed_doc(0, uniform(0.96))
    del doc["wall_time_s"]
    path = write_fork_dir(tmp_path, {0: doc}) / "loso_seed0.json"
    with pytest.raises(Exception, match="fork trainer's: missing field 'wall_time_s'"):
        SeedRecord.read(path)


# --------------------------------------------------------------------------
# The fork validator's pinned cases, through frreg's read-only gate
# --------------------------------------------------------------------------


#: The fork validator's three pinned fixtures (ai/tests/test_validate_ensemble_seeds.py):
#: per-seed PLCC, the fork's exit status, and the line frreg-gate gives for it.
FORK_PINNED_CASES = pytest.mark.parametrize(
    ("per_seed", "code", "line"),
    [
        ([0.96] * 5, EXIT_OK, "PASS  mean PLCC 0.9600 >= 0.95"),
        ([0.95, 0.96, 0.97, 0.96, 0.95], EXIT_FAIL, "FAIL  PLCC spread 0.0200 > 0.005"),
        ([0.93] * 5, EXIT_FAIL, "FAIL  mean PLCC 0.9300 < 0.95"),
    ],
    ids=["all-0.96-promote", "spread-0.02-hold", "all-0.93-hold"],
)


@FORK_PINNED_CASES
def test_the_forks_pinned_cases_give_the_same_outcome(tmp_path, capsys, per_seed, code, line):
    loso = fork_dir(tmp_path, per_seed)
    assert gate_cli.main([str(loso)]) == code
    out = capsys.readouterr().out
    assert out.startswith("numbers are self-reported, not recomputed: seed file(s) 0, 1, 2, 3, 4")
    assert line in out.splitlines()
    assert "(self-reported, unverified)" in out.splitlines()[-1]


def test_an_empty_directory_is_an_input_error(tmp_path, capsys):
    assert gate_cli.main([str(tmp_path)]) == EXIT_USAGE
    assert validate_cli.main([str(tmp_path)]) == EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2
    assert all("loso_seed0.json: seed file not found" in e for e in err)
    assert not (tmp_path / PROMOTE_FILE).exists()
    assert not (tmp_path / HOLD_FILE).exists()


def test_an_unreadable_seed_file_is_an_input_error_and_leaves_no_promote(tmp_path, capsys):
    loso = fork_dir(tmp_path, [0.96] * 5)
    (loso / PROMOTE_FILE).write_text("{}")  # an earlier verdict
    (loso / "loso_seed3.json").write_text("{not json")
    assert validate_cli.main([str(loso)]) == EXIT_USAGE
    assert "loso_seed3.json: invalid JSON" in capsys.readouterr().err
    assert not (loso / PROMOTE_FILE).exists()


# --------------------------------------------------------------------------
# frreg-validate never promotes what it cannot recompute
# --------------------------------------------------------------------------


def test_validate_holds_on_fork_artifacts_naming_why(tmp_path, capsys):
    loso = fork_dir(tmp_path, [0.96] * 5)
    assert validate_cli.main([str(loso)]) == EXIT_FAIL
    doc = json.loads((loso / HOLD_FILE).read_text())
    assert not (loso / PROMOTE_FILE).exists()
    assert next(iter(doc)) == "unverified"
    assert "the fork trainer's" in doc["unverified"]
    assert "nothing can be recomputed" in doc["recommendation"]
    assert capsys.readouterr().out.startswith("UNVERIFIED: ")


def test_accept_unverified_promotes_and_says_so_first_and_export_refuses_it(tmp_path, capsys):
    from frreg.cli import export as export_cli

    loso = fork_dir(tmp_path, [0.96] * 5)
    (loso / PROMOTE_FILE).write_text("{}")  # an earlier verdict goes, whatever its kind
    assert validate_cli.main([str(loso), "--accept-unverified"]) == EXIT_OK
    # Never "PROMOTE" nor PROMOTE.json: the fork's exporter, which reads PROMOTE.json,
    # and any `verdict == "PROMOTE"` check fail closed on it.
    assert not (loso / PROMOTE_FILE).exists()
    doc = json.loads((loso / PROMOTE_UNVERIFIED_FILE).read_text())
    assert next(iter(doc)) == "unverified"
    assert doc["unverified"].startswith("PROMOTE on self-reported numbers")
    assert doc["verdict"] == "PROMOTE_UNVERIFIED"
    assert doc["verification"]["recomputed"] is False
    assert doc["gate"]["per_seed_plccs"] == {str(s): pytest.approx(0.96) for s in range(5)}
    # ... and it still holds what fails on its own numbers.
    held = fork_dir(tmp_path / "h", [0.95, 0.96, 0.97, 0.96, 0.95])
    assert validate_cli.main([str(held), "--accept-unverified"]) == EXIT_FAIL
    assert next(iter(json.loads((held / HOLD_FILE).read_text()))) == "unverified"
    capsys.readouterr()
    verdict = loso / PROMOTE_UNVERIFIED_FILE
    code = export_cli.main([f"--verdict={verdict}", f"--out-dir={tmp_path / 'm'}"])
    assert code == EXIT_USAGE
    assert "the verdict is unverified" in capsys.readouterr().err
    code = export_cli.main([f"--verdict={loso}", f"--out-dir={tmp_path / 'm'}"])
    assert code == EXIT_USAGE
    assert "PROMOTE_UNVERIFIED.json: the verdict rests on self-reported numbers" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "m").exists()


# --------------------------------------------------------------------------
# Where frreg deliberately differs from the fork (docs/migrating.md lists each)
# --------------------------------------------------------------------------


def test_a_nan_fold_fails_where_the_fork_drops_it_from_the_mean(tmp_path, capsys):
    docs = {s: fork_seed_doc(s, uniform(0.96)) for s in range(5)}
    docs[1] = fork_seed_doc(1, {**uniform(0.96), "FoxBird_25fps": math.nan})
    assert docs[1]["mean_plcc"] == pytest.approx(0.96)  # what the fork's gate judges
    loso = write_fork_dir(tmp_path / "loso", docs)
    assert gate_cli.main([str(loso)]) == EXIT_FAIL
    assert "fold 'FoxBird_25fps' PLCC is nan" in capsys.readouterr().out


def test_a_dry_run_fails(tmp_path, capsys):
    docs = {s: fork_seed_doc(s, uniform(0.96)) for s in range(5)}
    docs[0] = fork_seed_doc(0, uniform(0.96), note="dry-run")
    assert gate_cli.main([str(write_fork_dir(tmp_path / "loso", docs))]) == EXIT_FAIL
    assert "loso_seed0.json is a dry-run artifact" in capsys.readouterr().out


def test_a_missing_fold_fails(tmp_path, capsys):
    docs = {s: fork_seed_doc(s, uniform(0.96)) for s in range(5)}
    eight = {k: v for k, v in uniform(0.96).items() if k != "Seeking_25fps"}
    docs[4] = fork_seed_doc(4, eight)
    assert gate_cli.main([str(write_fork_dir(tmp_path / "loso", docs))]) == EXIT_FAIL
    assert "seeds disagree on sources" in capsys.readouterr().out


def test_a_mixed_corpus_fails(tmp_path, capsys):
    docs = {s: fork_seed_doc(s, uniform(0.96)) for s in range(5)}
    docs[2] = fork_seed_doc(2, uniform(0.96), corpus="runs/other/corpus.jsonl")
    assert gate_cli.main([str(write_fork_dir(tmp_path / "loso", docs))]) == EXIT_FAIL
    assert "seeds disagree on corpus" in capsys.readouterr().out


def test_with_the_corpus_the_folds_are_checked_against_its_split(tmp_path, tiny_corpus, capsys):
    from frreg.corpus import load_corpus

    corpus = load_corpus(tiny_corpus)
    sizes = {s: int((corpus.groups == s).sum()) for s in corpus.sources}
    plccs = dict.fromkeys(corpus.sources, 0.97)
    good = {s: fork_seed_doc(s, plccs, corpus=str(tiny_corpus), sizes=sizes) for s in range(5)}
    loso = write_fork_dir(tmp_path / "loso", good)
    assert gate_cli.main([str(loso)]) == EXIT_OK
    out = capsys.readouterr().out
    assert f"folds match the corpus's {len(corpus.sources)} sources and sizes" in out
    wrong = {**sizes, corpus.sources[0]: sizes[corpus.sources[0]] + 1}
    bad = {s: fork_seed_doc(s, plccs, corpus=str(tiny_corpus), sizes=wrong) for s in range(5)}
    loso = write_fork_dir(tmp_path / "bad", bad)
    assert gate_cli.main([str(loso)]) == EXIT_FAIL
    assert f"fold {corpus.sources[0]}: records n_train/n_val" in capsys.readouterr().out


# --------------------------------------------------------------------------
# Same name, same meaning
# --------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["batched", "reference"])
def test_std_plcc_and_wall_time_mean_what_the_fork_means(tiny_corpus, tmp_path, engine):
    from frreg.cli import train as train_cli

    out = tmp_path / "out"
    argv = ["--corpus", str(tiny_corpus), "--out-dir", str(out), "--epochs", "3"]
    assert train_cli.main([*argv, "--seeds", "0,1", "--engine", engine]) == EXIT_OK
    records = [SeedRecord.read(out / f"loso_seed{s}.json") for s in (0, 1)]
    for rec in records:
        plccs = [f.plcc for f in rec.folds]
        assert rec.std_plcc == pytest.approx(float(np.std(plccs, ddof=1)), abs=1e-12)
        assert rec.run_wall_time_s is not None
        assert 0 < rec.wall_time_s <= rec.run_wall_time_s
    # Each seed's own time: together they are the run (up to rounding to milliseconds).
    total = sum(r.wall_time_s for r in records)
    assert total == pytest.approx(records[0].run_wall_time_s, abs=0.05)


# --------------------------------------------------------------------------
# The fork's minimal seed files and the fork's readers of frreg's verdict
# --------------------------------------------------------------------------


def write_minimal_fork_dir(directory: Path, per_seed: list[float]) -> Path:
    """Seed files in the fork validator's test-fixture shape: seed, mean_plcc, per_fold."""
    directory.mkdir(parents=True, exist_ok=True)
    for seed, plcc in enumerate(per_seed):
        doc = {
            "seed": seed,
            "mean_plcc": plcc,
            "per_fold": [{"source": f"src{i}", "plcc": plcc} for i in range(9)],
        }
        (directory / f"loso_seed{seed}.json").write_text(json.dumps(doc))
    return directory


@FORK_PINNED_CASES
def test_the_forks_minimal_fixtures_give_the_forks_outcome(tmp_path, capsys, per_seed, code, line):
    # ai/tests/test_validate_ensemble_seeds.py's three fixtures: the fork gives 0, 1, 1.
    loso = write_minimal_fork_dir(tmp_path / "loso", per_seed)
    assert gate_cli.main([str(loso)]) == code
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("numbers are self-reported, not recomputed")
    assert line in out
    assert "recipe not recorded" in out[-1]


def test_a_minimal_fork_file_with_a_bad_fold_names_it(tmp_path, capsys):
    loso = write_minimal_fork_dir(tmp_path / "loso", [0.96] * 5)
    doc = json.loads((loso / "loso_seed2.json").read_text())
    doc["per_fold"][3] = {"source": "src3", "plcc": "high"}
    (loso / "loso_seed2.json").write_text(json.dumps(doc))
    assert gate_cli.main([str(loso)]) == EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "loso_seed2.json: per_fold[3].plcc must be a number or null, got 'high'" in err[0]


def test_the_corpus_snapshot_is_the_forks_yuv_list_digest(tmp_path):
    """corpus.sha256 means what the fork's validator writes: sha256 over the sorted
    'relpath<TAB>size' lines of every *.yuv under the corpus root."""
    import hashlib

    from frreg.gate.verdict import corpus_snapshot

    root = tmp_path / "netflix"
    files = {"ref/Tennis_24fps.yuv": 5, "dis/Tennis_24fps_crf30.yuv": 3, "notes.txt": 7}
    for rel, size in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x" * size)
    lines = "dis/Tennis_24fps_crf30.yuv\t3\nref/Tennis_24fps.yuv\t5\n"
    assert corpus_snapshot(root) == {
        "present": True,
        "corpus_root": str(root),
        "sha256": hashlib.sha256(lines.encode()).hexdigest(),
        "ref_count": 1,
        "dis_count": 1,
        "yuv_count": 2,
    }
    missing = corpus_snapshot(tmp_path / "does_not_exist")
    assert missing["present"] is False
    assert missing["sha256"] is None


def _fork_validator_reads(v: dict[str, Any]) -> str:
    """What the fork's validate_ensemble_seeds.py main() and runbook read of a verdict."""
    line = (
        f"verdict={v['verdict']} mean_plcc={v['gate']['mean_plcc']:.4f} "
        f"spread={v['gate']['plcc_spread']:.4f}"
    )
    _ = v["corpus"]["sha256"], v["corpus"]["present"], v["corpus"]["corpus_root"]
    return line


def _fork_exporter_reads(v: dict[str, Any], seed: int) -> str:
    """What the fork's export_ensemble_v2_seeds.py reads of PROMOTE.json."""
    gate = v["gate"]
    assert v.get("verdict") == "PROMOTE"
    per_seed = gate["per_seed_plccs"][str(seed)]
    return (
        f"verdict={v.get('verdict')}, mean_plcc={gate.get('mean_plcc'):.4f} "
        f"{gate.get('mean_plcc_threshold')} {gate.get('plcc_spread_max')} "
        f"{gate.get('per_seed_min')} {per_seed:.4f} {gate.get('passed')}"
    )


FORK_VERDICT_KEYS = {
    "schema_version", "verdict", "generated_at_utc", "loso_dir", "seeds", "gate", "corpus",
    "recommendation", "adr", "parent_adr",
}  # fmt: skip
FORK_GATE_KEYS = {
    "passed", "mean_plcc", "mean_plcc_threshold", "mean_plcc_pass", "plcc_spread",
    "plcc_spread_max", "plcc_spread_pass", "per_seed_min", "per_seed_pass", "failing_seeds",
    "per_seed_plccs",
}  # fmt: skip
FORK_CORPUS_KEYS = {"present", "corpus_root", "sha256", "ref_count", "dis_count"}


def test_a_frreg_verdict_reads_as_the_forks_with_the_forks_field_accesses(
    trained_loso, tmp_path, monkeypatch
):
    import shutil

    from conftest import LENIENT_GATE

    corpus, loso = trained_loso
    work = tmp_path / "loso"
    shutil.copytree(loso, work)
    root = tmp_path / "yuv"
    (root / "ref").mkdir(parents=True)
    (root / "ref" / "a.yuv").write_bytes(b"12345")
    argv = [str(work), f"--corpus={corpus}", "--audit=0", f"--corpus-root={root}"]
    assert validate_cli.main([*argv, *LENIENT_GATE]) == EXIT_OK
    v = json.loads((work / PROMOTE_FILE).read_text())
    assert set(v) >= FORK_VERDICT_KEYS
    assert set(v["gate"]) >= FORK_GATE_KEYS
    assert set(v["corpus"]) >= FORK_CORPUS_KEYS | {"yuv_count"}
    assert v["adr"] == "ADR-0309"
    assert v["parent_adr"] == "ADR-0303"
    assert v["gate"]["passed"] is True
    assert "flip seeds smoke->false" in v["recommendation"]
    assert v["corpus"]["present"] is True
    assert v["corpus"]["sha256"] is not None
    assert v["corpus"]["yuv_count"] == 1
    # frreg's own binding of the corpus JSONL stays beside the fork's fields.
    assert v["corpus"]["jsonl"] == str(corpus)
    assert v["corpus"]["jsonl_sha256"] == v["corpus_sha256"]
    assert _fork_validator_reads(v).startswith("verdict=PROMOTE mean_plcc=")
    assert _fork_exporter_reads(v, 3).startswith("verdict=PROMOTE, mean_plcc=")

    # The fork's HOLD: its tests read the failing aspect and its advice.
    assert validate_cli.main([*argv, "--mean-plcc-threshold=0.9999", "--audit=0"]) == EXIT_FAIL
    h = json.loads((work / HOLD_FILE).read_text())
    assert set(h) >= FORK_VERDICT_KEYS
    assert h["gate"]["passed"] is False
    assert h["gate"]["mean_plcc_pass"] is False
    assert "investigate diversity" in h["recommendation"]
    assert "keep smoke=true" in h["recommendation"]
    assert _fork_validator_reads(h).startswith("verdict=HOLD ")
    # Without the source directory (frreg's built-in sources have none): the fork's
    # "absent" snapshot, which its validator writes for a missing root.
    monkeypatch.chdir(tmp_path)
    assert validate_cli.main([str(work), f"--corpus={corpus}", "--audit=0", *LENIENT_GATE]) == 0
    absent = json.loads((work / PROMOTE_FILE).read_text())["corpus"]
    assert absent["present"] is False
    assert absent["sha256"] is None
    assert absent["corpus_root"] == ".workingdir2/netflix"
