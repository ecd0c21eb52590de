"""The pytest plugin gate, driven through pytester: real sessions, with and without xdist.

The tests that only read what one session wrote share it (:mod:`gate_runs`: three
sessions in real subprocesses, each run once per test run). A session of its own runs
in process (:func:`gate_runs.run_session`): the same ``pytest.main`` as the console
script, with real xdist workers under ``-n``, without a new interpreter and its
imports. Sessions that are killed, interrupted, run side by side or export are real
subprocesses.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from gate_runs import EPOCHS, LENIENT, copy_runs, gate_corpus, run_session
from media import lavfi_to

from frreg.cli import validate as validate_cli
from frreg.schema import HOLD_FILE, PROMOTE_FILE
from frreg.session import item_specs
from frreg.synthetic import synthetic_rows, write_corpus

pytest_plugins = ["pytester"]

XDIST = pytest.mark.parametrize("workers", [None, "2"], ids=["no-xdist", "xdist-n2"])


@pytest.fixture
def corpus(pytester: pytest.Pytester) -> Path:
    return gate_corpus(pytester.path / "corpus.jsonl")


def gate(pytester: pytest.Pytester, corpus: Path, *args: str, workers: str | None = None):
    argv = [f"--frreg-corpus={corpus}", f"--frreg-epochs={EPOCHS}", "-p", "no:cacheprovider", *args]
    if workers:
        argv += ["-n", workers]
    return run_session(pytester, *argv)


def trained_count(pytester: pytest.Pytester, cache: str = "runs/frreg-cache") -> int:
    log = pytester.path / cache / "trained.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def out_dir(pytester: pytest.Pytester) -> Path:
    return pytester.path / "runs" / "frreg-gate"


SHARED_XDIST = pytest.mark.parametrize(
    "run", ["lenient_run", "lenient_xdist_run"], ids=["no-xdist", "xdist-n2"]
)


@pytest.mark.slow
@SHARED_XDIST
def test_pass_writes_promote_and_the_table(request, run):
    run = request.getfixturevalue(run)
    result = run.result
    assert result.ret == 0, result.stdout.str()
    out = run.out
    assert (out / PROMOTE_FILE).exists()
    assert not (out / HOLD_FILE).exists()
    for seed in range(5):
        assert json.loads((out / f"loso_seed{seed}.json").read_text())["seed"] == seed
    text = result.stdout.str()
    assert "frreg-gate::fold[seed2-synth01]" in text
    assert "frreg ensemble gate" in text
    assert "verdict: PROMOTE" in text
    assert (out / "frreg-report.md").read_text().startswith("# fr_regressor_v2 ensemble gate")
    assert (out / "frreg-plcc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "frreg-evidence.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "frreg-report.md").read_text()
    assert "## Ensemble evidence (reported, not enforced)" in report
    assert (
        "| seed | mean PLCC | std PLCC | min PLCC | max PLCC | mean SROCC | mean RMSE |" in report
    )
    result.stdout.fnmatch_lines(["source * ens PLCC * OLS PLCC * bias *", "pooled PLCC: 0 *"])
    # Every item the records declare ran and passed (tests/test_criteria.py pins the ids),
    # and the verdict's own result (frreg-gate::verdict).
    expected = len(item_specs(range(5), [f"synth{i:02d}" for i in range(4)])) + 1
    result.assert_outcomes(passed=expected, warnings=result.parseoutcomes().get("warnings", 0))


@pytest.mark.slow
@XDIST
def test_default_thresholds_hold_with_one_line_verdicts(pytester, corpus, workers):
    result = gate(pytester, corpus, workers=workers)
    assert result.ret == 1
    out = out_dir(pytester)
    assert (out / HOLD_FILE).exists()
    assert not (out / PROMOTE_FILE).exists()
    result.stdout.re_match_lines(
        [r"FAILED frreg-gate::ensemble\[mean-plcc\] - mean PLCC -?\d\.\d{4} < 0\.95"]
    )
    verdict = json.loads((out / HOLD_FILE).read_text())
    assert verdict["verdict"] == "HOLD"
    assert verdict["written_by"] == "pytest-frreg"


@pytest.mark.slow
def test_warm_rerun_trains_nothing_and_agrees(pytester, lenient_xdist_run):
    first = lenient_xdist_run  # its out dir and cache, copied here: the first run
    assert first.result.ret == 0
    copy_runs(first, pytester.path)
    assert trained_count(pytester) == 5
    promote = json.loads((out_dir(pytester) / PROMOTE_FILE).read_text())

    second = gate(pytester, first.corpus, *LENIENT)
    assert second.ret == 0
    assert trained_count(pytester) == 5  # nothing new was trained
    second.stdout.fnmatch_lines(["trained this run: none; from cache: 0, 1, 2, 3, 4 *"])
    again = json.loads((out_dir(pytester) / PROMOTE_FILE).read_text())
    assert again["seed_files"] == promote["seed_files"]
    assert again["gate"]["seed_means"] == promote["gate"]["seed_means"]


@pytest.mark.slow
def test_corrupt_cache_entry_is_reported_and_retrained(pytester, lenient_run):
    assert lenient_run.result.ret == 0
    copy_runs(lenient_run, pytester.path)  # a cache that trained each seed once
    [artifact] = (pytester.path / "runs" / "frreg-cache").glob("*/*/loso_seed3.json")
    artifact.write_text(artifact.read_text()[:40])  # torn
    result = gate(pytester, lenient_run.corpus, *LENIENT)
    assert result.ret == 0
    assert trained_count(pytester) == 6
    result.stdout.fnmatch_lines(["trained this run: 3; from cache: 0, 1, 2, 4 *"])


@pytest.mark.slow
def test_concurrent_sessions_share_the_cache_and_train_each_seed_once(pytester, corpus):
    def start(name: str) -> subprocess.Popen[str]:
        argv = [
            sys.executable,
            "-m",
            "pytest",
            f"--frreg-corpus={corpus}",
            f"--frreg-epochs={EPOCHS}",
            *LENIENT,
            f"--frreg-out-dir=runs/{name}",
            "--frreg-cache-dir=runs/shared-cache",
            "-p",
            "no:cacheprovider",
            "-q",
        ]
        return subprocess.Popen(
            argv, cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )

    procs = [start("a"), start("b")]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert trained_count(pytester, "runs/shared-cache") == 5
    a, b = (pytester.path / "runs" / n for n in ("a", "b"))
    for seed in range(5):
        name = f"loso_seed{seed}.json"
        assert (a / name).read_bytes() == (b / name).read_bytes()


@pytest.mark.slow
def test_stopped_session_never_promotes(pytester, corpus):
    out = out_dir(pytester)
    out.mkdir(parents=True)
    (out / PROMOTE_FILE).write_text("{}")  # stale, from an earlier run
    result = gate(pytester, corpus, *LENIENT, "--frreg-fold-min=0.99999", "--maxfail=1")
    assert result.ret == 1
    assert not (out / PROMOTE_FILE).exists()
    hold = json.loads((out / HOLD_FILE).read_text())
    assert "not run" in hold["recommendation"]


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_interrupted_session_leaves_no_promote(pytester, corpus):
    out = out_dir(pytester)
    out.mkdir(parents=True)
    (out / PROMOTE_FILE).write_text("{}")
    # The session as a user's terminal starts it: Ctrl-C raises KeyboardInterrupt. A
    # parent that ignores SIGINT (a job started in the background by a shell, as CI
    # scripts may be) passes that on, and Python then never installs its handler.
    argv = [
        sys.executable,
        "-c",
        "import signal, sys, pytest; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "sys.exit(pytest.main(sys.argv[1:]))",
        f"--frreg-corpus={corpus}",
        "--frreg-epochs=20000",  # long enough that Ctrl-C lands mid-training
        *LENIENT,
        "-p",
        "no:cacheprovider",
        "-q",
    ]
    proc = subprocess.Popen(
        argv, cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.monotonic() + 120
    # Wait until training is under way (a seed's lock exists), then press Ctrl-C.
    while not list((pytester.path / "runs" / "frreg-cache").glob("*.lock")):
        assert proc.poll() is None
        assert time.monotonic() < deadline
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    text = proc.communicate(timeout=120)[0]
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, text
    assert not (out / PROMOTE_FILE).exists()


@pytest.mark.slow
def test_fold_floor_fails_folds_below_it(floor_run):
    result = floor_run.result
    assert result.ret == 1
    result.stdout.fnmatch_lines(["seed 0 fold synth00 PLCC * < 0.99999"])
    result.stdout.fnmatch_lines(["trained this run: 0, 1, 2, 3, 4; from cache: none *"])


def _comparable(verdict_path: Path) -> dict:
    """A verdict without the fields that say when and by whom it was written."""
    verdict = json.loads(verdict_path.read_text(encoding="utf-8"))
    del verdict["created_at"], verdict["generated_at_utc"], verdict["written_by"]
    return verdict


@pytest.mark.slow
@pytest.mark.parametrize(
    ("run", "floor", "verdict_file"),
    [("lenient_run", None, PROMOTE_FILE), ("floor_run", "0.99999", HOLD_FILE)],
    ids=["no-floor-PROMOTE", "floor-0.99999-HOLD"],
)
def test_plugin_and_frreg_validate_write_the_same_verdict(
    request, tmp_path, run, floor, verdict_file
):
    run = request.getfixturevalue(run)
    plugin = _comparable(run.out / verdict_file)
    # frreg-validate on (a copy of) the very artifacts the plugin published, with the
    # same thresholds. The plugin trained every seed itself, so its audit exempts all
    # of them (and says so); this audits nothing.
    out = tmp_path / "frreg-gate"
    shutil.copytree(run.out, out)
    argv = [str(out), f"--corpus={run.corpus}", "--audit=0"]
    argv += [f"--fold-min={floor}"] if floor is not None else []
    argv += [a.replace("--frreg-", "--") for a in LENIENT]
    code = validate_cli.main(argv)
    cli = _comparable(out / verdict_file)
    assert (run.result.ret, code) == ((0, 0) if verdict_file == PROMOTE_FILE else (1, 1))
    # Each names the directory it judged: the plugin its out dir, frreg-validate the copy.
    assert (plugin.pop("loso_dir"), cli.pop("loso_dir")) == (str(run.out), str(out))
    audit = plugin["verification"].pop("audit")
    cli["verification"].pop("audit")
    assert (audit["exempt_seeds"], audit["retrained"]) == ([0, 1, 2, 3, 4], 0)
    [audit_check] = [c for c in plugin["gate"]["checks"] if c["name"] == "audit"]
    assert audit_check["passed"]
    assert "exempt" in audit_check["message"]
    plugin["gate"]["checks"].remove(audit_check)
    checks = plugin["gate"]["checks"]
    if verdict_file == HOLD_FILE:
        # The plugin also reports its failed items; everything else is the same gate.
        assert checks[-1]["name"] == "gate items"
        assert any(c["name"] == "fold minimum PLCC" and not c["passed"] for c in checks)
        plugin["gate"]["checks"] = checks[:-1]
        before, after = plugin["recommendation"].split("; gate items", 1)
        plugin["recommendation"] = before + after[after.index("; keep smoke=true") :]
    assert plugin == cli


@pytest.mark.slow
def test_fold_metrics_reach_junit_xml(lenient_run):
    assert lenient_run.result.ret == 0
    xml = (lenient_run.path / "gate.xml").read_text()
    assert 'name="fold[seed1-synth02]"' in xml
    assert '<property name="plcc" value="' in xml
    # The ensemble evidence per source reaches JUnit too.
    assert 'name="evidence[bias-synth01]"' in xml
    assert '<property name="coverage_conformal" value="' in xml
    assert '<property name="ensemble_plcc" value="' in xml


@pytest.mark.parametrize(
    ("arg", "needle"),
    [
        ("--frreg-epochs=0", "--frreg-epochs: invalid value '0'"),
        ("--frreg-seeds=1,x", "--frreg-seeds: invalid seed list '1,x'"),
        ("--frreg-engine=turbo", "--frreg-engine: invalid choice: 'turbo'"),
        ("--frreg-num-codecs=13", "--frreg-num-codecs 13 is not supported"),
    ],
)
def test_bad_option_values_are_usage_errors_naming_the_option(pytester, corpus, arg, needle):
    result = pytester.runpytest_inprocess(f"--frreg-corpus={corpus}", arg, "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert needle in result.stderr.str()
    assert "Traceback" not in result.stderr.str()


def test_bad_ini_value_names_the_ini_key(pytester, corpus):
    pytester.makeini(f"[pytest]\nfrreg_corpus = {corpus}\nfrreg_epochs = many\n")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    # pytest converts the typed key (int) and says why; the key is named first.
    assert "ini option frreg_epochs: " in result.stderr.str()
    assert "'many'" in result.stderr.str()


def test_ini_turns_the_gate_on(pytester, corpus):
    pytester.makeini(
        f"[pytest]\nfrreg_corpus = {corpus}\nfrreg_epochs = {EPOCHS}\nfrreg_seeds = 0\n"
        "frreg_mean_plcc_threshold = 0\nfrreg_per_seed_min = 0\n"
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--collect-only", "-q")
    result.stdout.fnmatch_lines(
        ["frreg-gate::corpus", "frreg-gate::fold[[]seed0-synth00[]]", "frreg-gate::seed[[]seed0[]]"]
    )


def test_bad_corpus_is_one_usage_line(pytester, corpus):
    corpus.write_text(corpus.read_text() + '{"src": "x"}\n')
    result = pytester.runpytest_inprocess(f"--frreg-corpus={corpus}", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"{corpus}:129: missing column 'encoder'" in result.stderr.str()


def test_inert_without_its_options(pytester):
    pytester.makepyfile(test_one="def test_one():\n    assert True\n")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "frreg-gate" not in result.stdout.str()
    assert not (pytester.path / "runs").exists()


def test_importing_the_plugin_stays_light():
    code = "import sys, pytest_frreg.plugin; print(sorted(m for m in ('torch', 'pandas', 'matplotlib') if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=os.environ
    )
    assert out.stdout.strip() == "[]"


def test_help_lists_the_options_with_defaults(pytester):
    result = pytester.runpytest_inprocess("--help")
    text = result.stdout.str()
    for flag in (
        "--frreg-corpus=PATH",
        "--frreg-seeds=N[,N...]",
        "--frreg-epochs=N",
        "--frreg-cache-dir=DIR",
    ):
        assert flag in text
    assert "(default: 0,1,2,3,4)" in text
    assert "frreg_epochs" in text  # the ini key


@pytest.mark.slow
@pytest.mark.parametrize("workers", [None, "2"], ids=["no-xdist", "xdist-n2"])
def test_missing_corpus_is_produced_lazily_from_a_manifest(pytester, workers):
    clips = pytester.path / "clips"
    clips.mkdir()
    lavfi_to(clips / "chart_24fps.yuv", "testsrc2=size=96x54:rate=24", 6, raw_pix_fmt="yuv420p")
    # A space in the path must survive every layer down to ffmpeg.
    lavfi_to(clips / "bars 30fps.yuv", "smptebars=size=96x54:rate=30", 6, raw_pix_fmt="yuv420p")
    (pytester.path / "sources.toml").write_text(
        'encoders = ["libx264"]\ncqs = [24, 40]\n'
        '[[sources]]\npath = "clips/chart_24fps.yuv"\nwidth = 96\nheight = 54\npix_fmt = "yuv420p"\nframerate = 24\n'
        '[[sources]]\npath = "clips/bars 30fps.yuv"\nid = "bars_30fps"\nwidth = 96\nheight = 54\n'
        'pix_fmt = "yuv420p"\nframerate = 30\n'
    )
    corpus = pytester.path / "runs" / "corpus.jsonl"
    args = ["--frreg-sources=sources.toml", *LENIENT, "-v"]
    result = gate(pytester, corpus, *args, workers=workers)
    assert result.ret == 0, result.stdout.str()
    # Collection named the items from the manifest before the corpus existed.
    assert "frreg-gate::fold[seed1-bars_30fps]" in result.stdout.str()
    outcomes = result.parseoutcomes()
    # Every item, and the verdict's own result.
    assert outcomes["passed"] == len(item_specs(range(5), ["bars_30fps", "chart_24fps"])) + 1, (
        outcomes
    )
    rows = [json.loads(line) for line in corpus.read_text().splitlines()]
    assert len(rows) == 2 * 2 * 6  # sources x cqs x frames
    assert {(r["src"], r["encoder"]) for r in rows} == {
        ("chart_24fps", "libx264"),
        ("bars_30fps", "libx264"),
    }
    assert "producing it" in (out_dir(pytester) / "frreg-gate.log").read_text()


@pytest.mark.slow
def test_source_ids_with_at_signs_keep_their_items(pytester):
    # --dist loadgroup appends "@<group>" to node ids: an id with its own "@"
    # must still be matched to its item, or the verdict would say "not run".
    rows = synthetic_rows(n_sources=4, encoders=("libx264",), cqs=(22, 30, 38, 46), frames=8)
    for row in rows:
        row["src"] = str(row["src"]).replace("synth0", "clip@2x-")
    corpus = write_corpus(pytester.path / "corpus.jsonl", rows)
    result = gate(pytester, corpus, *LENIENT, "-v", workers="2")
    assert result.ret == 0, result.stdout.str()
    assert "frreg-gate::fold[seed1-clip@2x-1]" in result.stdout.str()
    assert (out_dir(pytester) / PROMOTE_FILE).exists()


@pytest.mark.slow
def test_serial_and_xdist_sessions_give_the_same_evidence(lenient_run, lenient_xdist_run):
    blocks = []
    for run in (lenient_run, lenient_xdist_run):  # each trained every seed itself
        assert run.result.ret == 0, run.result.stdout.str()
        blocks.append(json.loads((run.out / PROMOTE_FILE).read_text())["evidence"])
    assert blocks[0] == blocks[1]
    assert blocks[0]["computed"] is True
    assert set(blocks[0]["sources"]) == {"synth00", "synth01", "synth02", "synth03"}


#: Every file that speaks for a verdict, as an earlier session left them.
VERDICT_BEARING = (
    PROMOTE_FILE,
    HOLD_FILE,
    "frreg-report.md",
    "frreg-plcc.png",
    "frreg-evidence.png",
    "frreg-verdict-diff.md",
    "frreg-verdict-diff.json",
)


@pytest.mark.parametrize(
    "args",
    [["--frreg-epochs=0"], ["--frreg-num-codecs=13"]],
    ids=["bad-value", "bad-settings"],
)
def test_a_session_that_ends_early_removes_every_verdict_bearing_file(pytester, corpus, args):
    out = out_dir(pytester)
    out.mkdir(parents=True)
    for name in VERDICT_BEARING:  # from an earlier session, about other seeds
        (out / name).write_text("stale ✅ PROMOTE")
    result = pytester.runpytest_inprocess(
        f"--frreg-corpus={corpus}", "-p", "no:cacheprovider", *args
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert sorted(p.name for p in out.iterdir()) == []


def test_collect_only_has_no_side_effects(pytester, corpus):
    out = out_dir(pytester)
    out.mkdir(parents=True)
    for name in VERDICT_BEARING:
        (out / name).write_text("earlier")
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    result = pytester.runpytest_inprocess(
        f"--frreg-corpus={corpus}", "-p", "no:cacheprovider", "--co"
    )
    assert result.ret == pytest.ExitCode.OK
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    result.stdout.fnmatch_lines(["collected * items", "*<GateItem fold[[]seed0-*]>*"])


def test_collection_counts_include_the_gate_items(pytester, corpus):
    """The gate's items are collected as pytest collects (its collect hooks fire), so
    the header counts them and deselection cannot go negative."""
    every = pytester.runpytest_inprocess(f"--frreg-corpus={corpus}", "--co", "-q")
    total = len([line for line in every.stdout.lines if line.startswith("frreg-gate::")])
    assert total > 0
    seed0 = [n for n in every.stdout.lines if n.startswith("frreg-gate::") and "seed0" in n]
    result = pytester.runpytest_inprocess(f"--frreg-corpus={corpus}", "--co", "-k", "seed0")
    deselected = total - len(seed0)
    result.stdout.fnmatch_lines(
        [f"collected {total} items / {deselected} deselected / {len(seed0)} selected"]
    )


@pytest.mark.slow
def test_frreg_export_ships_only_after_the_controller_wrote_promote(pytester, corpus):
    pytest.importorskip("onnxruntime")
    model = pytester.path / "model"
    registry = model / "registry.json"
    result = gate(
        pytester,
        corpus,
        *LENIENT,
        f"--frreg-export={model}",
        f"--frreg-export-registry={registry}",
        workers="2",
    )
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "verdict: PROMOTE*",
            "exported 5 members to *model *",
            "flipped 5 entries in *registry.json",
        ]
    )
    check = subprocess.run(
        [sys.executable, "-m", "frreg.cli.export", f"--check={model}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    manifest = json.loads((model / "fr_regressor_v2_ensemble_v1.json").read_text())
    assert manifest["written_by"] == "pytest-frreg"
    # A HOLD (the ADR thresholds) exports nothing, and says so.
    held = pytester.path / "model-held"
    result = gate(pytester, corpus, f"--frreg-export={held}")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["no export to *model-held: the verdict is HOLD"])
    assert not held.exists()


def test_a_bad_baseline_is_a_usage_error_before_any_training(pytester, corpus):
    bad = pytester.path / "bad.json"
    bad.write_text('{"x":', encoding="utf-8")
    result = pytester.runpytest_inprocess(
        f"--frreg-corpus={corpus}", f"--frreg-epochs={EPOCHS}", "-p", "no:cacheprovider",
        f"--frreg-baseline={bad}",
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = [line for line in result.stderr.lines if line.strip()]
    assert err == [f"ERROR: --frreg-baseline: {bad}: the baseline verdict is not JSON "
                   "(Expecting value: line 1 column 6 (char 5))"]  # fmt: skip
    assert "Traceback" not in result.stdout.str()
    assert not (pytester.path / "runs" / "frreg-cache").exists()  # nothing trained


@pytest.mark.slow
def test_the_gate_runs_without_xdist_under_strict_markers(pytester, corpus):
    result = gate(pytester, corpus, *LENIENT, "-p", "no:xdist", "--strict-markers", "-W",
                  "error::pytest.PytestUnknownMarkWarning")  # fmt: skip
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()[-2000:]
    assert "INTERNALERROR" not in result.stdout.str()
    assert (out_dir(pytester) / PROMOTE_FILE).exists()


@pytest.mark.slow
def test_one_verdict_line_on_every_surface_and_a_custom_promote_says_so(lenient_run, tmp_path):
    """A 30-epoch run with lenient thresholds PROMOTEs: every surface says it is custom,
    in the same words (the terminal's last line, the report's first, the verdict file)."""
    result = lenient_run.result
    assert result.ret == 0
    verdict = json.loads((lenient_run.out / PROMOTE_FILE).read_text())
    line = verdict["verdict_line"]
    assert line.startswith("PROMOTE (custom, ADR-0303 gate: ")
    assert "epochs 30 (ADR-0303: 200)" in line
    summary = [ln for ln in result.stdout.lines if ln.strip()]
    tail = [ln for ln in summary if ln.startswith("frreg verdict: ")]
    assert tail == [f"frreg verdict: {line}"]
    report = (lenient_run.out / "frreg-report.md").read_text().splitlines()[0]
    assert report == f"# fr_regressor_v2 ensemble gate: ✅ {line}"
    # frreg-validate on (a copy of) the same artifacts prints the same line.
    out = tmp_path / "frreg-gate"
    shutil.copytree(lenient_run.out, out)
    argv = [str(out), f"--corpus={lenient_run.corpus}", "--audit=0"]
    argv += [a.replace("--frreg-", "--") for a in LENIENT]
    assert validate_cli.main(argv) == 0
    assert json.loads((out / PROMOTE_FILE).read_text())["verdict_line"] == line


def _junit_case(xml_path: Path, name: str) -> tuple[dict[str, str], list[str]]:
    """One testcase of a JUnit file: its properties and its failure messages."""
    import xml.etree.ElementTree as ET

    root = ET.parse(xml_path).getroot()
    case = next(c for c in root.iter("testcase") if c.get("name") == name)
    props = {p.get("name", ""): p.get("value", "") for p in case.iter("property")}
    return props, [f.get("message", "") for f in case.iter("failure")]


@pytest.mark.slow
def test_a_hold_is_a_failing_junit_testcase_carrying_the_verdict(floor_run):
    # Every fold item fails its floor here, but a HOLD whose items all pass (an audit
    # or evidence failure) must fail in JUnit too: the verdict is its own testcase.
    result = floor_run.result
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    props, failures = _junit_case(floor_run.path / "gate.xml", "verdict")
    assert props["verdict"] == "HOLD"
    assert props["verdict_line"].startswith("HOLD (custom, ADR-0303 gate: ")
    assert props["recommendation"].startswith("hold: ")
    assert "epochs 30 (ADR-0303: 200)" in props["deviations"]
    assert props["audit"].startswith("requested all")
    assert failures
    assert failures[0].startswith(props["verdict_line"])
    result.stdout.fnmatch_lines(["FAILED frreg-gate::verdict - HOLD (custom*"])


@pytest.mark.slow
def test_a_promote_is_a_passing_junit_testcase_carrying_the_verdict(lenient_run):
    assert lenient_run.result.ret == 0
    props, failures = _junit_case(lenient_run.path / "gate.xml", "verdict")
    assert props["verdict"] == "PROMOTE"
    assert failures == []
    assert "warnings" in props  # WARN evidence is named, not hidden in a pass


@pytest.mark.slow
def test_a_baseline_gives_the_verdict_diff_in_the_terminal_report_and_files(pytester, lenient_run):
    """--frreg-baseline: what changed is on the terminal, in frreg-report.md and in the
    diff files beside the verdict; the verdict line stays the summary's last line, and
    the evidence warnings point at their items, not at a library line."""
    from frreg.gate.diff import DIFF_JSON, DIFF_MD

    assert lenient_run.result.ret == 0
    copy_runs(lenient_run, pytester.path)  # the PROMOTE run, as if it had run here
    baseline = pytester.path / "last-promote.json"
    shutil.copy(out_dir(pytester) / PROMOTE_FILE, baseline)
    corpus = lenient_run.corpus
    result = gate(
        pytester, corpus, *LENIENT, "--frreg-fold-min=0.99999", f"--frreg-baseline={baseline}"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "change against last-promote.json (same corpus): verdict PROMOTE (custom* -> HOLD (custom*"
        ]
    )
    lines = result.stdout.str().splitlines()
    last = max(i for i, line in enumerate(lines) if line.startswith("frreg verdict: "))
    assert lines[last].startswith("frreg verdict: HOLD (custom")
    assert lines[last + 1].startswith("=")  # nothing of frreg's after it
    out = out_dir(pytester)
    diff = json.loads((out / DIFF_JSON).read_text())
    assert diff["verdict"] == {"baseline": "PROMOTE", "this_run": "HOLD"}
    assert (out / DIFF_MD).read_text().startswith("## Change against the baseline verdict")
    report = (out / "frreg-report.md").read_text()
    assert "## Change against the baseline verdict" in report
    assert f"`{DIFF_MD}`" in report  # named relative to the report
    warning = "  frreg-gate::data[manifest]:0: EvidenceWarning: WARN data manifest"
    assert warning in result.stdout.str()
    assert "gate_session.py" not in result.stdout.str()


@pytest.mark.slow
@XDIST
def test_the_previous_verdict_in_the_out_dir_is_a_baseline(pytester, lenient_run, workers):
    """--frreg-baseline runs/frreg-gate/PROMOTE.json: the session clears its out dir
    before it runs, so it judges a copy kept beside it (workers too), and names the
    baseline as given."""
    from frreg.gate.diff import DIFF_JSON

    assert lenient_run.result.ret == 0
    copy_runs(lenient_run, pytester.path)  # the previous session's out dir and cache
    previous = out_dir(pytester) / PROMOTE_FILE
    given = "runs/frreg-gate/PROMOTE.json"
    result = gate(
        pytester, lenient_run.corpus, *LENIENT, f"--frreg-baseline={given}", workers=workers
    )
    assert result.ret == 0, result.stdout.str()[-3000:]
    result.stdout.fnmatch_lines([f"change against {given} (same corpus): verdict unchanged*"])
    diff = json.loads((out_dir(pytester) / DIFF_JSON).read_text())
    assert diff["baseline"] == given
    assert previous.is_file()  # this run's PROMOTE, written after the copy was judged
    [check] = [
        c
        for c in json.loads(previous.read_text())["evidence"]["checks"]
        if c["name"] == "evidence baseline-relative"
    ]
    assert check["status"] == "PASS"
