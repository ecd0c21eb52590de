"""The sweep's record (``sweep.json``), its report (``sweep.md``) and figure (``sweep.png``).

The record's ``sweep`` block is everything measured: the corpus, the grid, every
candidate's scores, the baselines on the same folds, the naive and the
selection-adjusted estimates. Its digest (:func:`frreg._io.sha256_json` of that block)
names the sweep: ``frreg-train --sweep DIGEST`` records it in every seed file, and the
verdict lists it as a deviation of the recipe. The recommended ``frreg-train`` argv is
beside the block, not in it, since it carries the digest.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np

from frreg._io import atomic_writer, sha256_json, write_json_atomic
from frreg.corpus import Corpus
from frreg.gate.ensemble import (
    SVR_METHOD,
    SVR_MISSING,
    ols_fold_predictions,
    svr_loso_predictions,
)
from frreg.schema import NOMINAL_COVERAGE
from frreg.sweep.grid import Recipe
from frreg.sweep.run import SweepPredictions
from frreg.sweep.select import (
    SELECTION_METRIC,
    candidate_metrics,
    choose,
    nested_selection,
    pareto_front,
    source_errors,
)
from frreg.training.splits import LeaveOneSourceOut

#: What a sweep writes into its ``--out-dir``.
RECORD_FILE: Final = "sweep.json"
REPORT_FILE: Final = "sweep.md"
FIGURE_FILE: Final = "sweep.png"
#: The record's format.
RECORD_SCHEMA: Final = "frreg-sweep/1"
#: The report's Pareto table lists at most this many candidates (the record has them all).
PARETO_ROWS: Final = 15
#: The objectives of the Pareto front: accuracy, seed stability, training time.
PARETO_OBJECTIVES: Final = ("pooled_rmse", "plcc_spread", "cpu_seconds")
OLS_METHOD: Final = (
    "least squares on the fold's scaled six features + codec block + intercept (in-fold)"
)


def candidate_name(recipe_id: str, epochs: int) -> str:
    return f"{recipe_id}@{epochs}"


def _baseline(pred: np.ndarray, corpus: Corpus) -> dict[str, Any]:
    m = candidate_metrics(pred[None, :], corpus.target, corpus.groups)
    return {k: m[k] for k in ("pooled_rmse", "worst_source_rmse", "worst_source", "abs_bias",
                              "mean_plcc", "interval_width", "per_source_rmse")}  # fmt: skip


def baselines(corpus: Corpus) -> dict[str, Any]:
    """The in-fold OLS and the strong baseline (libvmaf's SVR recipe) on the sweep's folds."""
    ols = np.empty(corpus.n_rows)
    for train, test in LeaveOneSourceOut().split(corpus.groups):
        ols[test] = ols_fold_predictions(corpus, train, test)
    out: dict[str, Any] = {"ols": {"method": OLS_METHOD, **_baseline(ols, corpus)}}
    svr = svr_loso_predictions(corpus)
    out["svr"] = (
        {"method": SVR_METHOD, "note": SVR_MISSING}
        if svr is None
        else {"method": SVR_METHOD, **_baseline(svr, corpus)}
    )
    return out


def build_record(
    corpus: Corpus,
    grid: Sequence[Recipe],
    preds: SweepPredictions,
    *,
    curve_every: int,
    kernel: str,
    engine_version: int,
    where: str,
    wall_seconds: float,
) -> dict[str, Any]:
    """The ``sweep`` block and the recommendation (see the module)."""
    max_epochs = preds.epochs[-1]
    names: list[str] = []
    stacks: list[np.ndarray] = []
    candidates: list[dict[str, Any]] = []
    for recipe in grid:
        for epoch in preds.epochs:
            stack = preds.curves[recipe.id][epoch]
            names.append(candidate_name(recipe.id, epoch))
            stacks.append(stack)
            metrics = candidate_metrics(stack, corpus.target, corpus.groups)
            candidates.append(
                {
                    "name": names[-1],
                    "recipe": recipe.id,
                    "epochs": epoch,
                    **metrics,
                    "cpu_seconds": preds.cpu_seconds[recipe.id] * epoch / max_epochs,
                }
            )
    errors = source_errors(stacks, corpus.target, corpus.groups)
    best = choose(errors)
    nested = nested_selection(errors)
    objectives = np.array(
        [[math.inf if c[k] is None else c[k] for k in PARETO_OBJECTIVES] for c in candidates]
    )
    front = pareto_front(objectives)
    for i in front:
        candidates[int(i)]["pareto"] = True
    sweep = {
        "schema": RECORD_SCHEMA,
        "corpus": {
            "path": str(corpus.path),
            "sha256": corpus.sha256,
            "rows": corpus.n_rows,
            "sources": list(corpus.sources),
        },
        "seeds": list(preds.seeds),
        "curve_every": curve_every,
        "max_epochs": max_epochs,
        "engine_version": engine_version,
        "kernel": kernel,
        "where": where,
        "wall_seconds": wall_seconds,
        "recipes": [r.to_json() for r in grid],
        "candidates": candidates,
        "baselines": baselines(corpus),
        "selection": {
            "metric": SELECTION_METRIC,
            "candidates_tried": len(candidates),
            "recipes_tried": len(grid),
            "naive": {
                "candidate": names[best],
                "pooled_rmse": candidates[best]["pooled_rmse"],
                "note": "the best candidate's error on the folds that chose it: optimistic",
            },
            "nested": nested.to_json(names),
            "coverage": NOMINAL_COVERAGE,
        },
    }
    digest = sha256_json(sweep)
    chosen = candidates[best]
    recipe = next(r for r in grid if r.id == chosen["recipe"])
    argv = ["frreg-train", "--corpus", str(corpus.path), *recipe.train_argv(chosen["epochs"])]
    argv += ["--sweep", digest]
    return {
        "digest": digest,
        "sweep": sweep,
        "recommended": {"candidate": chosen["name"], "argv": argv, "command": shlex.join(argv)},
    }


def _fmt(x: Any, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def markdown(record: dict[str, Any], figure: str | None) -> str:
    """The report: the recommendation and both estimates first, then the tables."""
    sweep, rec = record["sweep"], record["recommended"]
    by_name = {c["name"]: c for c in sweep["candidates"]}
    chosen = by_name[rec["candidate"]]
    sel = sweep["selection"]
    nested = sel["nested"]
    recipes = {r["id"]: r for r in sweep["recipes"]}
    lines = [
        f"# frreg-sweep: {chosen['name']} recommended, pooled held-out RMSE "
        f"{_fmt(chosen['pooled_rmse'])} (selection-adjusted {_fmt(nested['estimate_pooled_rmse'])})",
        "",
        f"{sel['recipes_tried']} recipes x {len(sweep['candidates']) // sel['recipes_tried']} "
        f"epoch counts = **{sel['candidates_tried']} candidates tried**, each {len(sweep['seeds'])} "
        f"seeds ({', '.join(map(str, sweep['seeds']))}) x {len(sweep['corpus']['sources'])} "
        f"leave-one-source-out folds on {sweep['corpus']['rows']} rows "
        f"(`{sweep['corpus']['path']}`, sha256 {sweep['corpus']['sha256'][:12]}); trained "
        f"{sweep['where']} in {_fmt(sweep['wall_seconds'], 0)} s. Sweep digest `{record['digest']}`.",
        "",
        "Train it (on the gate's own seeds, which the sweep never used), then gate it:",
        "",
        "```sh",
        rec["command"],
        "```",
        "",
        "## Estimates",
        "",
        f"- naive: the best candidate's pooled RMSE on the folds that chose it, "
        f"{_fmt(chosen['pooled_rmse'])} (worst source {_fmt(chosen['worst_source_rmse'])}, "
        f"{chosen['worst_source']}): optimistic, the minimum of {sel['candidates_tried']} noisy "
        "errors;",
        f"- selection-adjusted (nested leave-one-source-out: each source's candidate chosen "
        f"without it): **{_fmt(nested['estimate_pooled_rmse'])}** (worst source "
        f"{_fmt(nested['worst_source_rmse'])}, {nested['worst_source']}). Choices: "
        + ", ".join(f"{s} {c}" for s, c in nested["choices"].items())
        + ".",
        "",
        "## Recipes at their best epoch count, beside the baselines on the same folds",
        "",
        "| recipe | lr | weight decay | batch | dropout | hidden | epochs | pooled RMSE | "
        "worst source RMSE | \\|bias\\| | PLCC spread | interval width | CPU s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for rid, r in recipes.items():
        own = [c for c in sweep["candidates"] if c["recipe"] == rid]
        c = min(own, key=lambda c: (c["pooled_rmse"], c["epochs"]))
        lines.append(
            f"| {rid} | {r['lr']:g} | {r['weight_decay']:g} | {r['batch_size']} | "
            f"{r['dropout']:g} | {r['hidden']} | {c['epochs']} | {_fmt(c['pooled_rmse'])} | "
            f"{_fmt(c['worst_source_rmse'])} ({c['worst_source']}) | {_fmt(c['abs_bias'])} | "
            f"{_fmt(c['plcc_spread'], 4)} | {_fmt(c['interval_width'])} | "
            f"{_fmt(c['cpu_seconds'], 0)} |"
        )
    for key, label in (("ols", "OLS (in-fold)"), ("svr", "SVR (vmaf_v0.6.1 recipe)")):
        b = sweep["baselines"][key]
        if "pooled_rmse" in b:
            lines.append(
                f"| {label} | | | | | | | {_fmt(b['pooled_rmse'])} | "
                f"{_fmt(b['worst_source_rmse'])} ({b['worst_source']}) | {_fmt(b['abs_bias'])} "
                f"| | {_fmt(b['interval_width'])} | |"
            )
        else:
            lines.append(f"| {label} | {b['note']} |||||||||||| ")
    lines += [
        "",
        f"Interval width: twice the split-conformal {sel['coverage']:.0%} quantile of the "
        "ensemble's absolute held-out residuals (VMAF points). PLCC spread: max - min of "
        "the per-seed mean fold PLCC (ADR-0303's spread).",
        "",
        "## Pareto front: accuracy, seed stability, training time",
        "",
        "| candidate | pooled RMSE | PLCC spread | CPU s |",
        "|---|---:|---:|---:|",
    ]
    front = sorted(
        (c for c in sweep["candidates"] if c.get("pareto")), key=lambda c: c["pooled_rmse"]
    )
    for c in front[:PARETO_ROWS]:
        lines.append(
            f"| {c['name']} | {_fmt(c['pooled_rmse'])} | {_fmt(c['plcc_spread'], 4)} | "
            f"{_fmt(c['cpu_seconds'], 0)} |"
        )
    if len(front) > PARETO_ROWS:
        lines.append(f"| ({len(front) - PARETO_ROWS} more in {RECORD_FILE}) | | | |")
    lines.append("")
    lines.append(f"![pooled RMSE against training time]({figure})" if figure else
                 "(No figure: matplotlib, the `figures` extra, is not installed.)")  # fmt: skip
    return "\n".join(lines) + "\n"


def draw_figure(record: dict[str, Any], path: Path) -> bool:
    """Pooled RMSE against CPU time, one curve per recipe, the baselines as lines; False
    (nothing written) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    sweep = record["sweep"]
    fig, ax = plt.subplots(figsize=(8, 5))
    cmap = plt.get_cmap("tab20")
    for i, r in enumerate(sweep["recipes"]):
        own = [c for c in sweep["candidates"] if c["recipe"] == r["id"]]
        # Dashed: a recipe with dropout (the knob that mattered most on the built-in corpus).
        ax.plot([c["cpu_seconds"] for c in own], [c["pooled_rmse"] for c in own],
                marker=".", linewidth=0.8, color=cmap(i % cmap.N),
                linestyle="--" if r["dropout"] else "-", label=r["id"])  # fmt: skip
    for key, style in (("ols", ":"), ("svr", "--")):
        b = sweep["baselines"][key]
        if "pooled_rmse" in b:
            ax.axhline(b["pooled_rmse"], color="black", linestyle=style, label=key.upper())
    ax.set_xlabel("training CPU seconds (all seeds and folds)")
    ax.set_ylabel("pooled held-out RMSE (VMAF)")
    ax.set_yscale("log")
    ax.set_title(f"frreg-sweep {record['digest'][:12]}: {record['recommended']['candidate']}")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    with atomic_writer(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=110)
    plt.close(fig)
    return True


def write_outputs(record: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write the figure, the report and (last) the record, each atomically."""
    written = []
    figure = out_dir / FIGURE_FILE
    if draw_figure(record, figure):
        written.append(figure)
    report = out_dir / REPORT_FILE
    with atomic_writer(report) as fh:
        fh.write(markdown(record, FIGURE_FILE if written else None))
    written.append(report)
    write_json_atomic(out_dir / RECORD_FILE, record)
    written.append(out_dir / RECORD_FILE)
    return written
