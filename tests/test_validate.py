"""frreg-validate writes exactly one verdict, from numbers it recomputed itself."""

from __future__ import annotations

import hashlib
import json

import pytest

from conftest import LENIENT_GATE
from frreg.cli import validate as validate_cli
from frreg.schema import EXIT_FAIL, EXIT_OK, EXIT_USAGE, HOLD_FILE, PROMOTE_FILE


def validate(loso, *extra: str) -> int:
    return validate_cli.main([str(loso), *LENIENT_GATE, *extra])


def test_promote_records_digests_and_removes_stale_hold(loso_copy):
    corpus, loso = loso_copy
    (loso / HOLD_FILE).write_text("{}")
    assert validate(loso, "--corpus", str(corpus)) == EXIT_OK
    assert not (loso / HOLD_FILE).exists()
    verdict = json.loads((loso / PROMOTE_FILE).read_text())
    assert verdict["verdict"] == "PROMOTE"
    assert verdict["corpus_sha256"] == hashlib.sha256(corpus.read_bytes()).hexdigest()
    for seed in range(5):
        seed_file = loso / f"loso_seed{seed}.json"
        assert verdict["seed_files"][str(seed)] == {
            "file": seed_file.name,
            "sha256": hashlib.sha256(seed_file.read_bytes()).hexdigest(),
        }
        evidence = verdict["verification"]["seeds"][str(seed)]
        assert evidence["verified"] is True
        pred = loso / f"loso_seed{seed}.predictions.csv"
        assert evidence["predictions_sha256"] == hashlib.sha256(pred.read_bytes()).hexdigest()
    assert verdict["gate"]["passed"] is True
    assert verdict["recommendation"].startswith("promote")
    audit = verdict["verification"]["audit"]
    n_sources = len(verdict["evidence"]["sources"])
    assert audit["requested"] == "all"  # the default audit: every (seed, fold) job
    assert audit["retrained"] == audit["candidates"] == len(audit["jobs"])
    assert {j["seed"] for j in audit["jobs"]} == set(range(5))
    assert len(audit["jobs"]) == 5 * n_sources
    assert all(j["passed"] and j["max_abs_diff"] == 0.0 for j in audit["jobs"])  # exact on CPU


def test_custom_recipe_and_thresholds_are_written_prominently(loso_copy):
    _, loso = loso_copy
    assert validate(loso) == EXIT_OK
    verdict = json.loads((loso / PROMOTE_FILE).read_text())
    adr = verdict["adr_0303"]
    assert adr["recipe_and_thresholds"] is False
    assert "epochs 30 (ADR-0303: 200)" in adr["deviations"]
    assert "mean PLCC threshold 0.0 (ADR-0303: 0.95)" in adr["deviations"]
    assert "(custom: " in verdict["recommendation"]


def test_corpus_defaults_to_the_recorded_path(loso_copy):
    _, loso = loso_copy
    assert validate(loso) == EXIT_OK
    assert (loso / PROMOTE_FILE).exists()


def test_hold_removes_stale_promote(loso_copy, capsys):
    _, loso = loso_copy
    (loso / PROMOTE_FILE).write_text("{}")
    assert validate_cli.main([str(loso), "--audit", "0"]) == EXIT_FAIL  # the ADR thresholds
    assert not (loso / PROMOTE_FILE).exists()
    verdict = json.loads((loso / HOLD_FILE).read_text())
    assert verdict["verdict"] == "HOLD"
    assert "< 0.95" in verdict["recommendation"]
    assert f"wrote {loso / HOLD_FILE}" in capsys.readouterr().out


def test_a_given_corpus_that_does_not_hash_to_the_recorded_digest_is_an_input_error(
    loso_copy, tmp_path
):
    # One frame fewer: not the corpus every seed recorded. Named with --corpus, that is
    # the caller's mistake (exit 2, no verdict written), not a model-quality HOLD.
    corpus, loso = loso_copy
    edited = tmp_path / "edited.jsonl"
    lines = corpus.read_text().splitlines(keepends=True)
    edited.write_text("".join(lines[:-1]))
    assert validate(loso, "--corpus", str(edited)) == EXIT_USAGE
    assert not (loso / HOLD_FILE).exists()
    assert not (loso / PROMOTE_FILE).exists()


def test_missing_corpus_holds(loso_copy, tmp_path):
    _, loso = loso_copy
    assert validate(loso, "--corpus", str(tmp_path / "gone.jsonl")) == EXIT_FAIL
    assert (
        "nothing can be recomputed" in json.loads((loso / HOLD_FILE).read_text())["recommendation"]
    )


def test_malformed_artifact_is_exit_2_and_leaves_no_verdict(loso_copy, capsys):
    _, loso = loso_copy
    (loso / "loso_seed2.json").write_text("{torn")
    (loso / PROMOTE_FILE).write_text("{}")  # stale, from an earlier run
    assert validate(loso) == EXIT_USAGE
    assert "loso_seed2.json: invalid JSON" in capsys.readouterr().err
    assert not (loso / PROMOTE_FILE).exists()
    assert not (loso / HOLD_FILE).exists()


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--mean-plcc-threshold", "-1"], "expected a PLCC threshold in [0, 1]"),
        (["--per-seed-min", "1.5"], "expected a PLCC threshold in [0, 1]"),
        (["--plcc-spread-max", "5"], "expected a spread in [0, 1]"),
        (["--fold-min", "nan"], "expected a PLCC threshold in [0, 1]"),
        (["--audit", "-1"], "expected 'all' or an integer >= 0"),
    ],
)
def test_thresholds_outside_their_meaning_are_refused(tmp_path, capsys, argv, needle):
    with pytest.raises(SystemExit) as info:
        validate_cli.main([str(tmp_path), *argv])
    assert info.value.code == EXIT_USAGE
    assert needle in capsys.readouterr().err


def test_a_directory_named_promote_is_one_line_exit_2(loso_copy, capsys):
    _, loso = loso_copy
    (loso / PROMOTE_FILE).mkdir()
    assert validate(loso) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"{loso / PROMOTE_FILE}: is a directory, not a verdict file" in err


def test_a_crash_is_exit_3_and_leaves_no_verdict(loso_copy, capsys, monkeypatch):
    from frreg.gate import verdict

    _, loso = loso_copy
    (loso / PROMOTE_FILE).write_text("{}")

    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(verdict, "judge", boom)  # a bug anywhere past the clearing
    assert validate(loso) == 3
    assert (
        "frreg-validate: internal error: RuntimeError: disk on fire (exit 3"
        in capsys.readouterr().err
    )
    assert not (loso / PROMOTE_FILE).exists()
    assert not (loso / HOLD_FILE).exists()


@pytest.mark.slow
def test_a_preset_conditioned_recipe_is_a_deviation_and_audits_as_trained(tiny_corpus, tmp_path):
    """--preset-norm ladder is not the ADR-0303 recipe (the fork's trainer uses 0.5): the
    verdict names it; and the audit retrains with the recorded convention, so the run's
    own predictions reproduce."""
    from frreg.cli import train as train_cli

    loso = tmp_path / "loso"
    argv = ["--corpus", str(tiny_corpus), "--out-dir", str(loso), "--epochs", "30"]
    assert train_cli.main([*argv, "--preset-norm", "ladder"]) == EXIT_OK
    assert validate(loso, "--audit", "all") == EXIT_OK
    doc = json.loads((loso / PROMOTE_FILE).read_text())
    assert "preset_norm ladder (ADR-0303: fixed)" in doc["adr_0303"]["deviations"]
    assert "preset_norm ladder (ADR-0303: fixed)" in doc["verdict_line"]
    audit = doc["verification"]["audit"]
    assert audit["retrained"] == audit["candidates"] > 0
    assert all(job["passed"] for job in audit["jobs"])
