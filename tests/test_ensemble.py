"""Ensemble evidence against independent oracles: scipy, scikit-learn, direct quantiles."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import LeaveOneGroupOut

from frreg.corpus import load_corpus
from frreg.gate.ensemble import (
    GAUSSIAN_Z,
    conformal_quantile,
    ensemble_evidence,
    ols_fold_predictions,
)
from frreg.synthetic import synthetic_rows, write_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    rows = synthetic_rows(n_sources=4, encoders=("libx264", "libx265"), cqs=(22, 34, 46), frames=10)
    return load_corpus(write_corpus(tmp_path_factory.mktemp("ens") / "c.jsonl", rows))


@pytest.fixture(scope="module")
def predictions(corpus):
    rng = np.random.default_rng(3)
    return {s: corpus.target + rng.normal(0.5 * s, 2.0 + s, corpus.n_rows) for s in range(5)}


def test_conformal_quantile_is_the_finite_sample_order_statistic():
    r = np.arange(1, 20, dtype=float)  # n = 19: ceil(20 * 0.95) = 19 -> the largest
    assert conformal_quantile(r) == 19.0
    assert conformal_quantile(r[:18]) == math.inf  # too few residuals for 95 %
    rng = np.random.default_rng(0)
    for n in (20, 57, 400):
        x = rng.exponential(size=n)
        k = math.ceil((n + 1) * 0.95)
        assert conformal_quantile(x) == np.sort(x)[k - 1]
        assert conformal_quantile(x) == np.quantile(x, k / n, method="inverted_cdf")


def test_ols_baseline_matches_scikit_learn(corpus):
    logo = LeaveOneGroupOut().split(corpus.features, groups=corpus.groups)
    for train, test in logo:
        ours = ols_fold_predictions(corpus, train, test)
        mean, std = corpus.features[train].mean(0), corpus.features[train].std(0)
        scale = np.where(std > 0, std, 1.0)

        def design(idx, mean=mean, scale=scale):
            return np.hstack([(corpus.features[idx] - mean) / scale, corpus.codec[idx]])

        theirs = LinearRegression().fit(design(train), corpus.target[train]).predict(design(test))
        np.testing.assert_allclose(ours, theirs, rtol=1e-7, atol=1e-7)


def test_every_statistic_against_a_direct_computation(corpus, predictions):
    ev = ensemble_evidence(corpus, predictions)
    stack = np.vstack([predictions[s] for s in range(5)])
    mu, sigma = stack.mean(0), stack.std(0, ddof=1)
    y = corpus.target
    resid = np.abs(y - mu)
    assert [s.source for s in ev.sources] == list(corpus.sources)
    for src in ev.sources:
        te = corpus.groups == src.source
        assert src.n_rows == te.sum()
        assert src.ensemble_plcc == pytest.approx(
            stats.pearsonr(y[te], mu[te]).statistic, abs=1e-12
        )
        assert src.ensemble_srocc == pytest.approx(
            stats.spearmanr(y[te], mu[te]).statistic, abs=1e-12
        )
        assert src.ensemble_rmse == pytest.approx(np.sqrt(np.mean((y[te] - mu[te]) ** 2)))
        assert src.bias == pytest.approx(np.mean(y[te] - mu[te]))
        assert src.coverage_gaussian == pytest.approx(np.mean(resid[te] <= GAUSSIAN_Z * sigma[te]))
        others = np.sort(resid[~te])
        q = others[math.ceil((len(others) + 1) * 0.95) - 1]
        assert src.conformal_q == q
        assert src.coverage_conformal == pytest.approx(np.mean(resid[te] <= q))
        per_seed = [stats.pearsonr(y[te], stack[i, te]).statistic for i in range(5)]
        assert src.seed_plcc_std == pytest.approx(np.std(per_seed, ddof=1), abs=1e-12)
        train = np.flatnonzero(~te)
        base = LinearRegression().fit(
            np.hstack([corpus.features[train], corpus.codec[train]]), y[train]
        )  # OLS is invariant to the features' affine scaling
        base_pred = base.predict(np.hstack([corpus.features[te], corpus.codec[te]]))
        assert src.baseline_plcc == pytest.approx(
            stats.pearsonr(y[te], base_pred).statistic, abs=1e-9
        )
        assert src.margin_plcc == pytest.approx(src.ensemble_plcc - src.baseline_plcc)
    assert ev.pooled_plcc["ensemble"] == pytest.approx(stats.pearsonr(y, mu).statistic, abs=1e-12)
    for s in range(5):
        assert ev.pooled_plcc[str(s)] == pytest.approx(
            stats.pearsonr(y, stack[s]).statistic, abs=1e-12
        )


def test_spread_interval_contains_the_observed_spread_and_is_reproducible(corpus, predictions):
    a = ensemble_evidence(corpus, predictions)
    b = ensemble_evidence(corpus, predictions)
    assert a.spread_interval == b.spread_interval
    assert a.spread is not None
    assert a.spread_interval is not None
    lo, hi = a.spread_interval
    assert 0 <= lo <= hi


def test_evidence_that_cannot_be_computed_raises(corpus, predictions):
    with pytest.raises(ValueError, match="at least two seeds"):
        ensemble_evidence(corpus, {0: predictions[0]})
    bad = dict(predictions)
    bad[2] = np.where(np.arange(corpus.n_rows) == 5, np.nan, predictions[2])
    with pytest.raises(ValueError, match="finite held-out prediction"):
        ensemble_evidence(corpus, bad)
