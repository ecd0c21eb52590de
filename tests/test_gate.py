"""The gate fails closed; its CLI exits 0 pass, 1 fail, 2 input error."""

from __future__ import annotations

import json

import pytest
from factories import DIGEST, SOURCES, passing_docs, seed_doc, write_loso_dir

from frreg.cli import gate as gate_cli
from frreg.gate.checks import Thresholds, evaluate, load_loso_dir
from frreg.schema import ENSEMBLE_SEEDS, EXIT_FAIL, EXIT_OK, EXIT_USAGE


def run_gate(tmp_path, docs, *extra, allow_nan=False):
    """frreg-gate on hand-made seed files: no corpus behind them, so the rules are
    tested on the numbers they state (``--self-reported``; without it, exit 2)."""
    d = write_loso_dir(tmp_path / "loso", docs, allow_nan=allow_nan)
    return gate_cli.main([str(d), "--self-reported", *extra])


def failing_lines(capsys):
    return [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("FAIL")]


def test_pass(tmp_path, capsys):
    assert run_gate(tmp_path, passing_docs()) == EXIT_OK
    out = capsys.readouterr().out
    assert "PASS  mean PLCC 0.9700 >= 0.95" in out
    assert "PASS  PLCC spread 0.0000 <= 0.005" in out
    assert out.startswith(
        "numbers are self-reported, not recomputed: corpus corpus.jsonl not found"
    )
    assert out.rstrip().endswith("verdict: PROMOTE (ADR-0303) (self-reported, unverified)")


def test_mean_fail(tmp_path, capsys):
    assert run_gate(tmp_path, passing_docs(0.94)) == EXIT_FAIL
    assert "FAIL  mean PLCC 0.9400 < 0.95" in failing_lines(capsys)


def test_spread_fail(tmp_path, capsys):
    docs = passing_docs(0.97)
    docs[2] = seed_doc(2, 0.98)
    assert run_gate(tmp_path, docs) == EXIT_FAIL
    assert failing_lines(capsys) == ["FAIL  PLCC spread 0.0100 > 0.005"]


def test_one_seed_below(tmp_path, capsys):
    docs = passing_docs(0.952)
    docs[3] = seed_doc(3, 0.9499)
    assert run_gate(tmp_path, docs) == EXIT_FAIL
    lines = failing_lines(capsys)
    assert any(ln.startswith("FAIL  seed 3 mean PLCC 0.9499 < 0.95") for ln in lines)
    assert "FAIL  per-seed minimum PLCC 0.9499 < 0.95" in lines


@pytest.mark.parametrize("bad", [None, float("nan")], ids=["null", "nan"])
def test_undefined_fold_plcc_fails(tmp_path, capsys, bad):
    docs = passing_docs()
    docs[1] = seed_doc(1, {**dict.fromkeys(SOURCES, 0.97), SOURCES[1]: bad})
    assert run_gate(tmp_path, docs, allow_nan=True) == EXIT_FAIL
    assert any(f"seed 1: fold '{SOURCES[1]}' PLCC is" in ln for ln in failing_lines(capsys))


def test_dry_run_artifact_never_passes(tmp_path, capsys):
    docs = passing_docs()
    docs[0]["note"] = "dry-run"
    assert run_gate(tmp_path, docs) == EXIT_FAIL
    assert "FAIL  seed 0: loso_seed0.json is a dry-run artifact" in failing_lines(capsys)


@pytest.mark.parametrize(
    ("field", "value"),
    [("corpus_sha256", "cd" * 32), ("epochs", 199), ("lr", 1e-3), ("encoder_vocab_version", 1)],
)
def test_mixed_provenance_fails(tmp_path, capsys, field, value):
    docs = passing_docs()
    docs[4][field] = value
    assert run_gate(tmp_path, docs) == EXIT_FAIL
    lines = failing_lines(capsys)
    assert any(ln.startswith("FAIL  provenance: seeds disagree on " + field) for ln in lines)


def test_a_missing_seed_file_is_an_input_error_as_in_the_fork(tmp_path, capsys):
    """The fork's gate and validator exit 2 when a seed file is missing (its tests pin it)."""
    assert run_gate(tmp_path, passing_docs()[:4]) == EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "loso_seed4.json: seed file not found (1 of seeds 0,1,2,3,4 missing: 4)" in err[0]


def test_fewer_seeds_than_the_ensemble(tmp_path, capsys):
    assert run_gate(tmp_path, passing_docs()[:3], "--seeds", "0,1,2") == EXIT_FAIL
    assert "FAIL  ensemble size 3 < 5" in failing_lines(capsys)


def test_duplicated_seed_fails(tmp_path, capsys):
    docs = {s: seed_doc(s, 0.97) for s in ENSEMBLE_SEEDS}
    docs[3] = seed_doc(2, 0.97)  # loso_seed3.json is a copy of seed 2
    assert run_gate(tmp_path, docs) == EXIT_FAIL
    assert any("loso_seed3.json records seed 2" in ln for ln in failing_lines(capsys))


def test_missing_fold_fails(tmp_path, capsys):
    docs = passing_docs()
    docs[2]["folds"] = docs[2]["folds"][:-1]
    docs[2]["mean_plcc"] = 0.97
    assert run_gate(tmp_path, docs) == EXIT_FAIL
    assert f"FAIL  seed 2: fold for source '{SOURCES[-1]}' is missing" in failing_lines(capsys)


def test_recorded_mean_must_match_folds(tmp_path, capsys):
    docs = passing_docs()
    docs[0]["mean_plcc"] = 0.99
    assert run_gate(tmp_path, docs) == EXIT_FAIL
    assert any("recorded mean_plcc 0.99 disagrees" in ln for ln in failing_lines(capsys))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{not json", "invalid JSON at line 1"),
        (
            json.dumps(
                {
                    **seed_doc(0, 0.97),
                    "folds": [
                        {
                            "held_out": "a",
                            "n_train": 9,
                            "n_val": 3,
                            "plcc": "0.97",
                            "srocc": 1,
                            "rmse": 1,
                        }
                    ],
                }
            ),
            "folds[0].plcc must be a number or null, got '0.97'",
        ),
        (json.dumps({**seed_doc(0, 0.97), "seed": "0"}), "field 'seed' must be an integer"),
        ("[]", "expected a JSON object"),
    ],
    ids=["bad-json", "string-plcc", "string-seed", "not-object"],
)
def test_malformed_file_is_an_input_error_naming_it(tmp_path, capsys, text, problem):
    docs = {s: seed_doc(s, 0.97) for s in ENSEMBLE_SEEDS}
    docs[0] = text
    assert run_gate(tmp_path, docs) == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"frreg-gate: error: {tmp_path / 'loso' / 'loso_seed0.json'}: {problem}")
    assert "\n" not in err


def test_missing_directory_is_an_input_error(tmp_path, capsys):
    assert gate_cli.main([str(tmp_path / "nope")]) == EXIT_USAGE
    assert "LOSO directory not found" in capsys.readouterr().err


def test_json_output_is_strict_and_complete(tmp_path, capsys):
    assert run_gate(tmp_path, passing_docs(), "--json") == EXIT_OK
    report = json.loads(capsys.readouterr().out)
    assert report["verdict"] == "PROMOTE"
    assert report["seed_means"] == {str(s): pytest.approx(0.97) for s in ENSEMBLE_SEEDS}


def test_thresholds_are_options(tmp_path):
    assert (
        run_gate(
            tmp_path, passing_docs(0.90), "--mean-plcc-threshold", "0.9", "--per-seed-min", "0.9"
        )
        == EXIT_OK
    )


def test_library_evaluate_with_expected_digest(tmp_path):
    d = write_loso_dir(tmp_path, passing_docs())
    arts = load_loso_dir(d, ENSEMBLE_SEEDS)
    assert evaluate(arts, Thresholds(), corpus_sha256=DIGEST).passed
    report = evaluate(arts, Thresholds(), corpus_sha256="00" * 32)
    assert not report.passed
    assert [c.name for c in report.failures()] == ["provenance"]
