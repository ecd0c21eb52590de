"""Print the ensemble evidence of a trained LOSO directory as a table (docs/evidence.md).

    python benchmarks/evidence_table.py runs/demo runs/demo/corpus.jsonl

Reads each seed's held-out predictions (hashed and checked against the corpus,
as a verdict does, without re-running the models) and prints, per held-out
source, the ensemble's PLCC, the OLS baseline's, the margin, the bias, RMSE,
both coverages, the conformal half-width and the seeds' PLCC spread; then the
pooled numbers, the ADR spread with its bootstrap interval, and the machine.
"""

from __future__ import annotations

import os
import platform
import sys

from frreg.corpus import load_corpus
from frreg.gate.ensemble import ensemble_evidence
from frreg.gate.evidence import held_out_predictions
from frreg.schema import ENSEMBLE_SEEDS


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    loso, corpus_path = argv
    corpus = load_corpus(corpus_path)
    ev = ensemble_evidence(corpus, held_out_predictions(loso, corpus, ENSEMBLE_SEEDS))
    head = ("source", "ensPLCC", "olsPLCC", "margin", "bias", "RMSE", "covG", "covC", "q", "sdPLCC")
    print(f"{head[0]:26} " + " ".join(f"{h:>7}" for h in head[1:]))
    for s in ev.sources:
        cells = (
            s.ensemble_plcc, s.baseline_plcc, s.margin_plcc, s.bias, s.ensemble_rmse,
            s.coverage_gaussian, s.coverage_conformal, s.conformal_q, s.seed_plcc_std,
        )  # fmt: skip
        print(f"{s.source:26} " + " ".join("   null" if c is None else f"{c:7.4f}" for c in cells))
    print(
        "pooled PLCC:", {k: None if v is None else round(v, 4) for k, v in ev.pooled_plcc.items()}
    )
    print(
        f"pooled coverage: gaussian {ev.pooled_coverage_gaussian:.3f}, "
        f"conformal {ev.pooled_coverage_conformal:.3f}"
    )
    print(f"ADR spread {ev.spread}, bootstrap 95 % interval {ev.spread_interval}")
    print(f"max per-fold PLCC std across seeds {ev.fold_plcc_std_max}")
    print(f"{platform.processor() or platform.machine()}; load average {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
