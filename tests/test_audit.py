"""The audit is evidence: every job by default, a partial audit that cannot be re-rolled,
failures remembered, and clones found by content rather than bytes.

The forgery here is the smallest an adversary can make: one (seed, fold) job of
20 replaced by a real model of another seed (its weights, predictions, metrics
and digests all consistent), so every recomputation agrees and only retraining
that one job can tell.
"""

from __future__ import annotations

import csv
import io
import json
import random
import shutil
from pathlib import Path
from typing import Any

import pytest
from forgery import forge_one_job, sha

from conftest import LENIENT_GATE
from frreg.cli import validate as validate_cli
from frreg.corpus import load_corpus
from frreg.gate.audit_log import AUDIT_FAILURES_FILE
from frreg.gate.checks import load_loso_dir
from frreg.gate.evidence import (
    audit_selection,
    detection_probability,
    recompute,
)
from frreg.schema import EXIT_FAIL, EXIT_OK, HOLD_FILE, PROMOTE_FILE

SEEDS = (0, 1, 2, 3, 4)


def _evidence(corpus: Path, loso: Path) -> tuple[Any, list[Any]]:
    loaded = load_corpus(corpus)
    arts = load_loso_dir(loso, SEEDS)
    return loaded, [recompute(a, loaded) for _, a in sorted(arts.items())]


def _verdict(loso: Path) -> dict[str, Any]:
    name = PROMOTE_FILE if (loso / PROMOTE_FILE).exists() else HOLD_FILE
    return json.loads((loso / name).read_text())


@pytest.fixture
def forged(loso_copy: tuple[Path, Path]) -> tuple[Path, Path, str]:
    corpus, loso = loso_copy
    source = load_corpus(corpus).sources[2]
    forge_one_job(loso, 3, 1, source)
    return corpus, loso, source


def test_one_forged_job_is_consistent_on_its_face_and_the_default_audit_finds_it(forged):
    _corpus, loso, source = forged
    assert validate_cli.main([str(loso), *LENIENT_GATE, "--audit", "0"]) == EXIT_OK
    assert _verdict(loso)["verification"]["seeds"]["3"]["verified"] is True

    assert validate_cli.main([str(loso), *LENIENT_GATE]) == EXIT_FAIL  # --audit all
    audit = _verdict(loso)["verification"]["audit"]
    assert audit["requested"] == "all"
    assert audit["retrained"] == audit["candidates"] == 20
    [failed] = [j for j in audit["jobs"] if not j["passed"]]
    assert (failed["seed"], failed["held_out"]) == (3, source)


def test_a_partial_audit_is_the_same_on_every_run_and_says_its_odds(loso_copy):
    corpus, loso = loso_copy
    loaded, evidence = _evidence(corpus, loso)
    first = [(ev.seed, src) for ev, src in audit_selection(evidence, loaded, 3)]
    loaded2, evidence2 = _evidence(corpus, loso)
    again = [(ev.seed, src) for ev, src in audit_selection(evidence2, loaded2, 3)]
    assert first == again  # the artifacts' content draws it, not system entropy
    wider = [(ev.seed, src) for ev, src in audit_selection(evidence, loaded, 7)]
    assert set(first) <= set(wider)  # a larger K extends the selection
    assert len(set(wider)) == 7

    assert validate_cli.main([str(loso), *LENIENT_GATE, "--audit", "3"]) == EXIT_OK
    check = next(c for c in _verdict(loso)["gate"]["checks"] if c["name"] == "audit")
    assert "3 of 20" in check["message"]
    assert f"{detection_probability(20, 3):.1%}" in check["message"]  # 15.0 %


def test_the_selection_follows_content_not_bytes(loso_copy):
    corpus, loso = loso_copy
    loaded, evidence = _evidence(corpus, loso)
    before = [(ev.seed, src) for ev, src in audit_selection(evidence, loaded, 5)]
    # The same numbers written differently (JSON re-indented): the same draw.
    for seed in SEEDS:
        path = loso / f"loso_seed{seed}.json"
        path.write_text(json.dumps(json.loads(path.read_text()), indent=4))
    loaded, evidence = _evidence(corpus, loso)
    assert [(ev.seed, src) for ev, src in audit_selection(evidence, loaded, 5)] == before


def test_a_failed_audit_is_remembered_whatever_k_is_asked_next(forged):
    corpus, loso, source = forged
    assert validate_cli.main([str(loso), *LENIENT_GATE]) == EXIT_FAIL
    assert (loso / AUDIT_FAILURES_FILE).is_file()
    loaded, evidence = _evidence(corpus, loso)
    # A one-job audit whose draw misses the forged job (find such a K-prefix: K = 1).
    picked = [(ev.seed, src) for ev, src in audit_selection(evidence, loaded, 1)]
    assert picked != [(3, source)] or pytest.skip("the one-job draw is the forged job itself")
    assert validate_cli.main([str(loso), *LENIENT_GATE, "--audit", "1"]) == EXIT_FAIL
    verdict = _verdict(loso)
    assert "failed before on these same artifacts" in verdict["recommendation"]
    # Re-running does not re-roll either.
    assert validate_cli.main([str(loso), *LENIENT_GATE, "--audit", "1"]) == EXIT_FAIL


def test_the_memory_follows_the_artifacts(forged, trained_loso):
    _corpus, loso, _ = forged
    assert validate_cli.main([str(loso), *LENIENT_GATE]) == EXIT_FAIL
    # The honest files back: nothing remembered applies to them.
    _, honest = trained_loso
    for path in honest.iterdir():
        shutil.copy(path, loso / path.name)
    assert validate_cli.main([str(loso), *LENIENT_GATE]) == EXIT_OK


def test_clones_are_found_by_content_with_shuffled_rows(loso_copy, capsys):
    _corpus, loso = loso_copy
    for seed in (1, 2, 3, 4):
        doc = json.loads((loso / "loso_seed0.json").read_text())
        doc["seed"] = doc["config"]["seed"] = seed
        rows = list(csv.reader(io.StringIO((loso / "loso_seed0.predictions.csv").read_text())))
        body = rows[1:]
        random.Random(seed).shuffle(body)  # different bytes, the same numbers
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows([rows[0], *body])
        pred = loso / f"loso_seed{seed}.predictions.csv"
        pred.write_text(buf.getvalue())
        shutil.copy(loso / "loso_seed0.weights.npz", loso / f"loso_seed{seed}.weights.npz")
        doc["predictions"] = {"file": pred.name, "sha256": sha(pred)}
        weights = loso / f"loso_seed{seed}.weights.npz"
        doc["weights"] = {"file": weights.name, "sha256": sha(weights)}
        (loso / f"loso_seed{seed}.json").write_text(json.dumps(doc))
    assert validate_cli.main([str(loso), *LENIENT_GATE, "--audit", "0"]) == EXIT_FAIL
    said = capsys.readouterr().out
    assert "seeds 0, 1, 2, 3, 4 have identical predictions" in said


def test_detection_probability_is_the_hypergeometric_one():
    from scipy.stats import hypergeom

    for n, k, m in [(45, 1, 1), (45, 10, 1), (45, 5, 9), (20, 20, 1), (20, 0, 3)]:
        oracle = 1.0 - hypergeom(n, m, k).pmf(0)
        assert detection_probability(n, k, m) == pytest.approx(oracle, abs=1e-12)
    assert detection_probability(45, 45) == 1.0
