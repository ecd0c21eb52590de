"""The recipe a search may recommend as an argv: ``--hidden``, ``--dropout`` and ``--sweep``.

The network's width and dropout are training options like the rest (frreg-train,
``pytest --frreg-*``, ini keys), recorded in every seed artifact's ``config.model``
and keyed; ``--sweep`` names the sweep record a recipe was chosen from: it changes
no number, but every seed records it, the verdict lists it as a deviation from
ADR-0303, and seeds that disagree on it are caught.
"""

from __future__ import annotations

import json
import shutil

import pytest

# What the in-process sessions below import (the gate session, the controller, and
# the kernel check: torch), imported here to stay: pytester forgets modules a test
# imported, and torch must not be imported twice into one process.
import frreg.gate.verdict
import frreg.session.gate_session
import frreg.settings
import pytest_frreg.controller  # noqa: F401
from conftest import LENIENT_GATE
from frreg.cli import train as train_cli
from frreg.cli import validate as validate_cli
from frreg.errors import ArtifactError
from frreg.gate.criteria import Thresholds
from frreg.gate.evidence import recorded_run
from frreg.schema import DROPOUT, EXIT_OK, EXIT_USAGE, HIDDEN_WIDTH, SWEEP_DIGEST_SHOWN
from frreg.session import GateConfig, GateSession
from frreg.synthetic import synthetic_rows, write_corpus
from frreg.training.batched import KERNEL_ENV, native_module
from frreg.training.loso import run_config
from frreg.training.network import MLPConfig
from frreg.training.record import SeedRecord
from frreg.training.settings import TrainSettings
from frreg.training.weights import read_weights

pytest_plugins = ["pytester"]

SWEEP = "0123456789abcdef" * 4
OTHER_SWEEP = "f" * 64


def train(corpus, out, *extra):
    argv = ["--corpus", str(corpus), "--out-dir", str(out), "--epochs", "2", "--seeds", "0"]
    return train_cli.main([*argv, *extra])


def seed_doc(out, seed=0):
    return json.loads((out / f"loso_seed{seed}.json").read_text())


# ---------------------------------------------------------------- frreg-train


def test_the_defaults_are_the_adr_network_and_no_sweep():
    args = train_cli.build_parser().parse_args([])
    assert (args.hidden, args.dropout, args.sweep) == (HIDDEN_WIDTH, DROPOUT, None)
    settings = frreg.settings.train_settings(vars(args))
    assert settings.model == MLPConfig()
    assert settings.sweep is None


def test_hidden_dropout_and_sweep_reach_the_seed_artifact(tiny_corpus, tmp_path):
    out = tmp_path / "out"
    extra = ("--hidden", "32", "--dropout", "0.25", "--sweep", SWEEP)
    assert train(tiny_corpus, out, *extra) == EXIT_OK
    doc = seed_doc(out)
    assert doc["config"]["model"] == MLPConfig(hidden=32, dropout=0.25).as_dict()
    assert doc["sweep"] == doc["config"]["sweep"] == SWEEP
    assert doc["argv"][-6:] == list(extra)
    # Read back as written: the record, and the run the audit would retrain.
    record = SeedRecord.read(out / "loso_seed0.json")
    assert record.sweep == SWEEP
    run = recorded_run(record, out / "loso_seed0.json")
    assert run.settings.model == MLPConfig(hidden=32, dropout=0.25)
    assert run.settings.sweep == SWEEP
    # The stored models have the trained shape.
    layers = read_weights(out / "loso_seed0.weights.npz", 3)
    shapes = {tuple(w.shape for w in fold) for fold in layers.values()}
    assert shapes == {MLPConfig(hidden=32).layer_shapes}


def test_without_a_sweep_the_artifact_records_null(tiny_corpus, tmp_path):
    assert train(tiny_corpus, tmp_path) == EXIT_OK
    doc = seed_doc(tmp_path)
    assert doc["sweep"] is None
    assert doc["config"]["sweep"] is None


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["--hidden", "0"], "argument --hidden: invalid value '0': expected an integer >= 1"),
        (["--hidden", "1.5"], "argument --hidden: invalid value '1.5': expected an integer >= 1"),
        (
            ["--dropout", "1"],
            "argument --dropout: invalid value '1': expected a dropout probability in [0, 1)",
        ),
        (
            ["--dropout", "-0.1"],
            "argument --dropout: invalid value '-0.1': expected a dropout probability in [0, 1)",
        ),
        (
            ["--dropout", "nan"],
            "argument --dropout: invalid value 'nan': expected a dropout probability in [0, 1)",
        ),
        (
            ["--sweep", SWEEP.upper()],
            f"argument --sweep: invalid value '{SWEEP.upper()}': expected a sweep record's "
            "sha256 (64 lowercase hex digits)",
        ),
        (
            ["--sweep", SWEEP[:-1]],
            f"argument --sweep: invalid value '{SWEEP[:-1]}': expected a sweep record's "
            "sha256 (64 lowercase hex digits)",
        ),
    ],
    ids=["hidden-0", "hidden-float", "dropout-1", "dropout-negative", "dropout-nan",
         "sweep-upper", "sweep-short"],
)  # fmt: skip
def test_bad_values_are_one_line_usage_errors(argv, line, capsys):
    with pytest.raises(SystemExit) as info:
        train_cli.main(argv)
    assert info.value.code == EXIT_USAGE
    errors = [x for x in capsys.readouterr().err.splitlines() if "error:" in x]
    assert errors == [f"frreg-train: error: {line}"]


@pytest.mark.skipif(native_module() is None, reason="the refusal is the native kernel's")
def test_a_width_the_native_kernel_lacks_is_refused_before_training(
    tiny_corpus, tmp_path, capsys, monkeypatch
):
    monkeypatch.delenv(KERNEL_ENV, raising=False)
    multiple = int(native_module().hidden_multiple())
    odd = multiple + multiple // 2
    out = tmp_path / "out"
    assert train(tiny_corpus, out, "--hidden", str(odd)) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(
        f"frreg-train: error: --hidden {odd}: the native kernel trains hidden widths that "
        f"are multiples of {multiple}"
    )
    assert f"{KERNEL_ENV}=torch" in err  # what to do instead
    assert "rows" not in err  # refused before the corpus was read, so before training
    assert not out.exists()
    # The torch kernel trains any width: the same argv trains there.
    monkeypatch.setenv(KERNEL_ENV, "torch")
    assert train(tiny_corpus, out, "--hidden", str(odd)) == EXIT_OK
    assert seed_doc(out)["config"]["model"]["hidden"] == odd
    assert seed_doc(out)["config"]["kernel"] == "torch"


def test_a_kernel_that_cannot_run_is_a_usage_error_too(tiny_corpus, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(KERNEL_ENV, "bogus")
    assert train(tiny_corpus, tmp_path / "out") == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("frreg-train: error: unknown kernel 'bogus'; expected one of")
    assert err.count("\n") == 1


# ---------------------------------------------------------------- cache key


def test_the_sweep_is_in_the_cache_key():
    base = TrainSettings(epochs=3)
    swept = TrainSettings(epochs=3, sweep=SWEEP)
    assert run_config("d" * 64, 0, base) != run_config("d" * 64, 0, swept)
    assert run_config("d" * 64, 0, swept)["sweep"] == SWEEP


def test_a_seed_cached_with_another_dropout_or_sweep_is_not_served(tiny_corpus, tmp_path):
    def entry(settings):
        config = GateConfig(
            corpus=tiny_corpus,
            out_dir=tmp_path / "out",
            cache_dir=tmp_path / "cache",
            settings=settings,
            thresholds=Thresholds(seeds=(0,)),
        )
        return GateSession(config, log=lambda message: None).seed_entry(0)

    base = TrainSettings(epochs=1)
    first = entry(base)
    assert first.trained_now
    assert not entry(base).trained_now  # the same recipe is served
    for changed in (
        TrainSettings(epochs=1, model=MLPConfig(dropout=0.3)),
        TrainSettings(epochs=1, sweep=SWEEP),
    ):
        other = entry(changed)
        assert other.trained_now, changed
        assert other.key != first.key
        assert other.record().config["model"] == changed.model.as_dict()
        assert other.record().sweep == changed.sweep


# ---------------------------------------------------------------- the verdict


def test_a_swept_recipe_is_a_deviation_in_the_verdict(tiny_corpus, tmp_path):
    loso = tmp_path / "loso"
    argv = ["--seeds", "0,1,2,3,4", "--hidden", "32", "--sweep", SWEEP]
    assert train(tiny_corpus, loso, *argv) == EXIT_OK
    validate_cli.main([str(loso), *LENIENT_GATE, "--audit", "1"])
    (verdict,) = [p for p in loso.glob("*.json") if not p.name.startswith("loso_seed")]
    doc = json.loads(verdict.read_text())
    deviations = doc["adr_0303"]["deviations"]
    line = (
        f"recipe chosen by sweep {SWEEP[:SWEEP_DIGEST_SHOWN]} (ADR-0303: the trainer's "
        "defaults, chosen by no search)"
    )
    assert line in deviations
    assert any(d.startswith("network hidden 32 (ADR-0303: ") for d in deviations)
    assert line in doc["verdict_line"]
    assert doc["adr_0303"]["recipe_and_thresholds"] is False
    # The audit retrained a job with the recorded width and reproduced it.
    audit = doc["verification"]["audit"]
    assert audit["retrained"] == 1
    assert all(job["passed"] for job in audit["jobs"])


def test_seeds_that_disagree_on_the_sweep_are_caught(tiny_corpus, tmp_path):
    loso, other = tmp_path / "loso", tmp_path / "other"
    assert train(tiny_corpus, loso, "--seeds", "0,1", "--sweep", SWEEP) == EXIT_OK
    assert train(tiny_corpus, other, "--seeds", "1", "--sweep", OTHER_SWEEP) == EXIT_OK
    for name in ("loso_seed1.json", "loso_seed1.predictions.csv", "loso_seed1.weights.npz"):
        shutil.copy(other / name, loso / name)
    code = validate_cli.main([str(loso), *LENIENT_GATE, "--seeds", "0,1", "--audit", "0"])
    assert code != EXIT_OK
    doc = json.loads((loso / "HOLD.json").read_text())
    failed = [c["message"] for c in doc["gate"]["checks"] if not c["passed"]]
    assert any(
        f"seeds disagree on sweep: seed 0={SWEEP!r}, seed 1={OTHER_SWEEP!r}" in m for m in failed
    ), failed


@pytest.mark.parametrize(
    ("where", "value"),
    [("top", "xyz"), ("top", SWEEP.upper()), ("config", 5), ("config", SWEEP[:-1])],
)
def test_a_malformed_sweep_in_a_seed_file_names_the_file(tiny_corpus, tmp_path, where, value):
    assert train(tiny_corpus, tmp_path, "--sweep", SWEEP) == EXIT_OK
    path = tmp_path / "loso_seed0.json"
    doc = json.loads(path.read_text())
    if where == "top":
        doc["sweep"] = value
    else:
        doc["config"]["sweep"] = value
    path.write_text(json.dumps(doc))
    with pytest.raises(ArtifactError, match="sweep") as info:
        recorded_run(SeedRecord.read(path), path)
    assert str(info.value).startswith(f"{path}: ")
    assert "\n" not in str(info.value)


def test_a_seed_file_from_before_the_sweep_was_recorded_reads_as_none(tiny_corpus, tmp_path):
    assert train(tiny_corpus, tmp_path) == EXIT_OK
    path = tmp_path / "loso_seed0.json"
    doc = json.loads(path.read_text())
    del doc["sweep"], doc["config"]["sweep"]
    path.write_text(json.dumps(doc))
    record = SeedRecord.read(path)
    assert record.sweep is None
    assert recorded_run(record, path).settings.sweep is None


# ---------------------------------------------------------------- the plugin

SHOW_SETTINGS = """
import json
from pytest_frreg.items import SESSION_KEY

def pytest_collection_finish(session):
    s = session.config.stash[SESSION_KEY].config.settings
    print("FRREG-SETTINGS " + json.dumps({"model": s.model.as_dict(), "sweep": s.sweep}))
"""


@pytest.fixture
def corpus(pytester: pytest.Pytester):
    rows = synthetic_rows(n_sources=3, encoders=("libx264",), cqs=(22, 46), frames=4)
    return write_corpus(pytester.path / "corpus.jsonl", rows)


def test_the_plugin_offers_the_flags_and_ini_keys(pytester, corpus):
    pytester.makeconftest(SHOW_SETTINGS)
    pytester.makeini("[pytest]\nfrreg_hidden = 48\nfrreg_dropout = 0.2\n")
    result = pytester.runpytest_inprocess(
        f"--frreg-corpus={corpus}", "--co", "-q", "-p", "no:cacheprovider",
        f"--frreg-sweep={SWEEP}", "--frreg-dropout=0.05",
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.OK, result.stdout.str() + result.stderr.str()
    line = next(x for x in result.stdout.lines if x.startswith("FRREG-SETTINGS "))
    shown = json.loads(line.removeprefix("FRREG-SETTINGS "))
    # The ini key, unless the command line says otherwise.
    assert shown == {"model": MLPConfig(hidden=48, dropout=0.05).as_dict(), "sweep": SWEEP}


def test_a_bad_plugin_value_is_a_usage_error(pytester, corpus):
    result = pytester.runpytest_inprocess(
        f"--frreg-corpus={corpus}", "--co", "-p", "no:cacheprovider", "--frreg-dropout=1"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert [x for x in result.stderr.lines if x.strip()] == [
        "ERROR: argument --frreg-dropout: invalid value '1': expected a dropout probability "
        "in [0, 1)"
    ]


@pytest.mark.skipif(native_module() is None, reason="the refusal is the native kernel's")
def test_the_plugin_refuses_a_width_the_native_kernel_lacks_before_training(
    pytester, corpus, monkeypatch
):
    monkeypatch.delenv(KERNEL_ENV, raising=False)
    odd = int(native_module().hidden_multiple()) + 4
    result = pytester.runpytest_inprocess(
        f"--frreg-corpus={corpus}", "-p", "no:cacheprovider", f"--frreg-hidden={odd}"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = [x for x in result.stderr.lines if x.strip()]
    assert len(err) == 1, err
    assert err[0].startswith(f"ERROR: --frreg-hidden {odd}: the native kernel trains hidden")
    assert "Traceback" not in result.stdout.str()
    assert not (pytester.path / "runs" / "frreg-cache").exists()  # nothing trained
