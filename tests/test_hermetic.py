"""The suite is hermetic: every test runs in an empty directory outside the checkout."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_every_test_runs_in_an_empty_directory_of_its_own():
    # A runbook corpus in the checkout (runs/phase_a/..., the relative path the fork's
    # seed files record) turned two fork-artifact tests red: relative paths resolved
    # against the checkout. They cannot now: the cwd is empty and elsewhere.
    cwd = Path.cwd().resolve()
    assert not cwd.is_relative_to(ROOT)
    assert list(cwd.iterdir()) == []


@pytest.mark.slow  # a pytest session of test_fork_artifacts.py in a subprocess
def test_the_suite_ignores_a_runbook_corpus_in_the_directory_it_runs_from(tmp_path):
    """The failure the runbook caused, replayed: a corpus at the relative path the fork's
    seed files record, in the directory pytest starts from, changes no test's outcome."""
    import os
    import subprocess
    import sys

    from frreg.synthetic import synthetic_rows, write_corpus

    corpus = tmp_path / "runs" / "phase_a" / "full_grid" / "per_frame_canonical6.jsonl"
    corpus.parent.mkdir(parents=True)
    write_corpus(corpus, synthetic_rows(n_sources=3, frames=4))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "-p",
            "no:randomly",
            str(ROOT / "tests" / "test_fork_artifacts.py"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
