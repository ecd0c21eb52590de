"""The gate's pytest items: one per corpus, fold, seed and ensemble check.

Each item runs one :class:`~frreg.session.ItemSpec` of the session (a
``GateSession.check_*`` method and its arguments); which items there are, and
their names, come from :func:`frreg.session.item_specs`, not from this module.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from _pytest._code.code import TerminalRepr

    from frreg.session import GateSession, ItemSpec

NODE = "frreg-gate"
#: The xdist group of one seed's items; ``--dist loadgroup`` appends ``@<group>`` to node ids.
GROUP_PREFIX = "frreg-seed"
_GROUP_SUFFIX = re.compile(rf"@{GROUP_PREFIX}\d+$")


def strip_group(nodeid: str) -> str:
    """The item's own node id, whatever its source id contains (``@`` included)."""
    return _GROUP_SUFFIX.sub("", nodeid)


SESSION_KEY: pytest.StashKey[GateSession] = pytest.StashKey()


def node_ids(specs: Sequence[ItemSpec]) -> list[str]:
    """Node ids of the gate items ``specs``, in their order."""
    return [f"{NODE}::{spec.name}" for spec in specs]


class GateItem(pytest.Item):
    """One gate check. A failure reads as a one-line verdict, not a traceback."""

    def __init__(self, *, spec: ItemSpec, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec = spec
        self.add_marker("frreg_gate")

    def runtest(self) -> None:
        __tracebackhide__ = True
        from frreg.errors import EvidenceWarning
        from frreg.session import GateFailure

        session = self.config.stash[SESSION_KEY]
        # Re-emitted only once the recording ends: inside it, each re-emitted warning
        # would be recorded again.
        caught: list[warnings.WarningMessage] = []
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", EvidenceWarning)
                props = self.spec.run(session)
        except GateFailure as failure:
            self.user_properties.extend(failure.properties.items())
            raise
        finally:
            self._rewarn(caught)
        self.user_properties.extend(props.items())

    def _rewarn(self, caught: list[warnings.WarningMessage]) -> None:
        """Re-emit the check's warnings at this item (``frreg-gate::evidence[...]``), not
        at the library line that raised them: that line says nothing to a reader."""
        from frreg.errors import EvidenceWarning

        for w in caught:
            if issubclass(w.category, EvidenceWarning):
                warnings.warn_explicit(w.message, w.category, self.nodeid, 0, module=NODE)
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)

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
            specs = session.item_specs()
        except FrregError as exc:
            raise pytest.UsageError(str(exc)) from None

        items: list[pytest.Item | pytest.Collector] = []
        for spec in specs:
            item = GateItem.from_parent(self, name=spec.name, spec=spec)
            if spec.seed_group is not None:
                item.add_marker(pytest.mark.xdist_group(f"{GROUP_PREFIX}{spec.seed_group}"))
            items.append(item)
        return items
