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
