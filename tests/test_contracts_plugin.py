"""The contracts plugin as a user meets it: a test file guarding their own wrapper."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest_plugins = ["pytester"]

USER_TESTS = """
from pathlib import Path

from pytest_frreg.contracts import Cli, assert_contract

HERE = Path(__file__).parent


def test_wrapper_calls_the_trainer_correctly(argv_recorder, tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("{}\\n")
    recording = argv_recorder.run_script(HERE / "train_all.sh", env={"DATA": str(corpus)})
    assert_contract(recording, must_pass={"frreg-train": ["--corpus", "--out-dir"]})


def build_parser():
    import argparse

    parser = argparse.ArgumentParser(prog="publish", allow_abbrev=False)
    parser.add_argument("model_dir")
    parser.add_argument("--channel", choices=["stable", "beta"], required=True)
    return parser


def test_wrapper_calls_my_own_cli_correctly(argv_recorder):
    argv_recorder.watch(Cli("publish", build_parser))
    recording = argv_recorder.run_script(HERE / "release.sh")
    assert_contract(recording, must_call=["publish"])
"""

TRAIN_ALL = """\
set -eu
for seed in 0 1; do
  frreg-train --seeds "$seed" --corpus "$DATA" --out-dir runs/loso
done
"""
RELEASE = "publish runs/loso --channel stable\n"


def write_user_project(pytester: pytest.Pytester, train_all: str, release: str) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    (pytester.path / "train_all.sh").write_text(train_all)
    (pytester.path / "release.sh").write_text(release)


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_user_guard_passes_on_a_correct_wrapper(pytester, xdist):
    write_user_project(pytester, TRAIN_ALL, RELEASE)
    result = pytester.runpytest("-p", "no:cacheprovider", *xdist)
    result.assert_outcomes(passed=2)


def test_user_guard_fails_on_a_drifted_wrapper(pytester):
    drifted = TRAIN_ALL.replace('--corpus "$DATA"', '--corpus-root "$DATA"')
    write_user_project(pytester, drifted, RELEASE.replace("--channel", "--chan"))
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "*train_all.sh passes --corpus-root; frreg-train has no such option — did you mean --corpus? (in 2 calls)*",
            "*train_all.sh never passes --corpus to frreg-train (its contract requires it) (in 2 calls)*",
            "*release.sh passes --chan; publish refuses abbreviated options — did you mean --channel?*",
        ]
    )


def test_loading_the_plugin_imports_nothing_heavy():
    code = (
        "import sys, pytest_frreg.contracts\n"
        "heavy = [m for m in ('frreg.contracts', 'hypothesis', 'torch') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
