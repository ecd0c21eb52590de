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

frreg never imports pytest; ``pytest_frreg.contracts`` turns these into fixtures.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from argvcontract.cli import CLI_MODULES, Cli, cli_by_name, frreg_clis
from argvcontract.docs import check_command, check_docs, check_markdown, collect_commands
from argvcontract.parsing import ParseRefused, parse_quietly
from argvcontract.recorder import (
    ArgvRecorder,
    Call,
    CallerTimeout,
    Recording,
    ScriptContract,
)
from argvcontract.roundtrip import NotExpressible, namespace_to_argv, register_format
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
    from argvcontract.surface import SurfaceDiff, describe_parser, diff_surface, snapshot

_LAZY = {
    # The strategies need Hypothesis, a test dependency: imported on first use.
    "InvalidArgv": "argvcontract.strategies",
    "UnregisteredType": "argvcontract.strategies",
    "invalid_argv": "argvcontract.strategies",
    "register_type": "argvcontract.strategies",
    "valid_argv": "argvcontract.strategies",
    # Imported on use so that `python -m frreg.contracts.surface` runs it fresh.
    "SurfaceDiff": "argvcontract.surface",
    "describe_parser": "argvcontract.surface",
    "diff_surface": "argvcontract.surface",
    "snapshot": "argvcontract.surface",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    "register_format",
    "register_type",
    "snapshot",
    "valid_argv",
    "verify",
]
