"""The committed CLI surface snapshot: changing an interface must be deliberate."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from frreg.contracts import diff_surface, snapshot
from frreg.contracts.surface import REGENERATE, dumps, load, main
from frreg.schema import DEFAULT_EPOCHS

SNAPSHOT = Path(__file__).resolve().parent / "cli_surface.json"


@pytest.fixture(scope="module")
def committed():
    return load(SNAPSHOT)


def test_no_breaking_change_to_any_cli(committed):
    diff = diff_surface(committed, snapshot())
    assert not diff.breaking, (
        "breaking change to an authoritative CLI interface; existing callers, the wrapper "
        "and the docs may stop working:\n  "
        + "\n  ".join(diff.breaking)
        + f"\nIf it is deliberate, update every caller, then regenerate: {REGENERATE}"
    )


def test_no_unrecorded_additions(committed):
    diff = diff_surface(committed, snapshot())
    assert not diff.additive, (
        "the CLIs gained options the snapshot does not record (not breaking):\n  "
        + "\n  ".join(diff.additive)
        + f"\nRecord them: {REGENERATE}"
    )


def test_regeneration_command_round_trips(tmp_path, capsys):
    path = tmp_path / "surface.json"
    assert main(["--write", str(path)]) == 0
    assert main(["--check", str(path)]) == 0
    assert path.read_text() == dumps(snapshot())


def test_check_exits_1_and_names_the_change(tmp_path, capsys):
    stale = snapshot()
    train = stale["clis"]["frreg-train"]
    train["arguments"] = [a for a in train["arguments"] if a["flags"] != ["--dry-run"]]
    path = tmp_path / "stale.json"
    path.write_text(dumps(stale))
    assert main(["--check", str(path)]) == 1
    out, err = capsys.readouterr()
    assert "frreg-train: new option --dry-run (default false)" in out
    assert REGENERATE in err


def edited(surface, cli, flag, **changes):
    new = copy.deepcopy(surface)
    for arg in new["clis"][cli]["arguments"]:
        if flag in arg["flags"]:
            arg.update(changes)
    return new


@pytest.mark.parametrize(
    ("change", "breaking", "additive"),
    [
        (
            lambda s: edited(s, "frreg-train", "--epochs", default=999),
            [f"frreg-train: --epochs: default changed from {DEFAULT_EPOCHS} to 999"],
            [],
        ),
        (
            lambda s: edited(s, "frreg-train", "--epochs", type="int"),
            ['frreg-train: --epochs: type changed from "frreg.options.positive_int" to "int"'],
            [],
        ),
        (
            lambda s: edited(s, "frreg-train", "--engine", choices=["batched"]),
            ['frreg-train: --engine: choices ["reference"] removed'],
            [],
        ),
        (
            lambda s: edited(s, "frreg-train", "--engine", choices=["batched", "reference", "jit"]),
            [],
            ['frreg-train: --engine: choices ["jit"] added'],
        ),
        (
            lambda s: edited(s, "frreg-train", "--corpus", required=True),
            ["frreg-train: --corpus: is now required"],
            [],
        ),
        (
            lambda s: edited(s, "frreg-train", "--corpus", metavar="FILE"),
            [],
            ['frreg-train: --corpus: metavar changed from "PATH" to "FILE" (help text only)'],
        ),
        (
            lambda s: edited(s, "frreg-gate", "--json", flags=["--as-json"]),
            [
                "frreg-gate: --json was renamed to --as-json (dest json); callers passing --json now fail"
            ],
            [],
        ),
    ],
    ids=[
        "default",
        "type",
        "choices-narrowed",
        "choices-widened",
        "newly-required",
        "metavar",
        "renamed",
    ],
)
def test_changes_are_sorted_into_breaking_and_additive(committed, change, breaking, additive):
    # "new" is the live side: apply the change to a copy of the committed snapshot.
    diff = diff_surface(committed, change(committed))
    assert (diff.breaking, diff.additive) == (breaking, additive)


def test_removed_and_added_options_and_clis(committed):
    new = copy.deepcopy(committed)
    gate = new["clis"]["frreg-gate"]
    gate["arguments"] = [a for a in gate["arguments"] if a["flags"] != ["--json"]]
    gate["arguments"].append(
        {**committed["clis"]["frreg-gate"]["arguments"][-1], "flags": ["--csv"], "dest": "csv"}
    )
    gate["arguments"].append(
        {**gate["arguments"][-1], "flags": ["--must"], "dest": "must", "required": True}
    )
    gate["allow_abbrev"] = True
    new["clis"]["frreg-new"] = copy.deepcopy(gate)
    del new["clis"]["frreg-validate"]
    diff = diff_surface(committed, new)
    assert diff.breaking == [
        "frreg-gate: abbreviations are allowed again (--out would bind --out-dir)",
        "frreg-gate: --json was removed (dest json)",
        "frreg-gate: new required option --must",
        "frreg-validate: the CLI was removed",
    ]
    assert diff.additive == ["frreg-gate: new option --csv (default false)", "frreg-new: new CLI"]
