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
        groups_arr = np.asarray(groups, dtype=object)
        for held_out in self.sources(groups_arr):
            test = groups_arr == held_out
            yield np.flatnonzero(~test), np.flatnonzero(test)
