"""Which command-line interfaces a contract is checked against.

A :class:`Cli` pairs a name callers use (a console script such as
``frreg-train``) with the function that builds its real parser. Contracts are
always checked against that parser, never against a copy of its flags.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass

#: frreg's CLI modules, in runbook order. Each exposes ``PROG``, ``build_parser()``
#: and ``main(argv=None) -> int``; tests check this list against pyproject's
#: ``[project.scripts]`` so a new CLI cannot be left out.
CLI_MODULES: tuple[str, ...] = (
    "frreg.cli.corpus",
    "frreg.cli.train",
    "frreg.cli.gate",
    "frreg.cli.validate",
)


@dataclass(frozen=True)
class Cli:
    """A command-line interface whose parser is the authoritative contract.

    ``name`` is what callers type (a console script on ``PATH``); ``module``,
    when set, is what they may run as ``python -m module``.
    """

    name: str
    build_parser: Callable[[], argparse.ArgumentParser]
    module: str | None = None
    main: Callable[[Sequence[str] | None], int] | None = None

    @classmethod
    def from_module(cls, module: str, name: str | None = None) -> Cli:
        """The CLI defined by ``module`` (``build_parser``, optional ``main`` and ``PROG``)."""
        mod = importlib.import_module(module)
        prog = name or getattr(mod, "PROG", None) or module.rsplit(".", 1)[-1]
        return cls(prog, mod.build_parser, module, getattr(mod, "main", None))

    def parser(self) -> argparse.ArgumentParser:
        """A fresh parser (callers may patch it; the next call gets a clean one)."""
        return self.build_parser()


def frreg_clis() -> tuple[Cli, ...]:
    """Every frreg CLI whose module is present.

    A module that is absent is skipped (a CLI still being written); one that
    is present but fails to import raises, because that is a broken CLI.
    """
    clis = []
    for module in CLI_MODULES:
        if importlib.util.find_spec(module) is None:
            continue
        clis.append(Cli.from_module(module))
    return tuple(clis)


def cli_by_name(clis: Sequence[Cli], name: str) -> Cli:
    """The CLI called ``name``; ``KeyError`` naming the known ones otherwise."""
    for cli in clis:
        if cli.name == name:
            return cli
    known = ", ".join(c.name for c in clis) or "none"
    raise KeyError(f"no CLI named {name!r} (known: {known})")


#: Name of the pseudo-CLI for ``pytest --frreg-*`` options.
PLUGIN_CLI_NAME = "pytest"


def plugin_cli() -> Cli:
    """``pytest --frreg-*``: the plugin's options, built from the declarations the plugin adds.

    The parser is made from ``frreg.options.PLUGIN_OPTIONS`` (what
    ``pytest_frreg.plugin`` registers), so documented ``pytest --frreg-...``
    lines are checked against the same declarations, not a copy.
    """

    def build_parser() -> argparse.ArgumentParser:
        from frreg.options import PLUGIN_OPTIONS, StrictParser, add_options

        parser = StrictParser(prog=PLUGIN_CLI_NAME, add_help=False)
        add_options(parser.add_argument, PLUGIN_OPTIONS, prefix="frreg-")
        return parser

    return Cli(PLUGIN_CLI_NAME, build_parser)
