"""The splitter agrees with scikit-learn's LeaveOneGroupOut on the same groups."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.model_selection import LeaveOneGroupOut

from frreg.training.splits import LeaveOneSourceOut

source_ids = st.sampled_from(["Tennis_24fps", "BigBuckBunny", "crowd_run", "a", "B", "z9"])


@given(st.lists(source_ids, min_size=2, max_size=60).filter(lambda g: len(set(g)) >= 2))
def test_folds_match_leave_one_group_out(groups):
    ours = list(LeaveOneSourceOut().split(groups))
    theirs = list(LeaveOneGroupOut().split(np.zeros(len(groups)), groups=groups))
    assert len(ours) == len(theirs) == LeaveOneSourceOut().get_n_splits(groups)
    for (tr, te), (tr2, te2) in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(tr, tr2)
        np.testing.assert_array_equal(te, te2)


def test_fold_order_is_sorted_source_ids():
    groups = ["c", "a", "b", "a", "c"]
    splitter = LeaveOneSourceOut()
    assert splitter.sources(groups) == ["a", "b", "c"]
    held = [sorted({groups[i] for i in te}) for _, te in splitter.split(groups)]
    assert held == [["a"], ["b"], ["c"]]


@pytest.mark.parametrize("groups", [[], ["only", "only"]])
def test_fewer_than_two_sources_is_a_value_error_naming_them(groups):
    with pytest.raises(ValueError, match=r"at least two distinct sources, found \d"):
        list(LeaveOneSourceOut().split(groups))


@given(st.lists(source_ids, min_size=2, max_size=60).filter(lambda g: len(set(g)) >= 2))
def test_test_indices_are_views_of_one_array_and_jobs_derive_their_training_rows(groups):
    from frreg.training.settings import FoldJob

    folds = LeaveOneSourceOut().test_indices(groups)
    theirs = list(LeaveOneGroupOut().split(np.zeros(len(groups)), groups=groups))
    bases = {id(te.base) for _, te in folds}
    assert len(bases) == 1  # O(rows) in all, however many folds
    for (src, te), (tr2, te2) in zip(folds, theirs, strict=True):
        np.testing.assert_array_equal(te, te2)
        job = FoldJob(0, str(src), None, te, n_rows=len(groups))
        np.testing.assert_array_equal(job.train_idx, tr2)
        assert job.n_train == len(tr2)
