"""Turn a parsed namespace back into an argv the same parser reads identically.

``parse(namespace_to_argv(parser, parse(argv))) == parse(argv)`` is the
round-trip property a contract test can check for any CLI. Turning a
converted value back into text needs the inverse of its ``type=`` callable:
a ``type=`` that reads ``0,1`` as ``(0, 1)`` needs ``(0, 1)`` written ``0,1``.
Inverses are registered by the type's qualified name (:func:`register_format`,
kept in :mod:`argvcontract.values`), so a CLI module need not be imported to
register its types.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from argvcontract.values import format_for, register_format, type_name


def format_value(action: argparse.Action, value: Any) -> str:
    """Write one converted value of ``action`` as the text its ``type=`` reads back."""
    fmt = format_for(type_name(action.type))
    if fmt is not None:
        return fmt(value)
    if isinstance(value, float):
        return repr(value)  # repr round-trips exactly; str may not on old Pythons
    return str(value)


class NotExpressible(ValueError):
    """The namespace holds a value no argv can produce through this action."""


def _flag(action: argparse.Action) -> str:
    longs = [o for o in action.option_strings if o.startswith("--")]
    return (longs or action.option_strings)[0]


def _single(flag: str, text: str) -> list[str]:
    # "--lr -1e-05" would read -1e-05 as an option (argparse's negative-number
    # test misses exponents); the "=" form is always unambiguous.
    return [f"{flag}={text}"] if text.startswith("-") and flag.startswith("--") else [flag, text]


def _multi(action: argparse.Action, values: Sequence[Any]) -> list[str]:
    texts = [format_value(action, v) for v in values]
    for text in texts:
        if text.startswith("-"):
            raise NotExpressible(
                f"{_flag(action) if action.option_strings else action.dest}: value {text!r} "
                "starts with '-' and cannot follow other values"
            )
    return texts


def _default(parser: argparse.ArgumentParser, action: argparse.Action) -> Any:
    default = parser.get_default(action.dest)
    # argparse converts string defaults through type=, so compare converted.
    convert = parser._registry_get("type", action.type, action.type)
    if isinstance(default, str) and callable(convert) and action.nargs in (None, "?"):
        try:
            return convert(default)
        except (ValueError, TypeError, argparse.ArgumentTypeError):
            return default
    return default


def _values_tokens(action: argparse.Action, flag: list[str], value: Any) -> list[str]:
    """One occurrence of a value-taking action holding ``value``."""
    nargs = action.nargs
    if nargs is None:
        text = format_value(action, value)
        return _single(flag[0], text) if flag else [text]
    if nargs == "?":
        if flag and value == action.const:
            return flag
        text = format_value(action, value)
        return _single(flag[0], text) if flag else [text]
    if nargs in ("*", "+") or isinstance(nargs, int):
        return [*flag, *_multi(action, list(value))]
    raise NotExpressible(f"nargs={nargs!r} ({action.dest}) is not supported")


def _optional_tokens(
    parser: argparse.ArgumentParser, action: argparse.Action, value: Any
) -> list[str] | None:
    """argv for an optional holding ``value``; ``[]`` when it is the default, ``None`` if impossible."""
    default = _default(parser, action)
    if value == default and not action.required:
        return []
    flag = _flag(action)
    if isinstance(action, argparse.BooleanOptionalAction):
        if value is True:
            return [action.option_strings[0]]
        negative = [o for o in action.option_strings if o.startswith("--no-")]
        return negative[:1] if value is False and negative else None
    if isinstance(action, argparse._StoreConstAction):  # also store_true / store_false
        return [flag] if value == action.const else None
    if isinstance(action, argparse._CountAction):
        start = default or 0
        return [flag] * (value - start) if isinstance(value, int) and value > start else None
    if isinstance(action, argparse._AppendConstAction | argparse._AppendAction):
        items = list(value or [])
        if isinstance(default, list) and items[: len(default)] == default:
            items = items[len(default) :]
        if isinstance(action, argparse._AppendConstAction):
            return [flag] * len(items) if all(i == action.const for i in items) else None
        if isinstance(action, argparse._ExtendAction):
            if action.nargs in ("+", "*"):
                return [flag, *_multi(action, items)] if items else None
            if isinstance(action.nargs, int) and action.nargs > 0:
                n = action.nargs
                chunks = [items[i : i + n] for i in range(0, len(items), n)]
                return [t for chunk in chunks for t in [flag, *_multi(action, chunk)]]
            raise NotExpressible(f"extend with nargs={action.nargs!r} ({flag}) is not supported")
        return [t for item in items for t in _values_tokens(action, [flag], item)]
    if isinstance(action, argparse._StoreAction):
        return _values_tokens(action, [flag], value)
    raise NotExpressible(f"{flag}: action {type(action).__name__} is not supported")


def namespace_to_argv(parser: argparse.ArgumentParser, namespace: argparse.Namespace) -> list[str]:
    """An argv that ``parser`` parses back into ``namespace``.

    Values equal to their default are left out; options come first, then
    positionals (after ``--`` when a positional value starts with ``-``).
    Raises :class:`NotExpressible` for values no argv could produce.
    """
    options: list[str] = []
    positionals: list[str] = []
    done: set[str] = set()
    for action in parser._actions:
        if action.dest == argparse.SUPPRESS or isinstance(
            action, argparse._HelpAction | argparse._VersionAction
        ):
            continue
        if not hasattr(namespace, action.dest):
            continue
        value = getattr(namespace, action.dest)
        if not action.option_strings:
            if action.nargs == "?" and value == _default(parser, action):
                continue
            if action.nargs in (argparse.REMAINDER, argparse.PARSER):
                raise NotExpressible(f"positional {action.dest} with nargs={action.nargs!r}")
            positionals += _values_tokens(action, [], value)
            continue
        if action.dest in done:
            continue
        tokens = _optional_tokens(parser, action, value)
        if tokens is not None:  # another action sharing this dest may express it
            options += tokens
            if tokens or value == _default(parser, action):
                done.add(action.dest)
    missing = {
        a.dest
        for a in parser._actions
        if a.option_strings
        and a.dest not in done
        and hasattr(namespace, a.dest)
        and a.dest != argparse.SUPPRESS
        and not isinstance(a, argparse._HelpAction | argparse._VersionAction)
    }
    if missing:
        raise NotExpressible(f"no option can express the value of {', '.join(sorted(missing))}")
    if any(t.startswith("-") for t in positionals):
        return [*options, "--", *positionals]
    return [*positionals, *options]


__all__ = ["NotExpressible", "format_value", "namespace_to_argv", "register_format", "type_name"]
