"""The recipe search (``frreg-sweep``): many recipes trained at once, judged honestly.

:mod:`frreg.sweep.grid` makes the recipes, :mod:`frreg.sweep.run` trains them (one
batched run, or one Dask task per recipe and seed), :mod:`frreg.sweep.select` scores the
candidates and chooses with nested leave-one-source-out, :mod:`frreg.sweep.report`
writes the record, the report and the figure; :mod:`frreg.sweep.options` declares the
CLI's options. docs/sweep.md says what it measured. Names load on first use: importing
the package (``frreg-sweep --help``) loads neither torch nor numpy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from frreg._lazy import lazy_getattr

if TYPE_CHECKING:
    from frreg.sweep.grid import Recipe, recipes
    from frreg.sweep.report import build_record, write_outputs
    from frreg.sweep.run import CorpusArrays, SweepPredictions, run_cluster, run_local
    from frreg.sweep.select import choose, nested_selection, source_errors

_EXPORTS = {
    "Recipe": "frreg.sweep.grid",
    "recipes": "frreg.sweep.grid",
    "build_record": "frreg.sweep.report",
    "write_outputs": "frreg.sweep.report",
    "CorpusArrays": "frreg.sweep.run",
    "SweepPredictions": "frreg.sweep.run",
    "run_cluster": "frreg.sweep.run",
    "run_local": "frreg.sweep.run",
    "choose": "frreg.sweep.select",
    "nested_selection": "frreg.sweep.select",
    "source_errors": "frreg.sweep.select",
}

__all__ = [
    "CorpusArrays",
    "Recipe",
    "SweepPredictions",
    "build_record",
    "choose",
    "nested_selection",
    "recipes",
    "run_cluster",
    "run_local",
    "source_errors",
    "write_outputs",
]

__getattr__ = lazy_getattr(__name__, _EXPORTS)


def __dir__() -> list[str]:
    return sorted(__all__)
