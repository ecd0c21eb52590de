"""scripts/run_ensemble_loso.sh, run for real against the real trainer."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from frreg.schema import EXIT_USAGE, HOLD_FILE, PROMOTE_FILE

ROOT = Path(__file__).resolve().parent.parent
WRAPPER = ROOT / "scripts" / "run_ensemble_loso.sh"


def run_wrapper(env_extra, *args, cwd):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.update(env_extra)
    return subprocess.run(
        ["bash", str(WRAPPER), *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
    )


@pytest.mark.slow
def test_wrapper_trains_every_seed_then_names_the_validator(tiny_corpus, tmp_path):
    out = tmp_path / "loso dir"  # a space in the path must survive the script
    proc = run_wrapper(
        {"CORPUS_JSONL": str(tiny_corpus), "OUT_DIR": str(out)}, "--epochs", "2", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    for seed in range(5):
        rec = json.loads((out / f"loso_seed{seed}.json").read_text())
        assert rec["seed"] == seed
        assert rec["epochs"] == 2
        assert rec["argv"][1:] == [
            "--seeds",
            str(seed),
            "--corpus",
            str(tiny_corpus),
            "--out-dir",
            str(out),
            "--epochs",
            "2",
        ]
        logs = list((out / "logs").glob(f"seed{seed}_*.log"))
        assert len(logs) == 1
        assert f"seed {seed}: mean PLCC" in logs[0].read_text()

    # The printed next step is a real, working command.
    next_cmd = proc.stdout.strip().splitlines()[-1].strip()
    assert next_cmd.startswith("frreg-validate ")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        shlex.split(next_cmd), capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode in (0, 1), done.stderr
    assert (out / PROMOTE_FILE).exists() != (out / HOLD_FILE).exists()


def test_missing_corpus_exits_2_with_a_pointer_to_the_prestep(tmp_path):
    missing = tmp_path / "nope.jsonl"
    proc = run_wrapper({"CORPUS_JSONL": str(missing), "OUT_DIR": str(tmp_path / "o")}, cwd=tmp_path)
    assert proc.returncode == EXIT_USAGE
    assert f"corpus {missing} not found" in proc.stderr
    assert "frreg-corpus" in proc.stderr
    assert not (tmp_path / "o").exists()


def _checkout_with_the_wrapper(tmp_path: Path) -> Path:
    """A repository root of its own holding the wrapper, as the fork's wrapper sits in its."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(WRAPPER, repo / "scripts" / WRAPPER.name)
    return repo


@pytest.mark.slow
def test_defaults_and_relative_paths_follow_the_forks_wrapper(tiny_rows, tmp_path):
    """The fork's wrapper cds to the repository root: its defaults (the canonical corpus,
    OUT_DIR runs/ensemble_v2_real) and any relative path are taken from there, not from
    the cwd; so are frreg's."""
    from frreg.synthetic import write_corpus

    repo = _checkout_with_the_wrapper(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = repo / "scripts" / WRAPPER.name
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    # Nothing at the default corpus path of *that* root: exit 2 naming it.
    proc = subprocess.run(
        ["bash", str(script)], capture_output=True, text=True, env=env, cwd=elsewhere, timeout=60
    )
    assert proc.returncode == EXIT_USAGE
    default_corpus = repo / "runs/phase_a/full_grid/per_frame_canonical6.jsonl"
    assert f"corpus {default_corpus} not found" in proc.stderr
    write_corpus(default_corpus, tiny_rows)
    proc = subprocess.run(
        ["bash", str(script), "--epochs", "2"],
        capture_output=True,
        text=True,
        env={**env, "SEEDS": "0 1"},
        cwd=elsewhere,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    out = repo / "runs" / "ensemble_v2_real"
    assert sorted(p.name for p in out.glob("loso_seed*.json")) == [
        "loso_seed0.json",
        "loso_seed1.json",
    ]
    assert not list(elsewhere.iterdir())  # nothing landed in the cwd
    assert proc.stdout.splitlines()[-1].strip() == (
        f"frreg-validate {out} --seeds 0,1 --corpus {default_corpus}"
    )
    # A relative OUT_DIR is the repository's too.
    proc = subprocess.run(
        ["bash", str(script), "--epochs", "2"],
        capture_output=True,
        text=True,
        env={**env, "SEEDS": "0", "OUT_DIR": "runs/mine"},
        cwd=elsewhere,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert (repo / "runs" / "mine" / "loso_seed0.json").is_file()
    assert not list(elsewhere.iterdir())
