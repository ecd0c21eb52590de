"""Parse argv with a real parser without letting argparse print or exit.

argparse reports a bad argv by printing usage and raising ``SystemExit(2)``;
a contract check needs the reason as data instead. :func:`quiet` patches one
parser *instance* (and its subparsers) so that every refusal raises
:class:`ParseRefused` carrying argparse's own message. The parser's
arguments are untouched: what is checked is exactly what the CLI accepts.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NoReturn


class ParseRefused(Exception):
    """argparse refused an argv; ``message`` is argparse's text, ``argument`` the argument's name."""

    def __init__(self, message: str, argument: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.argument = argument


class ParseExited(Exception):
    """argparse wanted to exit without an error (``--help``, ``--version``)."""

    def __init__(self, status: int, message: str | None) -> None:
        super().__init__(message or f"exit {status}")
        self.status = status


def iter_parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """``parser`` and, recursively, the parsers of its subcommands."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                yield from iter_parsers(sub)


def quiet(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Make ``parser`` raise :class:`ParseRefused` / :class:`ParseExited` instead of exiting.

    Patches the instance only, so a fresh ``build_parser()`` is unaffected.
    Returns ``parser`` for chaining.
    """
    for p in iter_parsers(parser):

        def error(message: str, _p: argparse.ArgumentParser = p) -> NoReturn:
            raise ParseRefused(message)

        def exit_(status: int = 0, message: str | None = None) -> NoReturn:
            raise ParseExited(status, message)

        p.error = error  # type: ignore[method-assign]
        p.exit = exit_  # type: ignore[method-assign]
        # --help and --version print through _print_message; a check prints nothing.
        p._print_message = lambda message, file=None: None  # type: ignore[method-assign]
        # Let ArgumentError propagate with its argument name instead of being
        # turned into a message by error().
        p.exit_on_error = False
    return parser


def parse_quietly(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """``parser.parse_args(argv)``, raising :class:`ParseRefused` on any refusal."""
    quiet(parser)
    try:
        return parser.parse_args(list(argv))
    except argparse.ArgumentError as err:
        raise ParseRefused(str(err), err.argument_name) from None


# --------------------------------------------------------------------------
# Placeholders: "some valid value" in documentation examples
# --------------------------------------------------------------------------

#: ``$VAR``, ``${VAR}``, ``"$OUT_DIR"/x``, ``$(cmd)`` and ``<path>``-style tokens.
_PLACEHOLDER = re.compile(r"\$|<[A-Za-z][\w .,/-]*>|\{[A-Za-z_][\w]*\}")
#: A token that is nothing but a variable (``$@``, ``"${ARGS[@]}"``): it may expand to no words.
_WHOLE_VARIABLE = re.compile(r"^\$(\{[^}]*\}|[@*#?\w]+)$")


def is_placeholder(token: str) -> bool:
    """Whether ``token`` stands for a value the reader fills in (``$VAR``, ``<path>``)."""
    return bool(_PLACEHOLDER.search(token))


def is_variable_only(token: str) -> bool:
    """Whether ``token`` is a bare variable such as ``$@``, which may expand to any words."""
    return bool(_WHOLE_VARIABLE.match(token))


class Placeholder(str):
    """A value argparse accepted without converting it: it stands for some valid value."""

    __slots__ = ()


class _ChoicesWithPlaceholders:
    """``choices`` that also admit a :class:`Placeholder`; iterates as the real choices."""

    def __init__(self, choices: Any) -> None:
        self.choices = choices

    def __contains__(self, value: object) -> bool:
        return isinstance(value, Placeholder) or value in self.choices

    def __iter__(self) -> Iterator[Any]:
        return iter(self.choices)

    def __len__(self) -> int:
        return len(self.choices)


def _tolerant(convert: Callable[[str], Any] | None, metavar: Any) -> Callable[[str], Any]:
    def convert_or_keep(text: str) -> Any:
        if is_placeholder(text) or (isinstance(metavar, str) and text == metavar):
            return Placeholder(text)
        return text if convert is None else convert(text)

    # argparse names the type in "invalid <name> value" messages.
    convert_or_keep.__name__ = getattr(convert, "__name__", "str")
    return convert_or_keep


def tolerate_placeholders(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Let placeholder values through ``type=`` and ``choices=`` of every argument.

    The flag must still exist and still take a value; only the value's
    conversion is skipped. A token equal to the argument's metavar (``PATH``,
    ``N[,N...]``) counts as a placeholder too.
    """
    for p in iter_parsers(parser):
        for action in p._actions:
            if action.nargs == 0 or isinstance(action, argparse._SubParsersAction):
                continue
            # A type= given by registered name ("int") converts through the registry.
            convert = p._registry_get("type", action.type, action.type)
            if convert is not None and not callable(convert):
                continue  # argparse itself refuses such a type when it parses
            action.type = _tolerant(convert, action.metavar)
            if action.choices is not None:
                action.choices = _ChoicesWithPlaceholders(action.choices)
    return parser
