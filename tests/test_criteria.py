"""Every gate criterion is one record (``frreg.gate.criteria.CRITERIA``).

The thresholds, the options of every front end, the plugin's items, the
strict help, the verdict's deviations and the docs' table are derived from
the records: these tests compare each of them with the records, and show
that a criterion added as one record reaches every one of them.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest
from factories import run_fresh, seed_record

from frreg.cli import gate as gate_cli
from frreg.gate import criteria
from frreg.gate.checks import SeedArtifact, evaluate
from frreg.gate.criteria import (
    CRITERIA,
    PROFILE_ADR,
    PROFILE_STRICT,
    STAGE_ENSEMBLE,
    Thresholds,
    deviations,
    markdown_table,
    threshold_criteria,
)

ROOT = Path(__file__).resolve().parents[1]


def test_names_and_items_are_unique():
    names = [c.name for c in CRITERIA]
    items = [(c.stage, c.item) for c in CRITERIA if c.item is not None]
    assert len(set(names)) == len(names)
    assert len(set(items)) == len(items)
    assert set().union(*(c.decides_under for c in CRITERIA)) == {PROFILE_ADR, PROFILE_STRICT}
    # A threshold without an option could not be set; an option without a threshold
    # would set nothing.
    for c in CRITERIA:
        assert (c.key is None) == (c.option is None) == (c.dest is None) == (c.parse is None), c


def test_the_adr_criteria_keep_the_adr_defaults():
    th = Thresholds()
    assert th[criteria.MEAN_PLCC] == 0.95
    assert th[criteria.PLCC_SPREAD] == 0.005
    assert th[criteria.PER_SEED_MIN] == 0.95
    assert th.optional(criteria.FOLD_MIN) is None
    assert th.seeds == (0, 1, 2, 3, 4)
    assert not th.strict
    assert criteria.ENSEMBLE_SIZE_CRITERION.default == 5
    assert deviations(th) == []


def test_thresholds_round_trip_and_refuse_unknown_keys():
    th = Thresholds(seeds=(1, 2), strict=True, values={"bias_max": 6.0, "fold_min": 0.5})
    assert Thresholds.from_json(json.loads(json.dumps(th.to_json()))) == th
    # The verdict's gate.thresholds keys, pinned (consumers read them by name).
    assert sorted(th.to_json()) == sorted(
        [
            "mean_plcc_min",
            "plcc_spread_max",
            "per_seed_min",
            "seeds",
            "fold_min",
            "strict",
            "margin_min",
            "bias_max",
            "coverage_min",
            "baseline_drop_max",
            # added with the strict profile's evidence (issue 19)
            "rmse_ratio_max",
            "interval_q_max",
            "stable_spread_max",
        ]
    )
    assert hash(th) == hash(Thresholds.from_json(th.to_json()))
    with pytest.raises(TypeError):
        th.values["bias_max"] = 1.0  # type: ignore[index]
    with pytest.raises(ValueError, match="cannot be null"):
        Thresholds(values={"bias_max": None})
    with pytest.raises(ValueError, match="not a finite number"):
        Thresholds(values={"bias_max": "6"})
    with pytest.raises(ValueError, match="unknown threshold"):
        Thresholds(values={"bias": 1.0})
    with pytest.raises(ValueError, match="not a finite number"):
        Thresholds.from_json({**th.to_json(), "bias_max": float("nan")})


def test_every_threshold_option_is_what_its_record_says():
    parser = gate_cli.build_parser()
    by_dest = {a.dest: a for a in parser._actions}
    for key, c in threshold_criteria():
        action = by_dest[c.dest]
        assert action.option_strings == [f"--{c.option}"], c.name
        assert action.default == c.default, c.name
        assert action.type is c.parse, c.name
        shown = c.shown_default if c.shown_default is not None else c.default
        assert action.help == f"{c.help} (default: {shown})", c.name
        values = vars(parser.parse_args(["d", f"--{c.option}", str(c.most_permissive)]))
        assert Thresholds.from_options(values).optional(c) == c.most_permissive, key


def test_the_strict_help_names_every_strict_criterion():
    parser = gate_cli.build_parser()
    (strict,) = [a for a in parser._actions if a.dest == "strict"]
    enforced, _, reported = strict.help.partition("; report ")
    for c in CRITERIA:
        name = c.item or c.name
        assert (name in enforced) == (c.decides_under == {PROFILE_STRICT}), c.name
        assert (name in reported) == (c.decides_under == {PROFILE_ADR}), c.name


def test_deviation_lines_read_as_pinned():
    th = Thresholds(
        seeds=(0, 1, 2),
        values={"mean_plcc_min": 0.9, "plcc_spread_max": 0.01, "per_seed_min": 0.9,
                "fold_min": 0.5, "bias_max": 6.0},
    )  # fmt: skip
    assert deviations(th) == [
        "mean PLCC threshold 0.9 (ADR-0303: 0.95)",
        "PLCC spread threshold 0.01 (ADR-0303: 0.005)",
        "per-seed minimum PLCC threshold 0.9 (ADR-0303: 0.95)",
        "fold minimum PLCC threshold 0.5 (ADR-0303: off)",
        "seeds (0, 1, 2) (ADR-0303: (0, 1, 2, 3, 4))",
    ]


def test_a_changed_threshold_is_a_deviation_exactly_when_its_record_says_so():
    for key, c in threshold_criteria():
        th = Thresholds(values={key: c.most_permissive})
        listed = deviations(th)
        assert bool(listed) == c.deviation, (c.name, listed)
        if c.deviation:
            adr = "off" if c.default is None else c.default
            assert listed == [f"{c.name} threshold {c.most_permissive} (ADR-0303: {adr})"]


def test_evaluate_reports_every_ensemble_criterion_in_order(tmp_path):
    arts = {}
    for seed in range(5):
        path = tmp_path / f"loso_seed{seed}.json"
        path.write_text(json.dumps(seed_record(seed, 0.97).to_json()))
        arts[seed] = SeedArtifact.read(path, seed)
    th = Thresholds(values={"fold_min": 0.9})
    report = evaluate(arts, th)
    seen = [c.name for c in report.checks if not c.name.startswith("seed ")]
    assert seen == [c.name for c in CRITERIA if c.stage == STAGE_ENSEMBLE]
    assert report.passed


def test_the_docs_table_is_the_records():
    text = (ROOT / "docs" / "verdict.md").read_text(encoding="utf-8")
    found = re.search(
        r"<!-- criteria-table:begin -->\n(.*?)<!-- criteria-table:end -->", text, re.S
    )
    assert found, "docs/verdict.md lost its criteria table markers"
    assert found.group(1) == markdown_table(), "regenerate with: python -m frreg.gate.criteria"


#: In a fresh interpreter: one criterion record (a per-source SROCC floor, with its
#: compute function) is added before any other frreg module is imported.
_ADD_A_CRITERION = textwrap.dedent(
    """
    import json, sys
    from frreg.gate import criteria as C
    from frreg.options import unit_interval

    def srocc_floor(c, inputs, th):
        return [
            C.Check(c.check_name(s.source), (s.ensemble_srocc or -1) >= th[c],
                    f"{s.source}: SROCC {s.ensemble_srocc}", s.ensemble_srocc, th[c],
                    c.enforced(th))
            for s in inputs.evidence.sources
        ]

    SROCC = C.Criterion(
        name="evidence srocc", item="srocc", stage=C.STAGE_EVIDENCE, scope="per-source",
        decides_under=frozenset({C.PROFILE_STRICT}), passes_when="`ensemble_srocc >= S`", compute=srocc_floor,
        key="srocc_min", default=0.9, unit="SROCC",
        option="srocc-min", dest="srocc_min", parse=unit_interval,
        help="evidence: on every held-out source the ensemble's SROCC is at least this",
        most_permissive=0.0,
    )
    C.CRITERIA = (*C.CRITERIA, SROCC)

    from frreg.cli import gate as gate_cli
    from frreg.gate.checks import evidence_checks
    from frreg.gate.ensemble import EnsembleEvidence, SourceEvidence
    from frreg.session import item_specs

    parser = gate_cli.build_parser()
    values = vars(parser.parse_args(["d", "--srocc-min", "0.5", "--strict"]))
    th = C.Thresholds.from_options(values)
    src = SourceEvidence("a", 10, 0.9, 0.4, 1.0, 0.0, 0.8, 1.0, 0.1, 0.9, 0.9, 2.0, 0.01)
    ev = EnsembleEvidence((src,), {"0": 0.9, "ensemble": 0.9}, 0.9, 0.9, 0.0, None, None)
    checks = evidence_checks(ev, th)
    print(json.dumps({
        "help": parser.format_help(),
        "threshold": th.values.get("srocc_min"),
        "checks": [[c.name, c.status] for c in checks],
        "items": [spec.name for spec in item_specs((0,), ("a",))],
        "table": C.markdown_table(),
        "strict": C.strict_help(),
    }))
    """
)


@pytest.mark.slow
def test_a_criterion_added_as_one_record_reaches_every_front_end():
    out = run_fresh(_ADD_A_CRITERION)
    assert "--srocc-min" in out["help"]
    assert out["threshold"] == 0.5
    assert ["evidence srocc-a", "FAIL"] in out["checks"]
    assert "evidence[srocc-a]" in out["items"]
    assert "`evidence[srocc-<source>]`" in out["table"]
    assert "srocc" in out["strict"]


def test_item_ids_are_pinned():
    """The plugin's item ids are a public surface (CI selects and reports by them): a
    change to the records that renames an item must show up here."""
    from frreg.session import item_specs

    names = [spec.name for spec in item_specs((0, 1), ("a", "b"))]
    assert names == [
        "corpus",
        "data[same-content]",
        "data[source-rows]",
        "data[manifest]",
        "data[target-scale]",
        "data[label-oracle]",
        "data[source-span]",
        "fold[seed0-a]",
        "fold[seed0-b]",
        "fold[seed1-a]",
        "fold[seed1-b]",
        "seed[seed0]",
        "seed[seed1]",
        "ensemble[size]",
        "ensemble[mean-plcc]",
        "ensemble[plcc-spread]",
        "ensemble[per-seed-min]",
        "ensemble[provenance]",
        "evidence[ols-margin-a]",
        "evidence[ols-margin-b]",
        "evidence[rmse-vs-ols-a]",
        "evidence[rmse-vs-ols-b]",
        "evidence[bias-a]",
        "evidence[bias-b]",
        "evidence[coverage-a]",
        "evidence[coverage-b]",
        "evidence[pooled-plcc]",
        "evidence[interval-width]",
        "evidence[stability]",
    ]
    with_baseline = [spec.name for spec in item_specs((0,), ("a",), baseline=True)]
    assert with_baseline[-1] == "evidence[baseline-relative]"


def test_a_non_default_network_shape_is_a_recipe_deviation(tmp_path):
    from frreg.gate.checks import GateReport
    from frreg.gate.verdict import Decision, recipe_deviations
    from frreg.training.network import MLPConfig

    def decision(model: dict) -> Decision:
        record = seed_record(0, 0.97, epochs=200, config={"seed": 0, "model": model})
        path = tmp_path / "loso_seed0.json"
        path.write_text(json.dumps(record.to_json()))
        art = SeedArtifact.read(path, 0)
        return Decision(GateReport(thresholds=Thresholds()), {0: art}, None, None)

    assert recipe_deviations(decision(MLPConfig().as_dict())) == []
    wide = {**MLPConfig().as_dict(), "hidden": 256, "dropout": 0.0}
    (listed,) = recipe_deviations(decision(wide))
    assert listed.startswith("network hidden 256, dropout 0.0 (ADR-0303: ")
