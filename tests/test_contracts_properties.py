"""Hypothesis properties of every frreg CLI, from strategies built from its parser.

* valid argv parses, and the namespace written back as argv parses to the
  same namespace (round trip);
* invalid argv (labelled: unknown option, abbreviation, missing value, bad
  value, missing required argument, conflict, stray argument) exits 2 with a
  one-line error naming the bad argument and no traceback, both through
  ``main(argv)`` and through the installed console script;
* the verifier's diagnosis agrees with the label.

Only argv the parser refuses ever reaches ``main``: a valid argv would train.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from argvcontract.strategies import UnregisteredType, value_spec
from frreg.contracts import (
    Cli,
    ParseRefused,
    check_argv,
    frreg_clis,
    invalid_argv,
    namespace_to_argv,
    parse_quietly,
    register_type,
    valid_argv,
)
from frreg.schema import EXIT_USAGE

CLIS = frreg_clis()
BIN = Path(sys.executable).parent
#: Subprocess examples per CLI: a bounded sample (more under the "ci" profile).
SUBPROCESS_EXAMPLES = 10 if settings.default.max_examples >= 100 else 4

by_cli = pytest.mark.parametrize("cli", CLIS, ids=[c.name for c in CLIS])


def assert_refused(cli: Cli, argv: list[str], token: str) -> None:
    """Guard: the parser itself refuses ``argv``, naming ``token`` (so main never runs for real)."""
    with pytest.raises(ParseRefused) as refused:
        parse_quietly(cli.parser(), argv)
    assert token in refused.value.message


def assert_usage_error(cli: Cli, code: object, stderr: str, token: str) -> None:
    assert code == EXIT_USAGE, stderr
    assert "Traceback" not in stderr
    assert f"{cli.name}: error:" in stderr
    assert "usage:" in stderr or "--help" in stderr  # usage, or a pointer to it
    assert token in stderr


@by_cli
@given(data=st.data())
def test_valid_argv_parses_and_round_trips(cli, data):
    argv = data.draw(valid_argv(cli.parser()), label="argv")
    namespace = parse_quietly(cli.parser(), argv)
    again = namespace_to_argv(cli.parser(), namespace)
    assert parse_quietly(cli.parser(), again) == namespace, again
    assert check_argv(cli, argv) == []


@by_cli
@given(data=st.data())
def test_invalid_argv_exits_2_through_main(cli, data):
    bad = data.draw(invalid_argv(cli.parser()), label="invalid")
    assert_refused(cli, bad.argv, bad.token)
    err = io.StringIO()
    with redirect_stderr(err), redirect_stdout(io.StringIO()):
        try:
            code: object = cli.main(bad.argv)
        except SystemExit as exc:
            code = exc.code
    assert_usage_error(cli, code, err.getvalue(), bad.token)
    assert bad.kind in {p.kind for p in check_argv(cli, bad.argv)}


@by_cli
@settings(max_examples=SUBPROCESS_EXAMPLES)
@given(data=st.data())
def test_invalid_argv_exits_2_through_the_console_script(cli, data):
    script = BIN / cli.name
    assert script.exists(), (
        f"{cli.name} is not installed next to {sys.executable}: pip install -e ."
    )
    bad = data.draw(invalid_argv(cli.parser()), label="invalid")
    assert_refused(cli, bad.argv, bad.token)
    proc = subprocess.run([script, *bad.argv], capture_output=True, text=True, timeout=60)
    assert_usage_error(cli, proc.returncode, proc.stderr, bad.token)


# ---------------------------------------------------------------- the strategies themselves


def kitchen_sink() -> argparse.ArgumentParser:
    """A parser using every construct the strategies claim to cover."""
    p = argparse.ArgumentParser(prog="sink", allow_abbrev=False)
    p.add_argument("src")
    p.add_argument("extra", nargs="*")
    p.add_argument("--flag", action="store_true")
    p.add_argument("--no-cache", dest="cache", action="store_false")
    p.add_argument("-v", "--verbose", action="count", default=0)
    p.add_argument("--tag", action="append")
    p.add_argument("--items", action="extend", nargs="+")
    p.add_argument("--level", choices=["low", "high"], default="low")
    p.add_argument("--pair", nargs=2, type=int)
    p.add_argument("--maybe", nargs="?", const="yes")
    p.add_argument("--color", action=argparse.BooleanOptionalAction)
    p.add_argument("--ratio", type=float, default=0.5)
    p.add_argument("--mode", action="store_const", const="fast")
    p.add_argument("--out", type=Path, required=True)
    group = p.add_mutually_exclusive_group()
    group.add_argument("--json", action="store_true")
    group.add_argument("--csv", action="store_true")
    return p


SINK = Cli("sink", kitchen_sink)


# Two draws and four parses per example: cap it so the "ci" profile stays quick.
@settings(max_examples=min(settings.default.max_examples, 60))
@given(data=st.data())
def test_strategies_cover_every_argparse_construct(data):
    argv = data.draw(valid_argv(kitchen_sink()), label="argv")
    namespace = parse_quietly(kitchen_sink(), argv)
    assert parse_quietly(kitchen_sink(), namespace_to_argv(kitchen_sink(), namespace)) == namespace
    bad = data.draw(invalid_argv(kitchen_sink()), label="invalid")
    assert_refused(SINK, bad.argv, bad.token)
    assert bad.kind in {p.kind for p in check_argv(SINK, bad.argv)}


def port(text: str) -> int:
    """A user's own type= callable."""
    value = int(text)
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}")
    return value


def user_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="serve", allow_abbrev=False)
    p.add_argument("--port", type=port, default=8080)
    return p


def test_an_unregistered_type_asks_for_a_registration():
    action = user_parser()._option_string_actions["--port"]
    with pytest.raises(UnregisteredType) as missing:
        value_spec(action, "serve")
    assert str(missing.value).startswith(
        f"no value strategy for type {__name__}.port (argument --port of serve); register one: "
        f"argvcontract.register_type('{__name__}.port',"
    )


@given(data=st.data())
def test_a_registered_user_type_drives_both_strategies(data):
    register_type(port, st.integers(1, 65535).map(str), st.sampled_from(["0", "65536", "http"]))
    argv = data.draw(valid_argv(user_parser()), label="argv")
    assert parse_quietly(user_parser(), argv).port in range(1, 65536)
    bad = data.draw(invalid_argv(user_parser(), kinds=("invalid-value",)), label="invalid")
    assert bad.kind == "invalid-value"
    assert_refused(Cli("serve", user_parser), bad.argv, "--port")
