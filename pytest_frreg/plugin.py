"""pytest-frreg: the fr_regressor_v2 ensemble ship gate as pytest items.

``pytest --frreg-corpus=PATH`` adds, under the node ``frreg-gate``, one item
for the corpus, one per (seed, held-out source), one per seed and one per
ensemble check. The corpus is produced if missing, each seed is trained once
per cache key (also across pytest-xdist workers and concurrent sessions), and
the controller writes ``PROMOTE.json`` or ``HOLD.json`` after every item has
reported. pytest's exit status is the gate.

Without ``--frreg-corpus`` (or the ``frreg_corpus`` ini key) the plugin adds
no items and imports nothing heavy: the library is imported inside hooks.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import pytest

from frreg.options import PLUGIN_OPTIONS, Option, add_options

if TYPE_CHECKING:
    from frreg.gate import GateReport
    from frreg.gaterun import GateRun, ItemOutcome

PREFIX = "frreg-"
NODE = "frreg-gate"
#: Ensemble-level items: (item id part, the library's check name).
ENSEMBLE_CHECKS = (
    ("size", "ensemble size"),
    ("mean-plcc", "mean PLCC"),
    ("plcc-spread", "PLCC spread"),
    ("per-seed-min", "per-seed minimum PLCC"),
    ("provenance", "provenance"),
)

RUN_KEY = pytest.StashKey["GateRun"]()


def _name(opt: Option) -> str:
    """Option dest and ini key: ``frreg_<dest>``."""
    return "frreg_" + opt.dest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("frreg", "fr_regressor_v2 ensemble ship gate (pytest-frreg)")

    def add(flag: str, **kwargs: Any) -> None:
        # Resolved later as option > ini > built-in default, so argparse must
        # not fill the default in; the help text still shows it.
        kwargs.update(dest="frreg_" + kwargs["dest"], default=None)
        group.addoption(flag, **kwargs)

    add_options(add, PLUGIN_OPTIONS, prefix=PREFIX)
    for opt in PLUGIN_OPTIONS:
        parser.addini(_name(opt), f"default for --{PREFIX}{opt.name}", default="")


def _resolve(config: pytest.Config, opt: Option) -> Any:
    value = config.getoption(_name(opt))
    if value is not None:
        return value
    raw = config.getini(_name(opt))
    if raw in ("", None):
        return opt.default
    if opt.choices and raw not in opt.choices:
        raise pytest.UsageError(
            f"ini option {_name(opt)} = {raw!r}: choose from {', '.join(opt.choices)}"
        )
    if opt.type is None:
        return raw
    try:
        return opt.type(str(raw))
    except argparse.ArgumentTypeError as exc:
        raise pytest.UsageError(f"ini option {_name(opt)}: {exc}") from None


def _active(config: pytest.Config) -> bool:
    return bool(config.getoption("frreg_corpus", None) or config.getini("frreg_corpus"))


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    # Send all items of one seed to one xdist worker so that it trains the
    # seed's folds together in one batched run. An explicit --dist wins.
    xdist = getattr(config.option, "numprocesses", None)
    if _active(config) and xdist and getattr(config.option, "dist", "no") == "no":
        config.option.dist = "loadgroup"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "frreg_gate: an item of the frreg ensemble ship gate")
    if not _active(config):
        return
    from frreg.errors import FrregError
    from frreg.gaterun import GateRun, gate_config

    values = {opt.dest: _resolve(config, opt) for opt in PLUGIN_OPTIONS}
    try:
        run = GateRun(gate_config(values, Path(config.invocation_params.dir)))
    except FrregError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[RUN_KEY] = run
    if not hasattr(config, "workerinput"):  # the controller, or a run without xdist
        try:
            sources = run.declared_sources()
        except FrregError as exc:
            raise pytest.UsageError(str(exc)) from None
        config.pluginmanager.register(
            GateController(run, item_ids(run, sources)), "frreg-controller"
        )


class ItemSpec(NamedTuple):
    """One gate item: its name, the :class:`~frreg.gaterun.GateRun` check and its arguments."""

    name: str
    check: str
    args: tuple[Any, ...]
    seed_group: int | None  # items of one seed run on one xdist worker


def item_specs(seeds: Sequence[int], sources: Sequence[str]) -> list[ItemSpec]:
    """Every gate item, in collection order (the controller's expected list uses it too)."""
    specs = [ItemSpec("corpus", "check_corpus", (), None)]
    specs += [
        ItemSpec(f"fold[seed{s}-{src}]", "check_fold", (s, src), s)
        for s in seeds
        for src in sources
    ]
    specs += [ItemSpec(f"seed[seed{s}]", "check_seed", (s,), s) for s in seeds]
    specs += [ItemSpec(f"ensemble[{n}]", "check_ensemble", (c,), None) for n, c in ENSEMBLE_CHECKS]
    return specs


def item_ids(run: GateRun, sources: Sequence[str]) -> list[str]:
    """Node ids of every gate item, in collection order."""
    return [f"{NODE}::{spec.name}" for spec in item_specs(run.config.seeds, sources)]


# ---------------------------------------------------------------------- items


class GateItem(pytest.Item):
    """One gate check. A failure reads as a one-line verdict, not a traceback."""

    def __init__(self, *, check: str, args: tuple[Any, ...], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._check = check
        self._args = args
        self.add_marker("frreg_gate")

    def runtest(self) -> None:
        __tracebackhide__ = True
        from frreg.gaterun import GateFailure

        run: GateRun = self.config.stash[RUN_KEY]
        try:
            props = getattr(run, self._check)(*self._args)
        except GateFailure as failure:
            self.user_properties.extend(failure.properties.items())
            raise
        self.user_properties.extend(props.items())

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        from frreg.errors import FrregError
        from frreg.gaterun import GateFailure

        if isinstance(excinfo.value, GateFailure | FrregError):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"{NODE}::{self.name}"


class GateCollector(pytest.Collector):
    """The ``frreg-gate`` node: its items come from the plugin, not from test files."""

    def collect(self) -> list[pytest.Item]:
        from frreg.errors import FrregError

        run: GateRun = self.config.stash[RUN_KEY]
        try:
            sources = run.declared_sources()
        except FrregError as exc:
            raise pytest.UsageError(str(exc)) from None

        items = []
        for spec in item_specs(run.config.seeds, sources):
            item = GateItem.from_parent(self, name=spec.name, check=spec.check, args=spec.args)
            if spec.seed_group is not None:
                item.add_marker(pytest.mark.xdist_group(f"frreg-seed{spec.seed_group}"))
            items.append(item)
        return items


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    # tryfirst: before -k/-m deselection and before xdist tags loadgroup ids.
    if RUN_KEY in config.stash:
        items.extend(GateCollector.from_parent(session, name=NODE, nodeid=NODE).collect())


# ---------------------------------------------------------------------- verdict


class GateController:
    """Controller-side state: item outcomes in, verdict and summary out.

    Registered only in the process that writes the verdict (the xdist
    controller, or the single process without xdist), so the verdict is built
    once, from the items' reports.
    """

    def __init__(self, run: GateRun, expected: list[str]) -> None:
        self.run = run
        self.expected = expected
        self.outcomes: dict[str, ItemOutcome] = {}
        self.report: GateReport | None = None
        self.verdict_path: Path | None = None

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        from frreg.verdict import clear_verdict

        # A stale verdict must not outlive a run whose outcome is not known yet.
        clear_verdict(self.run.config.out_dir)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not report.nodeid.startswith(f"{NODE}::"):
            return
        from frreg.gaterun import ItemOutcome

        nodeid = report.nodeid.split("@", 1)[0]  # --dist loadgroup appends "@group"
        if report.when != "call" and report.passed:
            return
        outcome = report.outcome if report.when == "call" else f"{report.outcome} in {report.when}"
        previous = self.outcomes.get(nodeid)
        if previous is None or previous.outcome == "passed":
            self.outcomes[nodeid] = ItemOutcome(nodeid, outcome, dict(report.user_properties))

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if session.config.option.collectonly:
            return
        interrupted = None
        if exitstatus == pytest.ExitCode.INTERRUPTED:
            interrupted = "interrupted"
        elif session.shouldstop or session.shouldfail:
            interrupted = f"stopped early ({session.shouldstop or session.shouldfail})"
        self.report, self.verdict_path = self.run.finalize(
            self.outcomes, self.expected, interrupted=interrupted
        )
        if not self.report.passed and session.exitstatus == pytest.ExitCode.OK:
            # Every item passed yet the verdict is HOLD: the gate still fails.
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.report is None:
            return
        from frreg.gaterun import summary_lines

        terminalreporter.write_sep("=", "frreg ensemble gate")
        for line in summary_lines(self.run, self.report, self.verdict_path, self.outcomes):
            terminalreporter.write_line(line)
