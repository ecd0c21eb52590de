"""The CLI contract guard on the repo itself: the wrapper, the docs, argparse traps.

The original harness broke because scripts/run_ensemble_loso.sh passed
--corpus-root/--output to a trainer that accepts --corpus/--out-dir. These
tests run the real wrapper (and every documented command) against the real
parsers, and show that re-introducing that bug, or renaming a trainer flag,
fails with a diagnosis that names the caller, the token and the fix.
"""

from __future__ import annotations

import argparse
import copy
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from argvcontract.docs import split_commands
from argvcontract.surface import load
from frreg.contracts import (
    CLI_MODULES,
    ArgvRecorder,
    CallerTimeout,
    Cli,
    ContractError,
    ScriptContract,
    assert_argv,
    assert_contract,
    check_argv,
    check_command,
    check_markdown,
    cli_by_name,
    collect_commands,
    diff_surface,
    frreg_clis,
    snapshot,
)

ROOT = Path(__file__).resolve().parent.parent
WRAPPER_PATH = ROOT / "scripts" / "run_ensemble_loso.sh"
SNAPSHOT = Path(__file__).resolve().parent / "cli_surface.json"

#: What run_ensemble_loso.sh promises frreg-train. The flags are the contract;
#: the variables it reads are unset unless a test sets them, so an exported
#: FRREG_TRAIN in a developer's shell cannot point the check at a real trainer.
WRAPPER = ScriptContract(
    WRAPPER_PATH,
    callee="frreg-train",
    must_pass=("--seeds", "--corpus", "--out-dir"),
    input_files={"CORPUS_JSONL": '{"placeholder": "the stand-in never reads it"}\n'},
    reads_env=("CORPUS_JSONL", "OUT_DIR", "SEEDS", "LOG_DIR", "FRREG_TRAIN"),
    # It works from the repository root above scripts/, as the fork's wrapper does.
    install_as=f"scripts/{WRAPPER_PATH.name}",
)
SCRIPTS = {WRAPPER.name: WRAPPER}
ORIGINAL_BUG = "run_ensemble_loso.sh passes --corpus-root; frreg-train has no such option — did you mean --corpus?"


@pytest.fixture
def recorder(tmp_path: Path) -> ArgvRecorder:
    return ArgvRecorder(tmp_path / "recorder")


def broken_wrapper(tmp_path: Path) -> ScriptContract:
    """A copy of the wrapper with the original bug put back."""
    text = WRAPPER_PATH.read_text(encoding="utf-8")
    broken = text.replace('--corpus "$CORPUS_JSONL"', '--corpus-root "$CORPUS_JSONL"')
    broken = broken.replace('--out-dir "$OUT_DIR"', '--output "$OUT_DIR"')
    assert broken != text, "the wrapper no longer calls the trainer the way this test expects"
    path = tmp_path / "broken" / WRAPPER_PATH.name
    path.parent.mkdir()
    path.write_text(broken, encoding="utf-8")
    return ScriptContract(
        path,
        WRAPPER.callee,
        WRAPPER.must_pass,
        WRAPPER.input_files,
        reads_env=WRAPPER.reads_env,
        install_as=WRAPPER.install_as,
    )


def renamed(cli: Cli, old: str, new: str) -> Cli:
    """``cli`` with one flag renamed in a copy of its real parser."""

    def build():
        parser = cli.build_parser()
        action = parser._option_string_actions.pop(old)
        action.option_strings = [new if o == old else o for o in action.option_strings]
        parser._option_string_actions[new] = action
        return parser

    return Cli(cli.name, build, cli.module, cli.main)


# ---------------------------------------------------------------- the wrapper


def test_wrapper_passes_only_flags_the_trainer_accepts(recorder, tiny_corpus, tmp_path):
    out = tmp_path / "loso dir"  # a space must survive the script's quoting
    report = WRAPPER.check(
        recorder, "--epochs", "2", env={"CORPUS_JSONL": str(tiny_corpus), "OUT_DIR": str(out)}
    )
    assert report.ok, report.format()
    assert [c.argv for c in report.calls] == [
        ("--seeds", str(s), "--corpus", str(tiny_corpus), "--out-dir", str(out), "--epochs", "2")
        for s in range(5)
    ]
    assert not list(out.glob("loso_seed*.json")), "a stand-in trained for real"


def test_wrapper_honours_seeds_and_a_python_m_trainer(recorder, tiny_corpus):
    recording = WRAPPER.record(
        recorder,
        env={
            "CORPUS_JSONL": str(tiny_corpus),
            "SEEDS": "3 7",
            "FRREG_TRAIN": "python3 -m frreg.cli.train",
        },
    )
    assert_contract(recording, must_pass={"frreg-train": WRAPPER.must_pass})
    assert [c.via for c in recording.calls] == ["python3 -m frreg.cli.train"] * 2
    assert [c.argv[:2] for c in recording.calls] == [("--seeds", "3"), ("--seeds", "7")]
    assert "frreg-validate" in recording.stdout  # the printed next step ran too


def test_wrapper_propagates_a_failing_trainer(recorder, tiny_corpus):
    recorder.set_exit_code("frreg-train", 3)
    recording = WRAPPER.record(recorder, env={"CORPUS_JSONL": str(tiny_corpus)})
    assert recording.returncode == 3
    assert len(recording.calls) == 1  # set -e -o pipefail: stops at the first failure


def test_wrapper_without_a_corpus_never_calls_the_trainer(recorder, tmp_path):
    recording = recorder.run_script(
        WRAPPER_PATH, env={"CORPUS_JSONL": str(tmp_path / "nope.jsonl"), "FRREG_TRAIN": None}
    )
    with pytest.raises(ContractError) as failed:
        assert_contract(recording, must_pass={"frreg-train": WRAPPER.must_pass})
    message = str(failed.value)
    assert "run_ensemble_loso.sh never calls frreg-train" in message
    assert "run_ensemble_loso.sh exited 2, expected 0" in message
    assert "not found" in message  # the script's own stderr, quoted


def test_original_bug_fails_with_a_diagnosis(recorder, tiny_corpus, tmp_path):
    report = broken_wrapper(tmp_path).check(recorder, env={"CORPUS_JSONL": str(tiny_corpus)})
    messages = report.messages()
    assert f"{ORIGINAL_BUG} (in 5 calls)" in messages
    assert (
        "run_ensemble_loso.sh passes --output; frreg-train has no such option — "
        "did you mean --out-dir? (in 5 calls)"
    ) in messages
    assert (
        "run_ensemble_loso.sh never passes --corpus to frreg-train (its contract requires it) (in 5 calls)"
        in messages
    )
    with pytest.raises(ContractError, match=re.escape(ORIGINAL_BUG)):
        report.raise_for_problems()


def test_renaming_a_trainer_flag_breaks_the_wrapper_and_the_snapshot(recorder, tiny_corpus):
    clis = list(frreg_clis())
    train = cli_by_name(clis, "frreg-train")
    variant = renamed(train, "--out-dir", "--output-dir")
    clis[clis.index(train)] = variant

    report = WRAPPER.check(recorder, env={"CORPUS_JSONL": str(tiny_corpus)}, clis=clis)
    messages = report.messages()
    assert (
        "run_ensemble_loso.sh passes --out-dir; frreg-train has no such option — "
        "did you mean --output-dir? (in 5 calls)"
    ) in messages
    assert (
        "run_ensemble_loso.sh's contract requires --out-dir, but frreg-train has no such "
        "option — did you mean --output-dir?"
    ) in messages

    diff = diff_surface(load(SNAPSHOT), snapshot(clis))
    assert diff.breaking == [
        "frreg-train: --out-dir was renamed to --output-dir (dest out_dir); callers passing "
        "--out-dir now fail"
    ]
    assert diff.additive == []


def test_recorder_times_out_a_hung_caller(recorder, tmp_path):
    script = tmp_path / "hang.sh"
    script.write_text("frreg-gate runs/x\nsleep 30\n")
    with pytest.raises(CallerTimeout, match=r"hang.sh did not finish within 2 s \(killed after"):
        recorder.run_script(script, timeout=2)


def test_recorder_records_in_process_python_callers(recorder):
    def caller() -> None:
        subprocess.run(
            [sys.executable, "-m", "frreg.cli.gate", "runs/x", "--json"], check=True, timeout=30
        )
        subprocess.run(["frreg-validate", "runs/x", "--seeds", "0,1"], check=True, timeout=30)
        # Anything else still runs: the stand-in hands it to the real interpreter.
        out = subprocess.run(
            [sys.executable, "-c", "print(6 * 7)"], capture_output=True, text=True, timeout=30
        )
        assert out.stdout.strip() == "42"

    with recorder.activated("my_pipeline.py") as recording:
        caller()
    assert [(c.callee, c.argv) for c in recording.calls] == [
        ("frreg-gate", ("runs/x", "--json")),
        ("frreg-validate", ("runs/x", "--seeds", "0,1")),
    ]
    assert_contract(recording)
    assert sys.executable != str(recorder.python)


# ---------------------------------------------------------------- diagnoses


@pytest.mark.parametrize(
    ("cli", "argv", "expected"),
    [
        (
            "frreg-train",
            ["--out", "x"],
            "caller passes --out; frreg-train refuses abbreviated options — did you mean --out-dir?",
        ),
        (
            "frreg-train",
            ["--seed", "1"],
            "caller passes --seed; frreg-train refuses abbreviated options — did you mean --seeds?",
        ),
        (
            "frreg-train",
            ["--epochs"],
            "caller passes --epochs without a value; frreg-train says: argument --epochs: expected one argument",
        ),
        (
            "frreg-train",
            ["--epochs", "0"],
            "caller passes an invalid value for --epochs; frreg-train says: argument --epochs: invalid value '0': expected an integer >= 1",
        ),
        (
            "frreg-train",
            ["--engine", "fast"],
            "caller passes an invalid value for --engine; frreg-train says: argument --engine: invalid choice: 'fast'",
        ),
        ("frreg-train", ["--dry-run=yes"], "caller passes a value to --dry-run, which takes none"),
        (
            "frreg-train",
            ["stray"],
            "caller passes unexpected argument 'stray'; frreg-train takes no further positional arguments",
        ),
        (
            "frreg-gate",
            ["--seeds", "0,1"],
            "caller does not pass what frreg-gate requires; frreg-gate says: the following arguments are required: LOSO_DIR",
        ),
        (
            "frreg-corpus",
            ["--out", "c.jsonl"],
            "caller does not pass what frreg-corpus requires; frreg-corpus says: one of the arguments --source --sources --builtin --merge is required",
        ),
        (
            "frreg-corpus",
            ["--source", "a.y4m", "--builtin", "--out", "c.jsonl"],
            "caller passes conflicting options; frreg-corpus says: argument --builtin: not allowed with argument --source",
        ),
    ],
)
def test_each_kind_of_mismatch_is_diagnosed(cli, argv, expected):
    problems = check_argv(cli_by_name(frreg_clis(), cli), argv)
    assert expected in [p.message for p in problems] or any(
        p.message.startswith(expected) for p in problems
    ), [p.message for p in problems]


def test_a_lenient_parser_binding_an_abbreviation_is_still_flagged():
    def build():
        parser = argparse.ArgumentParser(prog="lenient")  # allow_abbrev defaults to True
        parser.add_argument("--out-dir")
        return parser

    assert [p.message for p in check_argv(Cli("lenient", build), ["--out", "x"])] == [
        "caller passes --out, an abbreviation of --out-dir; spell it out "
        "(lenient accepts abbreviations only because allow_abbrev is on)"
    ]


def test_assert_argv_guards_a_python_built_argv():
    train = cli_by_name(frreg_clis(), "frreg-train")
    assert_argv(train, ["--corpus", "c.jsonl", "--out-dir", "o"], caller="build_argv()")
    with pytest.raises(ContractError, match="build_argv\\(\\) passes --corpus-root; frreg-train"):
        assert_argv(train, ["--corpus-root", "c.jsonl"], caller="build_argv()")


# ---------------------------------------------------------------- argparse traps


@pytest.mark.parametrize("cli", frreg_clis(), ids=lambda c: c.name)
def test_every_cli_refuses_abbreviations(cli):
    assert cli.parser().allow_abbrev is False, f"{cli.name} lets --out bind --out-dir"


def test_no_frreg_code_swallows_unknown_flags():
    # parse_known_args silently ignores what it does not know; only the
    # verifier may call it, because it reports the leftovers.
    allowed = {ROOT / "argvcontract" / "verify.py"}
    offenders = []
    packages = ("frreg", "pytest_frreg", "argvcontract")
    for path in sorted(p for package in packages for p in (ROOT / package).rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if path not in allowed and re.search(
            r"parse_known_(intermixed_)?args|allow_abbrev\s*=\s*True", text
        ):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_cli_list_matches_the_console_scripts():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    frreg_scripts = {n: t.split(":")[0] for n, t in scripts.items() if t.startswith("frreg.cli.")}
    assert sorted(frreg_scripts.values()) == sorted(CLI_MODULES)
    assert {c.name: c.module for c in frreg_clis()} == frreg_scripts


# ---------------------------------------------------------------- documentation

DOC_COMMANDS, DOC_PROBLEMS = collect_commands(ROOT, scripts=SCRIPTS)


def test_documentation_shell_blocks_split_cleanly():
    assert [p.message for p in DOC_PROBLEMS] == []


@pytest.mark.parametrize(
    "command",
    DOC_COMMANDS
    or [
        pytest.param(
            None, marks=pytest.mark.skip(reason="README.md/docs have no frreg commands yet")
        )
    ],
    ids=lambda c: f"{c.where}-{c.target}" if c else "none",
)
def test_documented_command_matches_the_real_parser(command, recorder):
    problems = check_command(command, scripts=SCRIPTS, recorder=recorder)
    assert [p.message for p in problems] == [], command.text


GOOD_MD = """\
# Runbook

```console
$ export CORPUS_JSONL=runs/phase_a/corpus.jsonl
$ frreg-corpus --builtin --frames 24 --encoder libx264 --cq 23 31 39 --out "$CORPUS_JSONL"
wrote runs/phase_a/corpus.jsonl: 216 rows
$ CORPUS_JSONL=runs/c.jsonl OUT_DIR=/abs/runs/loso bash scripts/run_ensemble_loso.sh --epochs 2
```

```bash
frreg-train --seeds 0,1 --corpus <corpus.jsonl> \\
    --out-dir "$OUT_DIR" 2>&1 | tee train.log   # one model per seed and fold
python -m frreg.cli.validate "$OUT_DIR" --seeds=N[,N...] --corpus "$CORPUS_JSONL" && echo done
pytest --frreg-corpus=runs/c.jsonl --frreg-seeds 0,1 -n 2 -p no:cacheprovider
```

```python
frreg-train --this-is-not-shell
```
"""

BAD_MD = """\
Intro.

```sh
frreg-gate "$OUT_DIR" --seeds 0,1 --mean-plcc 0.95
frreg-train --corpus-root "$CORPUS_JSONL" \\
  --output runs/loso
SEEDS="0 1" scripts/run_ensemble_loso.sh --out runs/x
python -m pytest --frreg-corpse=runs/c.jsonl --frreg-epochs 0 -x
```
"""


@pytest.mark.parametrize(
    ("line", "commands"),
    [
        (
            "frreg-train --corpus a#b.jsonl  # trailing comment",
            [["frreg-train", "--corpus", "a#b.jsonl"]],
        ),
        (
            "frreg-train --out-dir o 2>&1 | tee 'log file'",
            [["frreg-train", "--out-dir", "o"], ["tee", "log file"]],
        ),
        (
            "A=1 frreg-gate <dir> && echo ok; frreg-validate x >out.txt",
            [["A=1", "frreg-gate", "<dir>"], ["echo", "ok"], ["frreg-validate", "x"]],
        ),
    ],
)
def test_documented_lines_split_like_a_shell(line, commands):
    assert split_commands(line) == commands


def test_checker_passes_good_markdown(recorder):
    report = check_markdown(GOOD_MD, "RUNBOOK.md", scripts=SCRIPTS, recorder=recorder)
    assert report.ok, report.format()


def test_checker_fails_bad_markdown_naming_file_line_and_fix(recorder):
    report = check_markdown(BAD_MD, "RUNBOOK.md", scripts=SCRIPTS, recorder=recorder)
    assert report.messages() == [
        "RUNBOOK.md:4 passes --mean-plcc; frreg-gate refuses abbreviated options — did you mean --mean-plcc-threshold?",
        "RUNBOOK.md:5 passes --corpus-root; frreg-train has no such option — did you mean --corpus?",
        "RUNBOOK.md:5 passes --output; frreg-train has no such option — did you mean --out-dir?",
        "RUNBOOK.md:7 (run_ensemble_loso.sh) passes --out; frreg-train refuses abbreviated options — did you mean --out-dir? (in 2 calls)",
        "RUNBOOK.md:8 passes --frreg-corpse; pytest has no such option — did you mean --frreg-corpus?",
        "RUNBOOK.md:8 passes an invalid value for --frreg-epochs; pytest says: argument --frreg-epochs: invalid value '0': expected an integer >= 1",
    ]


def test_diff_surface_leaves_its_inputs_alone():
    # diff_surface must not mutate its inputs (tests reuse the committed snapshot).
    committed = load(SNAPSHOT)
    before = copy.deepcopy(committed)
    diff_surface(committed, snapshot())
    assert committed == before
