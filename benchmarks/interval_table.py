"""The intervals and baselines of a trained LOSO directory (docs/evidence.md).

    python benchmarks/interval_table.py runs/demo runs/demo/corpus.jsonl

Per held-out source: rows, the ensemble's RMSE beside the in-fold OLS's and
the strong baseline's (nu-SVR in libvmaf's vmaf_v0.6.1 recipe), the nested
coverage of the conformal interval at 90 % and the nominal level (the source out of
training and calibration), the in-sample coverage the shipped q gives it, and
the members' band's coverage. Then the pooled figures, the shipped q, the
source-level q at the levels this many sources allow, and the time the SVR took.
"""

from __future__ import annotations

import math
import os
import platform
import sys
import time

import numpy as np

from frreg.corpus import load_corpus
from frreg.gate.ensemble import (
    _SVR_CACHE,
    conformal_quantile,
    ensemble_evidence,
    source_level_quantile,
    sources_needed,
    svr_loso_predictions,
)
from frreg.gate.evidence import held_out_predictions
from frreg.schema import ENSEMBLE_SEEDS, NOMINAL_COVERAGE

LEVELS = (0.90, NOMINAL_COVERAGE)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    loso, corpus_path = argv
    corpus = load_corpus(corpus_path)
    usable = held_out_predictions(loso, corpus, ENSEMBLE_SEEDS)

    _SVR_CACHE.clear()
    start, cpu = time.perf_counter(), time.process_time()
    svr = svr_loso_predictions(corpus)
    svr_s, svr_cpu = time.perf_counter() - start, time.process_time() - cpu
    by_level = {lv: ensemble_evidence(corpus, usable, level=lv) for lv in LEVELS}
    ev = by_level[NOMINAL_COVERAGE]
    mu = np.mean([usable[s] for s in sorted(usable)], axis=0)
    resid = np.abs(corpus.target - mu)
    shipped = {lv: conformal_quantile(resid, lv) for lv in LEVELS}

    head = ("source", "rows", "ensRMSE", "olsRMSE", "svrRMSE", "nest90", "nestNom",
            "insmNom", "band")  # fmt: skip
    print(f"{head[0]:26} " + " ".join(f"{h:>7}" for h in head[1:]))
    for k, s in enumerate(ev.sources):
        rows = corpus.groups == s.source
        cells = (
            s.ensemble_rmse, s.baseline_rmse, s.svr_rmse,
            by_level[0.90].sources[k].coverage_conformal, s.coverage_conformal,
            float(np.mean(resid[rows] <= shipped[NOMINAL_COVERAGE])), s.coverage_gaussian,
        )  # fmt: skip
        print(f"{s.source:26} {s.n_rows:7d} " + " ".join(_cell(c) for c in cells))
    print(
        f"pooled RMSE: ensemble {ev.pooled_rmse:.3f}, OLS {ev.pooled_rmse_ols:.3f}, "
        f"SVR {_cell(ev.pooled_rmse_svr).strip()}"
    )
    for lv in LEVELS:
        e = by_level[lv]
        worst = e.nested_worst
        assert worst is not None
        print(
            f"level {lv}: shipped q {shipped[lv]:.3f}; nested coverage pooled "
            f"{e.pooled_coverage_conformal:.3f}, worst {worst.source} "
            f"{worst.coverage_conformal:.3f}; sources needed per source {sources_needed(lv)}"
        )
    n = len(ev.sources)
    top = n / (n + 1)  # the highest source-level confidence n sources allow
    for conf in sorted({c for c in (0.5, 0.75, 0.8, 0.9, math.floor(top * 100) / 100)}):
        if conf > top:
            continue
        q = source_level_quantile(resid, corpus.groups, coverage=NOMINAL_COVERAGE, confidence=conf)
        print(
            f"source-level q ({NOMINAL_COVERAGE:.0%} of a new source's frames, "
            f"confidence {conf}): {q:.3f}"
        )
    print(f"members' band mu ± 1.96 sigma: pooled coverage {ev.pooled_coverage_gaussian:.3f}")
    print(
        f"SVR: {'not computed (no scikit-learn)' if svr is None else f'{svr_s:.2f} s wall, {svr_cpu:.2f} s CPU'} for "
        f"{corpus.n_rows} rows, {n} folds"
    )
    print(f"{platform.processor() or platform.machine()}; load average {os.getloadavg()}")
    return 0


def _cell(x: float | None) -> str:
    return "   null" if x is None else f"{x:7.3f}"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
