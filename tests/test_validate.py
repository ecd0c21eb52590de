"""frreg-validate writes exactly one verdict, and PROMOTE needs the matching corpus."""

from __future__ import annotations

import hashlib
import json

import pytest
from factories import passing_docs, write_loso_dir

from frreg.cli import validate as validate_cli
from frreg.schema import EXIT_FAIL, EXIT_OK, EXIT_USAGE, HOLD_FILE, PROMOTE_FILE


@pytest.fixture
def corpus_file(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_bytes(b'{"pretend": "corpus"}\n')
    return path


def docs_for(corpus_file, level=0.97):
    digest = hashlib.sha256(corpus_file.read_bytes()).hexdigest()
    docs = passing_docs(level)
    for d in docs:
        d["corpus_sha256"] = digest
        d["corpus"] = str(corpus_file)
    return docs


def test_promote_records_digests_and_removes_stale_hold(tmp_path, corpus_file):
    loso = write_loso_dir(tmp_path / "loso", docs_for(corpus_file))
    (loso / HOLD_FILE).write_text("{}")
    assert validate_cli.main([str(loso), "--corpus", str(corpus_file)]) == EXIT_OK
    assert not (loso / HOLD_FILE).exists()
    verdict = json.loads((loso / PROMOTE_FILE).read_text())
    assert verdict["verdict"] == "PROMOTE"
    assert verdict["corpus_sha256"] == hashlib.sha256(corpus_file.read_bytes()).hexdigest()
    for seed in range(5):
        seed_file = loso / f"loso_seed{seed}.json"
        assert verdict["seed_files"][str(seed)] == {
            "file": seed_file.name,
            "sha256": hashlib.sha256(seed_file.read_bytes()).hexdigest(),
        }
    assert verdict["gate"]["passed"] is True
    assert verdict["recommendation"].startswith("promote")


def test_corpus_defaults_to_the_recorded_path(tmp_path, corpus_file):
    loso = write_loso_dir(tmp_path / "loso", docs_for(corpus_file))
    assert validate_cli.main([str(loso)]) == EXIT_OK
    assert (loso / PROMOTE_FILE).exists()


def test_hold_removes_stale_promote(tmp_path, corpus_file, capsys):
    loso = write_loso_dir(tmp_path / "loso", docs_for(corpus_file, level=0.9))
    (loso / PROMOTE_FILE).write_text("{}")
    assert validate_cli.main([str(loso), "--corpus", str(corpus_file)]) == EXIT_FAIL
    assert not (loso / PROMOTE_FILE).exists()
    verdict = json.loads((loso / HOLD_FILE).read_text())
    assert verdict["verdict"] == "HOLD"
    assert "mean PLCC 0.9000 < 0.95" in verdict["recommendation"]
    assert f"wrote {loso / HOLD_FILE}" in capsys.readouterr().out


def test_corpus_that_does_not_hash_to_the_recorded_digest_holds(tmp_path, corpus_file):
    loso = write_loso_dir(tmp_path / "loso", docs_for(corpus_file))
    corpus_file.write_bytes(b'{"edited": "after training"}\n')
    assert validate_cli.main([str(loso), "--corpus", str(corpus_file)]) == EXIT_FAIL
    verdict = json.loads((loso / HOLD_FILE).read_text())
    assert "differs from the digest recorded by seed(s) 0, 1, 2, 3, 4" in verdict["recommendation"]


def test_missing_corpus_holds(tmp_path, corpus_file):
    loso = write_loso_dir(tmp_path / "loso", docs_for(corpus_file))
    corpus_file.unlink()
    assert validate_cli.main([str(loso)]) == EXIT_FAIL
    assert "cannot be verified" in json.loads((loso / HOLD_FILE).read_text())["recommendation"]


def test_malformed_artifact_is_exit_2_and_leaves_no_verdict(tmp_path, corpus_file, capsys):
    docs = {i: d for i, d in enumerate(docs_for(corpus_file))}
    docs[2] = "{torn"
    loso = write_loso_dir(tmp_path / "loso", docs)
    (loso / PROMOTE_FILE).write_text("{}")  # stale, from an earlier run
    assert validate_cli.main([str(loso)]) == EXIT_USAGE
    assert "loso_seed2.json: invalid JSON" in capsys.readouterr().err
    assert not (loso / PROMOTE_FILE).exists()
    assert not (loso / HOLD_FILE).exists()
