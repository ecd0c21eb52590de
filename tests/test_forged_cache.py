"""A cache forged from nothing cannot PROMOTE: the cache is a cache, not an authority.

The forger knows the cache layout and computes every digest correctly. Its
models are made up (random hidden layers, an output layer fit by least
squares to the held-out targets themselves), its predictions are exactly what
those models predict, and its metrics are exactly what those predictions
score, so every recomputation agrees. Only retraining can tell: the audit.
"""

from __future__ import annotations

import json
from pathlib import Path

import gate_runs
import pytest
from forgery import EPOCHS, forge_cache
from gate_runs import LENIENT, run_session

from conftest import LENIENT_GATE
from frreg.cli import validate as validate_cli
from frreg.schema import EXIT_FAIL, EXIT_OK, HOLD_FILE, PROMOTE_FILE
from frreg.synthetic import synthetic_rows, write_corpus

pytest_plugins = ["pytester"]


def lenient_session(pytester: pytest.Pytester, corpus: Path) -> pytest.RunResult:
    """The plugin on ``corpus`` (in process), with the tests' lenient gate."""
    argv = [f"--frreg-corpus={corpus}", f"--frreg-epochs={EPOCHS}", "-p", "no:cacheprovider"]
    return run_session(pytester, *argv, *LENIENT)


@pytest.fixture
def corpus(pytester: pytest.Pytester) -> Path:
    rows = synthetic_rows(n_sources=4, encoders=("libx264",), cqs=(22, 30, 38, 46), frames=8)
    return write_corpus(pytester.path / "corpus.jsonl", rows)


def test_the_forgery_is_self_consistent_and_only_the_audit_catches_it(corpus, tmp_path):
    forge_cache(corpus, tmp_path / "cache")
    loso = tmp_path / "loso"
    loso.mkdir()
    for entry in (tmp_path / "cache").glob("*/*"):
        for name in entry.iterdir():
            if name.name != "entry.json":
                (loso / name.name).write_bytes(name.read_bytes())
    assert validate_cli.main([str(loso), *LENIENT_GATE, "--audit", "0"]) == EXIT_OK
    verdict = json.loads((loso / PROMOTE_FILE).read_text())
    assert all(s["verified"] for s in verdict["verification"]["seeds"].values())
    assert verdict["gate"]["seed_means"]["0"] > 0.95  # a forgery better than real training

    assert validate_cli.main([str(loso), *LENIENT_GATE]) == EXIT_FAIL  # the default audit
    assert not (loso / PROMOTE_FILE).exists()
    hold = json.loads((loso / HOLD_FILE).read_text())
    assert "not what this recipe trains" in hold["recommendation"]


@pytest.mark.slow
def test_the_plugin_audits_what_it_did_not_train(pytester, corpus):
    forge_cache(corpus, pytester.path / "runs" / "frreg-cache")
    result = lenient_session(pytester, corpus)
    out = pytester.path / "runs" / "frreg-gate"
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert not (out / PROMOTE_FILE).exists()
    result.stdout.fnmatch_lines(["trained this run: none; from cache: 0, 1, 2, 3, 4 *"])
    hold = json.loads((out / HOLD_FILE).read_text())
    audit = hold["verification"]["audit"]
    assert audit["exempt_seeds"] == []  # nothing was trained by this session
    assert audit["retrained"] == audit["candidates"] > 5  # every job of every seed
    assert not any(j["passed"] for j in audit["jobs"])
    assert "not what this recipe trains" in hold["recommendation"]


@pytest.mark.slow
def test_a_cache_entry_swapped_after_this_session_trained_it_is_audited(pytester, corpus):
    # The session trains every seed itself, then -- before the controller publishes and
    # judges -- every cache entry is replaced by a forgery. What this session's processes
    # wrote is not what is published, so nothing is exempt and the audit catches it.
    pytester.makeconftest(
        f"""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, {str(Path(__file__).parent)!r})


# A wrapper: its first half runs before every plain sessionfinish hook, the gate
# controller's (which publishes and judges) included.
@pytest.hookimpl(wrapper=True)
def pytest_sessionfinish(session):
    from forgery import forge_cache

    forge_cache(Path({str(corpus)!r}), Path({str(pytester.path / "runs" / "frreg-cache")!r}))
    return (yield)
"""
    )
    result = lenient_session(pytester, corpus)
    out = pytester.path / "runs" / "frreg-gate"
    assert not (out / PROMOTE_FILE).exists()
    result.stdout.fnmatch_lines(["trained this run: 0, 1, 2, 3, 4*"])
    hold = json.loads((out / HOLD_FILE).read_text())
    audit = hold["verification"]["audit"]
    assert audit["exempt_seeds"] == []
    assert audit["retrained"] == audit["candidates"] > 5
    assert "not what this recipe trains" in hold["recommendation"]


@pytest.mark.slow
def test_what_the_session_trained_itself_is_exempt_from_the_audit(lenient_run):
    # The lenient session the plugin tests share (conftest.py): lenient_session's gate
    # and recipe, run once for every test that reads it; it trained every seed itself.
    assert str(EPOCHS) == gate_runs.EPOCHS
    assert lenient_run.result.ret == pytest.ExitCode.OK
    verdict = json.loads((lenient_run.out / PROMOTE_FILE).read_text())
    audit = verdict["verification"]["audit"]
    assert audit["exempt_seeds"] == [0, 1, 2, 3, 4]
    assert audit["retrained"] == 0
