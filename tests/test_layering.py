"""The dependency rules of docs/architecture.md, asserted over the import graph.

The graph is read from the source with :mod:`ast`, nothing is imported. An
edge is every ``import`` statement anywhere in a module: at module level,
inside functions (the lazy imports that keep ``pytest --help`` light), under
``if TYPE_CHECKING:`` (a type-only import still couples two layers: a reader
and mypy need the other layer to understand this one) and in ``try`` blocks.
``from a import b`` is an edge to ``a.b`` when that is a module, else to ``a``.
A package's lazy-name table (``__getattr__ = lazy_getattr(__name__, TABLE)``)
counts too: its strings are imports that happen on first use. Not edges:
the root ``frreg/__init__.py`` table, which is the public facade naming every
stage (a module that imports ``frreg`` itself gets ``__version__``), and
modules loaded by a computed name (the contract registry loads the CLI
modules it checks).

Each module belongs to one layer (:data:`LAYERS`). A layer may import itself,
the leaves and the layers :data:`RULES` lists for it, nothing else; the
leaves import only leaves; the CLIs each import only their own stage;
outside the session only its entry points (``frreg.session`` and the
plugin's option table ``frreg.session_options``) may be imported; ``frreg``
never imports pytest; ``argvcontract`` imports nothing from frreg (it is
also imported for real in ``tests/test_contracts_layout.py``).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("frreg", "pytest_frreg", "argvcontract")

#: Modules every layer may import. Each imports only other leaves (tested):
#: the version (``frreg``), errors, constants, atomic writes, lazy names, the
#: terminal progress line and the option machinery (each stage declares its
#: own option table on top of it).
LEAVES = frozenset(
    {
        "frreg",
        "frreg._io",
        "frreg._lazy",
        "frreg._terminal",
        "frreg.dask_client",
        "frreg.dirlock",
        "frreg.errors",
        "frreg.options",
        "frreg.schema",
    }
)

#: Layer -> the module prefixes that make it (a prefix covers its submodules).
LAYERS: dict[str, tuple[str, ...]] = {
    "corpus": ("frreg.corpus",),
    "producer": ("frreg.producer",),
    "training": ("frreg.training",),
    "gate": ("frreg.gate",),
    "cache": ("frreg.cache",),
    "settings": ("frreg.settings",),
    "export": ("frreg.export",),
    "session": ("frreg.session", "frreg.session_options"),
    "cli": ("frreg.cli",),
    "contracts": ("frreg.contracts",),
    "synthetic": ("frreg.synthetic",),
    "sweep": ("frreg.sweep",),
    "plugin": ("pytest_frreg",),
    "argvcontract": ("argvcontract",),
}

#: Layer -> the other layers it may import directly. Dependencies point down the
#: runbook: produce the corpus, train, gate, export; the session and the CLIs run
#: the stages; the plugin is a shell over the session.
RULES: dict[str, frozenset[str]] = {
    "corpus": frozenset(),
    "producer": frozenset({"corpus"}),
    "training": frozenset({"corpus"}),
    "gate": frozenset({"corpus", "training"}),
    # The trained-seed cache stores what training wrote.
    "cache": frozenset({"training"}),
    # From parsed options to TrainSettings and Thresholds (and the device check).
    "settings": frozenset({"gate", "training"}),
    # Export re-derives the verdict, retrains on the full corpus and refuses a device
    # that is not there with the check every front end uses.
    "export": frozenset({"corpus", "gate", "training", "settings"}),
    "session": frozenset({"corpus", "producer", "training", "gate", "cache", "settings", "export"}),
    # Narrowed per CLI by CLI_STAGES.
    "cli": frozenset({"settings", "corpus", "producer", "training", "gate", "export", "sweep"}),
    # frreg's registrations for argvcontract: the plugin's options, the producer's
    # vocabularies (the CLIs themselves are loaded by name).
    "contracts": frozenset({"argvcontract", "producer", "session"}),
    "synthetic": frozenset(),
    "sweep": frozenset({"corpus", "training", "gate"}),
    # The gate through frreg.session; the argv_recorder fixture over frreg.contracts.
    "plugin": frozenset({"session", "contracts"}),
    "argvcontract": frozenset(),
}

#: Each CLI: the stage it runs (``settings`` is allowed to all of them).
CLI_STAGES: dict[str, frozenset[str]] = {
    "frreg.cli": frozenset(),
    "frreg.cli._common": frozenset(),
    "frreg.cli.corpus": frozenset({"producer", "corpus"}),
    # frreg-train also removes the verdict its new seed files make stale.
    "frreg.cli.train": frozenset({"training", "corpus", "gate"}),
    "frreg.cli.gate": frozenset({"gate"}),
    "frreg.cli.validate": frozenset({"gate"}),
    "frreg.cli.export": frozenset({"export"}),
    "frreg.cli.sweep": frozenset({"sweep", "corpus", "training"}),
}

#: What the other layers may import of the session: its entry points, not its parts.
SESSION_ENTRY_POINTS = frozenset({"frreg.session", "frreg.session_options"})

#: The plugin's own dependencies: pytest itself (frreg never imports it).
PYTEST = ("pytest", "_pytest", "pluggy", "xdist")


@dataclass(frozen=True)
class Edge:
    """One import: ``source`` imports ``target`` at ``path:line``."""

    source: str
    target: str
    path: Path
    line: int

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}: {self.source} imports {self.target}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _source_files() -> dict[str, Path]:
    files = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            files[_module_name(path)] = path
    return files


MODULES = _source_files()


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _lazy_table_names(tree: ast.Module) -> set[str]:
    """Names passed as the table to ``lazy_getattr(__name__, NAME)``."""
    names = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "lazy_getattr"
            and len(node.args) == 2
            and isinstance(node.args[1], ast.Name)
        ):
            names.add(node.args[1].id)
    return names


def _imports(module: str, path: Path) -> Iterator[Edge]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Edge(module, alias.name, path, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                origin = ".".join([*base, *([node.module] if node.module else [])])
            else:
                origin = node.module or ""
            for alias in node.names:
                full = f"{origin}.{alias.name}"
                yield Edge(module, full if full in MODULES else origin, path, node.lineno)
    if module == "frreg":
        return  # the public facade: see the module docstring
    tables = _lazy_table_names(tree)
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
            value: ast.expr | None = node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            targets, value = [node.target.id], node.value
        else:
            continue
        if value is None or not tables.intersection(targets):
            continue
        for const in ast.walk(value):
            if isinstance(const, ast.Constant) and const.value in MODULES:
                yield Edge(module, str(const.value), path, const.lineno)


#: Every import, once per (importer, imported, line).
EDGES = list(dict.fromkeys(e for module, path in MODULES.items() for e in _imports(module, path)))
#: Edges between our own modules, self-imports aside.
OWN_EDGES = [e for e in EDGES if e.target in MODULES and e.target != e.source]


def layer_of(module: str) -> str:
    """The layer of one of our modules: ``"leaf"`` or a key of :data:`LAYERS`."""
    if module in LEAVES:
        return "leaf"
    matches = [
        (len(prefix), layer)
        for layer, prefixes in LAYERS.items()
        for prefix in prefixes
        if _under(module, prefix)
    ]
    if not matches:
        raise LookupError(f"{module} belongs to no layer: add it to LAYERS or LEAVES")
    return max(matches)[1]


def assert_none(edges: list[Edge], rule: str) -> None:
    """Fail listing every offending import, one per line, with the rule it breaks."""
    assert not edges, "\n" + "\n".join(f"{e} ({rule})" for e in edges)


# ---------------------------------------------------------------------- the rules


def test_the_graph_is_read_from_every_package() -> None:
    assert {"frreg.session", "pytest_frreg.plugin", "argvcontract.cli"} <= set(MODULES)
    # Function-level, TYPE_CHECKING and lazy-table imports are all seen.
    seen = {(e.source, e.target) for e in EDGES}
    assert ("pytest_frreg.plugin", "frreg.session") in seen  # inside a hook
    assert ("pytest_frreg.items", "frreg.session") in seen  # under TYPE_CHECKING
    assert ("frreg.session", "frreg.session.gate_session") in seen  # lazy table


def test_every_module_belongs_to_a_layer() -> None:
    missing = []
    for module in MODULES:
        try:
            layer_of(module)
        except LookupError as exc:
            missing.append(str(exc))
    assert missing == []


def test_the_rules_point_one_way() -> None:
    # The rules themselves have no cycle, so no code obeying them can have one.
    order: list[str] = []

    def visit(layer: str, path: tuple[str, ...]) -> None:
        assert layer not in path, f"the rules have a cycle: {' -> '.join((*path, layer))}"
        for lower in sorted(RULES[layer]):
            visit(lower, (*path, layer))
        if layer not in order:
            order.append(layer)

    for layer in RULES:
        visit(layer, ())
    assert set(RULES) == set(LAYERS)


def test_leaves_import_only_leaves() -> None:
    broken = [e for e in OWN_EDGES if e.source in LEAVES and e.target not in LEAVES]
    assert_none(broken, "a leaf imports only leaves")


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_each_layer_imports_only_what_its_rule_allows(layer: str) -> None:
    allowed = RULES[layer] | {layer, "leaf"}
    broken = [
        e for e in OWN_EDGES if layer_of(e.source) == layer and layer_of(e.target) not in allowed
    ]
    shown = ", ".join(sorted(RULES[layer])) or "nothing"
    assert_none(broken, f"{layer} may import {shown} and the leaves")


def test_each_cli_imports_only_settings_and_its_stage() -> None:
    cli_edges = [e for e in OWN_EDGES if layer_of(e.source) == "cli"]
    unknown = sorted({e.source for e in cli_edges} - set(CLI_STAGES))
    assert unknown == [], "add each CLI to CLI_STAGES with the stage it runs"
    broken = [
        e
        for e in cli_edges
        if layer_of(e.target) not in CLI_STAGES[e.source] | {"cli", "settings", "leaf"}
    ]
    assert_none(broken, "a CLI imports settings and the stage it runs")


def test_the_session_is_entered_only_through_its_entry_points() -> None:
    broken = [
        e
        for e in OWN_EDGES
        if layer_of(e.target) == "session"
        and layer_of(e.source) != "session"
        and e.target not in SESSION_ENTRY_POINTS
    ]
    assert_none(broken, "import frreg.session, not its parts")


def test_the_plugin_reaches_the_library_only_through_the_session() -> None:
    # The plugin's rule, spelled out: no gate, export, training or producer module,
    # whatever the layer rules above say about anyone else.
    broken = [
        e
        for e in OWN_EDGES
        if layer_of(e.source) == "plugin"
        and _under(e.target, "frreg")
        and not (
            e.target in LEAVES
            or e.target in SESSION_ENTRY_POINTS
            or _under(e.target, "frreg.contracts")
        )
    ]
    assert_none(broken, "pytest_frreg -> frreg.session")


def test_no_cycles_between_layers() -> None:
    graph: dict[str, set[str]] = {layer: set() for layer in LAYERS}
    for e in OWN_EDGES:
        source, target = layer_of(e.source), layer_of(e.target)
        if "leaf" not in (source, target) and source != target:
            graph[source].add(target)

    def cycle_from(start: str) -> list[str] | None:
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in sorted(graph[node]):
                if nxt == start:
                    return [*path, start]
                if nxt not in path:
                    stack.append((nxt, [*path, nxt]))
        return None

    cycles = [" -> ".join(c) for layer in sorted(graph) if (c := cycle_from(layer))]
    assert not cycles, "\n" + "\n".join(cycles)


def test_frreg_never_imports_pytest() -> None:
    broken = [
        e
        for e in EDGES
        if _under(e.source, "frreg") and any(_under(e.target, name) for name in PYTEST)
    ]
    assert_none(broken, "frreg is a plain library; the plugin is pytest_frreg")


def test_argvcontract_imports_nothing_from_frreg() -> None:
    broken = [
        e
        for e in EDGES
        if _under(e.source, "argvcontract")
        and (_under(e.target, "frreg") or _under(e.target, "pytest_frreg"))
    ]
    assert_none(broken, "argvcontract is generic")
