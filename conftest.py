"""Root conftest: fixtures shared by the whole test suite.

Hypothesis settings profiles live here too: ``fast`` (the default, for local
runs: random, so each run explores new inputs) and ``ci`` (more examples and
derandomized, so a ship-gate run is reproducible and a red CI is never a
coin flip; selected when ``CI`` is set or with ``--hypothesis-profile=ci``).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

# torch's OpenMP threads (one per core) busy-wait for work by default. The suite runs one
# pytest-xdist worker per core, so two workers' threads, or a worker's and another
# program's, spin against each other: one seed of test_batched's reference loop took 67 s
# instead of 3.9 s on 2 cores that another program was using. Passive waiting changes no
# number (the same threads split the same work); it must be set before torch starts
# OpenMP, so here, before any test module imports torch; workers and subprocesses
# inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

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


#: Builds a directory once per run (see :func:`build_once`): ``(name, build) -> directory``.
BuildOnce = Callable[[str, Callable[[Path], None]], Path]


@pytest.fixture(scope="session")
def build_once(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> BuildOnce:
    """``build_once(name, build)``: ``<run root>/shared/<name>``, made by
    ``build(directory)`` once per run, by whichever test of whichever xdist worker asks
    first; the others wait for it under a file lock and get the same directory. What it
    holds is shared, so read-only: copy it before changing anything. A build that raised
    is removed, and the next caller builds again (and fails alike).

    The run root is every worker's: the parent of the worker's basetemp under xdist
    (``<run>/popen-gwN``), the basetemp itself without xdist; pytest makes it afresh
    for every run, so nothing is shared between runs.
    """
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    root = (base.parent if hasattr(request.config, "workerinput") else base) / "shared"
    root.mkdir(exist_ok=True)

    def build_once(name: str, build: Callable[[Path], None]) -> Path:
        directory, done = root / name, root / f"{name}.done"
        with FileLock(str(root / f"{name}.lock")):
            if not done.exists():
                shutil.rmtree(directory, ignore_errors=True)
                directory.mkdir()
                try:
                    build(directory)
                except BaseException:
                    shutil.rmtree(directory, ignore_errors=True)
                    raise
                done.touch()
        return directory

    return build_once


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
def trained_loso(build_once: BuildOnce) -> tuple[Path, Path]:
    """A real LOSO run (5 seeds x 4 folds, 30 epochs on a tiny corpus): ``(corpus, loso_dir)``.

    Trained once per run and shared by every test and xdist worker (:func:`build_once`);
    copy it (``loso_copy``) before changing anything.
    """

    def build(root: Path) -> None:
        from frreg.corpus import load_corpus
        from frreg.synthetic import synthetic_rows, write_corpus
        from frreg.training.loso import run_loso
        from frreg.training.settings import TrainSettings

        rows = synthetic_rows(n_sources=4, encoders=("libx264",), cqs=(22, 30, 38, 46), frames=8)
        corpus = write_corpus(root / "corpus.jsonl", rows)
        run_loso(load_corpus(corpus), (0, 1, 2, 3, 4), TrainSettings(epochs=30), root / "loso")

    root = build_once("trained-loso", build)
    return root / "corpus.jsonl", root / "loso"


@pytest.fixture
def loso_copy(trained_loso: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    """A private copy of :func:`trained_loso`: ``(corpus, loso_dir)``; the seeds record the
    shared corpus path, which this copy keeps (and may be told to use another)."""
    import shutil

    corpus, loso = trained_loso
    copy = tmp_path / "loso"
    shutil.copytree(loso, copy)
    return corpus, copy


@pytest.fixture(scope="session")
def promoted_loso(trained_loso: tuple[Path, Path], build_once: BuildOnce) -> tuple[Path, Path]:
    """``(corpus, loso_dir with PROMOTE.json)``: :func:`trained_loso` gated with
    :data:`LENIENT_GATE` (``--audit=0``), once per run. Shared: copy before changing
    anything."""
    corpus, loso = trained_loso

    def build(root: Path) -> None:
        from frreg.cli import validate as validate_cli

        shutil.copytree(loso, root / "loso")
        argv = [str(root / "loso"), f"--corpus={corpus}", "--audit=0", *LENIENT_GATE]
        assert validate_cli.main(argv) == 0

    return corpus, build_once("promoted-loso", build) / "loso"


@pytest.fixture(scope="session")
def exported_set(
    promoted_loso: tuple[Path, Path], build_once: BuildOnce
) -> tuple[Path, Path, Path]:
    """``(corpus, loso_dir with PROMOTE.json, model dir)``: :func:`promoted_loso` exported
    (``--accept-deviations``, the default audit) with a registry flipped in the model
    dir, once per run, whichever xdist worker asks first, for every test that reads an
    export (test_export.py, test_fuzz_inputs.py): five members through torch's ONNX
    exporter take seconds, so a test that asks for it is slow. Shared: copy before
    changing anything."""
    corpus, loso = promoted_loso

    def build(root: Path) -> None:
        from frreg.cli import export as export_cli
        from frreg.schema import DEFAULT_ENSEMBLE_ID, PROMOTE_FILE, member_id

        out = root / "tiny"
        out.mkdir()
        first = member_id(DEFAULT_ENSEMBLE_ID, 0)
        registry = {
            "schema_version": 1,
            "models": [
                {"id": "other_model", "kind": "nr", "onnx": "other.onnx", "sha256": "0" * 64},
                {
                    "id": first,
                    "kind": "fr",
                    "onnx": f"{first}.onnx",
                    "sha256": "1" * 64,
                    "smoke": True,
                    "license": "BSD-3-Clause-Plus-Patent",
                    "license_url": "https://example.invalid/LICENSE",
                    "sigstore_bundle": f"{first}.onnx.sigstore.json",
                },
            ],
        }
        (out / "registry.json").write_text(json.dumps(registry), encoding="utf-8")
        argv = [f"--verdict={loso / PROMOTE_FILE}", f"--corpus={corpus}",
                f"--out-dir={out}", f"--registry={out / 'registry.json'}", "--accept-deviations"]  # fmt: skip
        assert export_cli.main(argv) == 0

    return corpus, loso, build_once("exported-set", build) / "tiny"


# Plugin sessions shared by the tests that only read what they wrote (tests/gate_runs.py).
# gate_runs is imported when a test asks: tests/ is on sys.path once a test module is.


@pytest.fixture(scope="session")
def lenient_run(build_once: BuildOnce) -> Any:
    """The lenient gate, serial, verbose, with a JUnit file (gate.xml): a PROMOTE, every
    seed trained by the session itself. Shared: read-only."""
    from gate_runs import shared_session

    return shared_session(build_once, "lenient")


@pytest.fixture(scope="session")
def lenient_xdist_run(build_once: BuildOnce) -> Any:
    """The lenient gate on two xdist workers, verbose: a PROMOTE. Shared: read-only."""
    from gate_runs import shared_session

    return shared_session(build_once, "lenient-xdist")


@pytest.fixture(scope="session")
def floor_run(build_once: BuildOnce) -> Any:
    """The lenient gate with a fold floor no fold reaches (0.99999), serial, with a JUnit
    file (gate.xml): a HOLD. Shared: read-only."""
    from gate_runs import shared_session

    return shared_session(build_once, "floor")
