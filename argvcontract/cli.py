"""Which command-line interfaces a contract is checked against.

A :class:`Cli` pairs a name callers use (a console script such as
``mytool``) with the function that builds its real parser. Contracts are
always checked against that parser, never against a copy of its flags.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass


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


def clis_from_modules(modules: Iterable[str]) -> tuple[Cli, ...]:
    """:meth:`Cli.from_module` for each module that is present, in order.

    A module that is absent is skipped (a CLI still being written); one that
    is present but fails to import raises, because that is a broken CLI.
    """
    return tuple(
        Cli.from_module(module)
        for module in modules
        if importlib.util.find_spec(module) is not None
    )


def cli_by_name(clis: Sequence[Cli], name: str) -> Cli:
    """The CLI called ``name``; ``KeyError`` naming the known ones otherwise."""
    for cli in clis:
        if cli.name == name:
            return cli
    known = ", ".join(c.name for c in clis) or "none"
    raise KeyError(f"no CLI named {name!r} (known: {known})")


@dataclass(frozen=True)
class PluginOptions:
    """The options a pytest plugin adds, checked like a CLI in documented ``pytest`` lines.

    ``cli`` builds a parser holding just those options; ``prefix`` is what
    their flags start with (``--mytool``): every word of a ``pytest`` command
    line that starts with it is checked, so a misspelt one is caught too.
    """

    cli: Cli
    prefix: str
