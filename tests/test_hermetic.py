"""The suite is hermetic: every test runs in an empty directory outside the checkout."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_test_runs_in_an_empty_directory_of_its_own():
    # A runbook corpus in the checkout (runs/phase_a/..., the relative path the fork's
    # seed files record) turned two fork-artifact tests red: relative paths resolved
    # against the checkout. They cannot now: the cwd is empty and elsewhere.
    cwd = Path.cwd().resolve()
    assert not cwd.is_relative_to(ROOT)
    assert list(cwd.iterdir()) == []
