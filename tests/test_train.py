"""frreg-train: artifact schema, strict JSON, determinism, dry runs, errors."""

from __future__ import annotations

import csv
import hashlib
import json
import time

import numpy as np
import pytest

from frreg.cli import train as train_cli
from frreg.corpus import load_corpus
from frreg.schema import ENCODER_VOCAB_VERSION, EXIT_OK, EXIT_USAGE
from frreg.training.metrics import plcc

REQUIRED_FIELDS = {
    "seed",
    "corpus",
    "corpus_sha256",
    "n_rows",
    "sources",
    "n_folds",
    "folds",
    "mean_plcc",
    "std_plcc",
    "min_plcc",
    "max_plcc",
    "mean_srocc",
    "mean_rmse",
    "epochs",
    "batch_size",
    "lr",
    "weight_decay",
    "num_codecs",
    "encoder_vocab_version",
    "wall_time_s",
    "versions",
    "note",
}


def strict_load(path):
    def refuse(token):
        raise AssertionError(f"{path} contains the non-JSON token {token}")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


def train(corpus, out, *extra):
    return train_cli.main(["--corpus", str(corpus), "--out-dir", str(out), "--epochs", "3", *extra])


@pytest.fixture(params=["batched", "reference"])
def engine(request):
    return request.param


def test_artifact_schema_and_predictions(tiny_corpus, tmp_path, engine):
    out = tmp_path / "out"
    assert train(tiny_corpus, out, "--seeds", "0,3", "--engine", engine) == EXIT_OK
    corpus = load_corpus(tiny_corpus)
    for seed in (0, 3):
        rec = strict_load(out / f"loso_seed{seed}.json")
        assert rec.keys() >= REQUIRED_FIELDS
        assert rec["seed"] == seed
        assert rec["corpus_sha256"] == hashlib.sha256(tiny_corpus.read_bytes()).hexdigest()
        assert rec["n_rows"] == corpus.n_rows
        assert rec["sources"] == list(corpus.sources) == [f["held_out"] for f in rec["folds"]]
        assert rec["n_folds"] == 3
        assert (rec["epochs"], rec["batch_size"], rec["lr"], rec["weight_decay"]) == (
            3,
            32,
            5e-4,
            1e-5,
        )
        assert rec["encoder_vocab_version"] == ENCODER_VOCAB_VERSION
        assert rec["note"] is None
        assert rec["engine"] == engine
        assert {"frreg", "torch"} <= rec["versions"].keys()
        assert rec["mean_plcc"] == pytest.approx(np.mean([f["plcc"] for f in rec["folds"]]))

        pred_path = out / rec["predictions"]["file"]
        assert rec["predictions"]["sha256"] == hashlib.sha256(pred_path.read_bytes()).hexdigest()
        with pred_path.open() as fh:
            preds = list(csv.DictReader(fh))
        assert len(preds) == corpus.n_rows  # every row is held out exactly once
        for fold in rec["folds"]:
            rows = [p for p in preds if p["held_out"] == fold["held_out"]]
            assert len(rows) == fold["n_val"]
            assert {p["src"] for p in rows} == {fold["held_out"]}
            # The recorded PLCC is recomputable from the saved predictions.
            got = plcc(
                np.array([float(p["vmaf"]) for p in rows]),
                np.array([float(p["pred"]) for p in rows]),
            )
            assert got == pytest.approx(fold["plcc"], abs=1e-9)


def test_same_seed_same_numbers(tiny_corpus, tmp_path, engine):
    for run in ("a", "b"):
        assert train(tiny_corpus, tmp_path / run, "--seeds", "1", "--engine", engine) == EXIT_OK
    a, b = (strict_load(tmp_path / r / "loso_seed1.json")["folds"] for r in "ab")
    assert a == b


def test_dry_run_is_one_epoch_and_marked(tiny_corpus, tmp_path):
    assert train(tiny_corpus, tmp_path, "--seeds", "2", "--dry-run") == EXIT_OK
    rec = strict_load(tmp_path / "loso_seed2.json")
    assert rec["note"] == "dry-run"
    assert rec["epochs"] == 1


def test_constant_source_gives_null_plcc_and_null_mean(write_jsonl, tiny_rows, tmp_path, capsys):
    rows = [dict(r, vmaf=50.0) if r["src"] == "synth01" else r for r in tiny_rows]
    assert train(write_jsonl(rows), tmp_path, "--seeds", "0") == EXIT_OK
    rec = strict_load(tmp_path / "loso_seed0.json")
    by_src = {f["held_out"]: f for f in rec["folds"]}
    assert by_src["synth01"]["plcc"] is None
    assert by_src["synth01"]["srocc"] is None
    assert len(rec["folds"]) == 3  # the undefined fold is kept, never dropped
    assert rec["mean_plcc"] is None
    assert "source 'synth01' has a constant 'vmaf'" in capsys.readouterr().err


def test_missing_corpus_points_at_the_prestep(tmp_path, capsys):
    missing = tmp_path / "runs" / "corpus.jsonl"
    assert train_cli.main(["--corpus", str(missing), "--out-dir", str(tmp_path)]) == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"frreg-train: error: {missing}: corpus not found; produce it first")
    assert "frreg-corpus" in err
    assert "\n" not in err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (
            ["--out", "x"],
            "unrecognized arguments: --out x (--out is not --out-dir (abbreviations are refused))",
        ),
        (["--epoch=3"], "(--epoch is not --epochs (abbreviations are refused))"),
        (["--corpus-root", "x"], "unrecognized arguments: --corpus-root x\n"),
        (["--seeds", "0,a"], "invalid seed list '0,a': 'a' is not a non-negative integer"),
        (["--seeds", ","], "invalid seed list ','"),
        (["--epochs", "0"], "invalid value '0': expected an integer >= 1"),
        (["--lr", "nan"], "invalid value 'nan'"),
    ],
)
def test_usage_errors_exit_2(argv, needle, capsys):
    with pytest.raises(SystemExit) as info:
        train_cli.main(argv)
    assert info.value.code == EXIT_USAGE
    assert needle in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "seeds", "warned"),
    [
        ("0,1,2,", (0, 1, 2), False),  # the fork's parsers skip empty items
        ("0,,1", (0, 1), False),
        ("2,0,2,1,0", (2, 0, 1), True),  # trained once each, in first-listed order
    ],
)
def test_seed_lists_are_read_as_the_fork_reads_them(text, seeds, warned, capsys):
    args = train_cli.build_parser().parse_args(["--seeds", text])
    assert args.seeds == seeds
    err = capsys.readouterr().err
    assert ("warning: seed list" in err) is warned
    if warned:
        assert "lists seed 0, 2 more than once; using 2,0,1" in err


def test_num_codecs_other_than_the_vocabulary_width_is_refused(tiny_corpus, tmp_path, capsys):
    assert train(tiny_corpus, tmp_path, "--num-codecs", "13") == EXIT_USAGE
    assert "--num-codecs 13 is not supported" in capsys.readouterr().err


def test_parser_defaults_are_the_authoritative_interface():
    args = train_cli.build_parser().parse_args([])
    assert args.seeds == (0, 1, 2, 3, 4)
    assert args.corpus == "runs/phase_a/full_grid/per_frame_canonical6.jsonl"
    assert args.out_dir == "runs/ensemble_loso"
    assert (args.epochs, args.batch_size, args.lr, args.weight_decay, args.num_codecs) == (
        200,
        32,
        5e-4,
        1e-5,
        14,
    )
    assert args.dry_run is False
    assert args.device == "cpu"
    assert args.preset_norm == "fixed"  # the fork's trainer: 0.5 on every row


def test_preset_norm_is_a_recorded_recipe_setting(tiny_corpus, tmp_path):
    """--preset-norm ladder trains on each row's preset position, fixed on 0.5; the seed
    file records which (top level and config, so the cache key differs), and the two
    runs' predictions differ because the corpus's presets are not 0.5."""
    fixed, ladder = tmp_path / "fixed", tmp_path / "ladder"
    assert train(tiny_corpus, fixed, "--seeds", "0") == EXIT_OK
    assert train(tiny_corpus, ladder, "--seeds", "0", "--preset-norm", "ladder") == EXIT_OK
    docs = {d: json.loads((d / "loso_seed0.json").read_text()) for d in (fixed, ladder)}
    assert docs[fixed]["preset_norm"] == docs[fixed]["config"]["preset_norm"] == "fixed"
    assert docs[ladder]["preset_norm"] == docs[ladder]["config"]["preset_norm"] == "ladder"
    preds = {
        d: [r["pred"] for r in csv.DictReader((d / "loso_seed0.predictions.csv").open())]
        for d in (fixed, ladder)
    }
    assert preds[fixed] != preds[ladder]


def test_a_seed_file_from_before_preset_norm_was_recorded_reads_as_the_ladder(
    tiny_corpus, tmp_path
):
    # frreg used each row's preset whenever the corpus had a preset column, and said
    # nothing: such a file is read (and audited) as the ladder convention.
    from frreg.gate.evidence import recorded_run
    from frreg.training.record import SeedRecord

    assert train(tiny_corpus, tmp_path, "--seeds", "0", "--preset-norm", "ladder") == EXIT_OK
    path = tmp_path / "loso_seed0.json"
    doc = json.loads(path.read_text())
    del doc["preset_norm"], doc["config"]["preset_norm"]
    path.write_text(json.dumps(doc))
    record = SeedRecord.read(path)
    assert record.preset_norm == "ladder"
    assert recorded_run(record, path).settings.preset_norm == "ladder"
    doc["preset_norm"] = "median"
    path.write_text(json.dumps(doc))
    with pytest.raises(
        Exception, match="field 'preset_norm' is 'median', not one of fixed, ladder"
    ):
        SeedRecord.read(path)


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda d: (d / "file").write_text("x") and d / "file", "exists and is not a directory"),
        (lambda d: (d / "file").write_text("x") and d / "file" / "sub", "is not a directory"),
    ],
    ids=["out-dir-is-a-file", "parent-is-a-file"],
)
def test_unusable_out_dir_is_refused_before_any_work(tiny_corpus, tmp_path, capsys, make, problem):
    out = make(tmp_path)
    started = time.perf_counter()
    assert train(tiny_corpus, out) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"frreg-train: error: {out}:")
    assert problem in err
    assert "rows" not in err  # refused before loading or training anything
    assert time.perf_counter() - started < 5


def test_training_into_a_directory_removes_its_verdict(tiny_corpus, tmp_path):
    (tmp_path / "PROMOTE.json").write_text("{}")  # about seeds that are about to be replaced
    assert train(tiny_corpus, tmp_path, "--seeds", "0") == EXIT_OK
    assert not (tmp_path / "PROMOTE.json").exists()
