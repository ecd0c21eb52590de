"""What the intervals claim, against MAPIE and direct computations.

The shipped absolute ``q`` is MAPIE's cross-conformal "base" half-width with
``LeaveOneGroupOut`` folds; the nested per-source coverage is MAPIE's split
conformal calibrated on the other sources; the fork's normalised
``conformal_q_residual`` is MAPIE's split conformal with its residual-normalised
score (the members' sigma as the prefit residual model) and a numpy quantile
with the conformal (n + 1) correction; the source-level option and the number
of sources a level needs are checked against plain loops.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from mapie.conformity_scores import ResidualNormalisedScore
from mapie.regression import CrossConformalRegressor, SplitConformalRegressor
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import LeaveOneGroupOut, cross_val_predict

from frreg.corpus import load_corpus
from frreg.gate.ensemble import (
    ABSOLUTE_METHOD,
    GAUSSIAN_BAND,
    NORMALISED_RULE,
    conformal_calibration,
    conformal_quantile,
    ensemble_evidence,
    inside_normalised,
    members_sigma,
    normalised_quantile,
    normalised_scores,
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


@pytest.mark.parametrize("which", ["normalised", "absolute"])
def test_nested_and_in_sample_coverage_differ_where_one_source_is_off(corpus, predictions, which):
    """The shifted source's scores widen the shipped q (in-sample), but a q calibrated
    without it (nested) covers it far less: the honest figure is the nested one. Both
    intervals, each in its own block of the manifest's confidence."""
    cal = conformal_calibration(corpus, predictions)
    bad = getattr(cal, which).per_source[corpus.sources[2]]
    assert bad["coverage_held_out"] < bad["coverage_at_shipped_q"] - 0.1
    top = cal.to_json()
    doc = top if which == "normalised" else top["absolute"]
    assert "in-sample" in doc["per_source_fields"]["coverage_at_shipped_q"]
    assert doc["per_source_fields"]["coverage_held_out"].startswith("nested")
    nested = doc["nested_coverage"]
    assert nested["worst"] == {"source": corpus.sources[2], "coverage": bad["coverage_held_out"]}
    assert nested["pooled"] == doc["pooled_coverage_loso_conformal"]
    assert nested["n_sources"] == len(corpus.sources)
    assert nested["sources_needed_per_source"] == 19
    assert nested["source_level_q"] is None  # five sources cannot support it at 0.95
    assert "not per source" in doc["guarantee"]


# --------------------------------------------------------------------------
# The fork's normalised interval (conformal_q_residual: mu ± q·sigma)
# --------------------------------------------------------------------------


def _mu_sigma(predictions: dict[int, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    stack = np.vstack([predictions[s] for s in sorted(predictions)])
    return stack.mean(axis=0), stack.std(axis=0, ddof=1)


def _mapie_normalised(mu, sigma, y, cal_rows, level):
    """MAPIE's split conformal with the residual-normalised score, mu and the members' sigma
    as prefit models (row number in, stored value out): the q it applies, per row."""
    rows = np.arange(len(y), dtype=float).reshape(-1, 1)
    score = ResidualNormalisedScore(residual_estimator=Lookup(sigma).fit(rows), prefit=True)
    mapie = SplitConformalRegressor(
        Lookup(mu).fit(rows), confidence_level=level, conformity_score=score, prefit=True
    ).conformalize(rows[cal_rows], y[cal_rows])
    _, bounds = mapie.predict_interval(rows)
    return bounds[:, 0, 0], bounds[:, 1, 0]


@pytest.mark.parametrize("level", [0.9, 0.95])
def test_conformal_q_residual_is_mapies_normalised_split_conformal(corpus, predictions, level):
    """Shipped q: MAPIE calibrated on every LOSO row; per source: MAPIE calibrated on the
    other sources' rows, and the coverage its interval gives the source."""
    mu, sigma = _mu_sigma(predictions)
    y = corpus.target
    cal = conformal_calibration(corpus, predictions, level=level)
    lo, hi = _mapie_normalised(mu, sigma, y, np.ones(len(y), dtype=bool), level)
    np.testing.assert_allclose((hi - lo) / (2 * sigma), cal.q_normalised, rtol=1e-12)
    for src in corpus.sources:
        mine = corpus.groups == src
        lo, hi = _mapie_normalised(mu, sigma, y, ~mine, level)
        facts = cal.normalised.per_source[src]
        q_without = float(((hi - lo) / (2 * sigma))[mine][0])
        assert facts["q_without_source"] == pytest.approx(q_without, rel=1e-12)
        inside = (y[mine] >= lo[mine]) & (y[mine] <= hi[mine])
        assert facts["coverage_held_out"] == pytest.approx(inside.mean())


@pytest.mark.parametrize("n_rows", [19, 57, 400, 401])
def test_conformal_q_residual_is_the_numpy_quantile_with_the_n_plus_1_correction(n_rows):
    """The fork's definition, from its trainer's documented steps, with numpy: sigma the
    members' sample standard deviation (ddof=1), the score |y - mu| / max(sigma, 1e-6), q
    the ceil((n + 1) 0.95) / n quantile (inverted CDF: an order statistic)."""
    rng = np.random.default_rng(n_rows)
    members = rng.normal(50, 1, size=(5, n_rows)) * rng.uniform(0.5, 2, n_rows)
    members[:, 3] = members[0, 3]  # a row where the members agree: sigma 0, the floor applies
    y = members.mean(axis=0) + rng.standard_t(4, n_rows) * 2
    mu, sigma = members.mean(axis=0), members.std(axis=0, ddof=1)
    scores = np.abs(y - mu) / np.maximum(sigma, 1e-6)
    level = math.ceil((n_rows + 1) * 0.95) / n_rows
    expected = float(np.quantile(scores, level, method="inverted_cdf"))
    assert normalised_quantile(scores) == expected
    np.testing.assert_array_equal(members_sigma(members), sigma)
    np.testing.assert_array_equal(normalised_scores(np.abs(y - mu), sigma), scores)
    covered = inside_normalised(y, mu, sigma, expected)
    np.testing.assert_array_equal(
        covered, (y >= mu - expected * sigma) & (y <= mu + expected * sigma)
    )
    assert covered.mean() >= 0.95 - 1 / n_rows  # the order statistic's row, less rounding
    assert not covered[3]  # sigma 0: a zero-width interval


def test_too_few_rows_give_no_normalised_q_where_the_fork_would_clip():
    """Below ceil((n + 1) 0.95) <= n (n < 19) the fork's trainer clips to the largest score,
    a coverage the rows cannot support; frreg states none (inf, null in JSON)."""
    assert normalised_quantile(np.arange(1.0, 19.0)) == math.inf
    assert normalised_quantile(np.arange(1.0, 20.0)) == 19.0


def test_the_fork_rule_covers_what_the_calibration_states(corpus, predictions):
    """mu ± q·sigma on the LOSO rows, computed here as the fork's consumer does, covers the
    share the calibration states (in-sample: at least the nominal level), and each nested
    figure is the share of the source inside its own q."""
    mu, sigma = _mu_sigma(predictions)
    y = corpus.target
    cal = conformal_calibration(corpus, predictions)
    q = cal.q_normalised
    inside = (y >= mu - q * sigma) & (y <= mu + q * sigma)
    assert cal.normalised.coverage_in_sample == pytest.approx(inside.mean())
    assert inside.mean() >= 0.95
    nested = np.zeros(len(y), dtype=bool)
    for src, facts in cal.normalised.per_source.items():
        mine = corpus.groups == src
        qs = facts["q_without_source"]
        nested[mine] = (y[mine] >= mu[mine] - qs * sigma[mine]) & (
            y[mine] <= mu[mine] + qs * sigma[mine]
        )
    assert cal.normalised.coverage_nested == pytest.approx(nested.mean())
    doc = cal.to_json()
    assert doc["conformal_q_residual"] == q
    assert doc["rule"] == NORMALISED_RULE
    assert doc["absolute"]["method"] == ABSOLUTE_METHOD
    assert doc["absolute"]["conformal_half_width"] == cal.q
    # The evidence (the verdict's) carries the same normalised figures.
    ev = ensemble_evidence(corpus, predictions, strong_baseline=False)
    assert ev.shipped_q_normalised == q
    assert ev.pooled_coverage_normalised == pytest.approx(nested.mean())
    block = ev.to_json()["intervals"]["normalised"]
    assert block["conformal_q_residual"] == q
    assert block["nested_coverage_pooled"] == pytest.approx(nested.mean())


def test_the_absolute_key_read_by_the_forks_rule_is_what_the_issue_measured(corpus, predictions):
    """Why the key's meaning matters: the absolute half-width (VMAF points) read as a
    multiple of sigma gives another interval, whose coverage is not the stated one."""
    mu, sigma = _mu_sigma(predictions)
    y = corpus.target
    cal = conformal_calibration(corpus, predictions)
    misread = (y >= mu - cal.q * sigma) & (y <= mu + cal.q * sigma)
    right = (y >= mu - cal.q_normalised * sigma) & (y <= mu + cal.q_normalised * sigma)
    assert cal.q != pytest.approx(cal.q_normalised)
    assert abs(misread.mean() - right.mean()) > 0.01
    assert right.mean() >= 0.95


def test_members_that_never_disagree_are_refused_not_given_an_absolute_q(corpus, predictions):
    """The fork falls back to plain residuals under the same key when every sigma is below
    1e-6; frreg refuses (the key keeps one meaning), and the evidence says not computed."""
    same = {s: predictions[0] for s in range(5)}
    with pytest.raises(ValueError, match="no spread to scale"):
        conformal_calibration(corpus, same)
    ev = ensemble_evidence(corpus, same, strong_baseline=False)
    assert ev.shipped_q_normalised == math.inf
    assert math.isnan(ev.pooled_coverage_normalised)
    doc = ev.to_json()
    assert doc["intervals"]["normalised"]["conformal_q_residual"] is None
    assert all(v["coverage_normalised"] is None for v in doc["sources"].values())
    json.dumps(doc, allow_nan=False)  # strict JSON


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
