"""The fold-metric vocabulary is one record per metric (``FOLD_METRICS``).

The trainer's writer, the seed file's reader and summary, the gate's undefined
check, the evidence's recomputation and the report all iterate it: a metric
added as one record is written, read, summarised, recomputed and verified,
with no second list to forget.
"""

from __future__ import annotations

import json
import textwrap

import pytest
from factories import run_fresh, seed_doc

from frreg.errors import ArtifactError
from frreg.gate.checks import Thresholds, fold_problems
from frreg.training.metrics import FOLD_METRICS, GATE_METRIC, fold_metrics
from frreg.training.record import FORK_FIELDS, SUMMARY_FIELDS, FoldRecord, SeedRecord

#: The names the fork's trainer and validator read: same name, same meaning.
FORK_SUMMARY = ("mean_plcc", "std_plcc", "min_plcc", "max_plcc", "mean_srocc", "mean_rmse")


def test_the_vocabulary_keeps_the_fork_names_in_written_order():
    assert [m.name for m in FOLD_METRICS] == ["plcc", "srocc", "rmse"]
    assert GATE_METRIC == "plcc"
    assert SUMMARY_FIELDS == FORK_SUMMARY
    assert all(name in FORK_FIELDS for name in FORK_SUMMARY)
    fold = FoldRecord("a", 10, 5, {"plcc": 0.9, "srocc": 0.8, "rmse": 2.0})
    assert list(fold.to_json()) == ["held_out", "n_train", "n_val", "plcc", "srocc", "rmse"]


def test_each_metric_computes_what_scipy_computes():
    import numpy as np
    from scipy import stats

    rng = np.random.default_rng(0)
    y = rng.normal(size=50)
    p = y + rng.normal(scale=0.3, size=50)
    got = fold_metrics(y, p)
    assert got["plcc"] == pytest.approx(stats.pearsonr(y, p)[0], abs=1e-12)
    assert got["srocc"] == pytest.approx(stats.spearmanr(y, p)[0], abs=1e-12)
    assert got["rmse"] == pytest.approx(float(np.sqrt(np.mean((y - p) ** 2))), abs=1e-12)


@pytest.mark.parametrize(
    ("metric", "value", "ok"),
    [
        ("rmse", 71.4, True),  # an error in VMAF points: no upper bound
        ("rmse", -0.1, False),
        ("plcc", 1.5, False),
        ("srocc", -1.0, True),
    ],
)
def test_ranges_come_from_the_metric_record_not_the_field_name(tmp_path, metric, value, ok):
    doc = seed_doc(0, 0.97)
    doc["folds"][0][metric] = value
    path = tmp_path / "loso_seed0.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    if ok:
        assert SeedRecord.read(path).folds[0].metrics[metric] == value
    else:
        with pytest.raises(ArtifactError, match=rf"folds\[0\]\.{metric} is {value}, outside"):
            SeedRecord.read(path)


def test_every_undefined_metric_fails_the_fold():
    fold = FoldRecord("a", 10, 5, {"plcc": 0.9, "srocc": None, "rmse": None})
    (problem,) = fold_problems(0, fold, Thresholds())
    assert "srocc, rmse undefined" in problem


#: Run in a fresh interpreter: one record is added to the vocabulary before any
#: other frreg module is imported, then a real run is trained, gated and tampered.
_ADD_A_METRIC = textwrap.dedent(
    """
    import json, math, sys
    from pathlib import Path
    import numpy as np
    import frreg.training.metrics as metrics

    def mae(y, p):
        return float(np.mean(np.abs(np.asarray(y, float) - np.asarray(p, float))))

    metrics.FOLD_METRICS = (
        *metrics.FOLD_METRICS,
        metrics.FoldMetric("mae", "MAE", mae, 0.0, math.inf, in_fork=False),
    )

    from frreg.corpus import load_corpus
    from frreg.gate.checks import Thresholds
    from frreg.gate.evidence import recompute
    from frreg.gate.checks import SeedArtifact
    from frreg.gate.report import summary_markdown
    from frreg.synthetic import synthetic_rows, write_corpus
    from frreg.training.loso import run_loso
    from frreg.training.settings import TrainSettings

    root = Path(sys.argv[1])
    rows = synthetic_rows(n_sources=3, encoders=("libx264",), cqs=(24, 36), frames=8)
    corpus_path = write_corpus(root / "corpus.jsonl", rows)
    corpus = load_corpus(corpus_path)
    run_loso(corpus, (0,), TrainSettings(epochs=2), root / "loso")
    seed_file = root / "loso" / "loso_seed0.json"
    doc = json.loads(seed_file.read_text())
    folds = doc["folds"]
    out = {"fold_keys": list(folds[0]), "mean_mae": doc["mean_mae"],
           "fold_mae": [f["mae"] for f in folds]}
    ev = recompute(SeedArtifact.read(seed_file, 0), corpus)
    out["verified"] = ev.verified
    out["report_head"] = summary_markdown({0: ev.recomputed})[0]
    # Tamper with the new metric only: the recomputation must catch it.
    folds[0]["mae"] += 0.5
    seed_file.write_text(json.dumps(doc))
    tampered = recompute(SeedArtifact.read(seed_file, 0), corpus)
    out["tampered_problems"] = list(tampered.problems)
    print(json.dumps(out))
    """
)


@pytest.mark.slow
def test_a_metric_added_as_one_record_is_written_read_summarised_and_verified(tmp_path):
    out = run_fresh(_ADD_A_METRIC, str(tmp_path))
    assert out["fold_keys"][-1] == "mae"
    assert out["mean_mae"] == pytest.approx(sum(out["fold_mae"]) / len(out["fold_mae"]))
    assert out["verified"] is True
    assert "mean MAE" in out["report_head"]
    assert any("records mae" in p for p in out["tampered_problems"]), out["tampered_problems"]
