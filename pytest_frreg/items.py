"""The gate's pytest items: one per corpus, fold, seed and ensemble check.

Each item calls one :class:`~frreg.session.GateSession` check; the checks
and their names belong to :mod:`frreg.gate.checks`, not to this module.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import pytest

if TYPE_CHECKING:
    from _pytest._code.code import TerminalRepr

    from frreg.session import GateSession

NODE = "frreg-gate"
#: The xdist group of one seed's items; ``--dist loadgroup`` appends ``@<group>`` to node ids.
GROUP_PREFIX = "frreg-seed"
_GROUP_SUFFIX = re.compile(rf"@{GROUP_PREFIX}\d+$")


def strip_group(nodeid: str) -> str:
    """The item's own node id, whatever its source id contains (``@`` included)."""
    return _GROUP_SUFFIX.sub("", nodeid)


SESSION_KEY: pytest.StashKey[GateSession] = pytest.StashKey()


class ItemSpec(NamedTuple):
    """One gate item: its name, the :class:`~frreg.session.GateSession` check and its arguments."""

    name: str
    check: str
    args: tuple[Any, ...]
    seed_group: int | None  # items of one seed run on one xdist worker


def item_specs(
    seeds: Sequence[int], sources: Sequence[str], *, baseline: bool = False
) -> list[ItemSpec]:
    """Every gate item, in collection order (the controller's expected list uses it too)."""
    from frreg.gate.checks import (
        ENSEMBLE_CHECKS,
        EVIDENCE_BASELINE,
        EVIDENCE_POOLED,
        PER_SOURCE_EVIDENCE,
        evidence_check_name,
    )

    specs = [ItemSpec("corpus", "check_corpus", (), None)]
    specs += [
        ItemSpec(f"fold[seed{s}-{src}]", "check_fold", (s, src), s)
        for s in seeds
        for src in sources
    ]
    specs += [ItemSpec(f"seed[seed{s}]", "check_seed", (s,), s) for s in seeds]
    specs += [ItemSpec(f"ensemble[{n}]", "check_ensemble", (c,), None) for n, c in ENSEMBLE_CHECKS]
    evidence = [evidence_check_name(c, src) for c in PER_SOURCE_EVIDENCE for src in sources]
    evidence.append(evidence_check_name(EVIDENCE_POOLED))
    if baseline:
        evidence.append(evidence_check_name(EVIDENCE_BASELINE))
    prefix = evidence_check_name("")  # "evidence ": item ids drop it
    specs += [
        ItemSpec(f"evidence[{name.removeprefix(prefix)}]", "check_evidence", (name,), None)
        for name in evidence
    ]
    return specs


def item_ids(seeds: Sequence[int], sources: Sequence[str], *, baseline: bool = False) -> list[str]:
    """Node ids of every gate item, in collection order."""
    return [f"{NODE}::{spec.name}" for spec in item_specs(seeds, sources, baseline=baseline)]


class GateItem(pytest.Item):
    """One gate check. A failure reads as a one-line verdict, not a traceback."""

    def __init__(self, *, check: str, args: tuple[Any, ...], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._check = check
        self._args = args
        self.add_marker("frreg_gate")

    def runtest(self) -> None:
        __tracebackhide__ = True
        from frreg.session import GateFailure

        session = self.config.stash[SESSION_KEY]
        try:
            props = getattr(session, self._check)(*self._args)
        except GateFailure as failure:
            self.user_properties.extend(failure.properties.items())
            raise
        self.user_properties.extend(props.items())

    def repr_failure(
        self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None
    ) -> str | TerminalRepr:
        from frreg.errors import FrregError
        from frreg.session import GateFailure

        if isinstance(excinfo.value, GateFailure | FrregError):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"{NODE}::{self.name}"


class GateCollector(pytest.Collector):
    """The ``frreg-gate`` node: its items come from the plugin, not from test files."""

    def collect(self) -> list[pytest.Item | pytest.Collector]:
        from frreg.errors import FrregError

        session = self.config.stash[SESSION_KEY]
        try:
            sources = session.declared_sources()
        except FrregError as exc:
            raise pytest.UsageError(str(exc)) from None

        items: list[pytest.Item | pytest.Collector] = []
        specs = item_specs(
            session.config.seeds, sources, baseline=session.config.baseline is not None
        )
        for spec in specs:
            item = GateItem.from_parent(self, name=spec.name, check=spec.check, args=spec.args)
            if spec.seed_group is not None:
                item.add_marker(pytest.mark.xdist_group(f"{GROUP_PREFIX}{spec.seed_group}"))
            items.append(item)
        return items
