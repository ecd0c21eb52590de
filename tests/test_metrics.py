"""PLCC, SROCC and RMSE against scipy / numpy as independent oracles."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from frreg.training.metrics import average_ranks, plcc, rmse, srocc

# Small integer-valued floats produce plenty of ties, which is where SROCC goes wrong.
values = st.lists(st.integers(-5, 5).map(float), min_size=3, max_size=40)


@given(values, st.data())
def test_srocc_matches_scipy_spearman_with_ties(a, data):
    b = data.draw(st.lists(st.integers(-5, 5).map(float), min_size=len(a), max_size=len(a)))
    ours = srocc(np.array(a), np.array(b))
    if len(set(a)) < 2 or len(set(b)) < 2:
        assert ours is None
    else:
        assert ours == pytest.approx(stats.spearmanr(a, b).statistic, abs=1e-12)


# Millesimal values in a bounded range: real scores, not denormals whose
# products underflow (there the two implementations disagree about "constant").
scores = st.integers(-(10**6), 10**6).map(lambda i: i / 1000)


@given(st.lists(scores, min_size=3, max_size=40), st.data())
def test_plcc_matches_scipy_pearson(a, data):
    b = data.draw(st.lists(scores, min_size=len(a), max_size=len(a)))
    ours = plcc(np.array(a), np.array(b))
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        assert ours is None
        return
    expected = stats.pearsonr(a, b).statistic
    if math.isfinite(expected):
        assert ours == pytest.approx(expected, abs=1e-9)


@given(values)
def test_average_ranks_match_scipy_rankdata(a):
    np.testing.assert_allclose(average_ranks(np.array(a)), stats.rankdata(a, method="average"))


def test_rmse():
    assert rmse(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0])) == pytest.approx(
        math.sqrt(4 / 3)
    )


def test_undefined_correlations_are_none_not_nan():
    # A constant whose mean does not round-trip exactly must still be "constant".
    assert plcc(np.array([30.793, 30.793, 30.793]), np.array([0.0, 0.0, 0.001])) is None
    const = np.ones(5)
    ramp = np.arange(5.0)
    assert plcc(const, ramp) is None
    assert srocc(ramp, const) is None
    assert plcc(ramp, np.array([0, 1, np.nan, 3, 4])) is None
    assert rmse(ramp, np.array([0, 1, np.inf, 3, 4])) is None


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="3 targets vs 2 predictions"):
        plcc(np.arange(3.0), np.arange(2.0))
