"""Guard the callers of an ``argparse`` CLI against the CLI's real parser.

A wrapper script that passes ``--corpus-root`` to a CLI accepting ``--corpus``
fails only when it runs for real. This package makes it fail a test:

* :class:`ArgvRecorder` runs a caller (a script, a documented command, Python
  code) with stand-ins for the CLIs it calls and records every argv;
* :func:`verify` / :func:`assert_contract` / :func:`check_argv` parse each argv
  with the callee's real parser and diagnose what is wrong ("did you mean");
* :func:`check_docs` does the same for the shell blocks of the documentation;
* :mod:`argvcontract.surface` snapshots every CLI's flags so changing an
  interface is a deliberate act;
* :func:`valid_argv` / :func:`invalid_argv` are Hypothesis strategies built from
  any ``argparse`` parser (imported on first use: Hypothesis is optional), and
  :func:`namespace_to_argv` writes a parsed namespace back as argv.

A CLI is described by a :class:`Cli` (a name and a function building its
parser); nothing here knows any particular project. Values of custom
``type=`` callables are registered in :mod:`argvcontract.values`
(:func:`register_format`, :func:`register_type`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from argvcontract.cli import Cli, PluginOptions, cli_by_name, clis_from_modules
from argvcontract.docs import check_command, check_docs, check_markdown, collect_commands
from argvcontract.parsing import ParseRefused, parse_quietly
from argvcontract.recorder import ArgvRecorder, CallerTimeout, ScriptContract
from argvcontract.recording import Call, Recording
from argvcontract.roundtrip import NotExpressible, namespace_to_argv
from argvcontract.surface import SurfaceDiff, describe_parser, diff_surface, snapshot
from argvcontract.values import ValueSpec, register_format, register_spec_factory
from argvcontract.verify import (
    ContractError,
    ContractReport,
    Problem,
    assert_argv,
    assert_contract,
    check_argv,
    closest_option,
    verify,
)

if TYPE_CHECKING:
    from argvcontract.strategies import (
        InvalidArgv,
        UnregisteredType,
        invalid_argv,
        register_type,
        valid_argv,
    )

#: Names imported on first use: the strategies need Hypothesis.
_LAZY = {
    "InvalidArgv": "argvcontract.strategies",
    "UnregisteredType": "argvcontract.strategies",
    "invalid_argv": "argvcontract.strategies",
    "register_type": "argvcontract.strategies",
    "valid_argv": "argvcontract.strategies",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ArgvRecorder",
    "Call",
    "CallerTimeout",
    "Cli",
    "ContractError",
    "ContractReport",
    "InvalidArgv",
    "NotExpressible",
    "ParseRefused",
    "PluginOptions",
    "Problem",
    "Recording",
    "ScriptContract",
    "SurfaceDiff",
    "UnregisteredType",
    "ValueSpec",
    "assert_argv",
    "assert_contract",
    "check_argv",
    "check_command",
    "check_docs",
    "check_markdown",
    "cli_by_name",
    "clis_from_modules",
    "closest_option",
    "collect_commands",
    "describe_parser",
    "diff_surface",
    "invalid_argv",
    "namespace_to_argv",
    "parse_quietly",
    "register_format",
    "register_spec_factory",
    "register_type",
    "snapshot",
    "valid_argv",
    "verify",
]
