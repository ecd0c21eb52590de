"""An adversary with write access to the artifacts cannot get a PROMOTE.

Each case starts from a real LOSO run (``loso_copy``) that frreg-validate
PROMOTEs with lenient thresholds, edits it the way an adversary would, and
requires frreg-validate to refuse: HOLD (exit 1) naming what was wrong, or an
input error (exit 2) for values no trainer writes. Never a PROMOTE.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import LENIENT_GATE
from frreg.cli import validate as validate_cli
from frreg.schema import EXIT_FAIL, EXIT_OK, EXIT_USAGE, HOLD_FILE, PROMOTE_FILE

SEEDS = range(5)


def doc(loso: Path, seed: int) -> dict[str, Any]:
    return json.loads((loso / f"loso_seed{seed}.json").read_text())


def save(loso: Path, seed: int, data: dict[str, Any]) -> None:
    (loso / f"loso_seed{seed}.json").write_text(json.dumps(data))


def edit(loso: Path, seeds: Any, change: Callable[[dict[str, Any]], None]) -> None:
    for seed in [seeds] if isinstance(seeds, int) else seeds:
        data = doc(loso, seed)
        change(data)
        save(loso, seed, data)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def rehash(loso: Path, seed: int) -> None:
    """Make the seed file record its files' current digests (a careful adversary)."""
    data = doc(loso, seed)
    for key in ("predictions", "weights"):
        data[key]["sha256"] = sha(loso / data[key]["file"])
    save(loso, seed, data)


def rewrite_predictions(loso: Path, seed: int, change: Callable[[list[list[str]]], None]) -> None:
    path = loso / f"loso_seed{seed}.predictions.csv"
    rows = list(csv.reader(io.StringIO(path.read_text())))
    change(rows)
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    path.write_text(buf.getvalue())
    rehash(loso, seed)


# --------------------------------------------------------------------------
# The adversaries
# --------------------------------------------------------------------------


def clone_seed0_as(*targets: int) -> Callable[[Path, Path], None]:
    def attack(corpus: Path, loso: Path) -> None:
        for seed in targets:
            data = doc(loso, 0)
            data["seed"] = seed
            data["config"]["seed"] = seed
            for key in ("predictions", "weights"):
                name = data[key]["file"].replace("seed0", f"seed{seed}")
                shutil.copy(loso / data[key]["file"], loso / name)
                data[key]["file"] = name
            save(loso, seed, data)

    return attack


def clone_only_the_json(corpus: Path, loso: Path) -> None:
    data = doc(loso, 0)
    data["seed"] = 1
    save(loso, 1, data)


def all_folds_plcc(
    value: float, *, delete_predictions: bool = False
) -> Callable[[Path, Path], None]:
    def attack(corpus: Path, loso: Path) -> None:
        def change(d: dict[str, Any]) -> None:
            for fold in d["folds"]:
                fold["plcc"] = value
            d["mean_plcc"] = value

        edit(loso, SEEDS, change)
        if delete_predictions:
            for p in loso.glob("*.predictions.csv"):
                p.unlink()

    return attack


def edit_fold_metric(key: str, value: float) -> Callable[[Path, Path], None]:
    def attack(corpus: Path, loso: Path) -> None:
        edit(loso, 2, lambda d: d["folds"][1].__setitem__(key, value))

    return attack


def perfect_predictions(corpus: Path, loso: Path) -> None:
    # Predictions equal to the target: PLCC 1 everywhere, digests updated.
    for seed in SEEDS:
        rewrite_predictions(loso, seed, lambda rows: [r.__setitem__(6, r[5]) for r in rows[1:]])

        def fix(d: dict[str, Any]) -> None:
            for fold in d["folds"]:
                fold.update(plcc=1.0, srocc=1.0, rmse=0.0)
            d.update(mean_plcc=1.0, min_plcc=1.0, max_plcc=1.0, std_plcc=0.0)
            d.update(mean_srocc=1.0, mean_rmse=0.0)

        edit(loso, seed, fix)


def drop_source(corpus: Path, loso: Path) -> None:
    def change(d: dict[str, Any]) -> None:
        d["folds"] = d["folds"][1:]
        d["sources"] = d["sources"][1:]
        d["n_folds"] = len(d["folds"])
        d["mean_plcc"] = float(np.mean([f["plcc"] for f in d["folds"]]))

    edit(loso, SEEDS, change)


def add_fake_fold(corpus: Path, loso: Path) -> None:
    def change(d: dict[str, Any]) -> None:
        d["folds"].append({**d["folds"][0], "held_out": "fake_source", "plcc": 0.99})
        d["sources"].append("fake_source")
        d["n_folds"] += 1
        d["mean_plcc"] = float(np.mean([f["plcc"] for f in d["folds"]]))

    edit(loso, SEEDS, change)


def lie_about(key: str, value: Any) -> Callable[[Path, Path], None]:
    def attack(corpus: Path, loso: Path) -> None:
        edit(loso, SEEDS, lambda d: d.__setitem__(key, value))

    return attack


def lie_about_fold_size(corpus: Path, loso: Path) -> None:
    edit(loso, SEEDS, lambda d: d["folds"][0].__setitem__("n_val", d["folds"][0]["n_val"] + 5))


def drop_prediction_rows(corpus: Path, loso: Path) -> None:
    rewrite_predictions(loso, 3, lambda rows: rows.__delitem__(slice(5, 9)))


def edit_a_target_in_predictions(corpus: Path, loso: Path) -> None:
    rewrite_predictions(loso, 1, lambda rows: rows[4].__setitem__(5, "99.0"))


def plcc_out_of_range(value: float) -> Callable[[Path, Path], None]:
    def attack(corpus: Path, loso: Path) -> None:
        edit(loso, 0, lambda d: d["folds"][0].__setitem__("plcc", value))

    return attack


def hide_dry_run(*, argv_too: bool) -> Callable[[Path, Path], None]:
    def attack(corpus: Path, loso: Path) -> None:
        def change(d: dict[str, Any]) -> None:
            d["note"] = None
            if argv_too:
                d["argv"] = [a for a in d["argv"] if a != "--dry-run"]
            else:
                d["argv"] = [*d["argv"], "--dry-run"]
                d["config"]["dry_run"] = False

        edit(loso, SEEDS, change)

    return attack


def set_config(
    key: str, value: Any, *, seeds: Any = 4, top_level: bool = True
) -> Callable[[Path, Path], None]:
    def attack(corpus: Path, loso: Path) -> None:
        def change(d: dict[str, Any]) -> None:
            d["config"][key] = value
            if top_level and key in d:
                d[key] = value

        edit(loso, seeds, change)

    return attack


def other_torch_version(corpus: Path, loso: Path) -> None:
    def change(d: dict[str, Any]) -> None:
        d["config"]["torch"] = "1.0.0"
        d["versions"]["torch"] = "1.0.0"

    edit(loso, 2, change)


def delete_file(kind: str) -> Callable[[Path, Path], None]:
    def attack(corpus: Path, loso: Path) -> None:
        (loso / doc(loso, 1)[kind]["file"]).unlink()

    return attack


def unrecorded(kind: str) -> Callable[[Path, Path], None]:
    def attack(corpus: Path, loso: Path) -> None:
        edit(loso, SEEDS, lambda d: d.__setitem__(kind, None))

    return attack


def tamper_bytes(kind: str, *, rehashed: bool) -> Callable[[Path, Path], None]:
    def attack(corpus: Path, loso: Path) -> None:
        path = loso / doc(loso, 3)[kind]["file"]
        if kind == "weights":
            data = dict(np.load(path))
            data["fold1.layer2"] = data["fold1.layer2"] * np.float32(1.5)
            with open(path, "wb") as fh:
                np.savez(fh, **data)
        else:
            path.write_text(path.read_text().replace(",", ", ", 1))
        if rehashed:
            rehash(loso, 3)

    return attack


def other_corpus_digest(corpus: Path, loso: Path) -> None:
    edit(
        loso,
        SEEDS,
        lambda d: (
            d.__setitem__("corpus_sha256", "ab" * 32),
            d["config"].__setitem__("corpus_sha256", "ab" * 32),
        ),
    )


ATTACKS: list[tuple[str, Callable[[Path, Path], None], int, str]] = [
    # 1. clones: one run filed as several seeds
    ("clone-seed0-as-seed1", clone_seed0_as(1), EXIT_FAIL, "have identical predictions"),
    (
        "clone-seed0-five-times",
        clone_seed0_as(1, 2, 3, 4),
        EXIT_FAIL,
        "seeds 0, 1, 2, 3, 4 have identical predictions",
    ),
    ("clone-only-the-json", clone_only_the_json, EXIT_FAIL, "records seed 1 but its config says 0"),
    # 2. numbers edited, never recomputed
    ("all-folds-0.99", all_folds_plcc(0.99), EXIT_FAIL, "records plcc 0.99, recomputed"),
    (
        "all-folds-0.99-no-predictions",
        all_folds_plcc(0.99, delete_predictions=True),
        EXIT_FAIL,
        "predictions file loso_seed0.predictions.csv is missing",
    ),
    (
        "one-srocc-edited",
        edit_fold_metric("srocc", 0.5),
        EXIT_FAIL,
        "records srocc 0.5, recomputed",
    ),
    (
        "one-rmse-edited",
        edit_fold_metric("rmse", 0.001),
        EXIT_FAIL,
        "records rmse 0.001, recomputed",
    ),
    (
        "perfect-predictions-rehashed",
        perfect_predictions,
        EXIT_FAIL,
        "its stored model predicts up to",
    ),
    # 3. folds that are not the corpus's
    ("source-dropped-everywhere", drop_source, EXIT_FAIL, "the corpus's LOSO folds are"),
    ("fake-fold-added", add_fake_fold, EXIT_FAIL, "the corpus's LOSO folds are"),
    ("n-rows-lie", lie_about("n_rows", 10_000), EXIT_FAIL, "records n_rows 10000, the corpus has"),
    ("fold-size-lie", lie_about_fold_size, EXIT_FAIL, "records n_val"),
    (
        "prediction-rows-dropped",
        drop_prediction_rows,
        EXIT_FAIL,
        "corpus rows have no held-out prediction",
    ),
    (
        "target-edited-in-predictions",
        edit_a_target_in_predictions,
        EXIT_FAIL,
        "is not the corpus's",
    ),
    ("other-corpus-digest", other_corpus_digest, EXIT_FAIL, "was trained on corpus abababababab"),
    # 4. impossible metrics
    ("plcc-1.5", plcc_out_of_range(1.5), EXIT_USAGE, "folds[0].plcc is 1.5, outside [-1, 1]"),
    (
        "plcc-1.0001",
        plcc_out_of_range(1.0001),
        EXIT_USAGE,
        "folds[0].plcc is 1.0001, outside [-1, 1]",
    ),
    # 5. dry runs by another name (the fixture is not a dry run; these make it claim one)
    ("dry-run-in-argv-only", hide_dry_run(argv_too=False), EXIT_FAIL, "is a dry-run"),
    ("dry-run-in-config-only", set_config("dry_run", True, seeds=SEEDS), EXIT_FAIL, "is a dry-run"),
    # 6. provenance
    (
        "one-seed-other-engine",
        set_config("engine", "reference"),
        EXIT_FAIL,
        "seeds disagree on engine",
    ),
    ("one-seed-other-device", set_config("device", "cuda"), EXIT_FAIL, "seeds disagree on device"),
    ("one-seed-other-torch", other_torch_version, EXIT_FAIL, "seeds disagree on versions"),
    (
        "config-epochs-1-lr-1",
        set_config("epochs", 1, top_level=False),
        EXIT_FAIL,
        "records epochs 30 but its config says 1",
    ),
    (
        "config-lr-differs",
        set_config("lr", 1.0, top_level=False),
        EXIT_FAIL,
        "records lr 0.0005 but its config says 1.0",
    ),
    (
        "lr-nan-everywhere",
        set_config("lr", float("nan"), seeds=SEEDS),
        EXIT_USAGE,
        "config.lr must be a finite number > 0, got nan",
    ),
    (
        "epochs-minus-5-everywhere",
        set_config("epochs", -5, seeds=SEEDS),
        EXIT_USAGE,
        "config.epochs must be an integer in [1, 1000000], got -5",
    ),
    (
        "engine-version-from-the-future",
        set_config("engine_version", 99, seeds=SEEDS),
        EXIT_FAIL,
        "engine version 99",
    ),
    # 7. the evidence files
    (
        "weights-deleted",
        delete_file("weights"),
        EXIT_FAIL,
        "weights file loso_seed1.weights.npz is missing",
    ),
    (
        "predictions-deleted",
        delete_file("predictions"),
        EXIT_FAIL,
        "predictions file loso_seed1.predictions.csv is missing",
    ),
    ("weights-unrecorded", unrecorded("weights"), EXIT_FAIL, "records no weights file"),
    ("predictions-unrecorded", unrecorded("predictions"), EXIT_FAIL, "records no predictions file"),
    (
        "weights-tampered",
        tamper_bytes("weights", rehashed=False),
        EXIT_FAIL,
        "does not match the sha256 the seed recorded",
    ),
    (
        "weights-tampered-rehashed",
        tamper_bytes("weights", rehashed=True),
        EXIT_FAIL,
        "fold synth01: its stored model predicts up to",
    ),
    (
        "predictions-tampered",
        tamper_bytes("predictions", rehashed=False),
        EXIT_FAIL,
        "does not match the sha256 the seed recorded",
    ),
]


def test_the_untouched_run_promotes(loso_copy):
    _, loso = loso_copy
    assert validate_cli.main([str(loso), *LENIENT_GATE]) == EXIT_OK


@pytest.mark.parametrize(
    ("attack", "code", "needle"), [a[1:] for a in ATTACKS], ids=[a[0] for a in ATTACKS]
)
def test_no_edited_artifact_set_promotes(loso_copy, capsys, attack, code, needle):
    corpus, loso = loso_copy
    (loso / PROMOTE_FILE).write_text("{}")  # a stale PROMOTE must not survive either
    attack(corpus, loso)
    assert validate_cli.main([str(loso), *LENIENT_GATE]) == code
    assert not (loso / PROMOTE_FILE).exists()
    if code == EXIT_FAIL:
        said = json.loads((loso / HOLD_FILE).read_text())["recommendation"]
    else:
        said = capsys.readouterr().err
        assert said.count("\n") == 1  # one line
    assert needle in said


def test_a_retrained_recipe_that_is_not_the_recorded_one_fails_the_audit(tmp_path, trained_loso):
    # Self-consistent artifacts (predictions, weights, metrics and digests all
    # agree) from a 5-epoch run that claim the 30-epoch recipe: only retraining
    # can tell, and every job it could pick is one of them.
    from frreg.corpus import load_corpus
    from frreg.training.loso import run_loso
    from frreg.training.settings import TrainSettings

    corpus, _ = trained_loso
    loso = tmp_path / "loso"
    run_loso(load_corpus(corpus), tuple(SEEDS), TrainSettings(epochs=5), loso)

    def claim_30(d: dict[str, Any]) -> None:
        d["epochs"] = 30
        d["config"]["epochs"] = 30

    edit(loso, SEEDS, claim_30)
    assert validate_cli.main([str(loso), *LENIENT_GATE, "--audit", "2"]) == EXIT_FAIL
    verdict = json.loads((loso / HOLD_FILE).read_text())
    assert verdict["verification"]["seeds"]["0"]["verified"] is True  # consistent on its face
    jobs = verdict["verification"]["audit"]["jobs"]
    assert len(jobs) == 2
    assert all(not j["passed"] for j in jobs)
    assert "not what this recipe trains" in verdict["recommendation"]
