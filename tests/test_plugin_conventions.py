"""The plugin follows pytest's conventions: ini keys named after their options, typed
ini entries, ``--frreg-no-<flag>``, paths relative to where they were given.

Each test runs a pytest session with ``--co`` (nothing trains) and reads the
session's resolved configuration back through a conftest hook: in process
(``runpytest_inprocess``, the console script's ``pytest.main`` without a new
interpreter), or in a subprocess where the session imports the export extra
(``--frreg-export`` checks onnx imports before any training), which must not be
imported afresh into this process by every test.
"""

from __future__ import annotations

import json

import pytest

# What the in-process session imports (pytester forgets modules a test imported, and
# torch must not be imported twice into one process), imported here to stay.
import frreg.session.gate_session  # noqa: F401
import pytest_frreg.controller  # noqa: F401
from frreg.session_options import PLUGIN_OPTIONS
from frreg.synthetic import synthetic_rows, write_corpus
from pytest_frreg.plugin import ini_key

pytest_plugins = ["pytester"]

#: A conftest printing the gate session's resolved configuration after collection.
SHOW_CONFIG = """
import json
from pytest_frreg.items import SESSION_KEY

def pytest_collection_finish(session):
    cfg = session.config.stash[SESSION_KEY].config
    th = cfg.thresholds
    print("FRREG-CONFIG " + json.dumps({
        "strict": th.strict,
        "epochs": cfg.settings.epochs,
        "thresholds": th.to_json(),
        "out_dir": str(cfg.out_dir),
        "cache_dir": str(cfg.cache_dir),
        "corpus": str(cfg.corpus),
        "export_dir": None if cfg.export_dir is None else str(cfg.export_dir),
    }))
"""


@pytest.fixture
def corpus(pytester: pytest.Pytester):
    rows = synthetic_rows(n_sources=3, encoders=("libx264",), cqs=(22, 46), frames=4)
    return write_corpus(pytester.path / "corpus.jsonl", rows)


def resolved(pytester: pytest.Pytester, *args: str, subprocess: bool = False) -> dict:
    """The session's resolved configuration (``subprocess``: run it in one)."""
    pytester.makeconftest(SHOW_CONFIG)
    run = pytester.runpytest_subprocess if subprocess else pytester.runpytest_inprocess
    result = run("--co", "-q", "-p", "no:cacheprovider", *args)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str() + result.stderr.str()
    line = next(x for x in result.stdout.lines if x.startswith("FRREG-CONFIG "))
    return json.loads(line.removeprefix("FRREG-CONFIG "))


def test_every_ini_key_is_frreg_and_the_option_name():
    for opt in PLUGIN_OPTIONS:
        assert ini_key(opt) == "frreg_" + opt.name.replace("-", "_")
    keys = {ini_key(o) for o in PLUGIN_OPTIONS}
    assert {"frreg_ols_margin_min", "frreg_export", "frreg_strict"} <= keys


@pytest.mark.slow
def test_ini_keys_follow_their_options_and_are_typed(pytester, corpus):
    pytester.makeini(
        f"[pytest]\nfrreg_corpus = {corpus}\nfrreg_ols_margin_min = 0.5\n"
        "frreg_strict = true\nfrreg_epochs = 7\nfrreg_export = shipped\n"
    )
    cfg = resolved(pytester, subprocess=True)
    assert cfg["thresholds"]["margin_min"] == 0.5
    assert cfg["strict"] is True
    assert cfg["epochs"] == 7
    assert cfg["export_dir"] == str(pytester.path / "shipped")


def test_the_help_shows_typed_ini_entries(pytester):
    out = pytester.runpytest_inprocess("--help").stdout.str()
    assert "frreg_strict (bool)" in out
    assert "frreg_epochs (int)" in out
    assert "frreg_ols_margin_min (float)" in out
    assert "--frreg-no-strict" in out


def test_no_flag_overrides_an_ini_true(pytester, corpus):
    pytester.makeini(f"[pytest]\nfrreg_corpus = {corpus}\nfrreg_strict = true\n")
    assert resolved(pytester, "--frreg-no-strict")["strict"] is False
    assert resolved(pytester)["strict"] is True


def test_ini_keys_named_after_the_dest_are_still_read(pytester, corpus):
    """The keys of earlier releases (``frreg_margin_min``) are aliases, not ignored."""
    pytester.makeini(f"[pytest]\nfrreg_corpus = {corpus}\nfrreg_margin_min = 0.25\n")
    assert resolved(pytester)["thresholds"]["margin_min"] == 0.25


@pytest.mark.slow
def test_paths_are_relative_to_where_they_were_given(pytester, corpus):
    """Defaults and ini paths from the rootdir (the ini file's directory); command-line
    paths from the invocation directory, as for any command."""
    pytester.makeini(f"[pytest]\nfrreg_corpus = {corpus}\nfrreg_cache_dir = cache\n")
    sub = pytester.mkdir("sub")
    sub.joinpath("conftest.py").write_text(SHOW_CONFIG)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(sub)
        result = pytester.runpytest_subprocess(
            "--co", "-q", "-p", "no:cacheprovider", "--frreg-export=here", str(sub)
        )
    assert result.ret == pytest.ExitCode.OK, result.stdout.str() + result.stderr.str()
    line = next(x for x in result.stdout.lines if x.startswith("FRREG-CONFIG "))
    cfg = json.loads(line.removeprefix("FRREG-CONFIG "))
    root = pytester.path
    assert cfg["out_dir"] == str(root / "runs" / "frreg-gate")  # the default
    assert cfg["cache_dir"] == str(root / "cache")  # the ini key
    assert cfg["export_dir"] == str(sub / "here")  # the command line
