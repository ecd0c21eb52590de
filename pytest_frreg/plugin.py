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
from typing import Any, Literal

import pytest

from frreg.options import Option, add_options
from frreg.session_options import (
    BASELINE,
    GATE_CORPUS,
    GATE_OUT_DIR,
    PATH_DESTS,
    PLUGIN_OPTIONS,
)
from pytest_frreg.items import NODE, SESSION_KEY, GateCollector

PREFIX = "frreg-"
#: (path of the kept copy, the baseline as given): :func:`_keep_baseline`; workers get
#: it from the controller in their workerinput, under KEPT_BASELINE_KEY_NAME.
KEPT_BASELINE_KEY = pytest.StashKey[tuple[str, str]]()
KEPT_BASELINE_KEY_NAME = "frreg_kept_baseline"

__all__ = ["NODE", "PREFIX"]


def _dest(opt: Option) -> str:
    """The option's pytest dest: ``frreg_<dest>``."""
    return "frreg_" + opt.dest


def ini_key(opt: Option) -> str:
    """The option's ini key, named after its flag: ``--frreg-ols-margin-min`` is
    ``frreg_ols_margin_min``."""
    return "frreg_" + opt.name.replace("-", "_")


def _ini_aliases(opt: Option) -> tuple[str, ...]:
    """Earlier ini keys that were named after the dest (``frreg_margin_min``): still read."""
    old = _dest(opt)
    return () if old == ini_key(opt) else (old,)


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
        if opt.value_kind == "bool":
            # --frreg-no-strict: overrides an ini `frreg_strict = true` for one run.
            group.addoption(
                f"--{PREFIX}no-{opt.name}",
                action="store_false",
                dest=_dest(opt),
                default=None,
                help=f"turn {opt.flag(PREFIX)} off (overrides the ini key {ini_key(opt)})",
            )
    for opt in PLUGIN_OPTIONS:
        parser.addini(
            ini_key(opt),
            f"default for {'/'.join(opt.flags(PREFIX))}",
            type=opt.value_kind,
            default=None,
            aliases=_ini_aliases(opt),
        )


#: Where a value came from: the command line, an ini key, or the built-in default.
Origin = Literal["option", "ini", "default"]


def _resolve(config: pytest.Config, opt: Option) -> tuple[Any, Origin]:
    """One option's value and its origin: command line, else ini, else the built-in
    default; checked."""
    raw = config.getoption(_dest(opt))
    where = f"argument {'/'.join(opt.flags(PREFIX))}"
    origin: Origin = "option"
    if raw is None:
        where = f"ini option {ini_key(opt)}"
        try:  # a typed key: pytest converts it (bool, int, float)
            raw = config.getini(ini_key(opt))
        except pytest.UsageError as exc:
            raise pytest.UsageError(f"{where}: {exc}") from None
        origin = "ini"
        if raw in ("", None):
            return opt.default, "default"
    if isinstance(raw, bool):
        return raw, origin
    if opt.choices and raw not in opt.choices:
        choices = ", ".join(repr(c) for c in opt.choices)
        raise pytest.UsageError(f"{where}: invalid choice: {raw!r} (choose from {choices})")
    try:
        return opt.convert(raw), origin
    except argparse.ArgumentTypeError as exc:
        raise pytest.UsageError(f"{where}: {exc}") from None


def _base(config: pytest.Config, origin: Origin) -> Path:
    """What a relative path is relative to: the invocation directory for the command
    line, the ini file's directory for an ini key, pytest's rootdir for a default."""
    if origin == "option":
        return Path(config.invocation_params.dir)
    if origin == "ini" and config.inipath is not None:
        return config.inipath.parent
    return config.rootpath


def _values(config: pytest.Config) -> dict[str, Any]:
    """Every option's value keyed by dest, path options made absolute (:func:`_base`);
    a baseline the controller kept a copy of (:func:`_keep_baseline`) is that copy."""
    values: dict[str, Any] = {}
    for opt in PLUGIN_OPTIONS:
        value, origin = _resolve(config, opt)
        if value is not None and opt.dest in PATH_DESTS:
            path = Path(str(value)).expanduser()
            value = path if path.is_absolute() else _base(config, origin) / path
        values[opt.dest] = value
    kept = config.stash.get(KEPT_BASELINE_KEY, None) or getattr(config, "workerinput", {}).get(
        KEPT_BASELINE_KEY_NAME
    )
    if kept is not None:
        values["baseline"], values["baseline_name"] = kept
    return values


def _keep_baseline(config: pytest.Config, out_dir: Path) -> None:
    """Before the controller clears the out dir: a baseline that is the previous verdict
    in it is kept as a copy, which this session (and its workers) judge against."""
    from frreg.session import keep_baseline

    value, origin = _resolve(config, BASELINE)
    if value is None:
        return
    given = Path(str(value)).expanduser()
    path = given if given.is_absolute() else _base(config, origin) / given
    kept = keep_baseline(path, out_dir)
    if kept is not None:
        config.stash[KEPT_BASELINE_KEY] = (str(kept), str(value))


def _active(config: pytest.Config) -> bool:
    return bool(config.getoption(_dest(GATE_CORPUS), None) or config.getini(ini_key(GATE_CORPUS)))


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
    from frreg.session import GateSession, clear_outputs, gate_config
    from pytest_frreg.controller import GateController
    from pytest_frreg.items import node_ids

    if not hasattr(config, "workerinput") and not config.option.collectonly:
        # Before anything can fail (a bad value, collection, an internal error):
        # this session's outcome is unknown, so no earlier verdict stands. --co
        # runs nothing, so it leaves the verdict and its files as they are.
        value, origin = _resolve(config, GATE_OUT_DIR)
        out_dir = _base(config, origin) / str(value)
        try:
            _keep_baseline(config, out_dir)
            clear_outputs(out_dir)
        except FrregError as exc:
            raise pytest.UsageError(str(exc)) from None
    values = _values(config)
    try:
        session = GateSession(gate_config(values, config.rootpath, prefix=f"--{PREFIX}"))
    except FrregError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[SESSION_KEY] = session
    if not hasattr(config, "workerinput"):
        try:  # before any training: a baseline verdict that cannot be read
            session.check_baseline()
        except FrregError as exc:
            raise pytest.UsageError(f"--{PREFIX}baseline: {exc}") from None
    if not hasattr(config, "workerinput") and not config.option.collectonly:
        try:  # before any training (--co trains nothing, and imports no torch for it)
            session.check_kernel(prefix=f"--{PREFIX}")
        except FrregError as exc:
            raise pytest.UsageError(str(exc)) from None
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
        # Collected as pytest collects: the collect hooks fire, so "collected N items"
        # and the deselected/selected counts include the gate's items.
        items.extend(session.genitems(collector))
