"""Options by concern: the machinery is a leaf, each stage's table is light, and an
option both front ends offer has one declaration and one syntax."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from frreg.cli.corpus import build_parser as corpus_parser
from frreg.contracts.registry import plugin_cli
from frreg.options import Option, split_list
from frreg.producer.options import CQS, ENCODERS, corpus_option_groups
from frreg.session_options import PLUGIN_OPTIONS
from pytest_frreg import plugin

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent

#: Every option table, and the plugin that reads them all for ``pytest --help``.
TABLES = (
    "frreg.training.options",
    "frreg.producer.options",
    "frreg.gate.options",
    "frreg.export.options",
    "frreg.session_options",
    "pytest_frreg.plugin",
)


def test_the_machinery_imports_nothing_from_frreg():
    tree = ast.parse((ROOT / "frreg" / "options.py").read_text(encoding="utf-8"))
    imported = [
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    ]
    assert [m for m in imported if m and m.split(".")[0] == "frreg"] == []


def test_option_tables_import_nothing_heavy():
    code = (
        "import sys, importlib\n"
        f"for m in {TABLES!r}:\n"
        "    importlib.import_module(m)\n"
        "heavy = ('torch', 'numpy', 'pandas', 'onnx', 'onnxruntime', 'matplotlib')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_engine_choices_are_the_trainers():
    from frreg.training.loso import ENGINES as TRAINER_ENGINES
    from frreg.training.options import ENGINE

    assert ENGINE.choices == TRAINER_ENGINES


def test_the_grid_options_are_declared_once_for_both_front_ends():
    grid = next(g for g in corpus_option_groups() if g.title == "grid")
    for opt in (ENCODERS, CQS):
        assert opt in grid.options
        assert opt in PLUGIN_OPTIONS


@pytest.mark.parametrize(
    ("text", "items"),
    [
        ("a", ["a"]),
        ("a,b", ["a", "b"]),
        ("a b", ["a", "b"]),
        (" a, b ,c ", ["a", "b", "c"]),
        ("a,,b", ["a", "", "b"]),
        ("a,", ["a", ""]),
        ("", [""]),
    ],
)
def test_split_list_keeps_empty_items_for_the_item_check(text, items):
    assert split_list(text) == items


# Each spelling of the same grid, as frreg-corpus takes it.
CLI_FORMS = [
    ["--encoder", "libx264", "libx265", "--cq", "22", "30"],  # the fork's: several words
    ["--encoder", "libx264", "--encoder", "libx265", "--cq", "22", "--cq", "30"],  # repeated
    ["--encoder", "libx264,libx265", "--cq", "22,30"],  # a comma list
    ["--encoders", "libx264 libx265", "--cqs", "22, 30"],  # the plugin's names, spaces
    ["--encoder", "libx264,libx265", "--cq", "22", "30"],  # mixed
]
# ... and as the plugin takes it (one word per flag: test paths may follow).
PLUGIN_FORMS = [
    ["--frreg-encoders=libx264,libx265", "--frreg-cqs=22,30"],
    ["--frreg-encoders", "libx264 libx265", "--frreg-cqs=22, 30"],
    ["--frreg-encoder=libx264,libx265", "--frreg-cq", "22 30"],
    # A later occurrence overrides an earlier one (the command line overrides addopts).
    ["--frreg-encoders=h264_nvenc", "--frreg-encoders=libx264,libx265", "--frreg-cqs=22,30"],
]


@pytest.mark.parametrize("argv", CLI_FORMS, ids=lambda a: " ".join(a))
def test_frreg_corpus_takes_every_spelling(argv):
    args = corpus_parser().parse_args(["--builtin", "--out", "x", *argv])
    assert (args.encoders, args.cqs) == (["libx264", "libx265"], [22, 30])


@pytest.mark.parametrize("argv", PLUGIN_FORMS, ids=lambda a: " ".join(a))
def test_the_plugin_takes_every_spelling(pytester, argv):
    config = pytester.parseconfig(*argv)
    values = {opt.dest: plugin._resolve(config, opt)[0] for opt in (ENCODERS, CQS)}
    assert values == {"encoders": ("libx264", "libx265"), "cqs": (22, 30)}
    # The contract guard's parser of the plugin's options takes them too (one list per flag).
    args = plugin_cli().parser().parse_args(argv)
    assert (args.encoders, args.cqs) == (("libx264", "libx265"), (22, 30))


def test_the_plugin_leaves_words_after_a_list_option_to_pytest(pytester):
    pytester.makepyfile(test_one="def test_one():\n    pass\n")
    config = pytester.parseconfig("--frreg-encoders", "libx264", "test_one.py")
    assert plugin._resolve(config, ENCODERS)[0] == ("libx264",)
    assert config.args == ["test_one.py"]


@pytest.mark.parametrize("ini", ["libx264,libx265", "libx264 libx265", "libx264, libx265"])
def test_the_ini_key_takes_the_same_lists(pytester, ini):
    pytester.makeini(f"[pytest]\nfrreg_encoders = {ini}\nfrreg_cqs = 22 30\n")
    config = pytester.parseconfig()
    assert plugin._resolve(config, ENCODERS)[0] == ("libx264", "libx265")
    assert plugin._resolve(config, CQS)[0] == (22, 30)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--encoder", "x266"], "invalid encoder 'x266'; choose from libx264"),
        (["--encoder", "libx264,x266"], "invalid encoder 'x266' in 'libx264,x266'"),
        (["--encoder", "libx264,libx264"], "an encoder is listed twice"),
        (["--encoder", "libx264,"], "invalid encoder ''"),
        (["--cq", "high"], "invalid cq 'high'"),
        (["--cq", "22,,30"], "invalid cq list '22,,30'"),
    ],
)
def test_one_check_refuses_a_bad_list_in_both_front_ends(pytester, capsys, argv, needle):
    with pytest.raises(SystemExit):
        corpus_parser().parse_args(["--builtin", "--out", "x", *argv])
    assert needle in capsys.readouterr().err
    flag = "--frreg-encoders" if argv[0] == "--encoder" else "--frreg-cqs"
    opt = ENCODERS if argv[0] == "--encoder" else CQS
    config = pytester.parseconfig(f"{flag}={argv[1]}")
    with pytest.raises(pytest.UsageError, match="argument --frreg-") as info:
        plugin._resolve(config, opt)
    assert needle in str(info.value)


def test_a_list_option_needs_a_list_type():
    with pytest.raises(ValueError, match="a list option"):
        Option("x", "x", "x", repeatable=True)
    with pytest.raises(ValueError, match="a list option"):
        Option("x", "x", "x", type=split_list, action="append", repeatable=True)
