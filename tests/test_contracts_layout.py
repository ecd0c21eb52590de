"""The contract guard's layout: generic argvcontract, frreg's registrations on top.

``argvcontract`` must stay usable by any project, so it imports no frreg
module; neither package has an import cycle; and frreg's registry covers
every ``type=`` callable its real parsers use (a callable moved or renamed by
a refactor shows up here by flag, not as a puzzling strategy failure).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import argvcontract
import frreg.contracts
from argvcontract import values
from argvcontract.values import type_name
from frreg.contracts.registry import (
    CORPUS_FLAG_TYPES,
    OPTION_TYPES,
    corpus_flag_types,
    frreg_clis,
    plugin_cli,
)

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("argvcontract", "frreg.contracts")


def test_argvcontract_imports_no_frreg_module():
    code = (
        "import sys, pkgutil, importlib, argvcontract\n"
        "for m in pkgutil.iter_modules(argvcontract.__path__):\n"
        "    importlib.import_module('argvcontract.' + m.name)\n"
        "import argvcontract.strategies\n"
        "frreg = sorted(m for m in sys.modules if m == 'frreg' or m.startswith('frreg.'))\n"
        "assert not frreg, frreg\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)


def test_argvcontract_source_never_names_frreg():
    named = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in sorted((ROOT / "argvcontract").rglob("*.py"))
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if "frreg" in line
    ]
    assert named == []


def _module_imports(package: str) -> dict[str, set[str]]:
    """Module -> modules of the same packages it imports at import time (top level)."""
    base = ROOT.joinpath(*package.split("."))
    graph: dict[str, set[str]] = {}
    for path in sorted(base.glob("*.py")):
        name = package if path.stem == "__init__" else f"{package}.{path.stem}"
        deps: set[str] = set()
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                deps.add(node.module)
                deps |= {f"{node.module}.{a.name}" for a in node.names}
        graph[name] = deps
    return graph


def test_no_import_cycles():
    graph: dict[str, set[str]] = {}
    for package in PACKAGES:
        graph.update(_module_imports(package))
    edges = {m: {d for d in deps if d in graph and d != m} for m, deps in graph.items()}

    def cycle_from(start: str) -> list[str] | None:
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in edges[node]:
                if nxt == start:
                    return [*path, start]
                if nxt not in path:
                    stack.append((nxt, [*path, nxt]))
        return None

    cycles = [c for m in edges if (c := cycle_from(m))]
    assert cycles == []


def _frreg_types():
    """(cli, flag, qualified type name) for every frreg type= on a real frreg parser."""
    for cli in (*frreg_clis(), plugin_cli()):
        for action in cli.parser()._actions:
            key = type_name(action.type)
            if key is not None and key.startswith("frreg."):
                yield cli.name, "/".join(action.option_strings) or action.dest, key


def test_every_frreg_type_callable_is_registered():
    missing = [
        f"{cli} {flag}: {key}" for cli, flag, key in _frreg_types() if not values.registered(key)
    ]
    assert missing == [], (
        "frreg parsers use type= callables frreg.contracts.registry does not register "
        "(add them to OPTION_TYPES, or a flag to CORPUS_FLAG_TYPES):\n  " + "\n  ".join(missing)
    )


def test_the_registry_tables_name_live_callables():
    used = {key for _, _, key in _frreg_types()}
    assert sorted(set(OPTION_TYPES) - used) == [], "OPTION_TYPES names callables no parser uses"
    corpus = next(c for c in frreg_clis() if c.name == "frreg-corpus")
    assert sorted(set(CORPUS_FLAG_TYPES) - set(corpus_flag_types(corpus.parser()))) == [], (
        "CORPUS_FLAG_TYPES names flags frreg-corpus does not have (or that use no frreg type)"
    )


def test_recorders_stand_in_for_frreg_clis_only_when_bound_to_frreg(tmp_path):
    generic = argvcontract.ArgvRecorder(tmp_path / "generic")
    assert generic.clis == ()
    bound = frreg.contracts.ArgvRecorder(tmp_path / "frreg")
    assert [c.name for c in bound.clis] == [c.name for c in frreg_clis()]
    assert {"frreg-train", "frreg-gate", "frreg-validate", "frreg-corpus"} <= {
        p.name for p in bound.bin_dir.iterdir()
    }


@pytest.mark.parametrize("name", frreg.contracts.__all__)
def test_the_public_api_resolves(name):
    assert getattr(frreg.contracts, name) is not None


def test_documented_surface_command_runs_as_a_module():
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-m", "frreg.contracts.surface", "--check",
         str(ROOT / "tests" / "cli_surface.json")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr
    assert "Traceback" not in proc.stderr
