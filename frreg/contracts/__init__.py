"""CLI contract guard: callers are checked against the real parsers of the CLIs they call.

The original harness broke because a wrapper passed ``--corpus-root`` to a
trainer that accepts ``--corpus`` and nothing ran one against the other. This
package makes that class of bug fail a test:

* :class:`ArgvRecorder` runs a caller (a script, a documented command, Python
  code) with stand-ins for the CLIs and records every argv;
* :func:`verify` / :func:`assert_contract` / :func:`check_argv` parse each argv
  with the callee's real ``build_parser()`` and diagnose what is wrong;
* :func:`check_docs` does the same for the shell blocks of the documentation;
* :mod:`frreg.contracts.surface` snapshots every CLI's flags so changing an
  interface is a deliberate act;
* :func:`valid_argv` / :func:`invalid_argv` are Hypothesis strategies built from
  any ``argparse`` parser (imported on first use: Hypothesis is a test dependency).

The machinery is the generic :mod:`argvcontract` package; this package binds
it to frreg: where a CLI list is optional, it defaults to :func:`frreg_clis`
(and the ``pytest --frreg-*`` options), and frreg's ``type=`` callables are
registered (:mod:`frreg.contracts.registry`). frreg never imports pytest;
``pytest_frreg.contracts`` turns these into fixtures.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import argvcontract
from argvcontract import (
    Call,
    CallerTimeout,
    Cli,
    ContractError,
    ContractReport,
    NotExpressible,
    ParseRefused,
    Problem,
    Recording,
    ScriptContract,
    SurfaceDiff,
    assert_argv,
    check_argv,
    cli_by_name,
    closest_option,
    describe_parser,
    diff_surface,
    namespace_to_argv,
    parse_quietly,
    register_format,
)
from argvcontract.docs import DocCommand
from frreg._lazy import lazy_getattr
from frreg.contracts.registry import CLI_MODULES, frreg_clis, frreg_plugin, plugin_cli

if TYPE_CHECKING:
    from argvcontract import InvalidArgv, UnregisteredType, invalid_argv, register_type, valid_argv
    from frreg.contracts.surface import snapshot

__getattr__ = lazy_getattr(
    __name__,
    {
        # The strategies need Hypothesis, a test dependency: argvcontract
        # imports them on first use, so these names ask it on first use.
        **dict.fromkeys(
            ("InvalidArgv", "UnregisteredType", "invalid_argv", "register_type", "valid_argv"),
            "argvcontract",
        ),
        # Imported on use so that `python -m frreg.contracts.surface` runs it fresh.
        "snapshot": "frreg.contracts.surface",
    },
)


# --------------------------------------------------------------------------
# argvcontract with frreg's CLIs as the default
# --------------------------------------------------------------------------


def _or_frreg(clis: Sequence[Cli] | None) -> Sequence[Cli]:
    """The CLIs asked for, or frreg's when none were: every wrapper's one default."""
    return frreg_clis() if clis is None else clis


class ArgvRecorder(argvcontract.ArgvRecorder):
    """An :class:`argvcontract.ArgvRecorder` standing in for every frreg CLI by default.

    Stand-ins for ``frreg-train``, ``frreg-gate``, ``frreg-validate``,
    ``frreg-corpus`` and ``python -m frreg.cli.*`` are installed unless
    ``clis`` says otherwise; :meth:`watch` adds your own.
    """

    def __init__(
        self, workdir: str | Path, clis: Sequence[Cli] | None = None, *, timeout: float = 60.0
    ) -> None:
        super().__init__(workdir, _or_frreg(clis), timeout=timeout)


def verify(
    recording: Recording,
    *,
    clis: Sequence[Cli] | None = None,
    must_call: Iterable[str] = (),
    must_pass: Mapping[str, Sequence[str]] | None = None,
    placeholders: bool = False,
    expect_returncode: int | None = 0,
) -> ContractReport:
    """:func:`argvcontract.verify`; ``clis`` defaults to the recording's, else frreg's."""
    return argvcontract.verify(
        recording,
        clis=clis if clis is not None else (recording.clis or frreg_clis()),
        must_call=must_call,
        must_pass=must_pass,
        placeholders=placeholders,
        expect_returncode=expect_returncode,
    )


def assert_contract(recording: Recording, **kwargs: Any) -> ContractReport:
    """:func:`verify` and raise :class:`ContractError` listing every problem.

    Keyword arguments are those of :func:`verify`. Returns the report when the
    contract holds.
    """
    __tracebackhide__ = True
    report = verify(recording, **kwargs)
    report.raise_for_problems()
    return report


def check_command(
    command: DocCommand,
    *,
    clis: Sequence[Cli] | None = None,
    scripts: Mapping[str, ScriptContract] | None = None,
    recorder: argvcontract.ArgvRecorder | None = None,
) -> list[Problem]:
    """Problems with one documented command (a script runs through ``recorder``)."""
    return argvcontract.check_command(
        command,
        clis=_or_frreg(clis),
        scripts=scripts,
        recorder=recorder,
        plugin=frreg_plugin(),
    )


def collect_commands(
    root: str | Path,
    *,
    clis: Sequence[Cli] | None = None,
    scripts: Mapping[str, ScriptContract] | None = None,
) -> tuple[list[DocCommand], list[Problem]]:
    """Every checkable command in ``README.md`` and ``docs/*.md`` under ``root``."""
    return argvcontract.collect_commands(
        root, clis=_or_frreg(clis), scripts=scripts, plugin=frreg_plugin()
    )


def check_markdown(
    text: str,
    source: str = "<markdown>",
    *,
    clis: Sequence[Cli] | None = None,
    scripts: Mapping[str, ScriptContract] | None = None,
    recorder: argvcontract.ArgvRecorder | None = None,
) -> ContractReport:
    """Check every command in a markdown text; the report lists each problem."""
    return argvcontract.check_markdown(
        text,
        source,
        clis=_or_frreg(clis),
        scripts=scripts,
        recorder=recorder,
        plugin=frreg_plugin(),
    )


def check_docs(
    root: str | Path,
    *,
    clis: Sequence[Cli] | None = None,
    scripts: Mapping[str, ScriptContract] | None = None,
    recorder: argvcontract.ArgvRecorder | None = None,
) -> ContractReport:
    """Check ``README.md`` and ``docs/*.md`` under ``root`` against frreg's CLIs."""
    return argvcontract.check_docs(
        root,
        clis=_or_frreg(clis),
        scripts=scripts,
        recorder=recorder,
        plugin=frreg_plugin(),
    )


__all__ = [
    "CLI_MODULES",
    "ArgvRecorder",
    "Call",
    "CallerTimeout",
    "Cli",
    "ContractError",
    "ContractReport",
    "InvalidArgv",
    "NotExpressible",
    "ParseRefused",
    "Problem",
    "Recording",
    "ScriptContract",
    "SurfaceDiff",
    "UnregisteredType",
    "assert_argv",
    "assert_contract",
    "check_argv",
    "check_command",
    "check_docs",
    "check_markdown",
    "cli_by_name",
    "closest_option",
    "collect_commands",
    "describe_parser",
    "diff_surface",
    "frreg_clis",
    "invalid_argv",
    "namespace_to_argv",
    "parse_quietly",
    "plugin_cli",
    "register_format",
    "register_type",
    "snapshot",
    "valid_argv",
    "verify",
]
