"""The code that trained is part of the evidence (frreg.training.code_digest).

A code fault on a branch (here: the scaler fit on every row instead of the
training rows) passes its own audit, because the recomputation and the audit
re-run the branch's own loader, scaler and engine. Every seed file therefore
records a digest of the code that trained it, the verdict records the
verifier's beside it, and pinned code (the main branch's frreg) verifying a
branch's artifacts catches the fault. The end-to-end tests train with a copy
of the package (``PYTHONPATH``) in a subprocess and verify in this process.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import LENIENT_GATE
from frreg.cli import validate as validate_cli
from frreg.errors import ArtifactError
from frreg.gate.evidence import recorded_run
from frreg.schema import EXIT_FAIL, EXIT_OK, EXIT_USAGE, HOLD_FILE, PROMOTE_FILE
from frreg.training import code_digest
from frreg.training.code_digest import (
    PACKAGE_ROOT,
    CodeDigest,
    difference,
    same_code,
    sources_digest,
)
from frreg.training.loso import run_config
from frreg.training.record import SeedRecord
from frreg.training.settings import TrainSettings

A, B, C = "a" * 64, "b" * 64, "c" * 64

# ---------------------------------------------------------------------- the digest


def _tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def test_sources_digest_names_every_python_source_and_nothing_else(tmp_path: Path) -> None:
    base = {"__init__.py": b"x = 1\n", "sub/mod.py": b"y = 2\n"}
    digest = sources_digest(_tree(tmp_path / "a", base))
    assert digest == sources_digest(_tree(tmp_path / "b", base))  # the location is not code
    noise = {
        "sub/__pycache__/mod.cpython-311.pyc": b"\0",
        "sub/__pycache__/stray.py": b"z",
        "sub/.#mod.py": b"an editor's lock file",
        ".hidden/mod.py": b"not importable",
        "README.md": b"not code",
        "sub/_native.c": b"compiled into the binary, digested as code.native",
    }
    assert sources_digest(_tree(tmp_path / "c", {**base, **noise})) == digest
    changes = (
        {**base, "sub/mod.py": b"y = 3\n"},  # one byte
        {**base, "sub/new.py": b""},  # an added (even empty) module
        {"__init__.py": b"x = 1\n", "sub/other.py": b"y = 2\n"},  # a renamed one
        {"__init__.py": b"x = 1\ny = 2\n", "sub/mod.py": b""},  # bytes moved between files
    )
    for i, changed in enumerate(changes):
        assert sources_digest(_tree(tmp_path / f"changed{i}", changed)) != digest


def test_the_package_digest_is_cheap() -> None:
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        sources_digest(PACKAGE_ROOT)
        best = min(best, time.perf_counter() - start)
    assert best < 0.05, f"hashing frreg's sources took {best * 1e3:.1f} ms"


def test_native_digest_is_the_loaded_binary() -> None:
    from frreg.training.batched import native_module

    module = native_module()
    if module is None:
        assert code_digest.native_digest() is None
    else:
        data = Path(module.__file__).read_bytes()
        assert code_digest.native_digest() == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("0.1.0", "must be an object"),
        ({"sources": A}, "must be an object"),
        ({"sources": A, "native": None, "extra": 1}, "must be an object"),
        ({"sources": "abc", "native": None}, "sources must be a sha256"),
        ({"sources": A.upper(), "native": None}, "sources must be a sha256"),
        ({"sources": A, "native": 7}, "native must be a sha256"),
    ],
)
def test_a_malformed_code_record_is_refused(value: Any, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        CodeDigest.from_json(value)
    assert CodeDigest.from_json({"sources": A, "native": None}) == CodeDigest(A)


def test_same_code_compares_the_native_binary_only_where_it_trained() -> None:
    assert same_code(CodeDigest(A), CodeDigest(A, B))  # the torch kernel trained
    assert same_code(CodeDigest(A, B), CodeDigest(A, B))
    assert not same_code(CodeDigest(A), CodeDigest(C, B))
    assert not same_code(CodeDigest(A, B), CodeDigest(A, C))  # another build of the kernel
    assert not same_code(CodeDigest(A, B), CodeDigest(A))  # the kernel is not built here
    assert difference(CodeDigest(A), CodeDigest(C)) == (
        f"trained by frreg sources {A[:12]}…, verified by {C[:12]}…"
    )
    assert difference(CodeDigest(A, B), CodeDigest(A)) == (
        f"the same frreg sources, but trained by native kernel binary {B[:12]}…, verified by none"
    )


# ---------------------------------------------------------------------- the cache key


def test_the_code_is_in_every_config_so_in_the_cache_key(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = TrainSettings(epochs=3)
    base = run_config("d" * 64, 0, settings)
    assert base["code"]["sources"] == code_digest.package_sources_digest()
    torch_run = run_config("d" * 64, 0, settings, kernel="torch")
    assert torch_run["code"] == {"sources": base["code"]["sources"], "native": None}
    if base["kernel"] == "native":
        assert base["code"]["native"] is not None
        assert base["code"]["native"] == code_digest.native_digest()

    monkeypatch.setattr(code_digest, "package_sources_digest", lambda: C)
    changed = run_config("d" * 64, 0, settings)
    assert changed["code"]["sources"] == C
    assert {k: v for k, v in changed.items() if k != "code"} == {
        k: v for k, v in base.items() if k != "code"
    }
    if base["kernel"] == "native":
        monkeypatch.setattr(code_digest, "native_digest", lambda: C)
        rebuilt = run_config("d" * 64, 0, settings)
        assert rebuilt["code"]["native"] == C != base["code"]["native"]


def test_a_malformed_code_record_is_an_input_error(loso_copy: tuple[Path, Path]) -> None:
    corpus, loso = loso_copy
    path = loso / "loso_seed0.json"
    doc = json.loads(path.read_text())
    assert CodeDigest.from_json(doc["config"]["code"])  # the trainer records it
    doc["config"]["code"] = "0.1.0"
    path.write_text(json.dumps(doc))
    record = SeedRecord.read(path)
    with pytest.raises(ArtifactError, match=r"config\.code must be an object"):
        recorded_run(record, path)
    assert validate_cli.main([str(loso), "--corpus", str(corpus), *LENIENT_GATE]) == EXIT_USAGE


def test_the_verdict_names_seeds_that_record_different_code(loso_copy: tuple[Path, Path]) -> None:
    corpus, loso = loso_copy
    path = loso / "loso_seed1.json"
    doc = json.loads(path.read_text())
    doc["config"]["code"] = {"sources": C, "native": None}
    path.write_text(json.dumps(doc))
    assert validate_cli.main([str(loso), "--corpus", str(corpus), *LENIENT_GATE]) == EXIT_FAIL
    verdict = json.loads((loso / HOLD_FILE).read_text())
    code = verdict["verification"]["code"]
    assert code["trainer"] is None
    assert code["same_code"] is code["same_sources"] is None
    assert code["trainer_by_seed"]["1"] == {"sources": C, "native": None}
    assert f"seed 1 sources {C[:12]}…" in code["message"]
    assert "seeds disagree on config" in verdict["recommendation"]  # provenance fails them


def test_another_build_of_the_native_kernel_is_other_code_but_the_same_sources(
    loso_copy: tuple[Path, Path],
) -> None:
    # What the CI recipe usually finds: the pinned install compiled its own binary.
    corpus, loso = loso_copy
    for seed in range(5):
        path = loso / f"loso_seed{seed}.json"
        doc = json.loads(path.read_text())
        doc["config"]["code"]["native"] = C
        path.write_text(json.dumps(doc))
    assert validate_cli.main([str(loso), "--corpus", str(corpus), *LENIENT_GATE]) == EXIT_OK
    verdict = json.loads((loso / PROMOTE_FILE).read_text())
    code = verdict["verification"]["code"]
    assert code["same_code"] is False
    assert code["same_sources"] is True
    assert (
        f"the same frreg sources, but trained by native kernel binary {C[:12]}…"
        in (code["message"])
    )
    assert verdict["recommendation"].endswith(code["message"])


def test_seed_files_without_a_code_record_still_verify(loso_copy: tuple[Path, Path]) -> None:
    # Seed files written before the code was recorded: nothing to compare, not a failure.
    corpus, loso = loso_copy
    for seed in range(5):
        path = loso / f"loso_seed{seed}.json"
        doc = json.loads(path.read_text())
        del doc["config"]["code"]
        path.write_text(json.dumps(doc))
    assert validate_cli.main([str(loso), "--corpus", str(corpus), *LENIENT_GATE]) == EXIT_OK
    code = json.loads((loso / PROMOTE_FILE).read_text())["verification"]["code"]
    assert code["trainer"] is None
    assert code["same_code"] is code["same_sources"] is None
    assert code["message"] == "the seed files do not record the code that trained them"


# ---------------------------------------------------------------------- pinned code

#: The code fault: the scaler is fit on every row, the held-out ones included.
FAULT = ("scaler = Scaler.fit(features[train_idx])", "scaler = Scaler.fit(features)")
SEEDS = "0,1,2,3,4"


@dataclasses.dataclass(frozen=True)
class Branch:
    """A copy of the frreg package (``root/frreg``) and the run it trained (``loso``)."""

    root: Path
    loso: Path

    @property
    def digest(self) -> str:
        return sources_digest(self.root / "frreg")


def _copy_package(dest: Path) -> Path:
    """Copy frreg, built native kernel included, to ``dest/frreg``; the copy must be the
    checkout's sources at that moment (retried if someone saved a file mid-copy)."""
    for _ in range(3):
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(PACKAGE_ROOT, dest / "frreg", ignore=shutil.ignore_patterns("__pycache__"))
        if sources_digest(dest / "frreg") == sources_digest(PACKAGE_ROOT):
            return dest
    raise AssertionError(f"{PACKAGE_ROOT} kept changing while it was copied")


def _run(root: Path, module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -m module`` importing frreg from ``root`` (run outside the checkout, whose
    directory would otherwise come first on ``sys.path``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = str(root)
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _train(root: Path, corpus: Path, out: Path) -> Path:
    done = _run(
        root,
        "frreg.cli.train",
        "--corpus",
        str(corpus),
        "--out-dir",
        str(out),
        "--seeds",
        SEEDS,
        "--epochs",
        "20",
        cwd=root,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def branches(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Branch, Branch]:
    """``(corpus, faulty, pristine)``: one tiny corpus and two copies of frreg, one with the
    code fault, each with the run it trained."""
    from frreg.synthetic import synthetic_rows, write_corpus

    tmp = tmp_path_factory.mktemp("pinned-code")
    rows = synthetic_rows(n_sources=3, encoders=("libx264",), cqs=(22, 30, 38, 46), frames=8)
    corpus = write_corpus(tmp / "corpus.jsonl", rows)

    faulty_root = _copy_package(tmp / "faulty")
    settings_py = faulty_root / "frreg" / "training" / "settings.py"
    text = settings_py.read_text()
    assert text.count(FAULT[0]) == 1, "the fault's anchor moved: update FAULT"
    settings_py.write_text(text.replace(*FAULT))
    pristine_root = _copy_package(tmp / "pristine")

    faulty = Branch(faulty_root, _train(faulty_root, corpus, tmp / "faulty-loso"))
    pristine = Branch(pristine_root, _train(pristine_root, corpus, tmp / "pristine-loso"))
    return corpus, faulty, pristine


def _copy_run(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest)
    return dest


def _trained_by(loso: Path) -> set[str]:
    return {
        json.loads((loso / f"loso_seed{s}.json").read_text())["config"]["code"]["sources"]
        for s in range(5)
    }


def _validate_here(loso: Path, corpus: Path) -> tuple[int, str]:
    """Verify ``loso`` with this checkout's frreg, in this process: the exit status and the
    verifier's sources digest (taken from the files as the verdict is built)."""
    code_digest.package_sources_digest.cache_clear()
    status = validate_cli.main([str(loso), "--corpus", str(corpus), "--audit", "1", *LENIENT_GATE])
    return status, code_digest.package_sources_digest()


def _validate_with(root: Path, loso: Path, corpus: Path, cwd: Path) -> int:
    """Verify ``loso`` with the frreg under ``root``, in a subprocess."""
    args = (str(loso), "--corpus", str(corpus), "--audit", "1", *LENIENT_GATE)
    done = _run(root, "frreg.cli.validate", *args, cwd=cwd)
    assert done.returncode in (EXIT_OK, EXIT_FAIL), done.stdout[-3000:] + done.stderr[-3000:]
    return done.returncode


@pytest.mark.slow
def test_a_code_fault_trained_on_a_branch_holds_when_pinned_code_verifies_it(
    branches: tuple[Path, Branch, Branch], tmp_path: Path
) -> None:
    corpus, faulty, _ = branches
    loso = _copy_run(faulty.loso, tmp_path / "loso")
    assert _trained_by(loso) == {faulty.digest}  # the copy trained it, not the checkout

    status, here = _validate_here(loso, corpus)
    assert status == EXIT_FAIL
    verdict = json.loads((loso / HOLD_FILE).read_text())
    # The disagreement is named: main's scaler does not give the stored models' inputs.
    assert "its stored model predicts up to" in verdict["recommendation"]
    assert not any(s["verified"] for s in verdict["verification"]["seeds"].values())
    [job] = verdict["verification"]["audit"]["jobs"]
    assert job["passed"] is False
    assert job["max_abs_diff"] > 0
    # ... and the verdict says the code differs, and where to look.
    code = verdict["verification"]["code"]
    assert code["trainer"]["sources"] == faulty.digest != here
    assert code["verifier"]["sources"] == here
    assert code["same_code"] is code["same_sources"] is False
    assert code["message"] == (
        f"verified by other code than trained it: trained by frreg sources {faulty.digest[:12]}…, "
        f"verified by {here[:12]}…"
    )
    assert verdict["recommendation"].endswith(code["message"])


@pytest.mark.slow
def test_the_faulty_branch_passes_its_own_audit_and_its_verdict_names_its_code(
    branches: tuple[Path, Branch, Branch], tmp_path: Path
) -> None:
    # The hole the digests expose: gated by its own code, the fault promotes.
    corpus, faulty, pristine = branches
    loso = _copy_run(faulty.loso, tmp_path / "loso")
    assert _validate_with(faulty.root, loso, corpus, cwd=tmp_path) == EXIT_OK
    verdict = json.loads((loso / PROMOTE_FILE).read_text())
    [job] = verdict["verification"]["audit"]["jobs"]
    assert job["passed"] is True
    assert job["max_abs_diff"] == 0.0
    # What shows it: the verifier is the trainer's own code, and that code is not main's.
    code = verdict["verification"]["code"]
    assert code["same_code"] is code["same_sources"] is True
    assert code["verifier"]["sources"] == code["trainer"]["sources"] == faulty.digest
    assert faulty.digest != pristine.digest
    assert "a fault in that code would pass its own recomputation and audit" in code["message"]


@pytest.mark.slow
def test_unmodified_code_elsewhere_is_the_same_code_and_promotes(
    branches: tuple[Path, Branch, Branch], tmp_path: Path
) -> None:
    # The control, as the CI recipe runs it: main's frreg checked out in another
    # directory verifies the run of an unmodified branch. The same sources anywhere are
    # the same code. (The pinned copy is a snapshot, so a concurrent edit of this
    # checkout cannot make the two differ.)
    corpus, _, pristine = branches
    pinned = shutil.copytree(pristine.root, tmp_path / "pinned")
    loso = _copy_run(pristine.loso, tmp_path / "loso")
    assert _trained_by(loso) == {pristine.digest}
    assert _validate_with(pinned, loso, corpus, cwd=tmp_path) == EXIT_OK
    verdict = json.loads((loso / PROMOTE_FILE).read_text())
    code = verdict["verification"]["code"]
    assert code["trainer"]["sources"] == code["verifier"]["sources"] == pristine.digest
    assert code["same_code"] is code["same_sources"] is True
    assert code["trainer"]["native"] in (None, code["verifier"]["native"])
    assert "other code" not in verdict["recommendation"]
