"""Root conftest: fixtures shared by the whole test suite.

Hypothesis settings profiles live here too: ``fast`` (the default, for local
runs: random, so each run explores new inputs) and ``ci`` (more examples and
derandomized, so a ship-gate run is reproducible and a red CI is never a
coin flip; selected when ``CI`` is set or with ``--hypothesis-profile=ci``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("fast", max_examples=30, deadline=None)
settings.register_profile(
    "ci",
    max_examples=150,
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("ci" if os.environ.get("CI") else "fast")


@pytest.fixture(autouse=True)
def _hermetic_cwd(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every test runs in an empty directory of its own, so nothing it does can read the
    checkout's ``runs/`` or whatever the cwd holds (a runbook corpus at the path the
    fork's seed files record, say). Tests name repository files by their absolute
    path (``Path(__file__).parent``)."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture
def write_jsonl(tmp_path: Path) -> Callable[..., Path]:
    """Write rows (dicts, or raw strings written verbatim) as a JSONL file."""

    def write(rows: list[Any], name: str = "corpus.jsonl", trailing_newline: bool = True) -> Path:
        lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
        path = tmp_path / name
        path.write_text("\n".join(lines) + ("\n" if trailing_newline else ""), encoding="utf-8")
        return path

    return write


@pytest.fixture
def tiny_rows() -> list[dict[str, Any]]:
    """A small synthetic corpus: 3 sources x 1 encoder x 2 cq x 12 frames."""
    from frreg.synthetic import synthetic_rows

    return synthetic_rows(n_sources=3, encoders=("libx264",), cqs=(24, 36), frames=12)


@pytest.fixture
def tiny_corpus(write_jsonl: Callable[..., Path], tiny_rows: list[dict[str, Any]]) -> Path:
    return write_jsonl(tiny_rows)


def _lenient_adr_gate() -> tuple[str, ...]:
    from frreg.gate.criteria import PROFILE_ADR, threshold_criteria

    return tuple(
        arg
        for _, c in threshold_criteria()
        if PROFILE_ADR in c.decides_under and c.default is not None
        for arg in (f"--{c.option}", f"{c.most_permissive:g}")
    )


#: The ADR-0303 thresholds set where any real, briefly trained ensemble meets them
#: (each criterion's own lenient value): tests of the evidence path are about what
#: is recomputed, not about model quality.
LENIENT_GATE = _lenient_adr_gate()


@pytest.fixture(scope="session")
def trained_loso(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A real LOSO run (5 seeds x 4 folds, 30 epochs on a tiny corpus): ``(corpus, loso_dir)``.

    Shared by the session; copy it (``loso_copy``) before changing anything.
    """
    from frreg.corpus import load_corpus
    from frreg.synthetic import synthetic_rows, write_corpus
    from frreg.training.loso import run_loso
    from frreg.training.settings import TrainSettings

    root = tmp_path_factory.mktemp("trained-loso")
    rows = synthetic_rows(n_sources=4, encoders=("libx264",), cqs=(22, 30, 38, 46), frames=8)
    corpus = write_corpus(root / "corpus.jsonl", rows)
    run_loso(load_corpus(corpus), (0, 1, 2, 3, 4), TrainSettings(epochs=30), root / "loso")
    return corpus, root / "loso"


@pytest.fixture
def loso_copy(trained_loso: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    """A private copy of :func:`trained_loso`: ``(corpus, loso_dir)``; the seeds record the
    shared corpus path, which this copy keeps (and may be told to use another)."""
    import shutil

    corpus, loso = trained_loso
    copy = tmp_path / "loso"
    shutil.copytree(loso, copy)
    return corpus, copy
