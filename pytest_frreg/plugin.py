"""pytest-frreg: the fr_regressor_v2 ensemble ship gate as pytest items.

``pytest --frreg-corpus=PATH`` adds, under the node ``frreg-gate``, one item
for the corpus, one per (seed, held-out source), one per seed and one per
ensemble check. The corpus is produced if missing, each seed is trained once
per cache key (also across pytest-xdist workers and concurrent sessions), and
the controller writes ``PROMOTE.json`` or ``HOLD.json`` after every item has
reported. pytest's exit status is the gate.

This module holds the options and hooks; the items live in
:mod:`pytest_frreg.items`, the verdict writer in :mod:`pytest_frreg.controller`,
and everything they do in :mod:`frreg.session`. Without ``--frreg-corpus``
(or the ``frreg_corpus`` ini key) the plugin adds no items and imports
nothing heavy: the library is imported inside hooks.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from frreg.options import Option, add_options
from frreg.session_options import GATE_OUT_DIR, PLUGIN_OPTIONS
from pytest_frreg.items import NODE, SESSION_KEY, GateCollector

PREFIX = "frreg-"

__all__ = ["NODE", "PREFIX"]


def _name(opt: Option) -> str:
    """Option dest and ini key: ``frreg_<dest>``."""
    return "frreg_" + opt.dest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("frreg", "fr_regressor_v2 ensemble ship gate (pytest-frreg)")

    def add(*flags: str, **kwargs: Any) -> None:
        # Resolved later as option > ini > built-in default, so argparse must
        # not fill the default in; the help text still shows it. Values are
        # checked at configure time, not by argparse, so that the gate's old
        # verdict is removed first even when a value is bad.
        if kwargs.get("choices"):
            kwargs.setdefault("metavar", "{" + ",".join(kwargs["choices"]) + "}")
        for key in ("type", "choices"):
            kwargs.pop(key, None)
        kwargs.update(dest="frreg_" + kwargs["dest"], default=None)
        group.addoption(*flags, **kwargs)

    # One word per flag: the words after an option may be test paths.
    add_options(add, PLUGIN_OPTIONS, prefix=PREFIX, single_word=True)
    for opt in PLUGIN_OPTIONS:
        parser.addini(_name(opt), f"default for {'/'.join(opt.flags(PREFIX))}", default="")


def _resolve(config: pytest.Config, opt: Option) -> Any:
    """One option's value: command line, else ini, else the built-in default; checked."""
    raw = config.getoption(_name(opt))
    where = f"argument {'/'.join(opt.flags(PREFIX))}"
    if raw is None:
        raw = config.getini(_name(opt))
        where = f"ini option {_name(opt)}"
        if raw in ("", None):
            return opt.default
    if opt.choices and raw not in opt.choices:
        choices = ", ".join(repr(c) for c in opt.choices)
        raise pytest.UsageError(f"{where}: invalid choice: {raw!r} (choose from {choices})")
    try:
        return opt.convert(raw)
    except argparse.ArgumentTypeError as exc:
        raise pytest.UsageError(f"{where}: {exc}") from None


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
    if not config.pluginmanager.hasplugin("xdist"):
        # The gate items carry xdist_group (a seed's items on one worker); without
        # pytest-xdist nobody registers it, and --strict-markers would stop the run.
        config.addinivalue_line(
            "markers", "xdist_group(name): pytest-xdist's grouping (unused without xdist)"
        )
    if not _active(config):
        return
    from frreg.errors import FrregError
    from frreg.session import GateSession, clear_verdict, gate_config
    from pytest_frreg.controller import GateController
    from pytest_frreg.items import node_ids

    base = Path(config.invocation_params.dir)
    if not hasattr(config, "workerinput"):
        # Before anything can fail (a bad value, collection, an internal error,
        # --co): this session's outcome is unknown, so no earlier verdict stands.
        out_dir = base / str(_resolve(config, GATE_OUT_DIR))
        try:
            clear_verdict(out_dir)
        except FrregError as exc:
            raise pytest.UsageError(str(exc)) from None
    values = {opt.dest: _resolve(config, opt) for opt in PLUGIN_OPTIONS}
    try:
        session = GateSession(gate_config(values, base, prefix=f"--{PREFIX}"))
    except FrregError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[SESSION_KEY] = session
    if not hasattr(config, "workerinput"):
        try:  # before any training: a baseline verdict that cannot be read
            session.check_baseline()
        except FrregError as exc:
            raise pytest.UsageError(f"--{PREFIX}baseline: {exc}") from None
    if session.config.export_dir is not None and not hasattr(config, "workerinput"):
        try:  # before any training: an export that cannot run is a usage error now
            session.require_export_extra()
        except FrregError as exc:
            raise pytest.UsageError(f"--{PREFIX}export: {exc}") from None
    if not hasattr(config, "workerinput"):  # the controller, or a run without xdist
        try:
            expected = node_ids(session.item_specs())
        except FrregError as exc:
            raise pytest.UsageError(str(exc)) from None
        config.pluginmanager.register(GateController(config, session, expected), "frreg-controller")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    # tryfirst: before -k/-m deselection and before xdist tags loadgroup ids.
    if SESSION_KEY in config.stash:
        collector = GateCollector.from_parent(session, name=NODE, nodeid=NODE)
        items.extend(i for i in collector.collect() if isinstance(i, pytest.Item))
