"""The change between two verdicts: per check and per held-out source.

A pull request's gate run is compared with a previous verdict (typically the
last PROMOTE on the main branch, passed as a file: no git history or write
token needed). :func:`diff_verdicts` takes two verdict documents as
``frreg-validate`` and the plugin write them and returns a
:class:`VerdictDiff`: the verdict, every check's status and observed value,
and each source's ensemble numbers, old beside new. It renders as terminal
lines (only what changed), markdown (every row, changed ones marked) and JSON.

Nothing here judges: the diff is evidence for a reviewer. The gate's own
``evidence baseline-relative`` check is what decides on a drop.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from frreg._io import atomic_writer, read_json, write_json_atomic
from frreg.errors import InputError
from frreg.schema import VERDICT_SCHEMA

#: The diff's files, written beside the verdict (removed with it).
DIFF_MD: Final = "frreg-verdict-diff.md"
DIFF_JSON: Final = "frreg-verdict-diff.json"
DIFF_FILES: Final = (DIFF_MD, DIFF_JSON)
#: The ``schema`` of :data:`DIFF_JSON`.
DIFF_SCHEMA: Final = "frreg-verdict-diff"

#: The per-source numbers compared: (column, ``evidence.sources`` field, format).
SOURCE_METRICS: Final = (
    ("PLCC", "ensemble_plcc", ".4f"),
    ("RMSE", "ensemble_rmse", ".2f"),
    ("bias", "bias", "+.2f"),
    ("OLS margin", "margin_plcc", "+.4f"),
    ("coverage", "coverage_conformal", ".3f"),
)
#: A numeric change smaller than this is rounding, not a change.
_SAME: Final = 1e-12


def read_verdict(path: str | Path, what: str = "baseline verdict") -> dict[str, Any]:
    """A verdict document frreg wrote (``"schema": "frreg-verdict"``), or an
    :class:`InputError` naming the file and what is wrong with it."""
    doc = read_json(path, what)
    if not isinstance(doc, dict) or doc.get("schema") != VERDICT_SCHEMA:
        raise InputError(f'{path}: not a frreg verdict (no "schema": "{VERDICT_SCHEMA}")')
    if not isinstance(doc.get("gate"), dict) or not isinstance(doc["gate"].get("checks"), list):
        raise InputError(f"{path}: a frreg verdict without gate.checks")
    return doc


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _delta(old: Any, new: Any) -> float | None:
    a, b = _number(old), _number(new)
    return None if a is None or b is None else b - a


@dataclass(frozen=True)
class CheckChange:
    """One check in the baseline and in this run (``None`` where it is absent)."""

    name: str
    old_status: str | None
    new_status: str | None
    old_observed: Any
    new_observed: Any

    @property
    def delta(self) -> float | None:
        return _delta(self.old_observed, self.new_observed)

    @property
    def status_changed(self) -> bool:
        return self.old_status != self.new_status

    @property
    def changed(self) -> bool:
        if self.status_changed:
            return True
        delta = self.delta
        if delta is not None:
            return abs(delta) > _SAME
        return bool(self.old_observed != self.new_observed)


@dataclass(frozen=True)
class SourceChange:
    """One held-out source's ensemble numbers in the baseline and in this run."""

    source: str
    old: Mapping[str, float | None]
    new: Mapping[str, float | None]
    #: ``"both"``, ``"added"`` (only in this run) or ``"removed"`` (only in the baseline).
    presence: str

    def delta(self, key: str) -> float | None:
        return _delta(self.old.get(key), self.new.get(key))

    @property
    def changed(self) -> bool:
        if self.presence != "both":
            return True
        for _, key, _ in SOURCE_METRICS:
            d = self.delta(key)
            if (d is None and self.old.get(key) != self.new.get(key)) or (
                d is not None and abs(d) > _SAME
            ):
                return True
        return False


@dataclass(frozen=True)
class VerdictDiff:
    """A verdict against a baseline verdict."""

    baseline: str
    old_verdict: str
    new_verdict: str
    old_line: str
    new_line: str
    same_corpus: bool
    checks: tuple[CheckChange, ...]
    sources: tuple[SourceChange, ...]

    @property
    def changed_checks(self) -> list[CheckChange]:
        return [c for c in self.checks if c.changed]

    @property
    def headline(self) -> str:
        """``verdict: PROMOTE (ADR-0303) -> HOLD against baseline X (corpus ...)``."""
        move = (
            f"{self.old_line} -> {self.new_line}"
            if self.old_line != self.new_line
            else f"unchanged: {self.new_line}"
        )
        corpus = "same corpus" if self.same_corpus else "a different corpus"
        flips = sum(c.status_changed for c in self.checks)
        return (
            f"against {self.baseline} ({corpus}): verdict {move}; {flips} check(s) changed "
            f"status, {len(self.changed_checks)} of {len(self.checks)} changed"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": DIFF_SCHEMA,
            "baseline": self.baseline,
            "verdict": {"baseline": self.old_verdict, "this_run": self.new_verdict},
            "verdict_line": {"baseline": self.old_line, "this_run": self.new_line},
            "same_corpus": self.same_corpus,
            "checks": [{**asdict(c), "delta": c.delta, "changed": c.changed} for c in self.checks],
            "sources": [
                {
                    "source": s.source,
                    "presence": s.presence,
                    "baseline": dict(s.old),
                    "this_run": dict(s.new),
                    "delta": {key: s.delta(key) for _, key, _ in SOURCE_METRICS},
                    "changed": s.changed,
                }
                for s in self.sources
            ],
        }

    def lines(self) -> list[str]:
        """For the terminal: the headline, then only what changed."""
        out = [f"change {self.headline}"]
        for c in self.changed_checks:
            out.append(
                f"  {c.name}: {c.old_status or 'absent'} -> {c.new_status or 'absent'}"
                f"{_observed_change(c)}"
            )
        for s in self.sources:
            if s.changed:
                out.append(f"  source {s.source}: {_source_change(s)}")
        return out

    def markdown(self) -> str:
        """Every check and source, old beside new, changed rows marked."""
        out = [
            "## Change against the baseline verdict",
            "",
            f"Baseline `{self.baseline}` ({'same' if self.same_corpus else 'different'} corpus).",
            "",
            "| | baseline | this run |",
            "|---|---|---|",
            f"| verdict | {_md(self.old_line)} | {_md(self.new_line)} |",
            "",
            "### Checks",
            "",
            f"{len(self.changed_checks)} of {len(self.checks)} checks changed "
            "(status or observed value); changed rows are marked **Δ**.",
            "",
            "| | check | baseline | this run | observed (baseline → this run) |",
            "|---|---|---|---|---|",
        ]
        for c in self.checks:
            mark = "**Δ**" if c.changed else ""
            observed = f"{_fmt(c.old_observed)} → {_fmt(c.new_observed)}"
            if c.delta is not None:
                observed += f" ({c.delta:+.4g})"
            out.append(
                f"| {mark} | {_md(c.name)} | {c.old_status or 'absent'} | "
                f"{c.new_status or 'absent'} | {_md(observed)} |"
            )
        out += [
            "",
            "### Per source (ensemble, held out)",
            "",
            "| | source | " + " | ".join(label for label, _, _ in SOURCE_METRICS) + " |",
            "|---|---|" + "---|" * len(SOURCE_METRICS),
        ]
        for s in self.sources:
            mark = "**Δ**" if s.changed else ""
            cells = []
            for _, key, fmt in SOURCE_METRICS:
                old, new, d = s.old.get(key), s.new.get(key), s.delta(key)
                cell = f"{_fmt(old, fmt)} → {_fmt(new, fmt)}"
                if d is not None and abs(d) > _SAME:
                    cell += f" ({d:+.3g})"
                cells.append(cell)
            name = s.source if s.presence == "both" else f"{s.source} ({s.presence})"
            out.append(f"| {mark} | {_md(name)} | " + " | ".join(cells) + " |")
        return "\n".join(out) + "\n"


def _fmt(value: Any, fmt: str = ".4g") -> str:
    if value is None:
        return "—"
    number = _number(value)
    return format(number, fmt) if number is not None else str(value)


def _md(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _observed_change(c: CheckChange) -> str:
    if c.old_observed == c.new_observed:
        return ""
    text = f", {_fmt(c.old_observed)} -> {_fmt(c.new_observed)}"
    return text + (f" ({c.delta:+.4g})" if c.delta is not None else "")


def _source_change(s: SourceChange) -> str:
    if s.presence != "both":
        return "only in the baseline" if s.presence == "removed" else "not in the baseline"
    parts = []
    for label, key, fmt in SOURCE_METRICS:
        d = s.delta(key)
        if d is not None and abs(d) > _SAME:
            parts.append(f"{label} {_fmt(s.old.get(key), fmt)} -> {_fmt(s.new.get(key), fmt)}")
    return ", ".join(parts) or "changed"


def _checks(doc: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The verdict's checks by name; a name that repeats gets ``#2``, ``#3``, ..."""
    out: dict[str, Mapping[str, Any]] = {}
    for check in doc.get("gate", {}).get("checks", []):
        if not isinstance(check, dict):
            continue
        name = str(check.get("name"))
        key, n = name, 1
        while key in out:
            n += 1
            key = f"{name} #{n}"
        out[key] = check
    return out


def _sources(doc: Mapping[str, Any]) -> dict[str, dict[str, float | None]]:
    sources = (doc.get("evidence") or {}).get("sources") or {}
    if not isinstance(sources, dict):
        return {}
    return {
        str(src): {key: _number(numbers.get(key)) for _, key, _ in SOURCE_METRICS}
        for src, numbers in sources.items()
        if isinstance(numbers, dict)
    }


def _ordered(new: Sequence[str], old: Sequence[str]) -> list[str]:
    """This run's names in its order, then the baseline's that it no longer has."""
    return [*new, *(name for name in old if name not in set(new))]


def diff_verdicts(
    new: Mapping[str, Any], old: Mapping[str, Any], *, baseline: str | Path
) -> VerdictDiff:
    """This run's verdict document ``new`` against the baseline verdict ``old``."""
    new_checks, old_checks = _checks(new), _checks(old)
    checks = tuple(
        CheckChange(
            name,
            (old_checks.get(name) or {}).get("status"),
            (new_checks.get(name) or {}).get("status"),
            (old_checks.get(name) or {}).get("observed"),
            (new_checks.get(name) or {}).get("observed"),
        )
        for name in _ordered(list(new_checks), list(old_checks))
    )
    new_src, old_src = _sources(new), _sources(old)
    sources = tuple(
        SourceChange(
            src,
            old_src.get(src, {}),
            new_src.get(src, {}),
            "both"
            if src in new_src and src in old_src
            else "added"
            if src in new_src
            else "removed",
        )
        for src in _ordered(sorted(new_src), sorted(old_src))
    )
    return VerdictDiff(
        baseline=str(baseline),
        old_verdict=str(old.get("verdict")),
        new_verdict=str(new.get("verdict")),
        old_line=str(old.get("verdict_line") or old.get("verdict")),
        new_line=str(new.get("verdict_line") or new.get("verdict")),
        same_corpus=old.get("corpus_sha256") == new.get("corpus_sha256"),
        checks=checks,
        sources=sources,
    )


def write_diff(out_dir: str | Path, diff: VerdictDiff) -> list[Path]:
    """Write :data:`DIFF_MD` and :data:`DIFF_JSON` into ``out_dir``, each atomically."""
    out = Path(out_dir)
    md, js = out / DIFF_MD, out / DIFF_JSON
    try:
        with atomic_writer(md) as fh:
            fh.write(diff.markdown())
        write_json_atomic(js, diff.to_json())
    except OSError as exc:
        raise InputError(f"{out}: cannot write the verdict diff: {exc.strerror or exc}") from None
    return [md, js]
