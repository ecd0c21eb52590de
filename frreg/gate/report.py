"""Human-facing renderings of a gate run: terminal table, markdown, PNG heatmap."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from frreg._io import atomic_writer
from frreg.gate.checks import GateReport
from frreg.gate.ensemble import GAUSSIAN_Z, EnsembleEvidence, SourceEvidence
from frreg.training.metrics import summary_fields
from frreg.training.record import SeedRecord

PlccTable = dict[int, dict[str, float | None]]


def plcc_table(records: Mapping[int, SeedRecord]) -> tuple[list[str], PlccTable]:
    """Sources (sorted union) and PLCC per seed and held-out source from seed records."""
    sources = sorted({f.held_out for rec in records.values() for f in rec.folds})
    table = {seed: {f.held_out: f.plcc for f in rec.folds} for seed, rec in sorted(records.items())}
    return sources, table


def _cell(x: float | None) -> str:
    return "  —   " if x is None else f"{x:.4f}"


def table_lines(
    sources: Sequence[str], table: PlccTable, seed_means: Mapping[int, float | None]
) -> list[str]:
    """Held-out PLCC, one row per source and one column per seed, then the seeds' means.

    Sources go down the page: there are usually more of them than seeds, and
    their names are long.
    """
    seeds = sorted(table)
    width = max([len("source"), len("mean PLCC"), *(len(s) for s in sources)])
    head = "source".ljust(width) + "".join(f"  {'seed ' + str(s):>7}" for s in seeds)
    lines = [head, "-" * len(head)]
    for src in sources:
        cells = "".join(f"  {_cell(table[s].get(src)):>7}" for s in seeds)
        lines.append(src.ljust(width) + cells)
    lines.append("-" * len(head))
    lines.append(
        "mean PLCC".ljust(width) + "".join(f"  {_cell(seed_means.get(s)):>7}" for s in seeds)
    )
    return lines


#: (header, SourceEvidence field, format). The RMSE columns put the ensemble beside the
#: in-fold OLS and the strong baseline (an SVR in libvmaf's own recipe, "—" without the
#: ``baselines`` extra); "cov nested" is the held-out coverage of ``mu ± q`` with ``q``
#: calibrated without the source ("q w/o src"); "cov ±1.96σ" is the members' band, which
#: is not a calibrated interval (the notes under the table say so).
EVIDENCE_COLUMNS = (
    ("ens PLCC", "ensemble_plcc", ".4f"),
    ("OLS PLCC", "baseline_plcc", ".4f"),
    ("margin", "margin_plcc", "+.4f"),
    ("bias", "bias", "+.2f"),
    ("ens RMSE", "ensemble_rmse", ".2f"),
    ("OLS RMSE", "baseline_rmse", ".2f"),
    ("SVR RMSE", "svr_rmse", ".2f"),
    ("cov nested", "coverage_conformal", ".3f"),
    ("q w/o src", "conformal_q", ".2f"),
    (f"cov ±{GAUSSIAN_Z}σ", "coverage_gaussian", ".3f"),
)


def _number(value: float | None, fmt: str) -> str:
    return "—" if value is None or value != value else format(value, fmt)


def _evidence_cells(src: SourceEvidence) -> list[str]:
    return [_number(getattr(src, key), fmt) for _, key, fmt in EVIDENCE_COLUMNS]


def _pooled_cells(evidence: EnsembleEvidence) -> list[str]:
    """The table's pooled row: what is defined over every held-out row at once."""
    pooled = {
        "ensemble_plcc": evidence.pooled_plcc.get("ensemble"),
        "ensemble_rmse": evidence.pooled_rmse,
        "baseline_rmse": evidence.pooled_rmse_ols,
        "svr_rmse": evidence.pooled_rmse_svr,
        "coverage_conformal": evidence.pooled_coverage_conformal,
        "conformal_q": evidence.shipped_q,
        "coverage_gaussian": evidence.pooled_coverage_gaussian,
    }
    return [_number(pooled.get(key), fmt) for _, key, fmt in EVIDENCE_COLUMNS]


def evidence_notes(evidence: EnsembleEvidence) -> list[str]:
    """What the table's baselines and intervals mean, in a few lines under it."""
    level = evidence.level
    worst = evidence.nested_worst
    worst_text = "" if worst is None else f", worst {worst.source} {worst.coverage_conformal:.3f}"
    needed, have = evidence.sources_needed, len(evidence.sources)
    notes = [
        f"intervals at {level}: nested coverage (each source out of training and calibration) "
        f"pooled {evidence.pooled_coverage_conformal:.3f}{worst_text}; the shipped q "
        f"({_number(evidence.shipped_q, '.2f')} VMAF, the pooled row's q) targets coverage "
        "marginal over frames, pooled over sources, not per source; a per-source guarantee "
        f"at {level} needs at least {needed} sources (this corpus has {have})",
        f"cov ±{GAUSSIAN_Z}σ: the share inside mu ± {GAUSSIAN_Z} sigma (the members' spread), "
        f"not a calibrated interval; pooled {evidence.pooled_coverage_gaussian:.3f}",
    ]
    if evidence.svr_note is not None:
        notes.append(evidence.svr_note)
    return notes


def evidence_lines(evidence: EnsembleEvidence) -> list[str]:
    """The ensemble evidence per held-out source, for the terminal."""
    width = max([len("source"), *(len(s.source) for s in evidence.sources)])
    widths = [max(9, len(name)) for name, _, _ in EVIDENCE_COLUMNS]

    def row(name: str, cells: Sequence[str]) -> str:
        return name.ljust(width) + "".join(
            f"  {c:>{w}}" for c, w in zip(cells, widths, strict=True)
        )

    head = row("source", [name for name, _, _ in EVIDENCE_COLUMNS])
    lines = [head, "-" * len(head)]
    lines += [row(src.source, _evidence_cells(src)) for src in evidence.sources]
    lines += ["-" * len(head), row("pooled", _pooled_cells(evidence))]
    pooled = ", ".join(
        f"{k} {'—' if v is None else format(v, '.4f')}" for k, v in evidence.pooled_plcc.items()
    )
    lines.append(f"pooled PLCC: {pooled}")
    lines += evidence_notes(evidence)
    return lines


def summary_markdown(records: Mapping[int, SeedRecord]) -> list[str]:
    """Every seed's summary of every fold metric (:data:`~frreg.training.metrics.FOLD_METRICS`),
    as a markdown table: one row per seed, one column per summary field."""
    fields = summary_fields()
    head = " | ".join(f"{stat} {metric.label}" for metric, stat in fields)
    out = [f"| seed | {head} |", "|---:|" + "---:|" * len(fields)]
    for seed, rec in sorted(records.items()):
        cells = " | ".join(
            _cell(rec.summary.get(metric.summary_field(stat))).strip() for metric, stat in fields
        )
        out.append(f"| {seed} | {cells} |")
    return out


def markdown(
    report: GateReport,
    sources: Sequence[str],
    table: PlccTable,
    *,
    files: Mapping[str, str] | None = None,
    notes: Sequence[str] = (),
    evidence: EnsembleEvidence | None = None,
    records: Mapping[int, SeedRecord] | None = None,
) -> str:
    """A markdown summary suitable for a CI job summary."""
    mark = "✅" if report.passed else "❌"
    out = [f"# fr_regressor_v2 ensemble gate: {mark} {report.verdict_line}", ""]
    out.append("| seed | " + " | ".join(sources) + " | mean |")
    out.append("|---:|" + "---:|" * (len(sources) + 1))
    for seed, row in sorted(table.items()):
        cells = " | ".join(_cell(row.get(s)).strip() for s in sources)
        out.append(f"| {seed} | {cells} | {_cell(report.seed_means.get(seed)).strip()} |")
    if records:
        out += ["", "## Fold metrics per seed", "", *summary_markdown(records)]
    out += ["", "## Checks", ""]
    marks = {"PASS": "PASS", "FAIL": "**FAIL**", "WARN": "**WARN**"}
    out += [f"- {marks[c.status]} {c.message}" for c in report.checks]
    if evidence is not None:
        strict = "enforced (strict)" if report.thresholds.strict else "reported, not enforced"
        out += ["", f"## Ensemble evidence ({strict})", ""]
        out.append("| source | " + " | ".join(name for name, _, _ in EVIDENCE_COLUMNS) + " |")
        out.append("|---|" + "---:|" * len(EVIDENCE_COLUMNS))
        for src in evidence.sources:
            out.append(f"| {src.source} | " + " | ".join(_evidence_cells(src)) + " |")
        out.append("| **pooled** | " + " | ".join(_pooled_cells(evidence)) + " |")
        out += [""] + [f"- {n}" for n in evidence_notes(evidence)]
    if notes:
        out += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    if files:
        out += ["", "## Files", ""] + [f"- {k}: `{v}`" for k, v in files.items()]
    return "\n".join(out) + "\n"


def _save_png(fig: Any, path: str | Path) -> Path:
    """Write a matplotlib figure as PNG, atomically, and release it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    with atomic_writer(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=110)
    plt.close(fig)
    return path


def evidence_figure(
    path: str | Path, evidence: EnsembleEvidence, bias_max: float, title: str
) -> Path:
    """Write a PNG: per source, the ensemble's mean bias and its conformal half-width q."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = [s.source for s in evidence.sources]
    bias = np.array([s.bias for s in evidence.sources])
    q = np.array(
        [s.conformal_q if np.isfinite(s.conformal_q) else np.nan for s in evidence.sources]
    )
    y = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(7.5, 1.2 + 0.35 * len(names)))
    ax.axvspan(-bias_max, bias_max, color="0.92", label=f"|bias| <= {bias_max}")
    ax.errorbar(bias, y, xerr=q, fmt="o", color="tab:blue", ecolor="tab:gray", capsize=3,
                label="mean bias (y - mu) +- conformal q")  # fmt: skip
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(y, names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("VMAF points")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="best")
    return _save_png(fig, path)


def heatmap(path: str | Path, sources: Sequence[str], table: PlccTable, title: str) -> Path:
    """Write a PNG heatmap of PLCC per seed (rows) and held-out source (columns)."""
    import matplotlib

    matplotlib.use("Agg")  # headless: CI machines have no display
    import matplotlib.pyplot as plt
    import numpy as np

    seeds = sorted(table)
    grid = np.array(
        [
            [np.nan if table[s].get(src) is None else table[s][src] for src in sources]
            for s in seeds
        ],
        dtype=float,
    )
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(sources), 1.2 + 0.5 * len(seeds)))
    finite = grid[np.isfinite(grid)]
    low = float(finite.min()) if finite.size else 0.0
    im = ax.imshow(grid, cmap="viridis", vmin=min(low, 0.9), vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(sources)), sources, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(seeds)), [f"seed {s}" for s in seeds], fontsize=8)
    for i in range(len(seeds)):
        for j in range(len(sources)):
            v = grid[i, j]
            ax.text(
                j,
                i,
                "—" if np.isnan(v) else f"{v:.3f}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if np.isnan(v) or v < (low + 1) / 2 else "black",
            )
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, label="held-out PLCC")
    return _save_png(fig, path)
