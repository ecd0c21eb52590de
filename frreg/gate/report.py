"""Human-facing renderings of a gate run: terminal table, markdown, PNG figures.

The figures need matplotlib, the ``figures`` extra; without it
:func:`figures_available` is false, the session draws none and says so in one line
(:data:`FIGURES_MISSING`), and nothing else changes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from frreg._io import atomic_writer
from frreg.gate.checks import (
    AUDIT_CHECK,
    CORPUS_CHECK,
    EVIDENCE_CHECK,
    EVIDENCE_COMPUTED,
    Check,
    GateReport,
)
from frreg.gate.criteria import STAGE_DATA, STAGE_EVIDENCE, by_stage
from frreg.gate.ensemble import GAUSSIAN_Z, EnsembleEvidence, SourceEvidence
from frreg.schema import PER_SEED_PLCC_MIN
from frreg.training.metrics import summary_fields
from frreg.training.record import SeedRecord

#: The one line the report and the terminal print when the figures cannot be drawn.
FIGURES_MISSING: Final = (
    "figures not drawn: they need the figures extra (pip install 'frreg[figures]')"
)


def figures_available() -> bool:
    """Whether matplotlib (the ``figures`` extra) can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


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


#: The report's topics after the gate checks, in order: (heading, which checks).
_CHECK_TOPICS: Final = ("gate", "data", "evidence", "audit")
_SEED_RECOMPUTE = re.compile(r"seed \d+ (evidence|artifact)")


def _topic(check: Check) -> str:
    """Which table of the report lists ``check``."""

    def of(stage: str) -> bool:
        return any(
            check.name == c.name or check.name.startswith(f"{c.name}-") for c in by_stage(stage)
        )

    if of(STAGE_DATA):
        return "data"
    if of(STAGE_EVIDENCE) or check.name == EVIDENCE_COMPUTED:
        return "evidence"
    if check.name in (AUDIT_CHECK, CORPUS_CHECK, EVIDENCE_CHECK) or _SEED_RECOMPUTE.fullmatch(
        check.name
    ):
        return "audit"
    return "gate"


def _md(text: str) -> str:
    """``text`` as one markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def _checks_table(checks: Sequence[Check]) -> list[str]:
    """One row per check: its status, its name and the rest of its message."""
    marks = {"PASS": "PASS", "FAIL": "**FAIL**", "WARN": "**WARN**"}
    out = ["| status | check | result |", "|---|---|---|"]
    for c in checks:
        result = c.message
        if result.startswith(c.name):  # most messages repeat the name: say it once
            result = result[len(c.name) :].lstrip(" :") or result
        out.append(f"| {marks[c.status]} | {_md(c.name)} | {_md(result)} |")
    return out


def plcc_markdown(
    sources: Sequence[str], table: PlccTable, seed_means: Mapping[int, float | None]
) -> list[str]:
    """Held-out PLCC as a markdown table: one row per source (they are many and their
    names long), one column per seed, then each seed's mean."""
    seeds = sorted(table)
    out = ["| source | " + " | ".join(f"seed {s}" for s in seeds) + " |"]
    out.append("|---|" + "---:|" * len(seeds))
    for src in sources:
        out.append(
            f"| {_md(src)} | " + " | ".join(_cell(table[s].get(src)).strip() for s in seeds) + " |"
        )
    out.append("| **mean** | " + " | ".join(_cell(seed_means.get(s)).strip() for s in seeds) + " |")
    return out


#: An absolute POSIX path in free text (not a URL's ``//``, not ``w/o`` or ``1/2``).
_ABSOLUTE = re.compile(r"(?<![\w.~/:-])/[^\s`'\"|,;()\[\]<>]+")


def relative_paths(text: str, base: str | Path) -> str:
    """``text`` with every absolute path on this machine written relative to ``base``, so
    a report reads the same wherever it is opened (a CI job summary, a checkout)."""
    base = os.path.abspath(base)

    def rewrite(match: re.Match[str]) -> str:
        path = match.group(0)
        tail = len(path) - len(path.rstrip(".:"))
        path = path[: len(path) - tail]
        top = path.split("/")[1]
        if not top or not os.path.exists(f"/{top}"):
            return match.group(0)  # not a path here: "/s" in a unit, say
        return os.path.relpath(path, base) + match.group(0)[len(path) :]

    return _ABSOLUTE.sub(rewrite, text)


def markdown(
    report: GateReport,
    sources: Sequence[str],
    table: PlccTable,
    *,
    files: Mapping[str, str] | None = None,
    notes: Sequence[str] = (),
    evidence: EnsembleEvidence | None = None,
    records: Mapping[int, SeedRecord] | None = None,
    sections: Sequence[str] = (),
    figures: Mapping[str, str] | None = None,
    base: str | Path | None = None,
) -> str:
    """The gate report in GitHub-flavoured markdown, ready for ``$GITHUB_STEP_SUMMARY``.

    The verdict line first, then one table per topic under its own heading: the gate
    checks, ``sections`` (already rendered markdown blocks, each appended as given:
    the hook for what a caller adds, such as a change against a baseline verdict),
    held-out PLCC per seed, fold metrics, data validity, ensemble evidence, audit; then
    notes, ``figures`` (caption -> PNG path, shown as images; ``{}``: the figures were
    not drawn, which one line says) and ``files`` (label -> path). Every WARN is listed
    once, in its topic's table. With ``base`` (the report's directory) every absolute
    path is written relative to it.
    """
    mark = "✅" if report.passed else "❌"
    out = [f"# fr_regressor_v2 ensemble gate: {mark} {report.verdict_line}"]
    topics: dict[str, list[Check]] = {t: [] for t in _CHECK_TOPICS}
    for c in report.checks:
        topics[_topic(c)].append(c)
    out += ["", f"## Gate checks ({report.gate_name})", "", *_checks_table(topics["gate"])]
    for section in sections:
        out += ["", section.strip("\n")]
    if table:
        out += ["", "## Held-out PLCC per source and seed", ""]
        out += plcc_markdown(sources, table, report.seed_means)
    if records:
        out += ["", "## Fold metrics per seed", "", *summary_markdown(records)]
    if topics["data"]:
        out += ["", "## Data validity", "", *_checks_table(topics["data"])]
    strict = "enforced (strict)" if report.thresholds.strict else "reported, not enforced"
    if topics["evidence"]:
        out += ["", f"## Ensemble evidence checks ({strict})", ""]
        out += _checks_table(topics["evidence"])
    if evidence is not None:
        out += ["", f"## Ensemble evidence ({strict})", ""]
        out.append("| source | " + " | ".join(name for name, _, _ in EVIDENCE_COLUMNS) + " |")
        out.append("|---|" + "---:|" * len(EVIDENCE_COLUMNS))
        for src in evidence.sources:
            out.append(f"| {_md(src.source)} | " + " | ".join(_evidence_cells(src)) + " |")
        out.append("| **pooled** | " + " | ".join(_pooled_cells(evidence)) + " |")
        out += [""] + [f"- {n}" for n in evidence_notes(evidence)]
    if topics["audit"]:
        out += ["", "## Recomputation and audit", "", *_checks_table(topics["audit"])]
    if notes:
        out += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    if figures is not None:
        out += ["", "## Figures", ""]
        out += [f"![{caption}]({path})" for caption, path in figures.items()] or [FIGURES_MISSING]
    if files:
        out += ["", "## Files", "", "| file | path |", "|---|---|"]
        out += [f"| {_md(k)} | `{v}` |" for k, v in files.items()]
    text = "\n".join(out) + "\n"
    return text if base is None else relative_paths(text, base)


def _pyplot() -> Any:
    """matplotlib's pyplot, headless (CI machines have no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_png(fig: Any, path: str | Path) -> Path:
    """Write a matplotlib figure as PNG, atomically, and release it."""
    plt = _pyplot()
    path = Path(path)
    with atomic_writer(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=110)
    plt.close(fig)
    return path


#: Label sizes in points, and about how wide a character of them is (in inches) so a
#: figure is sized from its longest label instead of cutting it.
_LABEL_PT: Final = 8
_CELL_PT: Final = 7
_CHAR_IN: Final = 0.6 / 72


def _text_width(labels: Sequence[str], points: float) -> float:
    return max((len(s) for s in labels), default=0) * points * _CHAR_IN


def evidence_plot(evidence: EnsembleEvidence, bias_max: float, title: str) -> Any:
    """The evidence figure (a matplotlib ``Figure``): per source, the ensemble's mean bias
    and its conformal half-width q; the legend sits under the axes, never on the data."""
    import numpy as np

    plt = _pyplot()
    names = [s.source for s in evidence.sources]
    bias = np.array([s.bias for s in evidence.sources])
    q = np.array(
        [s.conformal_q if np.isfinite(s.conformal_q) else np.nan for s in evidence.sources]
    )
    y = np.arange(len(names))
    width = max(7.5, 5.5 + _text_width(names, _LABEL_PT))
    fig, ax = plt.subplots(figsize=(width, 2.2 + 0.35 * len(names)), layout="constrained")
    ax.axvspan(-bias_max, bias_max, color="0.92", label=f"|bias| <= {bias_max}")
    ax.errorbar(bias, y, xerr=q, fmt="o", color="tab:blue", ecolor="tab:gray", capsize=3,
                label="mean bias (y - mu) +- conformal q")  # fmt: skip
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(y, names, fontsize=_LABEL_PT)
    ax.invert_yaxis()
    ax.set_xlabel("VMAF points")
    ax.set_title(title, fontsize=9, wrap=True)
    fig.legend(fontsize=7, loc="outside lower center", ncols=2)
    return fig


def evidence_figure(
    path: str | Path, evidence: EnsembleEvidence, bias_max: float, title: str
) -> Path:
    """Write :func:`evidence_plot` as a PNG."""
    return _save_png(evidence_plot(evidence, bias_max, title), path)


def heatmap_plot(
    sources: Sequence[str], table: PlccTable, title: str, threshold: float = PER_SEED_PLCC_MIN
) -> Any:
    """The PLCC heatmap (a matplotlib ``Figure``): one row per held-out source, one
    column per seed.

    The colour scale spans the data (its minimum to its maximum), so close values get
    different colours; ``threshold`` (ADR-0303's) is a line on the colour bar when it is
    inside that range, and every cell below it is outlined in red. Cells show their
    value when it fits; the figure is sized from its labels, so no source name is cut.
    """
    import numpy as np
    from matplotlib.patches import Rectangle

    plt = _pyplot()
    seeds = sorted(table)
    grid = np.array(
        [
            [np.nan if table[s].get(src) is None else table[s][src] for s in seeds]
            for src in sources
        ],
        dtype=float,
    )
    finite = grid[np.isfinite(grid)]
    lo = float(finite.min()) if finite.size else threshold
    hi = float(finite.max()) if finite.size else 1.0
    if hi - lo < 1e-4:  # one value (or none): a scale around it
        lo, hi = lo - 5e-4, hi + 5e-4
    label_w = _text_width(sources, _LABEL_PT) + 0.4
    cell_w = min(0.8, max(0.25, (16.0 - label_w - 1.6) / max(len(seeds), 1)))
    cell_h = 0.3
    fig = plt.figure(
        figsize=(max(5.0, label_w + cell_w * len(seeds) + 1.6), 2.0 + cell_h * len(sources)),
        layout="constrained",
    )
    ax = fig.add_subplot()
    cmap = plt.get_cmap("viridis").with_extremes(bad="0.85")
    im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=lo, vmax=hi, aspect="auto")
    ax.set_xticks(range(len(seeds)), [f"seed {s}" for s in seeds], fontsize=_LABEL_PT)
    ax.set_yticks(range(len(sources)), list(sources), fontsize=_LABEL_PT)
    ax.xaxis.tick_top()
    fits = cell_w >= 6 * _CELL_PT * _CHAR_IN + 0.05  # "0.998" and a margin
    for i in range(len(sources)):
        for j in range(len(seeds)):
            v = grid[i, j]
            if np.isfinite(v) and v < threshold:
                ax.add_patch(
                    Rectangle((j - 0.46, i - 0.46), 0.92, 0.92, fill=False, edgecolor="red",
                              linewidth=1.5)
                )  # fmt: skip
            if fits or np.isnan(v):
                dark = np.isfinite(v) and im.norm(v) < 0.5
                ax.text(j, i, "—" if np.isnan(v) else f"{v:.3f}", ha="center", va="center",
                        fontsize=_CELL_PT, color="white" if dark else "black")  # fmt: skip
    ax.set_title(title, fontsize=9, wrap=True)
    ax.set_xlabel(f"red outline: below the ADR-0303 threshold {threshold:g}", fontsize=_LABEL_PT)
    bar = fig.colorbar(im, ax=ax, label="held-out PLCC")
    if lo <= threshold <= hi:
        bar.ax.axhline(threshold, color="red", linewidth=2)
    return fig


def heatmap(
    path: str | Path,
    sources: Sequence[str],
    table: PlccTable,
    title: str,
    threshold: float = PER_SEED_PLCC_MIN,
) -> Path:
    """Write :func:`heatmap_plot` as a PNG."""
    return _save_png(heatmap_plot(sources, table, title, threshold), path)
