"""Check argv against a CLI's real parser and say what is wrong in one line.

The diagnosis names the caller, the offending token and the closest valid
option, e.g. ``train_all.sh passes --corpus-root; mytool has no such option
— did you mean --corpus?``. Callers may declare flags they must pass (a
wrapper must always pass ``--corpus`` and ``--out-dir``);
a declared flag the callee no longer has is reported too, so renaming a flag
breaks the contract loudly rather than making the declaration silently moot.
"""

from __future__ import annotations

import argparse
import difflib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from argvcontract.cli import Cli
from argvcontract.parsing import (
    ParseExited,
    ParseRefused,
    is_placeholder,
    is_variable_only,
    quiet,
    tolerate_placeholders,
)
from argvcontract.recording import Call, Recording

# Problem kinds, stable strings that tests and users may match on.
UNKNOWN_OPTION = "unknown-option"
ABBREVIATION = "abbreviation"
MISSING_VALUE = "missing-value"
INVALID_VALUE = "invalid-value"
UNEXPECTED_VALUE = "unexpected-value"
CONFLICT = "conflict"
MISSING_REQUIRED = "missing-required"
STRAY_ARGUMENT = "stray-argument"
MISSING_FLAG = "missing-flag"
STALE_CONTRACT = "stale-contract"
NEVER_CALLED = "never-called"
CALLER_FAILED = "caller-failed"
UNKNOWN_CALLEE = "unknown-callee"
REFUSED = "refused"


@dataclass(frozen=True)
class Problem:
    """One way a caller breaks a CLI's contract; ``message`` is the diagnosis."""

    kind: str
    caller: str
    callee: str
    message: str
    token: str | None = None
    suggestion: str | None = None
    argv: tuple[str, ...] | None = None

    def __str__(self) -> str:
        return self.message


class ContractError(AssertionError):
    """A caller broke a CLI contract. ``report`` holds every problem found."""

    def __init__(self, message: str, report: ContractReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class ContractReport:
    """The problems found in one caller's calls."""

    caller: str
    problems: list[Problem] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def messages(self) -> list[str]:
        """One line per distinct problem, with a count when calls repeat it."""
        counts = Counter(p.message for p in self.problems)
        lines = []
        for message in dict.fromkeys(p.message for p in self.problems):
            n = counts[message]
            lines.append(message if n == 1 else f"{message} (in {n} calls)")
        return lines

    def format(self) -> str:
        """The diagnosis: each problem, then the argv of the first offending call."""
        if self.ok:
            return f"{self.caller}: contract holds ({len(self.calls)} calls checked)"
        lines = [f"{self.caller} breaks the CLI contract:"]
        lines += [f"  {m}" for m in self.messages()]
        first = next((p for p in self.problems if p.argv is not None), None)
        if first is not None and first.argv is not None:
            lines.append(f"  first offending call: {_render(first.callee, first.argv)}")
        return "\n".join(lines)

    def raise_for_problems(self) -> None:
        """Raise :class:`ContractError` (an ``AssertionError``) if anything is wrong."""
        __tracebackhide__ = True
        if self.problems:
            raise ContractError(self.format(), self)


def _render(callee: str, argv: Sequence[str]) -> str:
    import shlex

    return shlex.join([callee, *argv])


def closest_option(token: str, options: Iterable[str]) -> str | None:
    """The valid option a misspelt ``token`` most likely meant, or ``None``.

    An option sharing a stem of three or more letters wins (``--output`` meant
    ``--out-dir``, ``--corpus-root`` meant ``--corpus``); otherwise difflib's
    closest match, if any is close.
    """
    name = token.split("=", 1)[0]
    pool = [o for o in options if o.startswith("--") == name.startswith("--")] or list(options)
    bare = name.lstrip("-")

    def shared(option: str) -> int:
        n = 0
        for a, b in zip(bare, option.lstrip("-"), strict=False):
            if a != b:
                break
            n += 1
        return n

    stems = [o for o in pool if shared(o) >= 3]
    if stems:
        return max(stems, key=lambda o: (shared(o), difflib.SequenceMatcher(None, name, o).ratio()))
    found = difflib.get_close_matches(name, pool, n=1, cutoff=0.6)
    return found[0] if found else None


def _option_strings(parser: argparse.ArgumentParser) -> list[str]:
    return [o for a in parser._actions for o in a.option_strings]


def _did_you_mean(suggestion: str | None, options: list[str]) -> str:
    if suggestion:
        return f" — did you mean {suggestion}?"
    longs = [o for o in options if o.startswith("--") and o != "--help"]
    return f" (it accepts {', '.join(longs)})" if longs else ""


def _is_positional(parser: argparse.ArgumentParser, token: str) -> bool:
    try:
        return parser._parse_optional(token) is None
    except ParseRefused:
        return False


def _scan_tokens(
    parser: argparse.ArgumentParser,
    argv: Sequence[str],
    cli: str,
    caller: str,
    placeholders: bool,
) -> tuple[list[Problem], set[int]]:
    """Unknown and abbreviated options, classified exactly as argparse classifies them.

    Returns the problems and the indices of tokens that are values of unknown
    options (so they are not reported again as stray arguments).
    """
    options = _option_strings(parser)
    problems: list[Problem] = []
    value_of_unknown: set[int] = set()
    for i, token in enumerate(argv):
        if token == "--":
            break  # everything after is positional
        if placeholders and is_placeholder(token):
            continue
        try:
            # argparse's own classifier: None = positional, (None, ...) = unknown option.
            found = parser._parse_optional(token)
        except ParseRefused as err:  # "ambiguous option" (only when abbreviations are allowed)
            problems.append(
                Problem(
                    ABBREVIATION,
                    caller,
                    cli,
                    f"{caller} passes {token}; {cli} says: {err}",
                    token,
                    None,
                    tuple(argv),
                )
            )
            continue
        if found is None:
            continue
        action, option_string, _explicit = found
        name = token.split("=", 1)[0]
        if action is not None:
            if name.startswith("--") and option_string != name:
                # A lenient parser bound the abbreviation; it breaks when a
                # second option with the same prefix appears.
                problems.append(
                    Problem(
                        ABBREVIATION,
                        caller,
                        cli,
                        f"{caller} passes {name}, an abbreviation of {option_string}; "
                        f"spell it out ({cli} accepts abbreviations only because allow_abbrev is on)",
                        name,
                        option_string,
                        tuple(argv),
                    )
                )
            continue
        if "=" not in token and i + 1 < len(argv) and _is_positional(parser, argv[i + 1]):
            value_of_unknown.add(i + 1)
        expansions = [
            o for o in options if name.startswith("--") and o.startswith(name) and o != name
        ]
        if len(name) > 2 and expansions:
            if len(expansions) == 1:
                hint = f" — did you mean {expansions[0]}?"
            else:
                hint = f" — did you mean one of {', '.join(expansions)}?"
            problems.append(
                Problem(
                    ABBREVIATION,
                    caller,
                    cli,
                    f"{caller} passes {name}; {cli} refuses abbreviated options{hint}",
                    name,
                    expansions[0],
                    tuple(argv),
                )
            )
            continue
        suggestion = closest_option(name, options)
        problems.append(
            Problem(
                UNKNOWN_OPTION,
                caller,
                cli,
                f"{caller} passes {name}; {cli} has no such option{_did_you_mean(suggestion, options)}",
                name,
                suggestion,
                tuple(argv),
            )
        )
    return problems, value_of_unknown


def _from_argument_error(
    err: argparse.ArgumentError, argv: Sequence[str], cli: str, caller: str
) -> Problem:
    name = err.argument_name or "an argument"
    said = f"{cli} says: {err}"
    text = err.message
    if text.startswith("expected"):
        kind, lead = MISSING_VALUE, f"{caller} passes {name} without a value"
    elif text.startswith("ignored explicit argument"):
        kind, lead = UNEXPECTED_VALUE, f"{caller} passes a value to {name}, which takes none"
    elif "not allowed with argument" in text:
        kind, lead = CONFLICT, f"{caller} passes conflicting options"
    elif text.startswith("invalid"):
        kind, lead = INVALID_VALUE, f"{caller} passes an invalid value for {name}"
    else:
        kind, lead = REFUSED, f"{caller} passes an argv {cli} refuses"
    return Problem(kind, caller, cli, f"{lead}; {said}", err.argument_name, None, tuple(argv))


def _from_refusal(err: ParseRefused, argv: Sequence[str], cli: str, caller: str) -> Problem:
    text = err.message
    if "required" in text:
        kind, lead = MISSING_REQUIRED, f"{caller} does not pass what {cli} requires"
    else:
        kind, lead = REFUSED, f"{caller} passes an argv {cli} refuses"
    return Problem(
        kind, caller, cli, f"{lead}; {cli} says: {text}", err.argument, None, tuple(argv)
    )


def _passes(action: argparse.Action, argv: Sequence[str]) -> bool:
    for token in argv:
        if token == "--":
            return False
        if any(token == o or token.startswith(o + "=") for o in action.option_strings):
            return True
    return False


def check_argv(
    cli: Cli,
    argv: Sequence[str],
    *,
    caller: str = "caller",
    must_pass: Sequence[str] = (),
    placeholders: bool = False,
) -> list[Problem]:
    """Every problem ``cli``'s real parser finds in ``argv`` (empty when it parses).

    ``must_pass`` names flags this caller declares it always passes; a flag the
    caller omits, or one the CLI no longer has, is a problem. With
    ``placeholders`` (documentation examples) a value such as ``$OUT_DIR`` or
    ``<path>`` counts as some valid value: the flag must exist and take a
    value, but the value is not converted.
    """
    parser = quiet(cli.parser())
    if placeholders:
        tolerate_placeholders(parser)
    argv = list(argv)
    problems, value_of_unknown = _scan_tokens(parser, argv, cli.name, caller, placeholders)
    try:
        # parse_known_args, not parse_args: the verifier wants the leftover
        # tokens to name them; it reports them, it never ignores them.
        _, extras = parser.parse_known_args(argv)
    except argparse.ArgumentError as err:
        problems.append(_from_argument_error(err, argv, cli.name, caller))
    except ParseRefused as err:
        problems.append(_from_refusal(err, argv, cli.name, caller))
    except ParseExited:
        pass  # --help / --version: a valid call that prints and exits 0
    else:
        reported = {p.token for p in problems}
        stray_positions = [
            i for i, t in enumerate(argv) if i not in value_of_unknown and t not in reported
        ]
        strays = [t for t in extras if t not in reported]
        for token in strays:
            if placeholders and is_variable_only(token):
                continue  # "$@" may expand to nothing
            if not any(argv[i] == token for i in stray_positions):
                continue  # the value of an unknown option, already reported
            problems.append(
                Problem(
                    STRAY_ARGUMENT,
                    caller,
                    cli.name,
                    f"{caller} passes unexpected argument {token!r}; {cli.name} takes no "
                    "further positional arguments",
                    token,
                    None,
                    tuple(argv),
                )
            )
    for flag in must_pass:
        action = parser._option_string_actions.get(flag)
        if action is not None and not _passes(action, argv):
            problems.append(
                Problem(
                    MISSING_FLAG,
                    caller,
                    cli.name,
                    f"{caller} never passes {flag} to {cli.name} (its contract requires it)",
                    flag,
                    None,
                    tuple(argv),
                )
            )
    return problems


def stale_flags(cli: Cli, must_pass: Sequence[str], *, caller: str = "caller") -> list[Problem]:
    """Declared must-pass flags that ``cli`` no longer has (a renamed or dropped flag)."""
    parser = cli.parser()
    options = _option_strings(parser)
    problems = []
    for flag in must_pass:
        if flag not in options:
            suggestion = closest_option(flag, options)
            problems.append(
                Problem(
                    STALE_CONTRACT,
                    caller,
                    cli.name,
                    f"{caller}'s contract requires {flag}, but {cli.name} has no such option"
                    f"{_did_you_mean(suggestion, options)}",
                    flag,
                    suggestion,
                )
            )
    return problems


def _tail(text: str, lines: int = 3) -> str:
    kept = [ln for ln in text.strip().splitlines() if ln.strip()][-lines:]
    return " | ".join(kept)


def verify(
    recording: Recording,
    *,
    clis: Sequence[Cli] | None = None,
    must_call: Iterable[str] = (),
    must_pass: Mapping[str, Sequence[str]] | None = None,
    placeholders: bool = False,
    expect_returncode: int | None = 0,
) -> ContractReport:
    """Check every call a recorded caller made against the callee's real parser.

    ``must_pass`` maps a CLI name to the flags the caller declares it always
    passes (the CLI must then be called at least once); ``must_call`` names
    CLIs the caller must call. ``expect_returncode`` is the caller's own exit
    status with stand-ins that succeed (``None``: do not check). ``clis``
    defaults to those the recorder stood in for (``recording.clis``).
    """
    must_pass = dict(must_pass or {})
    known = {c.name: c for c in (clis if clis is not None else recording.clis)}
    report = ContractReport(recording.caller, calls=list(recording.calls))
    for name, flags in must_pass.items():
        if name in known:
            report.problems += stale_flags(known[name], flags, caller=recording.caller)
    for call in recording.calls:
        cli = known.get(call.callee)
        if cli is None:
            report.problems.append(
                Problem(
                    UNKNOWN_CALLEE,
                    recording.caller,
                    call.callee,
                    f"{recording.caller} calls {call.callee}, which no contract covers",
                )
            )
            continue
        report.problems += check_argv(
            cli,
            call.argv,
            caller=recording.caller,
            must_pass=must_pass.get(call.callee, ()),
            placeholders=placeholders,
        )
    called = {c.callee for c in recording.calls}
    for name in dict.fromkeys([*must_call, *must_pass]):
        if name not in called:
            why = ""
            if expect_returncode is None and recording.returncode not in (None, 0):
                why = f" (it exited {recording.returncode}: {_tail(recording.stderr)})"
            report.problems.append(
                Problem(
                    NEVER_CALLED,
                    recording.caller,
                    name,
                    f"{recording.caller} never calls {name}{why}",
                )
            )
    rc = recording.returncode
    if expect_returncode is not None and rc is not None and rc != expect_returncode:
        # The stand-ins always succeed, so a failing caller failed on its own
        # (a missing input file, a typo in the script): worth one line.
        report.problems.append(
            Problem(
                CALLER_FAILED,
                recording.caller,
                ", ".join(sorted(called)) or "-",
                f"{recording.caller} exited {rc}, expected {expect_returncode}: "
                f"{_tail(recording.stderr) or '(no stderr)'}",
            )
        )
    return report


def assert_contract(recording: Recording, **kwargs: object) -> ContractReport:
    """:func:`verify` and raise :class:`ContractError` listing every problem.

    Keyword arguments are those of :func:`verify`. Returns the report when the
    contract holds.
    """
    __tracebackhide__ = True
    report = verify(recording, **kwargs)  # type: ignore[arg-type]
    report.raise_for_problems()
    return report


def assert_argv(cli: Cli, argv: Sequence[str], *, caller: str = "caller", **kwargs: object) -> None:
    """Raise :class:`ContractError` unless ``cli``'s real parser accepts ``argv``.

    For Python callers that build an argv list: check the list directly.
    """
    __tracebackhide__ = True
    report = ContractReport(caller)
    report.problems = check_argv(cli, argv, caller=caller, **kwargs)  # type: ignore[arg-type]
    report.raise_for_problems()
