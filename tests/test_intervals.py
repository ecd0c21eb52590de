"""What the intervals claim, against MAPIE and direct computations.

The shipped ``q`` is MAPIE's cross-conformal "base" half-width with
``LeaveOneGroupOut`` folds; the nested per-source coverage is MAPIE's split
conformal calibrated on the other sources; the source-level option and the
number of sources a level needs are checked against plain loops.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from mapie.regression import CrossConformalRegressor, SplitConformalRegressor
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import LeaveOneGroupOut, cross_val_predict

from frreg.corpus import load_corpus
from frreg.gate.ensemble import (
    GAUSSIAN_BAND,
    conformal_calibration,
    conformal_quantile,
    ensemble_evidence,
    source_level_quantile,
    sources_needed,
)
from frreg.gate.report import evidence_lines, markdown
from frreg.synthetic import synthetic_rows, write_corpus


class Lookup(RegressorMixin, BaseEstimator):
    """A prefit regressor whose input is a row number and whose output is a stored
    prediction: MAPIE calibrates frreg's own held-out predictions through it."""

    def __init__(self, values: np.ndarray | None = None) -> None:
        self.values = values

    def fit(self, X, y=None):
        self.n_features_in_ = 1
        return self

    def predict(self, X):
        return np.asarray(self.values)[np.asarray(X)[:, 0].astype(int)]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    rows = synthetic_rows(n_sources=5, encoders=("libx264",), cqs=(22, 34, 46), frames=40)
    return load_corpus(write_corpus(tmp_path_factory.mktemp("iv") / "c.jsonl", rows))


@pytest.fixture(scope="module")
def predictions(corpus):
    """Five members; one source is off by more than the others' spread."""
    rng = np.random.default_rng(7)
    off = np.where(corpus.groups == corpus.sources[2], 6.0, 0.0)
    return {s: corpus.target + off + rng.normal(0.2 * s, 2.0, corpus.n_rows) for s in range(5)}


@pytest.mark.parametrize("level", [0.9, 0.95])
def test_shipped_q_is_mapies_group_cross_conformal_base_half_width(level):
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(6), 80)
    x = rng.normal(size=(len(groups), 3))
    y = x @ [1.0, 2.0, 3.0] + 0.7 * groups + rng.normal(size=len(groups))
    held_out = cross_val_predict(LinearRegression(), x, y, groups=groups, cv=LeaveOneGroupOut())
    mapie = CrossConformalRegressor(
        LinearRegression(), confidence_level=level, method="base", cv=LeaveOneGroupOut()
    ).fit_conformalize(x, y, groups=groups)
    _, bounds = mapie.predict_interval(x[:3])
    half = (bounds[:, 1, 0] - bounds[:, 0, 0]) / 2
    np.testing.assert_allclose(half, conformal_quantile(np.abs(y - held_out), level), rtol=1e-12)


@pytest.mark.parametrize("level", [0.9, 0.95])
def test_nested_per_source_coverage_is_mapies_split_conformal_on_the_other_sources(
    corpus, predictions, level
):
    ev = ensemble_evidence(corpus, predictions, strong_baseline=False, level=level)
    mu = np.vstack([predictions[s] for s in range(5)]).mean(axis=0)
    rows = np.arange(corpus.n_rows, dtype=float).reshape(-1, 1)
    inside = np.zeros(corpus.n_rows, dtype=bool)
    for src in ev.sources:
        mine = corpus.groups == src.source
        mapie = SplitConformalRegressor(
            Lookup(mu).fit(rows), confidence_level=level, prefit=True
        ).conformalize(rows[~mine], corpus.target[~mine])
        _, bounds = mapie.predict_interval(rows[mine])
        lo, hi = bounds[:, 0, 0], bounds[:, 1, 0]
        assert src.conformal_q == pytest.approx(float((hi - lo)[0]) / 2, rel=1e-12)
        inside[mine] = (corpus.target[mine] >= lo) & (corpus.target[mine] <= hi)
        assert src.coverage_conformal == pytest.approx(inside[mine].mean())
    assert ev.pooled_coverage_conformal == pytest.approx(inside.mean())
    worst = min(ev.sources, key=lambda s: s.coverage_conformal)
    assert ev.nested_worst == worst
    block = ev.to_json()["intervals"]
    assert block["level"] == level
    assert block["nested_coverage_pooled"] == ev.pooled_coverage_conformal
    assert block["nested_coverage_worst"] == {
        "source": worst.source,
        "coverage": worst.coverage_conformal,
    }
    assert block["sources_needed_per_source"] == sources_needed(level)
    assert "not per source" in block["shipped_q_guarantee"]


def test_nested_and_in_sample_coverage_differ_where_one_source_is_off(corpus, predictions):
    """The shifted source's residuals widen the shipped q (in-sample), but a q calibrated
    without it (nested) covers it far less: the honest figure is the nested one."""
    cal = conformal_calibration(corpus, predictions)
    bad = cal.per_source[corpus.sources[2]]
    assert bad["coverage_held_out"] < bad["coverage_at_shipped_q"] - 0.1
    doc = cal.to_json()
    assert "in-sample" in doc["per_source_fields"]["coverage_at_shipped_q"]
    assert doc["per_source_fields"]["coverage_held_out"].startswith("nested")
    nested = doc["nested_coverage"]
    assert nested["worst"] == {"source": corpus.sources[2], "coverage": bad["coverage_held_out"]}
    assert nested["pooled"] == doc["pooled_coverage_loso_conformal"]
    assert nested["n_sources"] == len(corpus.sources)
    assert nested["sources_needed_per_source"] == 19
    assert nested["source_level_q"] is None  # five sources cannot support it at 0.95
    assert "not per source" in doc["guarantee"]


@pytest.mark.parametrize(("level", "needed"), [(0.95, 19), (0.9, 9), (0.8, 4), (0.5, 1)])
def test_sources_needed_is_where_the_conformal_quantile_becomes_finite(level, needed):
    assert sources_needed(level) == needed
    assert math.isfinite(conformal_quantile(np.arange(float(needed)), level))
    if needed > 1:
        assert conformal_quantile(np.arange(float(needed - 1)), level) == math.inf
    assert needed >= 1 / (1 - level) - 1 - 1e-9


def test_sources_needed_refuses_a_level_outside_the_unit_interval():
    with pytest.raises(ValueError, match="level must lie in"):
        sources_needed(1.0)


@pytest.mark.parametrize("n_sources", [18, 19, 25])
def test_source_level_quantile_against_a_direct_loop(n_sources):
    rng = np.random.default_rng(n_sources)
    groups = np.repeat([f"s{i:02d}" for i in range(n_sources)], 37)
    resid = np.abs(rng.standard_t(3, size=len(groups))) * rng.uniform(0.5, 3, len(groups))
    scores = []
    for g in sorted(set(groups)):
        r = resid[groups == g]
        # the smallest candidate half-width that covers 95 % of the source's rows
        scores.append(min(c for c in r if np.mean(r <= c) >= 0.95))
    k = math.ceil((n_sources + 1) * 0.95)
    expected = sorted(scores)[k - 1] if k <= n_sources else math.inf
    assert source_level_quantile(resid, groups) == expected
    assert (expected == math.inf) == (n_sources < sources_needed(0.95))


def _rendered(corpus, predictions) -> str:
    from frreg.gate.checks import GateReport, Thresholds

    ev = ensemble_evidence(corpus, predictions, strong_baseline=False)
    report = GateReport(thresholds=Thresholds(), seed_means={}, checks=[])
    text = "\n".join(evidence_lines(ev))
    text += markdown(report, [], {}, evidence=ev)
    text += json.dumps(ev.to_json(), ensure_ascii=False)
    text += json.dumps(conformal_calibration(corpus, predictions).to_json(), ensure_ascii=False)
    return text


def test_the_members_band_is_never_called_a_95_percent_interval(corpus, predictions):
    text = _rendered(corpus, predictions)
    assert "cov gauss" not in text
    assert GAUSSIAN_BAND in text
    assert "not a calibrated interval" in text
    # Nothing that names the gaussian band or sigma calls it a 95 % interval.
    for line in re.split(r"[\n.;]", text):
        if re.search(r"gauss|sigma|σ", line, re.IGNORECASE):
            assert not re.search(r"95\s*%|95 percent", line), line
