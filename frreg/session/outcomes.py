"""What the gate items reported, and what that adds to the verdict."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from frreg.gate.checks import ITEMS_CHECK, RUN_CHECK, Check


@dataclass
class ItemOutcome:
    """What the controller learned about one gate item from its reports."""

    nodeid: str
    outcome: str
    properties: dict[str, Any] = field(default_factory=dict)


def session_checks(
    outcomes: Mapping[str, ItemOutcome], expected: Sequence[str], interrupted: str | None
) -> list[Check]:
    """What the session adds to the gate: failing items, an interruption.

    Only failures are added, so a clean session's verdict has exactly the
    checks ``frreg-validate`` writes for the same artifacts.
    """
    checks = []
    missing = [n for n in expected if n not in outcomes]
    not_passed = [n for n in expected if n in outcomes and outcomes[n].outcome != "passed"]
    if missing or not_passed:
        checks.append(
            Check(
                ITEMS_CHECK,
                False,
                f"gate items: {len(expected) - len(missing) - len(not_passed)} of {len(expected)} passed"
                + (f"; not run: {len(missing)}" if missing else "")
                + (f"; failed: {', '.join(not_passed[:5])}" if not_passed else ""),
            )
        )
    if interrupted:
        checks.append(Check(RUN_CHECK, False, f"run: {interrupted}"))
    return checks


def items_line(outcomes: Mapping[str, ItemOutcome], expected: Sequence[str]) -> str:
    """One line for the terminal: how many gate items passed."""
    passed = sum(1 for n in expected if n in outcomes and outcomes[n].outcome == "passed")
    return f"gate items: {passed} of {len(expected)} passed"


def reported_cache_keys(outcomes: Mapping[str, ItemOutcome]) -> dict[int, str]:
    """The cache key of every seed an item reported (its fold and seed items carry it)."""
    keys = {}
    for o in outcomes.values():
        if "cache_key" in o.properties and "seed" in o.properties:
            keys[int(o.properties["seed"])] = str(o.properties["cache_key"])
    return keys


def built_digests(outcomes: Mapping[str, ItemOutcome]) -> dict[int, dict[str, str]]:
    """The seeds this session trained, each with the files' sha256 as the training
    process wrote them (reported by its items as ``built_sha256``)."""
    out: dict[int, dict[str, str]] = {}
    for o in outcomes.values():
        built = o.properties.get("built_sha256")
        if o.properties.get("trained_now") and "seed" in o.properties and isinstance(built, dict):
            out[int(o.properties["seed"])] = {str(k): str(v) for k, v in built.items()}
    return out


def published_digests(out_dir: Path, seed: int) -> dict[str, str] | None:
    """sha256 of the seed's files as published in ``out_dir`` (``None``: one is missing)."""
    from frreg._io import sha256_file
    from frreg.schema import seed_files

    paths = {name: out_dir / name for name in seed_files(seed)}
    if not all(p.is_file() and not p.is_symlink() for p in paths.values()):
        return None
    return {name: sha256_file(p) for name, p in paths.items()}


def trained_seeds(outcomes: Mapping[str, ItemOutcome]) -> set[int]:
    """The seeds this session trained itself (not served from the cache)."""
    return {
        int(o.properties["seed"])
        for o in outcomes.values()
        if o.properties.get("trained_now") and "seed" in o.properties
    }
