"""docs/ci.md: the GitHub Actions workflow and the GitLab CI job that run the ship gate.

Both files are ```yaml blocks of the page. They are parsed (PyYAML) and their
structure asserted; every shell command they run is checked against the real
parsers (frreg's CLIs and the plugin's ``--frreg-*`` options through
``frreg.contracts.check_markdown``, pytest's own options through pytest); and
the GitHub job's gate and summary steps are run for real, exactly as written,
on a small built-in corpus, then again against the first run's verdict as the
baseline. Only the corpus path, the step summary file and ``PATH`` (this
interpreter's) are set from here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from argvcontract.docs import doc_commands, split_commands
from frreg.contracts import check_markdown, frreg_clis
from frreg.contracts.registry import frreg_plugin
from frreg.gate.diff import DIFF_FILES
from frreg.schema import HOLD_FILE, PROMOTE_FILE
from frreg.session.output import EVIDENCE_PNG, HEATMAP_PNG, LOG_FILE, REPORT_MD
from frreg.session_options import GATE_CACHE_DIR, GATE_OUT_DIR

ROOT = Path(__file__).resolve().parent.parent
CI_MD = ROOT / "docs" / "ci.md"
GITHUB_FILE = ".github/workflows/frreg-gate.yml"
GITLAB_FILE = ".gitlab-ci.yml"
JOB = "frreg-gate"

#: What a gate session writes into its out dir, by the names frreg's code uses.
OUT_DIR = PurePosixPath(str(GATE_OUT_DIR.default))
CACHE_DIR = PurePosixPath(str(GATE_CACHE_DIR.default))
OUT_FILES = (REPORT_MD, HEATMAP_PNG, EVIDENCE_PNG, PROMOTE_FILE, HOLD_FILE, *DIFF_FILES, LOG_FILE)

#: The small built-in corpus the slow test gates (3 sources x 2 cq x 24 frames, ~2 s).
SMALL_CORPUS = (
    "--builtin", "testsrc2_30fps", "mandelbrot_24fps", "life_25fps",
    "--frames", "24", "--encoder", "libx264", "--cq", "30", "46",
)  # fmt: skip


# ---------------------------------------------------------------- reading the page


def yaml_blocks(text: str) -> list[str]:
    """The bodies of the page's fenced ```yaml blocks, in order."""
    return re.findall(r"^```ya?ml[ \t]*\n(.*?)^```[ \t]*$", text, re.M | re.S)


def load_ci() -> tuple[dict[str, Any], dict[str, Any]]:
    """(the GitHub workflow, the GitLab CI file), told apart by the path each names first."""
    found: dict[str, dict[str, Any]] = {}
    for block in yaml_blocks(CI_MD.read_text(encoding="utf-8")):
        first = block.splitlines()[0]
        name = first.removeprefix("#").strip()
        found[name] = yaml.safe_load(block)
    assert sorted(found) == sorted([GITHUB_FILE, GITLAB_FILE]), found.keys()
    return found[GITHUB_FILE], found[GITLAB_FILE]


GITHUB, GITLAB = load_ci()
GH_JOB: dict[str, Any] = GITHUB["jobs"][JOB]
GL_JOB: dict[str, Any] = GITLAB[JOB]


def gh_step(step_id: str) -> dict[str, Any]:
    [step] = [s for s in GH_JOB["steps"] if s.get("id") == step_id]
    return step


def gh_uses(action: str) -> list[dict[str, Any]]:
    """The steps using ``action`` (any version)."""
    return [s for s in GH_JOB["steps"] if str(s.get("uses", "")).split("@")[0] == action]


def gh_scripts() -> list[tuple[str, str]]:
    """(where, script) of every GitHub ``run:`` step."""
    return [
        (f"{GITHUB_FILE}:{s.get('name', s.get('id'))}", s["run"])
        for s in GH_JOB["steps"]
        if "run" in s
    ]


def gl_scripts() -> list[tuple[str, str]]:
    """(where, script) of every GitLab ``before_script:``/``script:`` entry."""
    return [
        (f"{GITLAB_FILE}:{key}[{i}]", entry)
        for key in ("before_script", "script")
        for i, entry in enumerate(GL_JOB.get(key, []))
    ]


def as_markdown(scripts: list[tuple[str, str]]) -> str:
    """The scripts as the ```bash blocks of a page, for frreg.contracts.check_markdown."""
    return "".join(f"{where}\n\n```bash\n{script.rstrip()}\n```\n\n" for where, script in scripts)


def command_lines(script: str, program: tuple[str, ...]) -> list[str]:
    """The lines of ``script`` that run ``program`` (its leading words), stripped."""
    lines = []
    for line in script.splitlines():
        words = split_commands(line)
        if any(tuple(w[: len(program)]) == program for w in words):
            lines.append(line.strip())
    return lines


PYTEST = ("python", "-m", "pytest")
CORPUS = ("frreg-corpus",)


def pytest_lines(scripts: list[tuple[str, str]]) -> list[str]:
    return [line for _, s in scripts for line in command_lines(s, PYTEST)]


# ---------------------------------------------------------------- structure: GitHub


def test_the_page_holds_the_two_ci_files_and_nothing_else_as_yaml():
    blocks = yaml_blocks(CI_MD.read_text(encoding="utf-8"))
    assert len(blocks) == 2
    assert [b.splitlines()[0] for b in blocks] == [f"# {GITHUB_FILE}", f"# {GITLAB_FILE}"]


def test_github_runs_on_pull_requests_with_a_read_only_token():
    # PyYAML reads YAML 1.1, where a bare `on` is the boolean true.
    triggers = GITHUB.get("on", GITHUB.get(True))
    assert triggers is not None
    assert "pull_request" in triggers
    assert GITHUB["permissions"] == {"contents": "read"}
    assert GH_JOB["defaults"]["run"]["shell"] == "bash"  # -eo pipefail


def test_github_installs_python_3_11():
    [setup] = gh_uses("actions/setup-python")
    assert str(setup["with"]["python-version"]) == "3.11"


def test_github_reports_and_uploads_always_even_on_hold():
    gate = gh_step("gate")
    assert "if" not in gate  # the gate's own exit status fails the job
    summary = gh_step("summary")
    assert "always()" in summary["if"]
    assert f'cat {OUT_DIR / REPORT_MD} >> "$GITHUB_STEP_SUMMARY"' in summary["run"]
    [upload] = gh_uses("actions/upload-artifact")
    assert "always()" in upload["if"]
    paths = upload["with"]["path"].split()
    assert paths == [junit_path(), *(str(OUT_DIR / name) for name in OUT_FILES)]


def test_github_caches_the_corpus_and_the_seed_cache_also_after_a_hold():
    restored = {s["with"]["path"]: s for s in gh_uses("actions/cache/restore")}
    corpus_dir = str(PurePosixPath(GH_JOB["env"]["FRREG_CORPUS"]).parent)
    assert sorted(restored) == sorted([corpus_dir, str(CACHE_DIR)])
    # The corpus spec lives in the workflow file: its hash is in both keys.
    for step in restored.values():
        assert f"hashFiles('{GITHUB_FILE}')" in step["with"]["key"]
    saved = {s["with"]["path"]: s for s in gh_uses("actions/cache/save")}
    assert sorted(saved) == sorted(restored)
    for path, step in saved.items():
        assert "always()" in step["if"]  # actions/cache's own post step skips failed jobs
        assert step["with"]["key"] == (
            f"${{{{ steps.{restored[path]['id']}.outputs.cache-primary-key }}}}"
        )
    assert "steps.gate.outcome != 'skipped'" in saved[str(CACHE_DIR)]["if"]


def test_the_baseline_lives_outside_the_gate_out_dir():
    # A session empties its out dir of verdicts before it starts: a baseline there
    # would be gone before it is read.
    for env in (GH_JOB["env"], GL_JOB["variables"]):
        baseline = PurePosixPath(env["FRREG_BASELINE"])
        assert OUT_DIR not in baseline.parents
        assert baseline.name == PROMOTE_FILE


# ---------------------------------------------------------------- structure: GitLab


def test_gitlab_runs_on_merge_requests_and_keeps_artifacts_always():
    assert GL_JOB["image"] == "python:3.11"
    assert GL_JOB["rules"] == [{"if": '$CI_PIPELINE_SOURCE == "merge_request_event"'}]
    artifacts = GL_JOB["artifacts"]
    assert artifacts["when"] == "always"
    assert artifacts["reports"]["junit"] == junit_path()
    assert artifacts["paths"] == [junit_path(), *(str(OUT_DIR / name) for name in OUT_FILES)]
    caches = {c["paths"][0].rstrip("/"): c for c in GL_JOB["cache"]}
    corpus_dir = str(PurePosixPath(GL_JOB["variables"]["FRREG_CORPUS"]).parent)
    assert {corpus_dir, str(CACHE_DIR)} <= set(caches)
    for path in (corpus_dir, str(CACHE_DIR)):
        assert caches[path]["when"] == "always"
        assert caches[path]["key"]["files"] == [GITLAB_FILE]


def test_both_jobs_run_the_same_commands_with_the_same_variables():
    for program in (PYTEST, CORPUS, ("python", "-m", "pip")):
        gh = [line for _, s in gh_scripts() for line in command_lines(s, program)]
        gl = [line for _, s in gl_scripts() for line in command_lines(s, program)]
        assert gh, program
        assert gh == gl, program
    same = ("FRREG_CORPUS", "FRREG_SHIPPED_VERDICT", "FRREG_BASELINE")
    assert {k: GH_JOB["env"][k] for k in same} == {k: GL_JOB["variables"][k] for k in same}


def junit_path() -> str:
    [path] = {
        m for line in pytest_lines(gh_scripts()) for m in re.findall(r"--junitxml=(\S+)", line)
    }
    return path


def test_the_gate_line_differs_only_by_the_baseline_and_runs_the_strict_profile():
    with_baseline, without = pytest_lines(gh_scripts())
    assert with_baseline == f'{without} --frreg-baseline="$FRREG_BASELINE"'
    words = split_commands(without)[0]
    assert words[3:] == [
        "-p", "no:cacheprovider", "-n", "2", "-m", "frreg_gate",
        "--frreg-corpus=$FRREG_CORPUS", "--frreg-strict", f"--junitxml={junit_path()}",
    ]  # fmt: skip


# ---------------------------------------------------------------- the real parsers


def test_every_command_the_jobs_run_matches_the_real_parsers():
    scripts = gh_scripts() + gl_scripts()
    text = as_markdown(scripts)
    report = check_markdown(text, "docs/ci.md (jobs)")
    assert report.ok, report.format()
    found, problems = doc_commands(text, "ci", clis=frreg_clis(), plugin=frreg_plugin())
    assert problems == []
    # Not vacuous: the gate lines (plugin options) and the corpus lines were checked.
    kinds = sorted((c.kind, c.target) for c in found)
    assert kinds.count(("cli", "frreg-corpus")) == 2
    assert len([k for k in kinds if k[0] == "plugin"]) == 4
    plugin_words = {w.split("=")[0] for c in found if c.kind == "plugin" for w in c.argv}
    assert {"--frreg-corpus", "--frreg-strict", "--frreg-baseline"} <= plugin_words


def test_a_drifted_flag_in_a_job_fails_the_check():
    text = as_markdown(gh_scripts()).replace("--frreg-strict", "--frreg-stric", 1)
    report = check_markdown(text, "ci")
    assert not report.ok
    assert any(
        "--frreg-stric" in m and "did you mean --frreg-strict" in m for m in report.messages()
    )


def test_pytest_accepts_the_gate_lines_own_options(tmp_path):
    """pytest's and pytest-xdist's options (``-p``, ``-n``, ``-m``, ``--junitxml``), parsed by
    pytest itself: with the gate off (no ``--frreg-corpus``) nothing is collected, exit 5;
    an option pytest refused would be exit 4."""
    for line in pytest_lines(gh_scripts()):
        words = [w for w in split_commands(line)[0][3:] if not w.startswith("--frreg-corpus")]
        done = subprocess.run(
            [sys.executable, "-m", "pytest", *words, "--co", "-q"],
            cwd=tmp_path,
            env=child_env({}),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == pytest.ExitCode.NO_TESTS_COLLECTED, done.stdout + done.stderr


# ---------------------------------------------------------------- for real


def child_env(job_env: dict[str, Any], **extra: str) -> dict[str, str]:
    """This environment without pytest's and frreg's own variables, then the job's."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "FRREG_", "GITHUB_"))
    }
    env.update({k: str(v) for k, v in job_env.items()})
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def run_step(
    step: dict[str, Any], cwd: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """One ``run:`` step as GitHub's ``shell: bash`` runs it."""
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def verdict_case(junit: Path) -> ET.Element:
    [case] = [
        c for c in ET.parse(junit).iter("testcase")
        if c.get("classname") == JOB and c.get("name") == "verdict"
    ]  # fmt: skip
    return case


def check_a_gate_run(
    work: Path, gate: subprocess.CompletedProcess[str], baseline: bool
) -> dict[str, Any]:
    """What a gate and summary run must leave: returns the verdict document."""
    out = work / OUT_DIR
    verdicts = [out / n for n in (PROMOTE_FILE, HOLD_FILE) if (out / n).is_file()]
    assert len(verdicts) == 1, gate.stdout[-3000:] + gate.stderr[-2000:]
    doc = json.loads(verdicts[0].read_text(encoding="utf-8"))
    promoted = doc["verdict"] == "PROMOTE"
    assert verdicts[0].name == (PROMOTE_FILE if promoted else HOLD_FILE)
    assert gate.returncode == (0 if promoted else 1), gate.stdout[-3000:]
    line = doc["verdict_line"]
    assert "strict profile" in line  # CI decides with frreg's profile
    assert f"frreg verdict: {line}" in gate.stdout.splitlines()  # the summary's last line

    case = verdict_case(work / junit_path())
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["verdict"] == doc["verdict"]
    assert props["verdict_line"] == line
    assert (case.find("failure") is None) == promoted

    report = (out / REPORT_MD).read_text(encoding="utf-8")
    summary = (work / "step-summary.md").read_text(encoding="utf-8")
    heading = f"# fr_regressor_v2 ensemble gate: {'✅' if promoted else '❌'} {line}"
    assert report.splitlines()[0] == heading
    assert summary.splitlines()[0] == heading
    assert summary.endswith(report)

    [upload] = gh_uses("actions/upload-artifact")
    missing = [p for p in upload["with"]["path"].split() if not (work / p).is_file()]
    other_verdict = str(OUT_DIR / (HOLD_FILE if promoted else PROMOTE_FILE))
    diffs = [str(OUT_DIR / n) for n in DIFF_FILES]
    assert missing == [other_verdict, *([] if baseline else diffs)]
    return doc


@pytest.mark.slow
def test_the_github_gate_runs_for_real_then_against_its_own_verdict(tmp_path):
    work = tmp_path / "checkout"
    work.mkdir()
    corpus = tmp_path / "corpus" / "small.jsonl"
    xdg = str(tmp_path / "xdg")
    made = subprocess.run(
        [sys.executable, "-m", "frreg.cli.corpus", *SMALL_CORPUS, "--out", str(corpus)],
        env=child_env({}, XDG_CACHE_HOME=xdg),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert made.returncode == 0, made.stderr
    env = child_env(
        GH_JOB["env"],
        FRREG_CORPUS=str(corpus),
        GITHUB_STEP_SUMMARY=str(work / "step-summary.md"),
        XDG_CACHE_HOME=xdg,
    )

    def gate_and_summary() -> subprocess.CompletedProcess[str]:
        (work / "step-summary.md").write_text("", encoding="utf-8")
        gate = run_step(gh_step("gate"), work, env)
        summary = run_step(gh_step("summary"), work, env)  # if: always()
        assert summary.returncode == 0, summary.stderr
        return gate

    # The first run: no baseline yet, the corpus given, every seed trained here.
    assert not (work / GH_JOB["env"]["FRREG_BASELINE"]).exists()
    first = gate_and_summary()
    doc = check_a_gate_run(work, first, baseline=False)
    assert "trained this run: 0, 1, 2, 3, 4; from cache: none" in first.stdout

    # The rerun: the first verdict where the baseline step puts the shipped one;
    # every seed comes from the cache.
    verdict = work / OUT_DIR / (PROMOTE_FILE if doc["verdict"] == "PROMOTE" else HOLD_FILE)
    baseline = work / GH_JOB["env"]["FRREG_BASELINE"]
    baseline.parent.mkdir(parents=True)
    shutil.copyfile(verdict, baseline)
    second = gate_and_summary()
    check_a_gate_run(work, second, baseline=True)
    assert "trained this run: none; from cache: 0, 1, 2, 3, 4" in second.stdout
    assert f"change against the baseline: {work / OUT_DIR / DIFF_FILES[0]}" in second.stdout
    names = {c.get("name") for c in ET.parse(work / junit_path()).iter("testcase")}
    assert "evidence[baseline-relative]" in names
    assert "change against the baseline" in (work / OUT_DIR / REPORT_MD).read_text(encoding="utf-8")
