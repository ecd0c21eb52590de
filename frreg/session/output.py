"""What a gate session writes and prints: its log, the published seed files, the
markdown report and figures, and the terminal summary."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from frreg._io import append_line, atomic_writer
from frreg.cache import SeedCache
from frreg.gate.checks import GateReport
from frreg.gate.criteria import BIAS
from frreg.session.outcomes import ItemOutcome, items_line, reported_cache_keys, trained_seeds

if TYPE_CHECKING:
    from frreg.gate.ensemble import EnsembleEvidence
    from frreg.session.config import GateConfig
    from frreg.session.gate_session import GateSession
    from frreg.training.record import SeedRecord

#: File names the gate session writes into its out dir, besides the seed artifacts.
REPORT_MD = "frreg-report.md"
HEATMAP_PNG = "frreg-plcc.png"
EVIDENCE_PNG = "frreg-evidence.png"
#: Progress of long work (corpus production, training), one timestamped line per event.
#: Workers cannot draw on the terminal, so `tail -f` this file to watch a run.
LOG_FILE = "frreg-gate.log"


def file_log(path: Path) -> Callable[[str], None]:
    """A ``log(message)`` that appends timestamped lines to ``path`` (shared by processes)."""

    def log(message: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        # One short append per line: concurrent writers interleave whole lines.
        append_line(path, f"{stamp} pid {os.getpid()}: {message}")

    return log


def publish_seed(cache: SeedCache, out: Path, seed: int, key: str | None) -> None:
    """Copy one seed's cached artifact into ``out``, or remove a stale one."""
    from frreg.schema import seed_files

    names = seed_files(seed)
    src_dir = cache.entry_dir(key) if key else None
    if src_dir is None or not all((src_dir / n).is_file() for n in names):
        for name in names:
            (out / name).unlink(missing_ok=True)
        return
    for name in names:  # the JSON last, so it never points at a missing file
        with atomic_writer(out / name, "wb") as fh:
            fh.write((src_dir / name).read_bytes())


def remove_foreign_seeds(out: Path, seeds: Sequence[int], log: Callable[[str], None]) -> None:
    """Remove seed files of other seeds from the session's out dir (an earlier session's,
    with other --frreg-seeds): the verdict judges this session's seeds, and a directory
    holding more seed files than it gated would be a cherry-picked verdict."""
    from frreg.schema import seed_files, seeds_in

    for seed in seeds_in(out):
        if seed in seeds:
            continue
        for name in seed_files(seed):
            (out / name).unlink(missing_ok=True)
        log(f"removed seed {seed}'s files from {out}: not a seed of this session")


def write_reports(
    config: GateConfig,
    report: GateReport,
    records: Mapping[int, SeedRecord],
    verdict_path: Path,
    notes: Sequence[str],
    ensemble: EnsembleEvidence | None,
    *,
    sections: Sequence[str] = (),
) -> None:
    """The markdown report, the PLCC heatmap and the evidence figure, beside the verdict.

    Without the ``figures`` extra no PNG is written and the report says so in one line;
    ``sections`` are markdown blocks added after the gate checks
    (:func:`frreg.gate.report.markdown`). Paths in the report are relative to it.
    """
    from frreg.gate.report import (
        evidence_figure,
        figures_available,
        heatmap,
        markdown,
        plcc_table,
    )

    out = config.out_dir
    sources, table = plcc_table(records)
    for name in (HEATMAP_PNG, EVIDENCE_PNG):  # never a stale figure beside a new verdict
        (out / name).unlink(missing_ok=True)
    figures: dict[str, str] = {}
    drawable = figures_available()
    if drawable:
        if sources and table:
            heatmap(out / HEATMAP_PNG, sources, table, f"held-out PLCC — {report.verdict_line}")
            figures["held-out PLCC per source and seed"] = HEATMAP_PNG
        if ensemble is not None:
            title = (
                "ensemble bias and conformal half-width per held-out source — "
                f"{report.verdict_line}"
            )
            evidence_figure(out / EVIDENCE_PNG, ensemble, config.thresholds[BIAS], title)
            figures["ensemble bias and conformal half-width per source"] = EVIDENCE_PNG
    files = {"verdict": str(verdict_path), "report": REPORT_MD, "log": LOG_FILE}
    files.update({f"change against the baseline ({n.rsplit('.', 1)[1]})": n for n in _diffs(out)})
    with atomic_writer(out / REPORT_MD) as fh:
        fh.write(
            markdown(
                report,
                sources,
                table,
                files=files,
                notes=notes,
                evidence=ensemble,
                records=records,
                sections=sections,
                # Drawn, or said why not; nothing to draw is no section at all.
                figures=figures if figures or not drawable else None,
                base=out,
            )
        )


def _diffs(out: Path) -> list[str]:
    """The verdict diff files (``--frreg-baseline``) in ``out``, by name."""
    from frreg.gate.diff import DIFF_FILES

    return [name for name in DIFF_FILES if (out / name).is_file()]


def report_file_lines(out: Path) -> list[str]:
    """The terminal summary's lines naming the report, the log, the verdict diff and the
    figures (or the one line saying the figures were not drawn)."""
    from frreg.gate.report import FIGURES_MISSING, figures_available

    lines = [f"report: {out / REPORT_MD}", f"log: {out / LOG_FILE}"]
    lines += [f"change against the baseline: {out / name}" for name in _diffs(out)]
    if not figures_available():
        return [*lines, FIGURES_MISSING]
    if (out / HEATMAP_PNG).exists():
        lines.append(f"heatmap: {out / HEATMAP_PNG}")
    if (out / EVIDENCE_PNG).exists():
        lines.append(f"evidence figure: {out / EVIDENCE_PNG}")
    return lines


def summary_lines(
    session: GateSession,
    report: GateReport,
    verdict_path: Path | None,
    outcomes: Mapping[str, ItemOutcome],
    expected: Sequence[str],
) -> list[str]:
    """The terminal summary: PLCC table, per-seed means, gate parts, verdict, files."""
    from frreg.gate.checks import load_loso_dir
    from frreg.gate.report import plcc_table, table_lines

    config = session.config
    out = config.out_dir
    arts = load_loso_dir(out, config.seeds)
    sources, table = plcc_table({s: a.record for s, a in arts.items()})
    lines = table_lines(sources, table, report.seed_means) if table else ["(no trained seeds)"]
    lines.append("")
    if session.final_ensemble is not None:
        from frreg.gate.report import evidence_lines

        lines += evidence_lines(session.final_ensemble)
        lines.append("")
    lines += report.lines()
    if session.verdict_diff is not None:
        lines += session.verdict_diff.lines()
    lines.append(items_line(outcomes, expected))
    trained = sorted(trained_seeds(outcomes))
    obtained = set(reported_cache_keys(outcomes))
    cached = [s for s in config.seeds if s in obtained and s not in trained]
    absent = [s for s in config.seeds if s not in obtained]
    lines.append(
        f"trained this run: {', '.join(map(str, trained)) or 'none'}; "
        f"from cache: {', '.join(map(str, cached)) or 'none'} ({config.cache_dir})"
        + (f"; not trained: {', '.join(map(str, absent))}" if absent else "")
    )
    if verdict_path is not None:
        lines.append(f"verdict: {verdict_path}")
    lines += report_file_lines(out)
    lines.append(f"frreg verdict: {report.verdict_line}")  # the last line, where CI logs end
    return lines
