"""The CLI surface snapshot: every flag of every CLI a project guards, committed as JSON.

Changing an authoritative interface must be a deliberate act. The snapshot
records, per CLI, each argument's flags, dest, action, type (the ``type=``
callable's qualified name), default, choices, nargs, required and metavar,
plus mutually exclusive groups and whether abbreviations are allowed.
:func:`diff_surface` compares two snapshots and sorts the differences into
*breaking* changes (a removed or renamed flag, a changed default, type,
choices or nargs, a newly required argument) and *additive* ones (a new
optional flag, a widened choice list).

:func:`main` is the body of a project's own ``--write PATH`` / ``--check PATH``
command, given the project's CLIs and the command line that regenerates its
snapshot (recorded in the snapshot, and printed when ``--check`` fails).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from argvcontract.cli import Cli
from argvcontract.values import type_name

SCHEMA = 1


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else repr(value)
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return repr(value)


def _action_names(parser: argparse.ArgumentParser) -> dict[type, str]:
    # argparse's registry maps "store_true" etc. to classes; invert it.
    registry = parser._registries.get("action", {})
    return {
        cls: name for name, cls in registry.items() if name is not None and isinstance(cls, type)
    }


def describe_parser(parser: argparse.ArgumentParser) -> dict[str, Any]:
    """The contract-relevant surface of ``parser`` as plain JSON data (help text excluded)."""
    names = _action_names(parser)
    arguments = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            raise NotImplementedError("subcommands are not described yet")
        arguments.append(
            {
                "flags": list(action.option_strings),
                "dest": action.dest,
                "action": names.get(type(action), type(action).__qualname__),
                "nargs": _jsonable(action.nargs),
                "const": _jsonable(action.const),
                "type": type_name(action.type),
                "default": _jsonable(action.default),
                "choices": _jsonable(list(action.choices)) if action.choices is not None else None,
                "required": bool(action.required),
                "metavar": _jsonable(action.metavar),
            }
        )
    groups = [
        {"members": [a.dest for a in g._group_actions], "required": bool(g.required)}
        for g in parser._mutually_exclusive_groups
    ]
    return {
        "prog": parser.prog,
        "allow_abbrev": parser.allow_abbrev,
        "arguments": arguments,
        "mutually_exclusive": groups,
    }


def snapshot(clis: Sequence[Cli], *, regenerate: str | None = None) -> dict[str, Any]:
    """The surface of every CLI in ``clis``, keyed by CLI name.

    ``regenerate``, the command that rewrites the committed snapshot, is
    recorded in it for whoever reads the file.
    """
    data: dict[str, Any] = {"schema": SCHEMA}
    if regenerate is not None:
        data["regenerate"] = regenerate
    data["clis"] = {
        cli.name: {"module": cli.module, **describe_parser(cli.parser())} for cli in clis
    }
    return data


def dumps(data: dict[str, Any]) -> str:
    """Stable text for a snapshot: sorted keys, two-space indent, final newline."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def load(path: str | Path) -> dict[str, Any]:
    """Read a snapshot written by :func:`dumps`."""
    data: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    return data


@dataclass
class SurfaceDiff:
    """Differences between two snapshots, breaking ones apart from additive ones."""

    breaking: list[str] = field(default_factory=list)
    additive: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.breaking and not self.additive

    def format(self) -> str:
        lines = []
        if self.breaking:
            lines.append("breaking changes (callers written against the snapshot will fail):")
            lines += [f"  {b}" for b in self.breaking]
        if self.additive:
            lines.append("additive changes (existing callers keep working):")
            lines += [f"  {a}" for a in self.additive]
        return "\n".join(lines) or "no changes"


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _diff_argument(
    cli: str, label: str, old: dict[str, Any], new: dict[str, Any], out: SurfaceDiff
) -> None:
    for key in ("dest", "action", "type", "nargs", "const", "default"):
        if old.get(key) != new.get(key):
            out.breaking.append(
                f"{cli}: {label}: {key} changed from {_show(old.get(key))} to {_show(new.get(key))}"
            )
    old_choices, new_choices = old.get("choices"), new.get("choices")
    if old_choices != new_choices:
        if old_choices is None:
            out.breaking.append(f"{cli}: {label}: now restricted to choices {_show(new_choices)}")
        elif new_choices is None:
            out.additive.append(f"{cli}: {label}: no longer restricted to choices")
        else:
            removed = [c for c in old_choices if c not in new_choices]
            added = [c for c in new_choices if c not in old_choices]
            if removed:
                out.breaking.append(f"{cli}: {label}: choices {_show(removed)} removed")
            if added:
                out.additive.append(f"{cli}: {label}: choices {_show(added)} added")
    if old.get("required") != new.get("required"):
        if new.get("required"):
            out.breaking.append(f"{cli}: {label}: is now required")
        else:
            out.additive.append(f"{cli}: {label}: is no longer required")
    if old.get("metavar") != new.get("metavar"):
        out.additive.append(
            f"{cli}: {label}: metavar changed from {_show(old.get('metavar'))} to "
            f"{_show(new.get('metavar'))} (help text only)"
        )


def _diff_cli(cli: str, old: dict[str, Any], new: dict[str, Any], out: SurfaceDiff) -> None:
    if not old.get("allow_abbrev") and new.get("allow_abbrev"):
        out.breaking.append(f"{cli}: abbreviations are allowed again (--out would bind --out-dir)")
    elif old.get("allow_abbrev") and not new.get("allow_abbrev"):
        out.breaking.append(f"{cli}: abbreviations are now refused")
    old_flags = {f: a for a in old["arguments"] for f in a["flags"]}
    new_flags = {f: a for a in new["arguments"] for f in a["flags"]}
    new_by_dest = {a["dest"]: a for a in new["arguments"] if a["flags"]}
    renamed_to: set[str] = set()
    compared: set[int] = set()
    for flag, arg in old_flags.items():
        if flag in new_flags:
            if id(arg) not in compared:
                compared.add(id(arg))
                _diff_argument(cli, flag, arg, new_flags[flag], out)
            continue
        successor = new_by_dest.get(arg["dest"])
        if successor is not None and not any(f in old_flags for f in successor["flags"]):
            renamed_to.update(successor["flags"])
            out.breaking.append(
                f"{cli}: {flag} was renamed to {'/'.join(successor['flags'])} "
                f"(dest {arg['dest']}); callers passing {flag} now fail"
            )
        elif successor is not None:
            out.breaking.append(
                f"{cli}: {flag} was removed ({'/'.join(successor['flags'])} remains)"
            )
        else:
            out.breaking.append(f"{cli}: {flag} was removed (dest {arg['dest']})")
    added = [
        a for a in new["arguments"] if a["flags"] and not any(f in old_flags for f in a["flags"])
    ]
    for arg in added:
        flags = "/".join(arg["flags"])
        if set(arg["flags"]) & renamed_to:
            continue
        if arg["required"]:
            out.breaking.append(f"{cli}: new required option {flags}")
        else:
            out.additive.append(f"{cli}: new option {flags} (default {_show(arg['default'])})")
    old_pos = [a for a in old["arguments"] if not a["flags"]]
    new_pos = [a for a in new["arguments"] if not a["flags"]]
    for i, (o, n) in enumerate(zip(old_pos, new_pos, strict=False)):
        _diff_argument(cli, f"positional {i + 1} ({o['dest']})", o, n, out)
    for o in old_pos[len(new_pos) :]:
        out.breaking.append(f"{cli}: positional {o['dest']} was removed")
    for n in new_pos[len(old_pos) :]:
        optional = n["nargs"] in ("?", "*")
        (out.additive if optional else out.breaking).append(
            f"{cli}: new {'optional' if optional else 'required'} positional {n['dest']}"
        )
    old_groups = {tuple(sorted(g["members"])): g for g in old.get("mutually_exclusive", [])}
    new_groups = {tuple(sorted(g["members"])): g for g in new.get("mutually_exclusive", [])}
    for members, group in new_groups.items():
        if members not in old_groups:
            out.breaking.append(f"{cli}: {', '.join(members)} now exclude each other")
        elif group["required"] and not old_groups[members]["required"]:
            out.breaking.append(f"{cli}: one of {', '.join(members)} is now required")
        elif not group["required"] and old_groups[members]["required"]:
            out.additive.append(f"{cli}: {', '.join(members)} are no longer required")
    for members in old_groups.keys() - new_groups.keys():
        out.additive.append(f"{cli}: {', '.join(members)} no longer exclude each other")


def diff_surface(old: dict[str, Any], new: dict[str, Any]) -> SurfaceDiff:
    """What changed from snapshot ``old`` to snapshot ``new``, breaking apart from additive."""
    out = SurfaceDiff()
    old_clis, new_clis = old.get("clis", {}), new.get("clis", {})
    for name in old_clis:
        if name not in new_clis:
            out.breaking.append(f"{name}: the CLI was removed")
        else:
            _diff_cli(name, old_clis[name], new_clis[name], out)
    for name in new_clis:
        if name not in old_clis:
            out.additive.append(f"{name}: new CLI")
    return out


def main(
    argv: Sequence[str] | None = None,
    *,
    clis: Sequence[Cli] | Callable[[], Sequence[Cli]],
    prog: str,
    regenerate: str,
    description: str = "Write or check the CLI surface snapshot.",
) -> int:
    """A project's snapshot command: ``--write PATH`` or ``--check PATH`` (exit 1 if it differs).

    ``clis`` may be a function, called only once the argv is known to be good.
    """
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        allow_abbrev=False,
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--write", metavar="PATH", help="write the live surface to PATH")
    which.add_argument(
        "--check", metavar="PATH", help="compare the live surface with PATH; exit 1 if it differs"
    )
    args = parser.parse_args(argv)
    live = snapshot(clis() if callable(clis) else clis, regenerate=regenerate)
    if args.write:
        Path(args.write).write_text(dumps(live), encoding="utf-8")
        print(f"wrote {args.write} ({', '.join(live['clis'])})")
        return 0
    try:
        committed = load(args.check)
    except (OSError, json.JSONDecodeError) as exc:
        print(f"{parser.prog}: error: cannot read {args.check}: {exc}", file=sys.stderr)
        return 2
    diff = diff_surface(committed, live)
    print(diff.format())
    if diff.empty:
        return 0
    print(f"if this change is deliberate, regenerate: {regenerate}", file=sys.stderr)
    return 1


__all__ = [
    "SCHEMA",
    "SurfaceDiff",
    "describe_parser",
    "diff_surface",
    "dumps",
    "load",
    "main",
    "snapshot",
]
