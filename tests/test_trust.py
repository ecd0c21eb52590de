"""More ways to a PROMOTE, closed: cherry-picked seeds, a corpus that cannot be found,
and a verdict written while frreg-train rewrites the directory."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import LENIENT_GATE
from frreg.cli import gate as gate_cli
from frreg.cli import train as train_cli
from frreg.cli import validate as validate_cli
from frreg.dirlock import holding
from frreg.schema import EXIT_FAIL, EXIT_OK, EXIT_USAGE, HOLD_FILE, PROMOTE_FILE


def _last_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    return err[0]


# --------------------------------------------------------------------------
# No cherry-picking
# --------------------------------------------------------------------------


def test_gating_a_subset_of_the_trained_seeds_holds_unless_allowed(loso_copy, capsys):
    # Seven seeds trained (5 and 6 are copies of real seed files: their content is not
    # what is judged), the default five gated.
    corpus, loso = loso_copy
    for extra in (5, 6):
        for name in ("json", "predictions.csv", "weights.npz"):
            shutil.copy(loso / f"loso_seed0.{name}", loso / f"loso_seed{extra}.{name}")
    argv = [str(loso), f"--corpus={corpus}", "--audit=0", *LENIENT_GATE]
    assert validate_cli.main(argv) == EXIT_FAIL
    hold = json.loads((loso / HOLD_FILE).read_text())
    assert hold["excluded_seeds"] == [5, 6]
    [check] = [c for c in hold["gate"]["checks"] if c["name"] == "seed selection"]
    assert not check["passed"]
    assert "5, 6 are in the directory but not gated" in check["message"]

    assert validate_cli.main([*argv, "--allow-seed-subset"]) == EXIT_OK
    promote = json.loads((loso / PROMOTE_FILE).read_text())
    assert promote["excluded_seeds"] == [5, 6]
    capsys.readouterr()


def test_all_the_seeds_of_the_directory_is_no_selection(loso_copy):
    corpus, loso = loso_copy
    argv = [str(loso), f"--corpus={corpus}", "--audit=0", *LENIENT_GATE]
    assert validate_cli.main(argv) == EXIT_OK
    verdict = json.loads((loso / PROMOTE_FILE).read_text())
    assert verdict["excluded_seeds"] == []
    assert all(c["name"] != "seed selection" for c in verdict["gate"]["checks"])


# --------------------------------------------------------------------------
# A corpus that cannot be found
# --------------------------------------------------------------------------


def _inflate_and_lose_the_corpus(loso: Path) -> None:
    for seed in range(5):
        path = loso / f"loso_seed{seed}.json"
        doc = json.loads(path.read_text())
        doc["corpus"] = "nowhere/corpus.jsonl"
        doc["corpus_abs"] = "/nowhere/corpus.jsonl"  # a runner without the corpus
        for fold in doc["folds"]:
            fold["plcc"] = 0.999
        path.write_text(json.dumps(doc))


def test_frreg_gate_refuses_numbers_it_cannot_recompute(loso_copy, capsys):
    _, loso = loso_copy
    _inflate_and_lose_the_corpus(loso)
    assert gate_cli.main([str(loso), *LENIENT_GATE]) == EXIT_USAGE
    line = _last_error(capsys)
    assert "corpus" in line
    assert "not found" in line
    assert "--self-reported" in line
    # Asked to, it judges the stated numbers, and says so.
    code = gate_cli.main([str(loso), *LENIENT_GATE, "--self-reported"])
    assert code in (EXIT_OK, EXIT_FAIL)
    assert "self-reported" in capsys.readouterr().out


def test_a_relative_corpus_path_resolves_from_the_seed_files(tmp_path, monkeypatch, capsys):
    from frreg.synthetic import synthetic_rows, write_corpus

    work = tmp_path / "work"
    work.mkdir()
    rows = synthetic_rows(n_sources=4, encoders=("libx264",), cqs=(22, 38), frames=8)
    write_corpus(work / "corpus.jsonl", rows)
    monkeypatch.chdir(work)
    assert train_cli.main(["--corpus", "corpus.jsonl", "--out-dir", "loso", "--epochs", "3"]) == 0
    assert json.loads((work / "loso" / "loso_seed0.json").read_text())["corpus"] == "corpus.jsonl"
    elsewhere = tmp_path / "ci-runner"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # "corpus.jsonl" does not resolve from here
    capsys.readouterr()
    code = gate_cli.main([str(work / "loso"), *LENIENT_GATE, "--audit=0"])
    out = capsys.readouterr().out
    assert code in (EXIT_OK, EXIT_FAIL)
    assert "self-reported" not in out
    assert "corpus: sha256" in out  # recomputed from the corpus beside the directory


# --------------------------------------------------------------------------
# frreg-train and frreg-validate exclude each other
# --------------------------------------------------------------------------


def test_validate_refuses_while_a_trainer_writes_the_directory(loso_copy, capsys):
    corpus, loso = loso_copy
    with holding(loso, exclusive=False, who="frreg-train"):  # as frreg-train holds it
        code = validate_cli.main([str(loso), f"--corpus={corpus}", *LENIENT_GATE])
    assert code == EXIT_USAGE
    assert "frreg-train is writing seed files here" in _last_error(capsys)
    assert not (loso / PROMOTE_FILE).exists()
    assert not (loso / HOLD_FILE).exists()


def test_train_refuses_while_a_verdict_is_written(loso_copy, capsys):
    corpus, loso = loso_copy
    with holding(loso, exclusive=True, who="frreg-validate"):
        before = {p.name: p.read_bytes() for p in loso.iterdir() if p.is_file()}
        code = train_cli.main(["--corpus", str(corpus), "--out-dir", str(loso), "--epochs", "2"])
    assert code == EXIT_USAGE
    assert "a verdict is being written here" in _last_error(capsys)
    after = {p.name: p.read_bytes() for p in loso.iterdir() if p.is_file()}
    assert after == before


def test_trainers_share_a_directory(loso_copy):
    _, loso = loso_copy
    with holding(loso, exclusive=False, who="a"), holding(loso, exclusive=False, who="b"):
        pass


def test_the_lock_is_never_followed_through_a_symlink(tmp_path, capsys):
    loso = tmp_path / "loso"
    loso.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    (loso / ".frreg-dir.lock").symlink_to(victim)
    with (
        pytest.raises(Exception, match="cannot open the lock"),
        holding(loso, exclusive=True, who="x"),
    ):
        pass
    assert victim.read_text() == "keep me"
    shutil.rmtree(loso)


# --------------------------------------------------------------------------
# Point 8: inputs that must be refused in one line, never followed or unpacked
# --------------------------------------------------------------------------


def test_a_weights_file_that_unpacks_huge_is_refused_before_it_is_unpacked(tmp_path):
    import zipfile

    from frreg.errors import ArtifactError
    from frreg.training.weights import MAX_WEIGHTS_BYTES, read_weights

    bomb = tmp_path / "loso_seed0.weights.npz"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("held_out.npy", b"\0" * (MAX_WEIGHTS_BYTES + 1))
    assert bomb.stat().st_size < 1_000_000
    with pytest.raises(ArtifactError, match="unpacks to"):
        read_weights(bomb, 3)


def test_logs_are_never_appended_through_a_symlink(tmp_path):
    from frreg._io import append_line
    from frreg.session.output import file_log

    victim = tmp_path / "victim"
    victim.write_text("keep")
    log = tmp_path / "frreg-gate.log"
    log.symlink_to(victim)
    with pytest.raises(OSError, match="symbolic link"):
        append_line(log, "x")
    with pytest.raises(OSError, match="symbolic link"):
        file_log(log)("x")
    assert victim.read_text() == "keep"


# --------------------------------------------------------------------------
# A wrong --corpus is an input error
# --------------------------------------------------------------------------


def test_a_wrong_corpus_is_exit_2_and_leaves_the_verdict_alone(loso_copy, tmp_path, capsys):
    from frreg.synthetic import synthetic_rows, write_corpus

    corpus, loso = loso_copy
    assert validate_cli.main([str(loso), f"--corpus={corpus}", "--audit=0", *LENIENT_GATE]) == 0
    before = (loso / PROMOTE_FILE).read_bytes()
    other = write_corpus(tmp_path / "other.jsonl", synthetic_rows(n_sources=4, frames=4))
    capsys.readouterr()
    argv = [str(loso), f"--corpus={other}", "--audit=0", *LENIENT_GATE]
    assert validate_cli.main(argv) == EXIT_USAGE
    line = _last_error(capsys)
    assert "is not the corpus the seed files were trained on" in line
    assert "verdict is left as it was" in line
    assert (loso / PROMOTE_FILE).read_bytes() == before
    assert not (loso / HOLD_FILE).exists()
    assert gate_cli.main(argv) == EXIT_USAGE
    assert "is not the corpus the seed files were trained on" in _last_error(capsys)


def test_the_arguments_swapped_say_so(trained_loso, capsys):
    corpus, _ = trained_loso
    assert gate_cli.main([str(corpus)]) == EXIT_USAGE
    assert "is a file, not the LOSO directory of seed files" in _last_error(capsys)


def test_check_with_a_verdict_but_no_corpus_is_not_silently_ignored(tmp_path, capsys):
    # --verdict alone checks against a re-export from the corpus the verdict recorded:
    # a verdict that is not there is an input error naming it, never a plain --check.
    from frreg.cli import export as export_cli

    verdict = tmp_path / "PROMOTE.json"
    code = export_cli.main([f"--check={tmp_path}", f"--verdict={verdict}"])
    assert code == EXIT_USAGE
    assert str(verdict) in _last_error(capsys)
