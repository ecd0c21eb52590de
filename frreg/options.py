"""How an option is declared once and offered by every parser: the machinery and the
generic argparse ``type=`` checks.

Each option is declared once, as an :class:`Option`, in the option table of
the stage it configures (:mod:`frreg.training.options`,
:mod:`frreg.producer.options`, :mod:`frreg.gate.options`,
:mod:`frreg.export.options`; the plugin's own in :mod:`frreg.session_options`).
:func:`add_options` adds options to a parser with whatever ``add`` callable
the caller has (``ArgumentParser.add_argument`` or pytest's
``OptionGroup.addoption``) and a prefix (``""`` for the CLIs, ``"frreg-"`` for
the plugin). Types and defaults therefore cannot drift between
``frreg-train --epochs`` and ``pytest --frreg-epochs``.

This module is a leaf: it imports nothing from frreg, so every option table
(and ``pytest --help``) can read it without loading a stage.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NoReturn

# --------------------------------------------------------------------------
# argparse ``type=`` callables. Each raises ArgumentTypeError quoting the value.
# --------------------------------------------------------------------------


def seed_list(text: str) -> tuple[int, ...]:
    """Parse ``"0,1,2"`` into ``(0, 1, 2)``: non-negative integers.

    As the fork's parsers do, empty items are skipped (``0,1,2,`` is ``0,1,2``); a
    seed listed twice is trained once, and a warning on stderr says so (the fork's
    trainer would train it twice and overwrite the first).
    """
    parts = [p.strip() for p in str(text).split(",")]
    seeds: list[int] = []
    for part in parts:
        if part == "":
            continue
        if not part.isdigit():
            raise argparse.ArgumentTypeError(
                f"invalid seed list {text!r}: {part!r} is not a non-negative integer"
            )
        seeds.append(int(part))
    if not seeds:
        raise argparse.ArgumentTypeError(
            f"invalid seed list {text!r}: "
            "expected comma-separated non-negative integers, e.g. 0,1,2"
        )
    unique = tuple(dict.fromkeys(seeds))
    if len(unique) != len(seeds):
        twice = sorted({s for s in seeds if seeds.count(s) > 1})
        print(
            f"warning: seed list {text!r} lists seed {', '.join(map(str, twice))} more than "
            f"once; using {','.join(map(str, unique))}",
            file=sys.stderr,
        )
    return unique


def split_list(text: str) -> list[str]:
    """The items of a list written with commas, spaces or both (``a,b``, ``a b``, ``a, b``).

    An empty item (``a,,b``, a trailing comma, empty text) is kept as ``""``,
    for the caller's item check to refuse with its own message.
    """
    items: list[str] = []
    for part in str(text).split(","):
        items += part.split() or [""]
    return items


def _int_at_least(text: str, minimum: int) -> int:
    try:
        value = int(str(text), 10)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise argparse.ArgumentTypeError(
            f"invalid value {text!r}: expected an integer >= {minimum}"
        )
    return value


def nonnegative_int(text: str) -> int:
    """An integer >= 0."""
    return _int_at_least(text, 0)


def positive_int(text: str) -> int:
    """An integer >= 1."""
    return _int_at_least(text, 1)


def _finite_float(text: str, what: str) -> float:
    try:
        value = float(str(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected {what}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected {what}")
    return value


def positive_float(text: str) -> float:
    """A finite float > 0."""
    value = _finite_float(text, "a finite number > 0")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected a finite number > 0")
    return value


def nonnegative_float(text: str) -> float:
    """A finite float >= 0."""
    value = _finite_float(text, "a finite number >= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected a finite number >= 0")
    return value


def _unit_interval(text: str, what: str) -> float:
    value = _finite_float(text, f"{what} in [0, 1]")
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected {what} in [0, 1]")
    return value


def finite_float(text: str) -> float:
    """Any finite number."""
    return _finite_float(text, "a finite number")


def unit_interval(text: str) -> float:
    """A share in [0, 1]."""
    return _unit_interval(text, "a number")


def boolean(text: str) -> bool:
    """``true``/``false`` (also ``1``/``0``, ``yes``/``no``, ``on``/``off``), for ini keys."""
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected true or false")


def plcc_threshold(text: str) -> float:
    """A minimum PLCC in [0, 1]: a gate that admits uncorrelated models is no gate."""
    return _unit_interval(text, "a PLCC threshold")


def dropout_rate(text: str) -> float:
    """A dropout probability in [0, 1): dropping every unit would train nothing."""
    what = "a dropout probability in [0, 1)"
    value = _finite_float(text, what)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected {what}")
    return value


def spread_threshold(text: str) -> float:
    """A maximum spread of per-seed mean PLCCs, in [0, 1] (PLCCs at or above 0 span at most 1)."""
    return _unit_interval(text, "a spread")


# --------------------------------------------------------------------------
# Declarations
# --------------------------------------------------------------------------

#: What kind of value an option holds, in a config file's terms (pytest's ini types).
ValueKind = Literal["bool", "int", "float", "string"]


@dataclass(frozen=True)
class Option:
    """One option, declared once for every parser that offers it."""

    name: str
    dest: str
    help: str
    default: Any = None
    type: Callable[[str], Any] | None = None
    metavar: str | None = None
    action: str | None = None
    choices: tuple[str, ...] | None = None
    #: How the help text shows the default, when ``str(default)`` would not read well.
    shown_default: str | None = None
    nargs: int | str | None = None
    required: bool = False
    #: ``False`` when ``help`` already says what the default is.
    show_default: bool = True
    #: Other names of the flag, offered by every parser that offers the option
    #: (``--encoder`` and ``--encoders``; ``--frreg-encoder`` and ``--frreg-encoders``).
    aliases: tuple[str, ...] = ()
    #: A list option: ``type`` reads one list (``a,b``, ``a b``) into a tuple. On a
    #: CLI the option may be repeated and take several lists after one flag
    #: (``--encoder a b``, the fork's argv), and every list is joined; in the plugin
    #: it takes one list per flag and, like every pytest option, a later occurrence
    #: overrides an earlier one (so the command line overrides ``addopts``). See
    #: :func:`add_options`.
    repeatable: bool = False

    def __post_init__(self) -> None:
        if self.repeatable and (self.type is None or self.action or self.nargs is not None):
            raise ValueError(f"--{self.name}: a list option has a list type= and no action/nargs")

    @property
    def value_kind(self) -> ValueKind:
        """What kind of value the option holds, as a config file types it: ``bool``
        (a flag), ``int``, ``float`` or ``string`` (everything else, lists too)."""
        if self.action in ("store_true", "store_false"):
            return "bool"
        return _VALUE_KINDS.get(self.type, "string")

    def flag(self, prefix: str = "") -> str:
        """The option's first flag (the one error messages and help lead with)."""
        return f"--{prefix}{self.name}"

    def flags(self, prefix: str = "") -> tuple[str, ...]:
        """Every flag of the option: its name, then its aliases."""
        return tuple(f"--{prefix}{name}" for name in (self.name, *self.aliases))

    def kwargs(self, *, single_word: bool = False) -> dict[str, Any]:
        """``add_argument`` keywords; ``single_word``: see :func:`add_options`."""
        kw: dict[str, Any] = {"dest": self.dest, "default": self.default}
        if self.required:
            kw["required"] = True
        if self.action:
            kw["action"] = self.action
        if self.action in _FLAG_ACTIONS:
            kw["help"] = self.help
            return kw
        if not self.show_default:
            kw["help"] = self.help
        else:
            if self.shown_default is not None:
                shown = self.shown_default
            elif isinstance(self.default, tuple):
                shown = ",".join(str(v) for v in self.default)
            else:
                shown = self.default
            kw["help"] = f"{self.help} (default: {shown})"
        if self.type is not None:
            kw["type"] = self.type
        if self.metavar:
            kw["metavar"] = self.metavar
        if self.choices:
            kw["choices"] = self.choices
        if self.nargs is not None:
            kw["nargs"] = self.nargs
        if self.repeatable and not single_word:
            # "extend" joins the lists (StrictParser's extend opens them); one word
            # per occurrence is a plain store: the last occurrence wins.
            kw["action"] = "extend"
            kw["nargs"] = "+"
        return kw

    def convert(self, raw: str | Sequence[str]) -> Any:
        """The value of ``raw`` text as the CLIs read it, for front ends that read
        text themselves (the plugin's command line and ini keys).

        A list option takes one text or one text per occurrence and returns the
        joined tuple. Raises ``ArgumentTypeError`` from ``type``.
        """
        if self.type is None:
            return raw
        if self.repeatable:
            texts = [raw] if isinstance(raw, str) else list(raw)
            return tuple(value for text in texts for value in self.type(str(text)))
        return self.type(str(raw))


#: The kind of value each ``type=`` callable returns (see :attr:`Option.value_kind`).
_VALUE_KINDS: dict[Callable[[str], Any] | None, ValueKind] = {
    nonnegative_int: "int",
    positive_int: "int",
    positive_float: "float",
    nonnegative_float: "float",
    finite_float: "float",
    unit_interval: "float",
    plcc_threshold: "float",
    spread_threshold: "float",
    dropout_rate: "float",
    boolean: "bool",
}

#: Actions that take no value: no type, metavar or default in their help.
_FLAG_ACTIONS = ("store_true", "store_false", "store_const", "append_const", "count")


@dataclass(frozen=True)
class OptionGroup:
    """Options shown under one help heading; ``exclusive`` ones are mutually exclusive."""

    title: str
    options: tuple[Option, ...] = ()
    #: Added first, in one mutually exclusive group.
    exclusive: tuple[Option, ...] = ()
    #: Whether exactly one of ``exclusive`` must be given.
    exclusive_required: bool = False

    def add_to(self, parser: argparse.ArgumentParser, prefix: str = "") -> None:
        """Add the group (and its exclusive set) to an argparse parser."""
        group = parser.add_argument_group(self.title)
        if self.exclusive:
            which = group.add_mutually_exclusive_group(required=self.exclusive_required)
            add_options(which.add_argument, self.exclusive, prefix)
        add_options(group.add_argument, self.options, prefix)


def add_options(
    add: Callable[..., Any],
    options: Sequence[Option],
    prefix: str = "",
    *,
    single_word: bool = False,
) -> None:
    """Add ``options`` through ``add`` (``add_argument`` or ``addoption``) with a flag prefix.

    ``single_word``: a list option takes one word (``--frreg-cqs 22,30``), and a later
    occurrence overrides an earlier one as any pytest option's does, instead of
    several words joined over every occurrence (``--cq 22 30 --cq 38``). pytest's
    parser needs this: the words after an option may be test paths, and the command
    line must override ``addopts``. Otherwise a list option needs a
    :class:`StrictParser`, whose ``extend`` joins its lists.
    """
    for opt in options:
        add(*opt.flags(prefix), **opt.kwargs(single_word=single_word))


class _ExtendLists(argparse._ExtendAction):
    """argparse's ``extend`` that also opens the lists of list types.

    ``--encoder libx264,libx265 libsvtav1`` reads ``[("libx264", "libx265"),
    ("libsvtav1",)]`` through a list ``type=`` (which returns tuples) and stores
    ``["libx264", "libx265", "libsvtav1"]``, as ``--encoder libx264 libx265
    libsvtav1`` does. Other values are extended as argparse does.
    """

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        if isinstance(values, list):
            values = [
                v for value in values for v in (value if isinstance(value, tuple) else [value])
            ]
        super().__call__(parser, namespace, values, option_string)


class StrictParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that refuses abbreviated long options.

    argparse's default lets ``--out`` silently bind ``--out-dir``; that is how
    a caller can drift from a CLI without anyone noticing. Every frreg parser
    is built from this class so callers must spell flags out in full.

    Its ``extend`` action also opens the lists of list options
    (:attr:`Option.repeatable`); registered under argparse's own name, it is
    still ``extend`` to anyone describing the parser.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self.register("action", "extend", _ExtendLists)

    def error(self, message: str) -> NoReturn:
        """argparse's usage error, naming the full flag an abbreviation stands for."""
        super().error(message + self._abbreviation_hint(message))

    def _abbreviation_hint(self, message: str) -> str:
        prefix = "unrecognized arguments: "
        if not message.startswith(prefix):
            return ""
        hints = []
        for word in message[len(prefix) :].split():
            flag = word.split("=", 1)[0]
            if not flag.startswith("--") or flag in self._option_string_actions:
                continue
            full = sorted(o for o in self._option_string_actions if o.startswith(flag))
            if full:
                hints.append(f"{flag} is not {' or '.join(full)} (abbreviations are refused)")
        return f" ({'; '.join(hints)})" if hints else ""
