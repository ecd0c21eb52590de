"""The report's baselines, against scikit-learn called directly on the same folds.

The strong baseline is a nu-SVR in libvmaf's vmaf_v0.6.1 recipe (the
``baselines`` extra); the in-fold OLS needs nothing. Without the extra the
report shows "—" and one note naming it, and the gate's checks are the same.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import LeaveOneGroupOut
from sklearn.preprocessing import MinMaxScaler
from sklearn.svm import NuSVR

from frreg.corpus import load_corpus
from frreg.gate.checks import GateReport, Thresholds, evidence_checks
from frreg.gate.ensemble import (
    SVR_MAX_ROWS,
    SVR_MISSING,
    SVR_SEED,
    ensemble_evidence,
    svr_loso_predictions,
)
from frreg.gate.report import evidence_lines, markdown
from frreg.synthetic import synthetic_rows, write_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    # 4 sources x 960 rows: every fold trains on 2,880 rows, so the subsample is exercised.
    rows = synthetic_rows(n_sources=4, encoders=("libx264", "libx265"), cqs=(22, 30, 38, 46),
                          frames=120)  # fmt: skip
    return load_corpus(write_corpus(tmp_path_factory.mktemp("bl") / "c.jsonl", rows))


@pytest.fixture(scope="module")
def predictions(corpus):
    rng = np.random.default_rng(11)
    return {s: corpus.target + rng.normal(0.1 * s, 1.5, corpus.n_rows) for s in range(3)}


def svr_oracle(corpus) -> np.ndarray:
    """vmaf's recipe written with scikit-learn's own pieces, fold by fold."""
    out = np.empty(corpus.n_rows)
    for train, test in LeaveOneGroupOut().split(corpus.features, groups=corpus.groups):
        assert len(train) > SVR_MAX_ROWS
        rng = np.random.default_rng(SVR_SEED)
        fit = np.sort(rng.choice(train, size=SVR_MAX_ROWS, replace=False))
        x_scale = MinMaxScaler().fit(corpus.features[fit])
        y_scale = MinMaxScaler().fit(corpus.target[fit].reshape(-1, 1))
        model = NuSVR(kernel="rbf", nu=0.9, C=4.0, gamma=0.04).fit(
            x_scale.transform(corpus.features[fit]),
            y_scale.transform(corpus.target[fit].reshape(-1, 1)).ravel(),
        )
        pred = model.predict(x_scale.transform(corpus.features[test]))
        out[test] = np.clip(y_scale.inverse_transform(pred.reshape(-1, 1)).ravel(), 0, 100)
    return out


def rmse(a, b) -> float:
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def test_svr_rmse_per_source_matches_scikit_learn_on_the_same_folds(corpus, predictions):
    ev = ensemble_evidence(corpus, predictions)
    theirs = svr_oracle(corpus)
    y = corpus.target
    assert ev.svr_note is None
    for src in ev.sources:
        rows = corpus.groups == src.source
        assert src.svr_rmse == pytest.approx(rmse(y[rows], theirs[rows]), rel=1e-9)
        assert src.svr_plcc == pytest.approx(np.corrcoef(y[rows], theirs[rows])[0, 1], rel=1e-9)
    assert ev.pooled_rmse_svr == pytest.approx(rmse(y, theirs), rel=1e-9)
    doc = ev.to_json()
    assert doc["strong_baseline"]["computed"] is True
    assert "vmaf_v0.6.1" in doc["strong_baseline"]["method"]
    assert all(v["svr_rmse"] is not None for v in doc["sources"].values())


def test_ols_and_ensemble_rmse_pooled_and_per_source(corpus, predictions):
    ev = ensemble_evidence(corpus, predictions, strong_baseline=False)
    y = corpus.target
    ols = np.empty(corpus.n_rows)
    for train, test in LeaveOneGroupOut().split(corpus.features, groups=corpus.groups):
        design = np.hstack([corpus.features, corpus.codec])
        ols[test] = LinearRegression().fit(design[train], y[train]).predict(design[test])
    mu = np.mean([predictions[s] for s in range(3)], axis=0)
    for src in ev.sources:
        rows = corpus.groups == src.source
        assert src.baseline_rmse == pytest.approx(rmse(y[rows], ols[rows]), rel=1e-7)
    assert ev.pooled_rmse_ols == pytest.approx(rmse(y, ols), rel=1e-7)
    assert ev.pooled_rmse == pytest.approx(rmse(y, mu), rel=1e-12)


def test_the_svr_runs_once_per_corpus(corpus):
    assert svr_loso_predictions(corpus) is svr_loso_predictions(corpus)


def test_the_report_shows_every_rmse_beside_the_ensemble(corpus, predictions):
    ev = ensemble_evidence(corpus, predictions)
    lines = evidence_lines(ev)
    at = [lines[0].index(name) for name in ("ens RMSE", "OLS RMSE", "SVR RMSE")]
    assert at == sorted(at)
    pooled = next(line for line in lines if line.startswith("pooled ") and "PLCC:" not in line)
    assert f"{ev.pooled_rmse_svr:.2f}" in pooled
    assert f"{ev.pooled_rmse_ols:.2f}" in pooled
    assert SVR_MISSING not in "\n".join(lines)


def test_without_the_extra_the_column_says_so_and_the_checks_do_not_change(
    corpus, predictions, monkeypatch
):
    with_extra = ensemble_evidence(corpus, predictions)
    monkeypatch.setitem(sys.modules, "sklearn.svm", None)  # `import sklearn.svm` now fails
    without = ensemble_evidence(corpus, predictions)
    assert without.svr_note == SVR_MISSING
    assert "pip install 'frreg[baselines]'" in SVR_MISSING
    assert all(s.svr_rmse is None and s.svr_plcc is None for s in without.sources)
    assert without.pooled_rmse_svr is None

    lines = evidence_lines(without)
    svr_col = lines[0].index("SVR RMSE") + len("SVR RMSE")
    for line in lines[2 : 2 + len(corpus.sources)]:
        assert line[:svr_col].rstrip().endswith("—")
    assert lines.count(SVR_MISSING) == 1
    md = markdown(GateReport(), [], {}, evidence=without)
    assert md.count(SVR_MISSING) == 1
    assert without.to_json()["strong_baseline"] == {
        "method": with_extra.to_json()["strong_baseline"]["method"],
        "computed": False,
        "note": SVR_MISSING,
    }

    # A verdict must not change with an install: every check reads the same.
    for th in (Thresholds(), Thresholds(strict=True)):
        a = [c.to_json() for c in evidence_checks(with_extra, th)]
        b = [c.to_json() for c in evidence_checks(without, th)]
        assert a == b


def test_a_failing_svr_is_a_note_not_missing_evidence(corpus, predictions, monkeypatch):
    from frreg.gate import ensemble

    def broken(*args, **kwargs):
        raise ValueError("solver refused")

    monkeypatch.setattr(ensemble, "_SVR_CACHE", {})
    monkeypatch.setattr(ensemble, "svr_fold_predictions", broken)
    ev = ensemble_evidence(corpus, predictions)
    assert ev.svr_note == "SVR baseline not computed: ValueError: solver refused"
    assert ev.pooled_rmse_svr is None
    assert ev.svr_note in evidence_lines(ev)
