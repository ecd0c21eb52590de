"""Leave-one-source-out cross-validation, modelled on scikit-learn's ``LeaveOneGroupOut``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np


class LeaveOneSourceOut:
    """Hold out all rows of one source at a time.

    Folds come in sorted order of the unique source ids, so fold ``k`` always
    holds out ``sorted(set(groups))[k]``. Like ``LeaveOneGroupOut.split`` it
    yields ``(train_idx, test_idx)`` index arrays and nothing else.
    """

    def get_n_splits(self, groups: Sequence[object] | np.ndarray) -> int:
        return len(self.sources(groups))

    @staticmethod
    def sources(groups: Sequence[object] | np.ndarray) -> list[object]:
        """The held-out source of each fold, in fold order."""
        unique = sorted(set(np.asarray(groups, dtype=object).tolist()))
        if len(unique) < 2:
            raise ValueError(
                f"leave-one-source-out needs at least two distinct sources, found {len(unique)}: "
                f"{unique!r}"
            )
        return unique

    def split(
        self, groups: Sequence[object] | np.ndarray
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        n = len(groups)
        for _, test in self.test_indices(groups):
            keep = np.ones(n, dtype=bool)
            keep[test] = False
            yield np.flatnonzero(keep), test

    def test_indices(
        self, groups: Sequence[object] | np.ndarray
    ) -> list[tuple[object, np.ndarray]]:
        """``(held-out source, test_idx)`` per fold, in fold order, in O(rows) memory.

        Each ``test_idx`` (ascending) is a view into one shared index array, so
        thousands of folds cost no more than the rows themselves; a fold's
        training rows are its complement (:meth:`split` builds them one fold
        at a time).
        """
        groups_arr = np.asarray(groups, dtype=object)
        sources = self.sources(groups_arr)
        _, inverse = np.unique(groups_arr, return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        bounds = np.searchsorted(inverse[order], np.arange(len(sources) + 1))
        return [(src, order[bounds[k] : bounds[k + 1]]) for k, src in enumerate(sources)]
