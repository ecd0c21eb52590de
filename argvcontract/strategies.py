"""Hypothesis strategies for the argv an ``argparse.ArgumentParser`` accepts or refuses.

:func:`valid_argv` reads a parser's actions (optionals and positionals,
``store_true``/``store_false``, ``choices``, ``nargs``, ``append``/``extend``,
counts, mutually exclusive groups, required options) and draws argv the
parser accepts. Values come from a registry keyed by each ``type=`` callable
(:mod:`argvcontract.values`): a ``port`` type might draw integers in
[1, 65535] and refuse ``0`` and ``http``. ``str``, ``int``, ``float`` and
``pathlib.Path`` are built in; a type nobody registered raises
:class:`UnregisteredType` naming the argument: register it with
:func:`register_type` rather than let a strategy guess its domain.

:func:`invalid_argv` draws argv the parser must refuse, each labelled with
what is wrong (an :class:`InvalidArgv`): an unknown option, an abbreviation,
a missing value, a value outside the type's domain, a missing required
argument, two options that exclude each other, a stray positional.

This is the one argvcontract module that imports Hypothesis.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from argvcontract.roundtrip import format_value
from argvcontract.values import ValueSpec, register_format, register_spec, spec_for, type_name
from argvcontract.verify import (
    ABBREVIATION,
    CONFLICT,
    INVALID_VALUE,
    MISSING_REQUIRED,
    MISSING_VALUE,
    STRAY_ARGUMENT,
    UNKNOWN_OPTION,
)

# --------------------------------------------------------------------------
# Value registry: type= callable -> strategies for its valid and invalid text
# --------------------------------------------------------------------------


class UnregisteredType(LookupError):
    """An argument's ``type=`` callable has no registered value strategy."""


#: Path-like text that cannot be mistaken for an option: never starts with "-".
SAFE_TEXT: SearchStrategy[str] = st.from_regex(
    r"[A-Za-z0-9_.][A-Za-z0-9_./ -]{0,20}", fullmatch=True
)


def finite_floats(**kw: Any) -> SearchStrategy[str]:
    """Text of finite floats (``repr``, which reads back exactly); ``kw`` as ``st.floats``."""
    return st.floats(allow_nan=False, allow_infinity=False, **kw).map(repr)


#: Types every parser may use; a registration for the same name takes precedence.
_BUILTINS: dict[str, ValueSpec] = {
    "str": ValueSpec(SAFE_TEXT),
    "pathlib.Path": ValueSpec(SAFE_TEXT),
    "int": ValueSpec(st.integers(-(10**6), 10**6).map(str), st.sampled_from(["x", "1.5", ""])),
    "float": ValueSpec(finite_floats(), st.sampled_from(["x", ""])),
}


def register_type(
    convert: Callable[..., Any] | str,
    valid: SearchStrategy[str],
    invalid: SearchStrategy[str] | None = None,
    *,
    format: Callable[[Any], str] | None = None,
) -> None:
    """Teach the strategies a ``type=`` callable: text it accepts, text it refuses.

    ``convert`` is the callable or its qualified name (``"mypkg.cli.port"``).
    ``format`` turns a converted value back into text, for
    :func:`~argvcontract.roundtrip.namespace_to_argv`, when ``str(value)``
    would not read back (a tuple, say). To register without importing
    Hypothesis (a factory called on first use), see :mod:`argvcontract.values`.
    """
    register_spec(convert, ValueSpec(valid, invalid))
    if format is not None:
        register_format(convert, format)


def value_spec(action: argparse.Action, prog: str = "") -> ValueSpec:
    """The registered :class:`ValueSpec` for ``action``'s ``type=`` (``str`` when none)."""
    key = type_name(action.type) or "str"
    spec = spec_for(key) or _BUILTINS.get(key)
    if spec is None:
        where = "/".join(action.option_strings) or action.dest
        raise UnregisteredType(
            f"no value strategy for type {key} (argument {where}{' of ' + prog if prog else ''}); "
            f"register one: argvcontract.register_type({key!r}, "
            "valid=st..., invalid=st...)"
        )
    return spec


# --------------------------------------------------------------------------
# Parser introspection
# --------------------------------------------------------------------------

_SKIPPED = (argparse._HelpAction, argparse._VersionAction)


def _usable(action: argparse.Action) -> bool:
    if isinstance(action, argparse._SubParsersAction):
        raise NotImplementedError("parsers with subcommands are not supported yet")
    return not isinstance(action, _SKIPPED) and action.help != argparse.SUPPRESS


def _takes_values(action: argparse.Action) -> bool:
    return action.nargs != 0 and isinstance(action, argparse._StoreAction | argparse._AppendAction)


def _long(action: argparse.Action) -> str | None:
    longs = [o for o in action.option_strings if o.startswith("--")]
    return longs[0] if longs else None


def _name(action: argparse.Action) -> str:
    """The argument's name as argparse's messages spell it."""
    if action.option_strings:
        return "/".join(action.option_strings)
    if isinstance(action.metavar, str):
        return action.metavar
    return action.dest


@dataclass(frozen=True)
class _Chunk:
    action: argparse.Action | None
    tokens: tuple[str, ...]
    #: Ends in a variable number of values: a positional right after it would be swallowed.
    open_ended: bool = False


Overrides = Mapping[str, SearchStrategy[str]]


def _values(action: argparse.Action, prog: str, overrides: Overrides) -> SearchStrategy[str]:
    for key in (action.dest, *action.option_strings):
        if key in overrides:
            return overrides[key]
    if action.choices is not None:
        return st.sampled_from(list(action.choices)).map(lambda c: format_value(action, c))
    return value_spec(action, prog).valid


def _not_dashed(values: SearchStrategy[str]) -> SearchStrategy[str]:
    # A value after another value, or a positional, must not look like an option.
    return values.filter(lambda t: not t.startswith("-"))


@st.composite
def _occurrence(
    draw: st.DrawFn, action: argparse.Action, prog: str, overrides: Overrides
) -> _Chunk:
    """One occurrence of an optional on the command line."""
    flag = draw(st.sampled_from(action.option_strings))
    if isinstance(action, argparse.BooleanOptionalAction | argparse._StoreConstAction):
        return _Chunk(action, (flag,))
    if isinstance(action, argparse._AppendConstAction | argparse._CountAction):
        return _Chunk(action, (flag,))
    if not _takes_values(action):
        raise NotImplementedError(f"{flag}: action {type(action).__name__} is not supported")
    values = _values(action, prog, overrides)
    nargs = action.nargs
    if nargs is None or nargs == "?":
        if nargs == "?" and draw(st.booleans()):
            return _Chunk(action, (flag,), open_ended=True)
        text = draw(values)
        joined = flag.startswith("--") and (text.startswith("-") or draw(st.booleans()))
        return _Chunk(action, (f"{flag}={text}",) if joined else (flag, text))
    if nargs == "*":
        items = draw(st.lists(_not_dashed(values), max_size=3))
    elif nargs == "+":
        items = draw(st.lists(_not_dashed(values), min_size=1, max_size=3))
    elif isinstance(nargs, int):
        items = draw(st.lists(_not_dashed(values), min_size=nargs, max_size=nargs))
    else:
        raise NotImplementedError(f"{flag}: nargs={nargs!r} is not supported")
    return _Chunk(action, (flag, *items), open_ended=nargs in ("*", "+"))


@st.composite
def _option_chunks(
    draw: st.DrawFn, action: argparse.Action, prog: str, overrides: Overrides
) -> list[_Chunk]:
    repeatable = isinstance(
        action, argparse._AppendAction | argparse._AppendConstAction | argparse._CountAction
    )
    # A plain store given twice is valid too (the last one wins).
    times = draw(st.integers(1, 3)) if repeatable else draw(st.sampled_from([1, 1, 1, 2]))
    return [draw(_occurrence(action, prog, overrides)) for _ in range(times)]


@st.composite
def _positional_chunk(
    draw: st.DrawFn, parser: argparse.ArgumentParser, overrides: Overrides
) -> _Chunk | None:
    tokens: list[str] = []
    for action in parser._actions:
        if action.option_strings or not _usable(action):
            continue
        values = _not_dashed(_values(action, parser.prog, overrides))
        nargs = action.nargs
        if nargs is None:
            tokens.append(draw(values))
        elif nargs == "?":
            tokens += draw(st.lists(values, max_size=1))
        elif nargs == "*":
            tokens += draw(st.lists(values, max_size=3))
        elif nargs == "+":
            tokens += draw(st.lists(values, min_size=1, max_size=3))
        elif isinstance(nargs, int):
            tokens += draw(st.lists(values, min_size=nargs, max_size=nargs))
        else:
            raise NotImplementedError(f"positional {action.dest}: nargs={nargs!r} is not supported")
    return _Chunk(None, tuple(tokens)) if tokens else None


def _groups(parser: argparse.ArgumentParser) -> list[argparse._MutuallyExclusiveGroup]:
    return [g for g in parser._mutually_exclusive_groups if any(map(_usable, g._group_actions))]


@st.composite
def _chunks(
    draw: st.DrawFn,
    parser: argparse.ArgumentParser,
    overrides: Overrides,
    omit: frozenset[int] = frozenset(),
) -> list[_Chunk]:
    """A valid argv as chunks, options in random order; actions in ``omit`` (by id) left out."""
    grouped: dict[int, argparse._MutuallyExclusiveGroup] = {}
    chosen: dict[int, argparse.Action | None] = {}
    for group in _groups(parser):
        members = [a for a in group._group_actions if _usable(a) and id(a) not in omit]
        for a in group._group_actions:
            grouped[id(a)] = group
        if not members:
            chosen[id(group)] = None
        elif group.required:
            chosen[id(group)] = draw(st.sampled_from(members))
        else:
            chosen[id(group)] = draw(st.none() | st.sampled_from(members))
    option_chunks: list[list[_Chunk]] = []
    for action in parser._actions:
        if not action.option_strings or not _usable(action) or id(action) in omit:
            continue
        owner = grouped.get(id(action))
        if owner is not None:
            include = chosen[id(owner)] is action
        else:
            include = action.required or draw(st.booleans())
        if include:
            option_chunks.append(draw(_option_chunks(action, parser.prog, overrides)))
    ordered = [c for chunks in draw(st.permutations(option_chunks)) for c in chunks]
    positional = None if -1 in omit else draw(_positional_chunk(parser, overrides))
    if positional is not None:
        fixed = all(
            a.nargs is None or isinstance(a.nargs, int)
            for a in parser._actions
            if not a.option_strings and _usable(a)
        )
        # argparse may match a "*"/"?" positional empty at the start and then
        # refuse its words later; such positionals go first.
        safe = [i for i in range(len(ordered) + 1) if i == 0 or not ordered[i - 1].open_ended]
        at = draw(st.sampled_from(safe)) if fixed else 0
        ordered.insert(at, positional)
    return ordered


def _flatten(chunks: list[_Chunk]) -> list[str]:
    return [t for c in chunks for t in c.tokens]


def valid_argv(
    parser: argparse.ArgumentParser, *, overrides: Overrides | None = None
) -> SearchStrategy[list[str]]:
    """argv that ``parser`` accepts.

    ``overrides`` maps a dest or flag to a strategy for its value text, for
    arguments whose domain the type registry does not know (or should not
    decide, such as a path that must exist).
    """
    return _chunks(parser, dict(overrides or {})).map(_flatten)


# --------------------------------------------------------------------------
# Invalid argv
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class InvalidArgv:
    """An argv the parser must refuse, with what is wrong with it.

    ``kind`` is one of :mod:`argvcontract.verify`'s problem kinds;
    ``token`` is what the CLI's error message must name.
    """

    argv: list[str]
    kind: str
    token: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind} ({self.detail}): {self.argv}"


def _options(parser: argparse.ArgumentParser) -> list[str]:
    return [o for a in parser._actions for o in a.option_strings]


def _insert(draw: st.DrawFn, chunks: list[_Chunk], tokens: tuple[str, ...]) -> list[str]:
    at = draw(st.integers(0, len(chunks)))
    return _flatten([*chunks[:at], _Chunk(None, tokens), *chunks[at:]])


@st.composite
def _unknown_option(draw: st.DrawFn, parser: argparse.ArgumentParser, ov: Overrides) -> InvalidArgv:
    options = _options(parser)
    longs = [o for a in parser._actions if _usable(a) for o in a.option_strings if o[:2] == "--"]
    suffixes = st.sampled_from(["-root", "-path", "s", "-x", "-typo", "-dir", "put"])
    typo = st.tuples(st.sampled_from(longs), suffixes).map("".join) if longs else st.nothing()
    fresh = st.from_regex(r"--[a-z]{3,8}(-[a-z]{2,6})?", fullmatch=True)
    fake = draw(
        (typo | fresh).filter(
            lambda f: f not in options and not any(o.startswith(f) for o in options)
        )
    )
    value = draw(st.none() | st.from_regex(r"[a-z0-9_./]{1,8}", fullmatch=True))
    token = fake if value is None else f"{fake}={value}"
    argv = _insert(draw, draw(_chunks(parser, ov)), (token,))
    return InvalidArgv(argv, UNKNOWN_OPTION, fake, f"{fake} is not an option")


def _abbreviations(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.Action]]:
    options = set(_options(parser))
    found = []
    for action in parser._actions:
        for o in action.option_strings:
            if o.startswith("--"):
                found += [(o[:k], action) for k in range(3, len(o)) if o[:k] not in options]
    return found


@st.composite
def _abbreviation(draw: st.DrawFn, parser: argparse.ArgumentParser, ov: Overrides) -> InvalidArgv:
    prefix, action = draw(st.sampled_from(_abbreviations(parser)))
    token = prefix
    if _takes_values(action):
        # "=" keeps the value inside the refused token: a separate value could
        # be taken for a positional and shift the error onto another word.
        value = draw(_values(action, parser.prog, ov).filter(lambda t: " " not in t))
        token = f"{prefix}={value}"
    argv = _insert(draw, draw(_chunks(parser, ov)), (token,))
    return InvalidArgv(argv, ABBREVIATION, prefix, f"{prefix} abbreviates {_long(action)}")


def _needs_value(action: argparse.Action) -> bool:
    nargs = action.nargs
    return (
        _usable(action)
        and _takes_values(action)
        and _long(action) is not None
        and (nargs in (None, "+") or (isinstance(nargs, int) and nargs > 0))
    )


@st.composite
def _missing_value(draw: st.DrawFn, parser: argparse.ArgumentParser, ov: Overrides) -> InvalidArgv:
    action = draw(st.sampled_from([a for a in parser._actions if _needs_value(a)]))
    flag = _long(action)
    assert flag is not None
    argv = [*_flatten(draw(_chunks(parser, ov))), flag]
    return InvalidArgv(argv, MISSING_VALUE, flag, f"{flag} ends the argv without its value")


def _bad_values(action: argparse.Action, prog: str) -> SearchStrategy[str] | None:
    if action.choices is not None:
        allowed = {format_value(action, c) for c in action.choices}
        return SAFE_TEXT.filter(lambda t: t not in allowed)
    try:
        spec = value_spec(action, prog)
    except UnregisteredType:
        return None
    return spec.invalid


def _can_be_invalid(action: argparse.Action, prog: str) -> bool:
    return (
        _usable(action)
        and _takes_values(action)
        and _long(action) is not None
        and action.nargs in (None, "?", "*", "+", 1)
        and _bad_values(action, prog) is not None
    )


@st.composite
def _invalid_value(draw: st.DrawFn, parser: argparse.ArgumentParser, ov: Overrides) -> InvalidArgv:
    action = draw(st.sampled_from([a for a in parser._actions if _can_be_invalid(a, parser.prog)]))
    flag = _long(action)
    bad = _bad_values(action, parser.prog)
    assert flag is not None
    assert bad is not None
    # No spaces: argparse reads "--x=a b" as a positional, not as --x.
    value = draw(bad.filter(lambda t: " " not in t))
    argv = [*_flatten(draw(_chunks(parser, ov))), f"{flag}={value}"]
    return InvalidArgv(argv, INVALID_VALUE, flag, f"{flag} given {value!r}")


def _requirements(parser: argparse.ArgumentParser) -> list[tuple[str, frozenset[int]]]:
    """(name argparse reports, ids of the actions to omit) for each required thing."""
    grouped = {id(a) for g in parser._mutually_exclusive_groups for a in g._group_actions}
    found = []
    for action in parser._actions:
        if not _usable(action):
            continue
        if action.option_strings and action.required and id(action) not in grouped:
            found.append((_name(action), frozenset({id(action)})))
        elif not action.option_strings and action.nargs not in ("?", "*"):
            found.append((_name(action), frozenset({-1})))  # -1: leave out positionals
    for group in _groups(parser):
        if group.required:
            members = [a for a in group._group_actions if _usable(a)]
            found.append((_name(members[0]), frozenset(id(a) for a in members)))
    return found


@st.composite
def _missing_required(
    draw: st.DrawFn, parser: argparse.ArgumentParser, ov: Overrides
) -> InvalidArgv:
    name, omit = draw(st.sampled_from(_requirements(parser)))
    argv = _flatten(draw(_chunks(parser, ov, omit)))
    return InvalidArgv(argv, MISSING_REQUIRED, name, f"{name} is required but left out")


@st.composite
def _conflict(draw: st.DrawFn, parser: argparse.ArgumentParser, ov: Overrides) -> InvalidArgv:
    groups = [g for g in _groups(parser) if sum(map(_usable, g._group_actions)) >= 2]
    group = draw(st.sampled_from(groups))
    members = [a for a in group._group_actions if _usable(a)]
    first, second = draw(st.permutations(members))[:2]
    base = draw(_chunks(parser, ov, frozenset(id(a) for a in members)))
    ours = [draw(_occurrence(first, parser.prog, ov)), draw(_occurrence(second, parser.prog, ov))]
    argv = _flatten([*base, *ours])
    return InvalidArgv(
        argv, CONFLICT, _name(second), f"{_name(first)} and {_name(second)} exclude each other"
    )


@st.composite
def _stray_argument(draw: st.DrawFn, parser: argparse.ArgumentParser, ov: Overrides) -> InvalidArgv:
    word = draw(st.from_regex(r"[a-z][a-z0-9_.]{0,10}", fullmatch=True))
    argv = [word, *_flatten(draw(_chunks(parser, ov)))]
    return InvalidArgv(argv, STRAY_ARGUMENT, word, f"{word!r} is not an argument")


def invalid_argv(
    parser: argparse.ArgumentParser,
    *,
    kinds: tuple[str, ...] | None = None,
    overrides: Overrides | None = None,
) -> SearchStrategy[InvalidArgv]:
    """Labelled argv ``parser`` must refuse: exactly one thing wrong with each.

    ``kinds`` restricts the kinds drawn; kinds that do not apply to this
    parser (no required arguments, no mutually exclusive groups) are skipped.
    """
    ov = dict(overrides or {})
    actions = [a for a in parser._actions if _usable(a)]
    applicable: dict[str, Callable[[], SearchStrategy[InvalidArgv]]] = {
        UNKNOWN_OPTION: lambda: _unknown_option(parser, ov),
    }
    if not parser.allow_abbrev and _abbreviations(parser):
        applicable[ABBREVIATION] = lambda: _abbreviation(parser, ov)
    if any(_needs_value(a) for a in actions):
        applicable[MISSING_VALUE] = lambda: _missing_value(parser, ov)
    if any(_can_be_invalid(a, parser.prog) for a in actions):
        applicable[INVALID_VALUE] = lambda: _invalid_value(parser, ov)
    if _requirements(parser):
        applicable[MISSING_REQUIRED] = lambda: _missing_required(parser, ov)
    if any(sum(map(_usable, g._group_actions)) >= 2 for g in _groups(parser)):
        applicable[CONFLICT] = lambda: _conflict(parser, ov)
    if not any(not a.option_strings for a in actions):
        applicable[STRAY_ARGUMENT] = lambda: _stray_argument(parser, ov)
    chosen = [k for k in applicable if kinds is None or k in kinds]
    if not chosen:
        raise ValueError(f"none of the kinds {kinds} applies to {parser.prog}")
    return st.one_of([applicable[k]() for k in chosen])


__all__ = [
    "SAFE_TEXT",
    "InvalidArgv",
    "UnregisteredType",
    "ValueSpec",
    "finite_floats",
    "invalid_argv",
    "register_type",
    "valid_argv",
    "value_spec",
]
