"""SeedRecord: the one shape of ``loso_seed{N}.json``, read and written by everything."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from factories import seed_doc

from frreg.cli import train as train_cli
from frreg.errors import ArtifactError
from frreg.gate.checks import load_loso_dir
from frreg.schema import EXIT_OK, SEED_RECORD_VERSION
from frreg.training.record import SeedRecord


@pytest.mark.slow
@pytest.mark.parametrize("extra", [[], ["--engine", "reference"], ["--dry-run"]])
def test_round_trips_every_artifact_the_trainer_writes(tiny_corpus, tmp_path, extra):
    out = tmp_path / "out"
    argv = ["--corpus", str(tiny_corpus), "--out-dir", str(out), "--epochs", "2", "--seeds", "0,4"]
    assert train_cli.main([*argv, *extra]) == EXIT_OK
    for seed in (0, 4):
        path = out / f"loso_seed{seed}.json"
        on_disk = json.loads(path.read_text(encoding="utf-8"))
        record = SeedRecord.read(path)
        # Every field survives, in the written order, and nothing is added.
        assert list(record.to_json()) == list(on_disk)
        assert record.to_json() == on_disk
        assert record.schema_version == SEED_RECORD_VERSION
        assert record.predictions is not None
        assert (out / record.predictions.file).is_file()
    # The gate reads the same records.
    assert {s: a.record for s, a in load_loso_dir(out, (0, 4)).items()} == {
        s: SeedRecord.read(out / f"loso_seed{s}.json") for s in (0, 4)
    }


def test_json_round_trip_is_exact():
    doc = seed_doc(3, {"a": 0.9, "b": None, "c": 0.95})
    assert SeedRecord.from_json(doc).to_json() == doc
    assert SeedRecord.from_json(doc).mean_plcc is None  # an undefined fold leaves it undefined


def _without(key: str) -> dict[str, Any]:
    doc = seed_doc(0, 0.97)
    del doc[key]
    return doc


def _with(**fields: Any) -> dict[str, Any]:
    return {**seed_doc(0, 0.97), **fields}


def _fold(**fields: Any) -> dict[str, Any]:
    doc = seed_doc(0, 0.97)
    doc["folds"][0] = {**doc["folds"][0], **fields}
    return doc


def _fold_without(key: str) -> dict[str, Any]:
    doc = seed_doc(0, 0.97)
    del doc["folds"][0][key]
    return doc


MALFORMED = [
    ("not-object", [], "expected a JSON object, got list"),
    ("no-seed", _without("seed"), "missing field 'seed'"),
    ("string-seed", _with(seed="0"), "field 'seed' must be an integer, got '0'"),
    ("bool-seed", _with(seed=True), "field 'seed' must be an integer, got True"),
    ("no-digest", _without("corpus_sha256"), "missing field 'corpus_sha256'"),
    ("no-sources", _without("sources"), "missing field 'sources'"),
    ("sources-not-strings", _with(sources=[1, 2]), "field 'sources' must be a list of strings"),
    ("folds-not-list", _with(folds={}), "field 'folds' must be a list"),
    ("fold-not-object", _with(folds=[3]), "folds[0] must be an object"),
    ("fold-no-held-out", _fold(held_out=7), "folds[0].held_out must be a string"),
    ("fold-no-plcc", _fold_without("plcc"), "folds[0] is missing 'plcc'"),
    ("fold-string-plcc", _fold(plcc="0.97"), "folds[0].plcc must be a number or null"),
    ("fold-bad-size", _fold(n_val=-1), "folds[0].n_val must be a non-negative integer"),
    ("string-mean", _with(mean_plcc="high"), "field 'mean_plcc' must be a number or null"),
    ("float-epochs", _with(epochs=2.5), "field 'epochs' must be an integer, got 2.5"),
    ("no-lr", _without("lr"), "missing field 'lr'"),
    ("string-lr", _with(lr="fast"), "field 'lr' must be a number, got 'fast'"),
    ("numeric-note", _with(note=1), "field 'note' must be a string or null, got 1"),
    ("bad-predictions", _with(predictions={"file": 1}), "field 'predictions' must have string"),
    ("config-not-object", _with(config=[]), "field 'config' must be an object"),
]


@pytest.mark.parametrize(
    ("obj", "problem"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED]
)
def test_rejects_each_malformed_kind_with_one_line(tmp_path, obj, problem):
    path = tmp_path / "loso_seed0.json"
    path.write_text(json.dumps(obj), encoding="utf-8")
    with pytest.raises(ArtifactError) as info:
        SeedRecord.read(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {problem}")
    assert "\n" not in message


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"{torn", "invalid JSON at line 1"),
        (b"\xff\xfe{}", "not UTF-8 text"),
        ("{}".encode("utf-16"), "not UTF-8 text"),
        (b"\x1f\x8b\x08\x00gzip", "not UTF-8 text"),
        (b'{"seed": 1, "seed": 2}', "key 'seed' appears twice in one object"),
        (b'{"seed": ' + b"9" * 5000 + b"}", "invalid JSON: Exceeds the limit"),
        (_nested(100_000), "JSON nested too deeply"),
        (
            json.dumps({**seed_doc(0, 0.97), "seed": 10**400}).encode(),
            "beyond any value frreg writes",
        ),
    ],
    ids=["torn", "not-utf8", "utf16", "gzip", "duplicate-key", "5000-digits", "deep", "huge-int"],
)
def test_unparseable_files_are_one_line(tmp_path: Path, data: bytes, problem: str):
    path = tmp_path / "loso_seed0.json"
    path.write_bytes(data)
    with pytest.raises(ArtifactError, match=problem):
        SeedRecord.read(path)


def test_a_directory_or_device_is_not_read(tmp_path):
    directory = tmp_path / "loso_seed0.json"
    directory.mkdir()
    with pytest.raises(ArtifactError, match="is a directory; a seed artifact is a JSON file"):
        SeedRecord.read(directory)
    with pytest.raises(ArtifactError, match="is not a regular file"):
        SeedRecord.read("/dev/zero")  # would never end if read
