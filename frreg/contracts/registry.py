"""frreg's registrations with :mod:`argvcontract`: its CLIs, its plugin, its value types.

Everything frreg-specific about the contract guard lives here; the machinery
is the generic :mod:`argvcontract` package, which does not import frreg.

* :data:`CLI_MODULES` / :func:`frreg_clis`: the CLIs whose parsers are the
  contracts (tests check the list against pyproject's ``[project.scripts]``);
* :func:`plugin_cli` / :func:`frreg_plugin`: ``pytest --frreg-*``, the plugin's
  options, checked in documented ``pytest`` lines;
* :data:`OPTION_TYPES` / :data:`CORPUS_FLAG_TYPES`: how the values of frreg's
  ``type=`` callables are written back (round trips) and drawn (property
  tests). They are registered when first needed, by a loader that reads
  frreg-corpus's callables off its real parser.

Importing this module is cheap: no CLI is imported and Hypothesis never is
(value strategies are built on first use).
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
from collections.abc import Callable, Sequence
from typing import Any

from argvcontract.cli import Cli, PluginOptions, clis_from_modules
from argvcontract.values import (
    Format,
    ValueSpec,
    register_format,
    register_loader,
    register_spec_factory,
    type_name,
)

# --------------------------------------------------------------------------
# CLIs
# --------------------------------------------------------------------------

#: frreg's CLI modules, in runbook order. Each exposes ``PROG``, ``build_parser()``
#: and ``main(argv=None) -> int``; tests check this list against pyproject's
#: ``[project.scripts]`` so a new CLI cannot be left out.
CLI_MODULES: tuple[str, ...] = (
    "frreg.cli.corpus",
    "frreg.cli.train",
    "frreg.cli.gate",
    "frreg.cli.validate",
    "frreg.cli.export",
    "frreg.cli.sweep",
)

#: The CLI whose own argument types are registered by flag (see CORPUS_FLAG_TYPES).
CORPUS_MODULE = "frreg.cli.corpus"


def frreg_clis() -> tuple[Cli, ...]:
    """Every frreg CLI whose module is present.

    A module that is absent is skipped (a CLI still being written); one that
    is present but fails to import raises, because that is a broken CLI.
    """
    return clis_from_modules(CLI_MODULES)


#: Name of the pseudo-CLI for ``pytest --frreg-*`` options.
PLUGIN_CLI_NAME = "pytest"
#: What the plugin's flags start with on a pytest command line.
PLUGIN_PREFIX = "--frreg"


def plugin_cli() -> Cli:
    """``pytest --frreg-*``: the plugin's options, built from the declarations the plugin adds.

    The parser is made from ``frreg.session_options.PLUGIN_OPTIONS`` as
    ``pytest_frreg.plugin`` adds them (one word per flag), so documented
    ``pytest --frreg-...`` lines are checked against the same declarations, not a copy.
    """

    def build_parser() -> argparse.ArgumentParser:
        from frreg.options import StrictParser, add_options
        from frreg.session_options import PLUGIN_OPTIONS

        parser = StrictParser(prog=PLUGIN_CLI_NAME, add_help=False)
        add_options(parser.add_argument, PLUGIN_OPTIONS, prefix="frreg-", single_word=True)
        return parser

    return Cli(PLUGIN_CLI_NAME, build_parser)


def frreg_plugin() -> PluginOptions:
    """The plugin's options as :mod:`argvcontract.docs` checks them."""
    return PluginOptions(plugin_cli(), PLUGIN_PREFIX)


# --------------------------------------------------------------------------
# Value types. THE PLACE TO UPDATE when a type= callable moves or is renamed.
# Each entry: (name of its value strategies in _value_specs(), format or None).
# A format is the inverse of the callable, for values str() would not write
# back (a tuple); None means str() (repr() for floats) reads back.
# --------------------------------------------------------------------------


def _comma_join(value: Sequence[Any]) -> str:
    return ",".join(str(v) for v in value)


def _list_item(value: Any) -> str:
    # A list option's value: one list (the plugin's, per flag) or, once
    # frreg-corpus's extend has opened the lists, one item of it.
    return _comma_join(value) if isinstance(value, tuple | list) else str(value)


def _pair(value: Sequence[Any]) -> str:
    return f"{value[0]}={value[1]}"


def _size(value: Sequence[Any]) -> str:
    return f"{value[0]}x{value[1]}"


#: The types options declared in option tables use, by qualified name.
OPTION_TYPES: dict[str, tuple[str, Format | None]] = {
    "frreg.options.seed_list": ("seed_list", _comma_join),
    "frreg.producer.options.encoder_list": ("encoder_list", _list_item),
    "frreg.producer.options.cq_list": ("cq_list", _list_item),
    "frreg.options.positive_int": ("positive_int", None),
    "frreg.options.positive_float": ("positive_float", None),
    "frreg.options.nonnegative_float": ("nonnegative_float", None),
    "frreg.options.plcc_threshold": ("unit_interval", None),
    "frreg.options.spread_threshold": ("unit_interval", None),
    "frreg.options.dropout_rate": ("dropout_rate", None),
    "frreg.training.options.sweep_digest": ("sweep_digest", None),
    "frreg.gate.options.audit_request": ("audit_request", None),
    "frreg.options.nonnegative_int": ("nonnegative_int", None),
    "frreg.options.unit_interval": ("unit_interval", None),
    "frreg.options.finite_float": ("finite_float", None),
    "frreg.export.options.ensemble_id": ("ensemble_id", None),
    "frreg.sweep.options.positive_float_list": ("positive_float_list", _list_item),
    "frreg.sweep.options.nonnegative_float_list": ("nonnegative_float_list", _list_item),
    "frreg.sweep.options.positive_int_list": ("positive_int_list", _list_item),
    "frreg.sweep.options.dropout_rate_list": ("dropout_rate_list", _list_item),
}

#: frreg-corpus's own types, by a flag that uses them. The callable registered
#: is whatever the real parser attaches to the flag, wherever it is defined
#: (frreg.producer.options, frreg.options), so moving or renaming it needs no edit
#: here. A callable already registered above (a merged one) keeps that entry.
CORPUS_FLAG_TYPES: dict[str, tuple[str, Format | None]] = {
    "--builtin": ("builtin_id", None),
    "--width": ("corpus_positive_int", None),
    "--height": ("corpus_positive_int", None),
    "--frames": ("corpus_positive_int", None),
    "--jobs": ("corpus_positive_int", None),
    "--vmaf-threads": ("corpus_positive_int", None),
    "--pix-fmt": ("pix_fmt", None),
    "--framerate": ("framerate", None),
    "--builtin-size": ("size", _size),
    "--preset": ("preset", _pair),
    "--timeout": ("corpus_positive_float", None),
}


@functools.cache
def _value_specs() -> dict[str, Callable[[], ValueSpec]]:
    """Value strategies by name (imports Hypothesis: called on first use only)."""
    from hypothesis import strategies as st
    from hypothesis.strategies import SearchStrategy

    from argvcontract.strategies import finite_floats
    from frreg.schema import SWEEP_DIGEST_HEX

    # The producer's vocabularies, imported only when an encoder value is drawn.
    # Producible is the vocabulary minus ``unknown`` plus the encoders outside it
    # (VAAPI, VideoToolbox): what --encoder and --frreg-encoders both accept.
    def producible() -> tuple[str, ...]:
        from frreg.producer.encoders import PRODUCIBLE_ENCODERS

        return tuple(PRODUCIBLE_ENCODERS)

    def presets() -> SearchStrategy[str]:
        from frreg.schema import PRESET_LADDERS

        pairs = [f"{e}={p}" for e in producible() for p in PRESET_LADDERS.get(e, ())]
        return st.sampled_from(pairs)

    def pix_fmts() -> SearchStrategy[str]:
        from frreg.producer.sources import RAW_PIX_FMTS

        return st.sampled_from(sorted(RAW_PIX_FMTS))

    def builtin_ids() -> SearchStrategy[str]:
        from frreg.producer.sources import BUILTIN_SOURCE_IDS

        return st.sampled_from(list(BUILTIN_SOURCE_IDS))

    def positive_ints() -> SearchStrategy[str]:
        return st.integers(1, 10**6).map(str)

    def comma(values: list[Any]) -> str:
        return ",".join(str(v) for v in values)

    def listed(items: SearchStrategy[list[Any]]) -> SearchStrategy[str]:
        # A list option's text: its items separated by commas, spaces or both.
        return st.tuples(items, st.sampled_from([",", " ", ", "])).map(
            lambda t: t[1].join(str(v) for v in t[0])
        )

    even = st.integers(16, 1024).map(lambda n: 2 * n)
    return {
        # OPTION_TYPES
        "seed_list": lambda: ValueSpec(
            st.lists(st.integers(0, 99_999), min_size=1, max_size=6, unique=True).map(comma),
            st.sampled_from(["", "x", "-1", "1.5", "0,x", ",", " , ", "1;2"]),
        ),
        "positive_int": lambda: ValueSpec(
            positive_ints(),
            st.sampled_from(["0", "-1", "x", "1.5", "", "1e3"]) | st.integers(max_value=0).map(str),
        ),
        "positive_float": lambda: ValueSpec(
            finite_floats(min_value=0.0, exclude_min=True),
            st.sampled_from(["0", "0.0", "-1", "-0.5", "nan", "inf", "x", ""]),
        ),
        "nonnegative_float": lambda: ValueSpec(
            finite_floats(min_value=0.0),
            st.sampled_from(["-0.1", "-1", "nan", "inf", "-inf", "x", ""]),
        ),
        "unit_interval": lambda: ValueSpec(
            finite_floats(min_value=0.0, max_value=1.0),
            st.sampled_from(["1.5", "-0.01", "-1", "2", "nan", "inf", "x", ""])
            | finite_floats(min_value=1.0, exclude_min=True, max_value=1e9),
        ),
        "dropout_rate": lambda: ValueSpec(
            finite_floats(min_value=0.0, max_value=1.0, exclude_max=True),
            st.sampled_from(["1", "1.0", "1.5", "-0.01", "nan", "inf", "x", ""]),
        ),
        "sweep_digest": lambda: ValueSpec(
            st.from_regex(f"[0-9a-f]{{{SWEEP_DIGEST_HEX}}}", fullmatch=True),
            st.sampled_from(
                ["", "0" * (SWEEP_DIGEST_HEX - 1), "0" * (SWEEP_DIGEST_HEX + 1)]
                + [c * SWEEP_DIGEST_HEX for c in "Ag"]
                + ["0x" + "0" * (SWEEP_DIGEST_HEX - 2)]
            ),
        ),
        "finite_float": lambda: ValueSpec(
            finite_floats(min_value=-1e6, max_value=1e6),
            st.sampled_from(["nan", "inf", "-inf", "x", ""]),
        ),
        "nonnegative_int": lambda: ValueSpec(
            st.integers(0, 99).map(str),
            st.sampled_from(["-1", "x", "1.5", "", "1e3"]),
        ),
        "audit_request": lambda: ValueSpec(
            st.one_of(st.integers(0, 99).map(str), st.sampled_from(["all", "ALL", "All"])),
            st.sampled_from(["-1", "x", "1.5", "", "1e3", "al", "all5", "none"]),
        ),
        "ensemble_id": lambda: ValueSpec(
            st.from_regex(r"[a-z0-9][a-z0-9_-]{0,40}", fullmatch=True),
            st.sampled_from(["", "Upper", "-lead", "a b", "a.b", "x" * 60, "_x"]),
        ),
        "encoder_list": lambda: ValueSpec(
            listed(st.lists(st.sampled_from(producible()), min_size=1, unique=True)),
            st.sampled_from(
                ["libx999", "unknown", "x264", "libx264,libx264", "libx264 libx264", "", "libx264,"]
            ),
        ),
        "cq_list": lambda: ValueSpec(
            listed(st.lists(st.integers(0, 63), min_size=1, max_size=5, unique=True)),
            st.sampled_from(["x", "1.5", "1,1", "1 1", "-1", "", "1,,2"]),
        ),
        # frreg-sweep's grid axes: lists of the scalar types above
        "positive_float_list": lambda: ValueSpec(
            listed(st.lists(finite_floats(min_value=1e-6, max_value=1e3), min_size=1, max_size=4)),
            st.sampled_from(["0", "-1", "x", "", "1,,2", "nan", "1,-1"]),
        ),
        "nonnegative_float_list": lambda: ValueSpec(
            listed(st.lists(finite_floats(min_value=0.0, max_value=1e3), min_size=1, max_size=4)),
            st.sampled_from(["-0.1", "x", "", "1,,2", "inf", "0,-1"]),
        ),
        "positive_int_list": lambda: ValueSpec(
            listed(st.lists(st.integers(1, 4096), min_size=1, max_size=4)),
            st.sampled_from(["0", "-1", "x", "1.5", "", "1,,2"]),
        ),
        "dropout_rate_list": lambda: ValueSpec(
            listed(
                st.lists(
                    finite_floats(min_value=0.0, max_value=1.0, exclude_max=True),
                    min_size=1,
                    max_size=4,
                )
            ),
            st.sampled_from(["1", "1.5", "-0.01", "x", "", "0,,0.1", "0,1"]),
        ),
        # CORPUS_FLAG_TYPES
        "preset": lambda: ValueSpec(
            presets(), st.sampled_from(["libx264", "libx264=turbo", "bogus=fast", "=fast"])
        ),
        "corpus_positive_int": lambda: ValueSpec(
            positive_ints(), st.sampled_from(["0", "-3", "x", ""])
        ),
        "corpus_positive_float": lambda: ValueSpec(
            finite_floats(min_value=0.0, exclude_min=True),
            st.sampled_from(["0", "-1", "x", "nan"]),
        ),
        "size": lambda: ValueSpec(
            st.tuples(even, even).map(lambda wh: f"{wh[0]}x{wh[1]}"),
            st.sampled_from(["31x32", "33x32", "320", "axb", "30x30", "320x"]),
        ),
        "pix_fmt": lambda: ValueSpec(pix_fmts(), st.sampled_from(["rgb24x", "yuv", "YUV420P", ""])),
        "framerate": lambda: ValueSpec(
            st.integers(1, 240).map(str)
            | st.tuples(st.integers(1, 10**5), st.integers(1, 10**4)).map(
                lambda f: f"{f[0]}/{f[1]}"
            )
            | st.sampled_from(["29.97", "23.976", "59.94"]),
            st.sampled_from(["0", "-24", "abc", "1/0", "0/5", ""]),
        ),
        "builtin_id": lambda: ValueSpec(builtin_ids(), st.sampled_from(["nosuch", ""])),
    }


def _spec(name: str) -> Callable[[], ValueSpec]:
    return lambda: _value_specs()[name]()


def corpus_flag_types(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Flag -> qualified name of the frreg ``type=`` callable the parser attaches to it.

    Flags of :data:`CORPUS_FLAG_TYPES` that are missing, or use a type that is
    not frreg's (``str``, ``Path``), are left out.
    """
    found = {}
    for flag in CORPUS_FLAG_TYPES:
        action = parser._option_string_actions.get(flag)
        key = type_name(action.type) if action is not None else None
        if key is not None and key.startswith("frreg."):
            found[flag] = key
    return found


def register_frreg_types() -> None:
    """Register the formats and value strategies of frreg's ``type=`` callables.

    Runs once, before :mod:`argvcontract.values` is first consulted (it builds
    frreg-corpus's parser to find that CLI's callables). Registrations made before it
    (``register_type``) are kept. Safe to call again.
    """
    for key, (spec, fmt) in OPTION_TYPES.items():
        register_spec_factory(key, _spec(spec), replace=False)
        if fmt is not None:
            register_format(key, fmt)
    if importlib.util.find_spec(CORPUS_MODULE) is None:
        return
    parser = Cli.from_module(CORPUS_MODULE).parser()
    for flag, key in corpus_flag_types(parser).items():
        spec, fmt = CORPUS_FLAG_TYPES[flag]
        if key in OPTION_TYPES:
            continue  # merged into a shared type: that entry holds
        register_spec_factory(key, _spec(spec), replace=False)
        if fmt is not None:
            register_format(key, fmt)


register_loader(register_frreg_types)


__all__ = [
    "CLI_MODULES",
    "CORPUS_FLAG_TYPES",
    "OPTION_TYPES",
    "PLUGIN_CLI_NAME",
    "corpus_flag_types",
    "frreg_clis",
    "frreg_plugin",
    "plugin_cli",
    "register_frreg_types",
]
