"""What a gate session writes for people: frreg-report.md (ready for a CI job summary),
the PLCC heatmap and the evidence figure, and what happens without matplotlib (the
``figures`` extra). Everything is real: a synthetic corpus, real evidence, real checks,
real matplotlib figures read back."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from factories import passing_docs, run_fresh, write_loso_dir

from frreg.corpus import load_corpus
from frreg.gate.checks import AUDIT_CHECK, Check, evaluate, evidence_checks, load_loso_dir
from frreg.gate.criteria import Thresholds
from frreg.gate.ensemble import ensemble_evidence
from frreg.gate.report import (
    FIGURES_MISSING,
    evidence_plot,
    heatmap_plot,
    markdown,
    relative_paths,
)
from frreg.schema import PER_SEED_PLCC_MIN
from frreg.session.config import GateConfig
from frreg.session.output import (
    EVIDENCE_PNG,
    HEATMAP_PNG,
    REPORT_MD,
    report_file_lines,
    write_reports,
)
from frreg.synthetic import synthetic_rows, write_corpus
from frreg.training.settings import TrainSettings

#: Builds a session's inputs in ``root`` and writes its reports; run in this process
#: and, with matplotlib made unimportable, in a fresh one. Prints what it wrote as JSON.
WRITE = r"""
import json, sys
from pathlib import Path
if sys.argv[2] == "no-matplotlib":
    sys.modules["matplotlib"] = None  # any `import matplotlib` now raises ImportError
sys.path.insert(0, sys.argv[3])
import test_report
print(json.dumps(test_report.write_session_reports(Path(sys.argv[1]))))
"""


def session_inputs(root: Path):
    """A gate session's inputs as the controller has them: the seeds' records, a report
    with gate, data, evidence (some WARN) and audit checks, the ensemble evidence and a
    note that names the corpus by its absolute path."""
    rows = synthetic_rows(n_sources=4, encoders=("libx264",), cqs=(22, 34, 46), frames=12)
    corpus = load_corpus(write_corpus(root / "corpus.jsonl", rows))
    rng = np.random.default_rng(3)
    off = np.where(corpus.groups == corpus.sources[1], 12.0, 0.0)  # a biased source: WARNs
    predictions = {s: corpus.target + off + rng.normal(0, 2.0, corpus.n_rows) for s in range(5)}
    ensemble = ensemble_evidence(corpus, predictions, strong_baseline=False)
    loso = write_loso_dir(root / "runs" / "gate", passing_docs())
    thresholds = Thresholds()
    report = evaluate(load_loso_dir(loso, thresholds.seeds), thresholds)
    report.checks += [
        Check("data manifest", False, f"data manifest: none beside {corpus.path}", enforced=False),
        *evidence_checks(ensemble, thresholds),
        Check(AUDIT_CHECK, True, "audit: 15 jobs retrained, every prediction reproduced"),
    ]
    records = {s: a.record for s, a in load_loso_dir(loso, thresholds.seeds).items()}
    config = GateConfig(
        corpus=corpus.path,
        out_dir=loso,
        cache_dir=root / "cache",
        settings=TrainSettings(),
        thresholds=thresholds,
    )
    notes = [f"{corpus.path}: 2 rows of an unknown encoder"]
    return config, report, records, ensemble, notes


def write_session_reports(root: Path) -> dict[str, object]:
    config, report, records, ensemble, notes = session_inputs(root)
    baseline = "## Change against the baseline verdict\n\n| check | before | now |\n|---|---|---|\n"
    write_reports(
        config, report, records, config.out_dir / "HOLD.json", notes, ensemble, sections=[baseline]
    )
    out = config.out_dir
    return {
        "report": (out / REPORT_MD).read_text(encoding="utf-8"),
        "pngs": sorted(p.name for p in out.glob("*.png")),
        "lines": report_file_lines(out),
        "verdict_line": report.verdict_line,
        "passed": report.passed,
        "warn": [c.name for c in report.warnings()],
    }


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    return root, write_session_reports(root)


def tables(text: str) -> dict[str, list[str]]:
    """Each ``##`` heading's table rows."""
    found: dict[str, list[str]] = {}
    heading = None
    for line in text.splitlines():
        if line.startswith("## "):
            heading = line[3:]
            found[heading] = []
        elif heading is not None and line.startswith("|"):
            found[heading].append(line)
    return found


def test_the_report_starts_with_the_verdict_and_has_one_table_per_topic(written):
    _, got = written
    text = got["report"]
    assert text.splitlines()[0] == f"# fr_regressor_v2 ensemble gate: ✅ {got['verdict_line']}"
    found = tables(text)
    topics = [
        "Gate checks (ADR-0303 gate)",
        "Change against the baseline verdict",  # the caller's section, after the gate checks
        "Held-out PLCC per source and seed",
        "Fold metrics per seed",
        "Data validity",
        "Ensemble evidence checks (reported, not enforced)",
        "Ensemble evidence (reported, not enforced)",
        "Recomputation and audit",
        "Notes",
        "Figures",
        "Files",
    ]
    assert list(found) == topics
    for topic in topics:
        if topic not in ("Notes", "Figures"):
            rows = found[topic]
            assert rows, topic
            # GitHub renders a table only when every row has the header's cell count.
            cells = {len(re.split(r"(?<!\\)\|", row)) for row in rows}
            assert len(cells) == 1, (topic, rows)
    assert "\\|mean bias\\|" in text  # a '|' inside a message does not split its cell
    assert found["Held-out PLCC per source and seed"][0].startswith("| source | seed 0 |")


def test_every_warn_is_listed_once(written):
    _, got = written
    assert len(got["warn"]) >= 3
    for name in got["warn"]:
        assert got["report"].count(name) == 1, name
        assert f"| **WARN** | {name} |" in got["report"]


def test_the_report_names_no_absolute_path_and_shows_the_figures_relatively(written):
    root, got = written
    text = got["report"]
    assert str(root) not in text
    assert not re.search(r"(?<![\w.~/:-])/(tmp|home|work|root)/", text)
    assert "![held-out PLCC per source and seed](frreg-plcc.png)" in text
    assert "![ensemble bias and conformal half-width per source](frreg-evidence.png)" in text
    assert "| verdict | `HOLD.json` |" in text
    assert "- ../../corpus.jsonl: 2 rows of an unknown encoder" in text
    assert "data manifest: none beside" not in text  # the name is said once, in its column
    assert "| **WARN** | data manifest | none beside ../../corpus.jsonl |" in text
    assert got["pngs"] == [EVIDENCE_PNG, HEATMAP_PNG]
    assert FIGURES_MISSING not in text
    assert FIGURES_MISSING not in got["lines"]


def test_without_matplotlib_no_figure_is_drawn_one_line_says_so_and_nothing_else_changes(
    written, tmp_path
):
    _, drawn = written
    got = run_fresh(WRITE, str(tmp_path), "no-matplotlib", str(Path(__file__).parent))
    assert got["pngs"] == []
    assert got["report"].count(FIGURES_MISSING) == 1
    assert got["lines"].count(FIGURES_MISSING) == 1
    assert not any(line.startswith(("heatmap:", "evidence figure:")) for line in got["lines"])
    assert (got["verdict_line"], got["passed"], got["warn"]) == (
        drawn["verdict_line"],
        drawn["passed"],
        drawn["warn"],
    )

    def without_figures(text: str) -> str:
        return re.sub(r"## Figures\n\n.*?\n\n", "", text, flags=re.S)

    assert without_figures(got["report"]) == without_figures(drawn["report"])


def test_relative_paths_rewrites_paths_and_leaves_urls_units_and_ratios():
    base = Path("/tmp/a/b")
    text = (
        "see /tmp/a/b/HOLD.json and /tmp/c.jsonl: bad; https://example.org/x stays, "
        "so do w/o, 3/5, VMAF/s and /nonexistent-root/x."
    )
    assert relative_paths(text, base) == (
        "see HOLD.json and ../../c.jsonl: bad; https://example.org/x stays, "
        "so do w/o, 3/5, VMAF/s and /nonexistent-root/x."
    )


def test_markdown_appends_extra_sections_after_the_gate_checks():
    report = evaluate({}, Thresholds())
    text = markdown(report, [], {}, sections=["## Extra\n\nA line.\n", "## Another\n"])
    assert text.index("## Gate checks") < text.index("## Extra") < text.index("## Another")
    assert "A line.\n\n## Another" in text


# --------------------------------------------------------------------------
# Figures, read back from the matplotlib objects
# --------------------------------------------------------------------------


def inside(fig, artist) -> bool:
    """Whether ``artist`` is drawn wholly inside the figure (nothing cut)."""
    box = artist.get_window_extent(fig.canvas.get_renderer())
    whole = fig.bbox
    return (
        box.x0 >= whole.x0 - 1
        and box.x1 <= whole.x1 + 1
        and box.y0 >= whole.y0 - 1
        and (box.y1 <= whole.y1 + 1)
    )


def test_the_heatmap_scale_spans_the_data_and_marks_the_adr_threshold():
    import matplotlib.pyplot as plt

    sources = [f"source_{i}" for i in range(10)]
    table = {s: {src: 0.999 - 0.001 * i - 0.0005 * s for i, src in enumerate(sources)}
             for s in range(5)}  # fmt: skip
    table[3]["source_9"] = 0.93  # one fold below the threshold
    table[4]["source_0"] = None  # one fold undefined
    fig = heatmap_plot(sources, table, "held-out PLCC — HOLD (ADR-0303 gate)")
    try:
        ax = fig.axes[0]
        values = [v for row in table.values() for v in row.values() if v is not None]
        assert ax.images[0].get_clim() == pytest.approx((min(values), max(values)))
        assert ax.get_title() == "held-out PLCC — HOLD (ADR-0303 gate)"
        assert [t.get_text() for t in ax.get_yticklabels()] == sources
        assert [t.get_text() for t in ax.get_xticklabels()] == [f"seed {s}" for s in range(5)]
        bar = fig.axes[1]
        assert f"threshold {PER_SEED_PLCC_MIN:g}" in ax.get_xlabel()
        [line] = bar.lines  # the threshold, inside this data's range
        assert line.get_ydata()[0] == PER_SEED_PLCC_MIN
        red = [p for p in ax.patches if p.get_edgecolor()[:3] == (1.0, 0.0, 0.0)]
        assert [(p.get_x() + 0.46, p.get_y() + 0.46) for p in red] == [(3, 9)]
        texts = {t.get_text() for t in ax.texts}
        assert {"0.930", "0.999", "—"} <= texts
        # The scale's ends are the data's: each distinct value its own colour.
        colours = {tuple(ax.images[0].cmap(ax.images[0].norm(v))) for v in values}
        assert len(colours) == len(set(values))
    finally:
        plt.close(fig)


def test_the_heatmap_threshold_line_is_left_out_when_the_data_is_above_it():
    import matplotlib.pyplot as plt

    fig = heatmap_plot(["a", "b"], {0: {"a": 0.99, "b": 0.995}}, "t")
    try:
        assert fig.axes[0].images[0].get_clim() == pytest.approx((0.99, 0.995))
        assert not fig.axes[1].lines
        assert not fig.axes[0].patches
    finally:
        plt.close(fig)


@pytest.mark.parametrize(
    ("sources", "seeds"),
    [
        (["a_source_with_a_very_long_name_cropped_from_4k_at_60fps"], [0]),
        ([f"partial_run_source_{i:02d}_with_a_long_name" for i in range(12)], [3, 4]),
        (["x", "y"], list(range(5))),
    ],
)
def test_no_label_of_the_heatmap_is_cut(sources, seeds):
    import matplotlib.pyplot as plt

    table = {s: dict.fromkeys(sources, 0.97) for s in seeds}
    fig = heatmap_plot(sources, table, "held-out PLCC — PROMOTE (ADR-0303)")
    try:
        fig.canvas.draw()
        ax = fig.axes[0]
        labels = [*ax.get_yticklabels(), *ax.get_xticklabels(), ax.title, ax.xaxis.label]
        for label in [*labels, fig.axes[1].yaxis.label]:
            assert inside(fig, label), label.get_text()
    finally:
        plt.close(fig)


def test_the_evidence_legend_covers_no_data(written):
    import matplotlib.pyplot as plt

    root, _ = written
    _, report, _, ensemble, _ = session_inputs(root / "again")
    fig = evidence_plot(ensemble, 7.0, f"evidence — {report.verdict_line}")
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        ax = fig.axes[0]
        [legend] = fig.legends
        assert not ax.legend_
        assert not legend.get_window_extent(renderer).overlaps(ax.get_window_extent(renderer))
        assert inside(fig, legend)
        assert all(inside(fig, t) for t in ax.get_yticklabels())
    finally:
        plt.close(fig)
