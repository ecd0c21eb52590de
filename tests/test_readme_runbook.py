"""The README's runbook, executed as written: its ``bash`` blocks in order, in a fresh
shell that has only what the README's set-up made (``.venv``), on a small built-in
corpus. The one declared change narrows step 0's corpus; every other character of
every block runs as a user would paste it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from argvcontract.docs import ShellBlock, shell_blocks
from frreg.schema import PROMOTE_FILE

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
SECTION = "## Runbook"

# The only change to the runbook: step 0's corpus, narrowed to three built-in sources,
# 24 frames, one encoder and two CRFs so that the whole runbook takes about a minute.
STEP0 = "frreg-corpus --builtin --encoder libx264 libx265 --cq 22 30 38 46 "
SMALL_STEP0 = (
    "frreg-corpus --builtin testsrc2_30fps mandelbrot_24fps life_25fps --frames 24 "
    "--encoder libx264 --cq 30 46 "
)
SUBSTITUTIONS = {STEP0: SMALL_STEP0}

CORPUS = Path("runs/phase_a/full_grid/per_frame_canonical6.jsonl")


def runbook_blocks() -> list[ShellBlock]:
    """The ``bash`` blocks of the README's runbook section, in order (``sh`` blocks are
    alternatives: parsed by the contract tests, not run)."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n{SECTION}")
    end = text.find("\n## ", start + 1)
    before = text[:start].count("\n") + 1  # line numbers stay README's
    section = "\n" * before + text[start + 1 : end if end != -1 else len(text)]
    return [b for b in shell_blocks(section, str(README)) if b.lang == "bash"]


def runbook_script() -> str:
    """The runbook as one bash script: every block in order, each announced on stderr
    with its README line, and the declared substitutions applied exactly once each."""
    parts = ["set -euo pipefail"]
    for block in runbook_blocks():
        parts.append(f"echo '>>> README.md:{block.line}' >&2")
        parts.extend(block.lines)
    script = "\n".join(parts) + "\n"
    for old, new in SUBSTITUTIONS.items():
        assert script.count(old) == 1, f"the runbook no longer has {old!r} exactly once"
        script = script.replace(old, new)
    return script


def test_the_runbook_is_the_whole_job_in_order():
    commands = [line.split()[0] for b in runbook_blocks() for line in b.lines if line.strip()]
    assert commands[0] == "source", "the runbook must first activate the environment"
    order = [
        "frreg-corpus",
        "frreg-train",
        "CORPUS_JSONL=runs/phase_a/full_grid/per_frame_canonical6.jsonl",
        "frreg-gate",
        "frreg-validate",
        "pytest",
        "frreg-export",
    ]
    assert [c for c in dict.fromkeys(commands) if c != "source"] == order
    runbook_script()  # the substitutions still apply


def test_make_demo_passes_args_through_to_pytest():
    # `make demo --frreg-epochs=200` is make's own option error; ARGS is the way.
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    proc = subprocess.run(
        [make, "-n", "-C", str(REPO), "demo", "ARGS=--frreg-epochs=200"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    demo = [line for line in proc.stdout.splitlines() if "scripts/demo.sh" in line]
    assert demo, proc.stdout
    assert demo[-1].rstrip().endswith("scripts/demo.sh --frreg-epochs=200")
    said = (REPO / "scripts" / "demo.sh").read_text(encoding="utf-8")
    assert "make demo ARGS=--frreg-epochs=" in said


def _fresh_checkout(root: Path) -> None:
    """What a clone holds after ``make install``, as the runbook sees it: the
    environment, the wrapper script, the project's pytest configuration and tests."""
    venv = Path(sys.prefix)
    if venv == Path(sys.base_prefix) or not (venv / "bin" / "activate").is_file():
        pytest.skip("the suite is not running from a virtual environment like make's .venv")
    (root / ".venv").symlink_to(venv, target_is_directory=True)
    for name in ("scripts", "tests"):
        (root / name).symlink_to(REPO / name, target_is_directory=True)
    for name in ("pyproject.toml", "conftest.py"):
        shutil.copy(REPO / name, root / name)


def _fresh_shell_env(root: Path) -> dict[str, str]:
    """A login-like environment: no venv on PATH, nothing of this pytest run."""
    keep = ("LANG", "LC_ALL", "TERM", "TMPDIR", "FRREG_FFMPEG", "CI")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    venv_bin = str(Path(sys.prefix) / "bin")
    path = [p for p in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep) if p != venv_bin]
    env.update(
        PATH=os.pathsep.join(path),
        HOME=str(root / "home"),
        XDG_CACHE_HOME=str(root / "xdg-cache"),
        FRREG_PROGRESS_INTERVAL="30",
    )
    return env


@pytest.mark.slow
def test_the_readme_runbook_runs_verbatim(tmp_path):
    root = tmp_path / "checkout"
    root.mkdir()
    _fresh_checkout(root)
    env = _fresh_shell_env(root)
    assert shutil.which("frreg-corpus", path=env["PATH"]) is None, (
        "frreg is on the PATH without the venv: this test would not show that the "
        "runbook activates it"
    )
    proc = subprocess.run(
        ["bash", "-c", runbook_script()],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    steps = [line for line in proc.stderr.splitlines() if line.startswith(">>> README.md:")]
    assert proc.returncode == 0, (
        f"the runbook failed at {steps[-1] if steps else 'its start'} "
        f"(exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    assert len(steps) == len(runbook_blocks())
    assert (root / CORPUS).is_file()
    validated = json.loads((root / "runs/ensemble_loso" / PROMOTE_FILE).read_text())
    assert validated["verdict_line"] == "PROMOTE (ADR-0303)"
    gated = json.loads((root / "runs/frreg-gate" / PROMOTE_FILE).read_text())
    assert gated["verdict_line"] == "PROMOTE (ADR-0303)"
    assert "frreg verdict: PROMOTE (ADR-0303)" in proc.stdout
    # -m frreg_gate: the workers ran the gate's items and none of the project's tests.
    ran = re.search(r"workers \[(\d+) items\]", proc.stdout)
    gate_items = re.search(r"gate items: (\d+) of (\d+) passed", proc.stdout)
    assert ran, proc.stdout
    assert gate_items, proc.stdout
    assert ran[1] == gate_items[1] == gate_items[2]
    manifests = list((root / "runs/model/tiny").glob("*_ensemble_*.json"))
    assert manifests, sorted(p.name for p in (root / "runs/model/tiny").iterdir())
    assert "verified:" in proc.stdout


def _options_section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("### pytest options")
    return text[start : text.index("\n### ", start + 1)]


def test_readme_lists_every_plugin_option_and_each_thresholds_default():
    from frreg.gate.options import THRESHOLD_OPTIONS
    from frreg.session_options import PLUGIN_OPTIONS

    section = _options_section()
    missing = [o.flag("frreg-") for o in PLUGIN_OPTIONS if f"`{o.flag('frreg-')}" not in section]
    assert not missing, f"README's pytest options table does not list {missing}"
    rows = dict(re.findall(r"^\| `(--frreg-[a-z-]+)[^|]*\| ([^|(]+)", section, re.MULTILINE))
    for opt in THRESHOLD_OPTIONS:
        if opt.value_kind == "bool":
            continue
        shown = opt.shown_default or ("off" if opt.default is None else str(opt.default))
        listed = rows[opt.flag("frreg-")].strip()
        assert listed.split(":")[0] == shown, (opt.flag("frreg-"), listed, shown)
