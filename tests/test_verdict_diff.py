"""The verdict diff: a run's verdict against a previous one, per check and per source."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from conftest import LENIENT_GATE
from frreg.cli import gate as gate_cli
from frreg.cli import validate as validate_cli
from frreg.gate.diff import DIFF_JSON, DIFF_MD, SOURCE_METRICS, diff_verdicts, read_verdict
from frreg.schema import EXIT_USAGE, PROMOTE_FILE


@pytest.fixture
def promoted(loso_copy: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path, Path]:
    """``(corpus, loso_dir, baseline)``: a PROMOTE written by frreg-validate, kept aside."""
    corpus, loso = loso_copy
    rc = validate_cli.main([str(loso), "--corpus", str(corpus), "--audit", "0", *LENIENT_GATE])
    assert rc == 0
    baseline = tmp_path / "main-PROMOTE.json"
    baseline.write_bytes((loso / PROMOTE_FILE).read_bytes())
    return corpus, loso, baseline


def test_a_verdict_against_itself_changes_nothing(promoted):
    _, _, baseline = promoted
    doc = read_verdict(baseline)
    diff = diff_verdicts(doc, doc, baseline=baseline.name)
    assert diff.same_corpus
    assert diff.changed_checks == []
    assert not any(s.changed for s in diff.sources)
    assert len(diff.checks) == len(doc["gate"]["checks"])
    assert {s.source for s in diff.sources} == set(doc["evidence"]["sources"])
    assert diff.lines()[0].startswith(f"change against {baseline.name} (same corpus)")


def test_the_diff_finds_exactly_what_was_changed(promoted):
    """An oracle by construction: edit one check and one source number; the diff must
    name those two, with the edit as its delta, and nothing else."""
    _, _, baseline = promoted
    old = read_verdict(baseline)
    new = copy.deepcopy(old)
    check = next(c for c in new["gate"]["checks"] if isinstance(c["observed"], float))
    check["status"], check["observed"] = "FAIL", check["observed"] - 0.25
    source = sorted(new["evidence"]["sources"])[1]
    new["evidence"]["sources"][source]["ensemble_plcc"] -= 0.125
    new["verdict"], new["verdict_line"] = "HOLD", "HOLD (ADR-0303 gate)"

    diff = diff_verdicts(new, old, baseline="main")
    assert [c.name for c in diff.changed_checks] == [check["name"]]
    changed = diff.changed_checks[0]
    assert changed.old_status == "PASS"
    assert changed.new_status == "FAIL"
    assert changed.delta == pytest.approx(-0.25)
    assert [s.source for s in diff.sources if s.changed] == [source]
    moved = next(s for s in diff.sources if s.source == source)
    assert moved.delta("ensemble_plcc") == pytest.approx(-0.125)
    assert all(moved.delta(key) == 0 for _, key, _ in SOURCE_METRICS if key != "ensemble_plcc")
    assert "verdict PROMOTE" in diff.headline
    assert "-> HOLD (ADR-0303 gate)" in diff.headline

    md = diff.markdown()
    marked = [line for line in md.splitlines() if line.startswith("| **Δ** |")]
    assert len(marked) == 2
    assert any(check["name"] in line for line in marked)
    doc = diff.to_json()
    assert json.loads(json.dumps(doc)) == doc  # plain JSON
    assert sum(c["changed"] for c in doc["checks"]) == 1


def test_sources_only_on_one_side_are_listed(promoted):
    _, _, baseline = promoted
    old = read_verdict(baseline)
    new = copy.deepcopy(old)
    gone = sorted(new["evidence"]["sources"])[0]
    new["evidence"]["sources"]["brand_new"] = new["evidence"]["sources"].pop(gone)
    presence = {s.source: s.presence for s in diff_verdicts(new, old, baseline="b").sources}
    assert presence["brand_new"] == "added"
    assert presence[gone] == "removed"


def test_frreg_validate_writes_the_diff_beside_the_verdict(promoted, capsys):
    corpus, loso, baseline = promoted
    capsys.readouterr()
    rc = validate_cli.main(
        [str(loso), "--corpus", str(corpus), "--audit", "0", "--baseline", str(baseline)]
    )
    out = capsys.readouterr().out
    assert rc in (0, 1)  # the ADR gate on a 30-epoch run: whichever, the diff is written
    assert f"change against {baseline}" in out
    doc = json.loads((loso / DIFF_JSON).read_text())
    assert doc["schema"] == "frreg-verdict-diff"
    assert doc["verdict"]["baseline"] == "PROMOTE"
    assert (loso / DIFF_MD).read_text().startswith("## Change against the baseline verdict")
    # Thresholds changed (lenient -> ADR) so the threshold-bearing checks show it.
    assert any(c["changed"] for c in doc["checks"])


def test_frreg_gate_prints_the_diff_and_writes_nothing(promoted, capsys):
    corpus, loso, baseline = promoted
    before = sorted(p.name for p in loso.iterdir())
    capsys.readouterr()
    rc = gate_cli.main(
        [str(loso), "--corpus", str(corpus), "--audit", "0", "--baseline", str(baseline), "--json"]
    )
    doc = json.loads(capsys.readouterr().out)
    assert rc in (0, 1)
    assert doc["diff"]["baseline"] == str(baseline)
    assert sorted(p.name for p in loso.iterdir()) == before


def test_a_baseline_that_is_not_a_verdict_is_an_input_error(promoted, tmp_path, capsys):
    corpus, loso, _ = promoted
    bogus = tmp_path / "fork-PROMOTE.json"
    bogus.write_text(json.dumps({"schema_version": 1, "verdict": "PROMOTE"}))
    capsys.readouterr()
    rc = validate_cli.main([str(loso), "--corpus", str(corpus), "--baseline", str(bogus)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == EXIT_USAGE
    assert len(err) == 1
    assert str(bogus) in err[0]
    assert "not a frreg verdict" in err[0]
    assert (loso / PROMOTE_FILE).exists()  # the earlier verdict is left as it was
