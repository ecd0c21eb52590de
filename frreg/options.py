"""Option definitions shared by the CLIs and the pytest plugin.

Each option is declared once, as an :class:`Option`, and added to a parser by
:func:`add_options` with whatever ``add`` callable the caller has
(``ArgumentParser.add_argument`` or pytest's ``OptionGroup.addoption``) and a
prefix (``""`` for the CLIs, ``"frreg-"`` for the plugin). Types and defaults
therefore cannot drift between ``frreg-train --epochs`` and
``pytest --frreg-epochs``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from frreg.producer.encoders import CQ_BOUNDS, ENCODER_SPECS, PRODUCIBLE_ENCODERS
from frreg.schema import (
    DEFAULT_AUDIT_JOBS,
    DEFAULT_BATCH_SIZE,
    DEFAULT_CORPUS,
    DEFAULT_ENSEMBLE_ID,
    DEFAULT_EPOCHS,
    DEFAULT_LR,
    DEFAULT_MODEL_LICENSE,
    DEFAULT_OUT_DIR,
    DEFAULT_SEEDS,
    DEFAULT_WEIGHT_DECAY,
    DEMO_CQS,
    DEMO_ENCODERS,
    ENSEMBLE_SEEDS,
    EVIDENCE_BASELINE_DROP_MAX,
    EVIDENCE_BIAS_MAX,
    EVIDENCE_COVERAGE_MIN,
    EVIDENCE_MARGIN_MIN,
    MEAN_PLCC_MIN,
    NUM_CODECS,
    PER_SEED_PLCC_MIN,
    PLCC_SPREAD_MAX,
)

# --------------------------------------------------------------------------
# argparse ``type=`` callables. Each raises ArgumentTypeError quoting the value.
# --------------------------------------------------------------------------


def seed_list(text: str) -> tuple[int, ...]:
    """Parse ``"0,1,2"`` into ``(0, 1, 2)``: non-negative integers, no repeats."""
    parts = [p.strip() for p in str(text).split(",")]
    if not text or any(p == "" for p in parts):
        raise argparse.ArgumentTypeError(
            f"invalid seed list {text!r}: "
            "expected comma-separated non-negative integers, e.g. 0,1,2"
        )
    seeds = []
    for part in parts:
        if not part.isdigit():
            raise argparse.ArgumentTypeError(
                f"invalid seed list {text!r}: {part!r} is not a non-negative integer"
            )
        seeds.append(int(part))
    dupes = sorted({s for s in seeds if seeds.count(s) > 1})
    if dupes:
        raise argparse.ArgumentTypeError(
            f"invalid seed list {text!r}: seed {dupes[0]} is listed twice"
        )
    return tuple(seeds)


def _int_at_least(text: str, minimum: int) -> int:
    try:
        value = int(str(text), 10)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise argparse.ArgumentTypeError(
            f"invalid value {text!r}: expected an integer >= {minimum}"
        )
    return value


def nonnegative_int(text: str) -> int:
    """An integer >= 0."""
    return _int_at_least(text, 0)


def positive_int(text: str) -> int:
    """An integer >= 1."""
    return _int_at_least(text, 1)


def _finite_float(text: str, what: str) -> float:
    try:
        value = float(str(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected {what}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected {what}")
    return value


def positive_float(text: str) -> float:
    """A finite float > 0."""
    value = _finite_float(text, "a finite number > 0")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected a finite number > 0")
    return value


def nonnegative_float(text: str) -> float:
    """A finite float >= 0."""
    value = _finite_float(text, "a finite number >= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected a finite number >= 0")
    return value


def _unit_interval(text: str, what: str) -> float:
    value = _finite_float(text, f"{what} in [0, 1]")
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected {what} in [0, 1]")
    return value


def finite_float(text: str) -> float:
    """Any finite number."""
    return _finite_float(text, "a finite number")


def unit_interval(text: str) -> float:
    """A share in [0, 1]."""
    return _unit_interval(text, "a number")


def boolean(text: str) -> bool:
    """``true``/``false`` (also ``1``/``0``, ``yes``/``no``, ``on``/``off``), for ini keys."""
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected true or false")


def plcc_threshold(text: str) -> float:
    """A minimum PLCC in [0, 1]: a gate that admits uncorrelated models is no gate."""
    return _unit_interval(text, "a PLCC threshold")


def spread_threshold(text: str) -> float:
    """A maximum spread of per-seed mean PLCCs, in [0, 1] (PLCCs at or above 0 span at most 1)."""
    return _unit_interval(text, "a spread")


# --------------------------------------------------------------------------
# Declarations
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    """One option, declared once for every parser that offers it."""

    name: str
    dest: str
    help: str
    default: Any = None
    type: Callable[[str], Any] | None = None
    metavar: str | None = None
    action: str | None = None
    choices: tuple[str, ...] | None = None
    #: How the help text shows the default, when ``str(default)`` would not read well.
    shown_default: str | None = None
    nargs: int | str | None = None
    required: bool = False
    #: ``False`` when ``help`` already says what the default is.
    show_default: bool = True

    def flag(self, prefix: str = "") -> str:
        return f"--{prefix}{self.name}"

    def kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"dest": self.dest, "default": self.default}
        if self.required:
            kw["required"] = True
        if self.action:
            kw["action"] = self.action
        if self.action in _FLAG_ACTIONS:
            kw["help"] = self.help
            return kw
        if not self.show_default:
            kw["help"] = self.help
        else:
            if self.shown_default is not None:
                shown = self.shown_default
            elif isinstance(self.default, tuple):
                shown = ",".join(str(v) for v in self.default)
            else:
                shown = self.default
            kw["help"] = f"{self.help} (default: {shown})"
        if self.type is not None:
            kw["type"] = self.type
        if self.metavar:
            kw["metavar"] = self.metavar
        if self.choices:
            kw["choices"] = self.choices
        if self.nargs is not None:
            kw["nargs"] = self.nargs
        return kw


#: Actions that take no value: no type, metavar or default in their help.
_FLAG_ACTIONS = ("store_true", "store_false", "store_const", "append_const", "count")


@dataclass(frozen=True)
class OptionGroup:
    """Options shown under one help heading; ``exclusive`` ones are mutually exclusive."""

    title: str
    options: tuple[Option, ...] = ()
    #: Added first, in one mutually exclusive group.
    exclusive: tuple[Option, ...] = ()
    #: Whether exactly one of ``exclusive`` must be given.
    exclusive_required: bool = False

    def add_to(self, parser: argparse.ArgumentParser, prefix: str = "") -> None:
        """Add the group (and its exclusive set) to an argparse parser."""
        group = parser.add_argument_group(self.title)
        if self.exclusive:
            which = group.add_mutually_exclusive_group(required=self.exclusive_required)
            add_options(which.add_argument, self.exclusive, prefix)
        add_options(group.add_argument, self.options, prefix)


SEEDS = Option(
    "seeds",
    "seeds",
    "comma-separated training seeds, one model per seed and fold",
    default=DEFAULT_SEEDS,
    type=seed_list,
    metavar="N[,N...]",
)
EPOCHS = Option("epochs", "epochs", "training epochs per fold", DEFAULT_EPOCHS, positive_int, "N")
BATCH_SIZE = Option(
    "batch-size", "batch_size", "minibatch size", DEFAULT_BATCH_SIZE, positive_int, "N"
)
LR = Option("lr", "lr", "Adam learning rate", DEFAULT_LR, positive_float, "LR")
WEIGHT_DECAY = Option(
    "weight-decay",
    "weight_decay",
    "Adam weight decay (L2)",
    DEFAULT_WEIGHT_DECAY,
    nonnegative_float,
    "WD",
)
NUM_CODECS_OPT = Option(
    "num-codecs",
    "num_codecs",
    "width of the codec block (encoder one-hot + preset_norm + crf_norm); only "
    f"{NUM_CODECS} is supported by encoder vocabulary v2",
    NUM_CODECS,
    positive_int,
    "N",
)

#: The training settings shared by ``frreg-train`` and ``pytest --frreg-*``.
TRAINING_OPTIONS = (EPOCHS, BATCH_SIZE, LR, WEIGHT_DECAY, NUM_CODECS_OPT)

CORPUS = Option(
    "corpus", "corpus", "Phase A per-frame corpus (JSONL)", DEFAULT_CORPUS, None, "PATH"
)
OUT_DIR = Option(
    "out-dir",
    "out_dir",
    "directory for loso_seed{N}.json and predictions",
    DEFAULT_OUT_DIR,
    None,
    "DIR",
)

GATE_SEEDS = Option(
    "seeds", "seeds", "seeds the ensemble must contain", ENSEMBLE_SEEDS, seed_list, "N[,N...]"
)
MEAN_PLCC = Option(
    "mean-plcc-threshold",
    "mean_plcc_threshold",
    "minimum mean over seeds of the per-seed mean PLCC, in [0, 1]",
    MEAN_PLCC_MIN,
    plcc_threshold,
    "X",
)
SPREAD = Option(
    "plcc-spread-max",
    "plcc_spread_max",
    "maximum max-min spread of per-seed mean PLCC, in [0, 1]",
    PLCC_SPREAD_MAX,
    spread_threshold,
    "X",
)
PER_SEED = Option(
    "per-seed-min",
    "per_seed_min",
    "minimum mean PLCC of every seed, in [0, 1]",
    PER_SEED_PLCC_MIN,
    plcc_threshold,
    "X",
)
FOLD_MIN = Option(
    "fold-min",
    "fold_min",
    "also fail any fold whose held-out PLCC is below this, in [0, 1]",
    None,
    plcc_threshold,
    "X",
    shown_default="off",
)

STRICT = Option(
    "strict",
    "strict",
    "enforce frreg's ensemble evidence (OLS margin, bias, conformal coverage, pooled PLCC, "
    "baseline drop): a failed evidence check HOLDs instead of warning",
    False,
    boolean,
    action="store_true",
)
MARGIN_MIN = Option(
    "ols-margin-min",
    "margin_min",
    "evidence: on every fold the ensemble's PLCC minus the OLS baseline's is at least this",
    EVIDENCE_MARGIN_MIN,
    finite_float,
    "X",
)
BIAS_MAX = Option(
    "bias-max",
    "bias_max",
    "evidence: on every held-out source |mean(y - ensemble)| is at most this many VMAF points",
    EVIDENCE_BIAS_MAX,
    nonnegative_float,
    "VMAF",
)
COVERAGE_MIN = Option(
    "coverage-min",
    "coverage_min",
    "evidence: on every held-out source the conformal interval covers at least this share",
    EVIDENCE_COVERAGE_MIN,
    unit_interval,
    "X",
)
BASELINE_DROP_MAX = Option(
    "baseline-drop-max",
    "baseline_drop_max",
    "evidence: with --baseline, no source's ensemble PLCC drops by more than this",
    EVIDENCE_BASELINE_DROP_MAX,
    unit_interval,
    "X",
)
BASELINE = Option(
    "baseline",
    "baseline",
    "a previous verdict (PROMOTE.json) to compare each source's ensemble PLCC with",
    None,
    metavar="VERDICT",
    shown_default="none",
)

#: Gate thresholds shared by ``frreg-gate``, ``frreg-validate`` and the plugin:
#: the ADR-0303 gate's, then frreg's evidence (enforced with --strict).
THRESHOLD_OPTIONS = (
    MEAN_PLCC,
    SPREAD,
    PER_SEED,
    FOLD_MIN,
    STRICT,
    MARGIN_MIN,
    BIAS_MAX,
    COVERAGE_MIN,
    BASELINE,
    BASELINE_DROP_MAX,
)

AUDIT = Option(
    "audit",
    "audit",
    "retrain this many randomly chosen (seed, fold) jobs with the recorded recipe and "
    "require the recorded predictions (0: no audit)",
    DEFAULT_AUDIT_JOBS,
    nonnegative_int,
    "K",
)
ACCEPT_UNVERIFIED = Option(
    "accept-unverified",
    "accept_unverified",
    "judge seed files whose numbers cannot be recomputed (the fork's artifacts: no "
    "predictions, no corpus digest) on what they say; such a verdict says so in its "
    "first field and frreg-export refuses it",
    False,
    action="store_true",
)
GATE_CORPUS_CHECK = Option(
    "corpus",
    "corpus",
    "corpus the seeds were trained on; its sha256 must match every seed, and every "
    "number is recomputed from it",
    None,
    metavar="PATH",
    shown_default="the path the seed artifacts recorded",
)

ENGINES = ("batched", "reference")
ENGINE = Option(
    "engine",
    "engine",
    "batched: every fold and seed in one batched run (fast); reference: the "
    "straightforward per-fold DataLoader loop, for cross-checking",
    "batched",
    choices=ENGINES,
)
DEVICE = Option(
    "device", "device", "torch device; cuda only when available", "cpu", choices=("cpu", "cuda")
)

# ==========================================================================
# Corpus producer (frreg-corpus, and the plugin's --frreg-sources/--frreg-encoders/--frreg-cqs)
# ==========================================================================
# One check per kind of value (an encoder, a cq, a preset, ...), shared by
# frreg-corpus's repeatable ``--encoder E E`` form and the plugin's comma
# lists. Producer vocabularies that are not needed to declare the plugin's
# options are imported inside functions, so ``pytest --help`` stays cheap.

_ENCODER_CHOICES = f"choose from {', '.join(PRODUCIBLE_ENCODERS)}"


def producible_encoder(text: str) -> str:
    """One encoder the producer can drive (the vocabulary minus ``unknown``, and the
    VAAPI and VideoToolbox encoders, whose rows train the ``unknown`` slot)."""
    if text not in PRODUCIBLE_ENCODERS:
        raise argparse.ArgumentTypeError(f"invalid encoder {text!r}; {_ENCODER_CHOICES}")
    return text


def _non_negative_int(text: str) -> int | None:
    digits = text.strip()
    return int(digits) if digits.isdecimal() else None


def cq_value(text: str) -> int:
    """A non-negative integer quality value (its range per encoder is checked later)."""
    cq = _non_negative_int(text)
    if cq is None:
        lo, hi = CQ_BOUNDS
        raise argparse.ArgumentTypeError(
            f"invalid cq {text!r}; expected an integer in {lo}..{hi} (range depends on the encoder)"
        )
    return cq


def encoder_preset(text: str) -> tuple[str, str]:
    """``ENCODER=PRESET`` with the preset on that encoder's ladder."""
    encoder, sep, preset = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(
            f"invalid preset {text!r}; expected ENCODER=VALUE, e.g. libx264=medium"
        )
    ladder = ENCODER_SPECS[producible_encoder(encoder)].ladder
    if not ladder:
        raise argparse.ArgumentTypeError(f"invalid preset {text!r}: {encoder} has no speed preset")
    if preset not in ladder:
        raise argparse.ArgumentTypeError(
            f"invalid preset {preset!r} for {encoder}; choose from {', '.join(ladder)}"
        )
    return encoder, preset


def encoder_list(text: str) -> tuple[str, ...]:
    """Parse ``"libx264,libx265"``: producible encoders, no repeats."""
    names = [p.strip() for p in str(text).split(",")]
    for name in names:
        try:
            producible_encoder(name)
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(
                f"invalid encoder {name!r} in {text!r}: {_ENCODER_CHOICES}"
            ) from None
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(
            f"invalid encoder list {text!r}: an encoder is listed twice"
        )
    return tuple(names)


def cq_list(text: str) -> tuple[int, ...]:
    """Parse ``"22,30,38"``: non-negative integer quality settings, no repeats."""
    values = [_non_negative_int(p) for p in str(text).split(",")]
    if any(v is None for v in values):
        raise argparse.ArgumentTypeError(
            f"invalid cq list {text!r}: expected comma-separated non-negative integers, e.g. 22,30,38"
        )
    cqs = tuple(v for v in values if v is not None)
    if len(set(cqs)) != len(cqs):
        raise argparse.ArgumentTypeError(f"invalid cq list {text!r}: a value is listed twice")
    return cqs


def frame_size(text: str) -> tuple[int, int]:
    """``WxH`` with both even and >= 32 (a built-in source's size)."""
    width, sep, height = text.lower().partition("x")
    if sep and width.isdigit() and height.isdigit():
        w, h = int(width), int(height)
        if w >= 32 and h >= 32 and w % 2 == 0 and h % 2 == 0:
            return w, h
    raise argparse.ArgumentTypeError(
        f"invalid size {text!r}; expected WxH, both even and at least 32, e.g. 320x180"
    )


def raw_pix_fmt(text: str) -> str:
    """A raw pixel format the producer can size."""
    from frreg.producer.sources import RAW_PIX_FMTS

    if text not in RAW_PIX_FMTS:
        raise argparse.ArgumentTypeError(
            f"invalid pix_fmt {text!r}; choose from {', '.join(RAW_PIX_FMTS)}"
        )
    return text


def frame_rate(text: str) -> str:
    """A positive rate: ``24``, ``29.97`` or ``30000/1001`` (kept as text)."""
    from frreg.errors import InputError
    from frreg.producer.sources import parse_framerate

    try:
        parse_framerate(text)
    except InputError:
        raise argparse.ArgumentTypeError(
            f"invalid framerate {text!r}; expected a positive number or N/D, e.g. 30000/1001"
        ) from None
    return text


def builtin_id(text: str) -> str:
    """One of the built-in source ids."""
    from frreg.producer.sources import BUILTIN_SOURCE_IDS

    if text not in BUILTIN_SOURCE_IDS:
        raise argparse.ArgumentTypeError(
            f"invalid built-in source {text!r}; choose from {', '.join(BUILTIN_SOURCE_IDS)}"
        )
    return text


GATE_SOURCES = Option(
    "sources",
    "sources",
    "source manifest (TOML or JSON) used to produce a missing corpus",
    None,
    metavar="MANIFEST",
    shown_default="the built-in source set",
)
GATE_ENCODERS = Option(
    "encoders",
    "encoders",
    # The same set as frreg-corpus --encoder and a manifest's encoders: one
    # check for every front end, and the trainer warns how many rows it maps.
    "encoders used to produce a missing corpus (those outside the trainer's vocabulary, "
    "the VAAPI and VideoToolbox ones, train its 'unknown' slot)",
    None,
    encoder_list,
    "E[,E...]",
    shown_default=f"the manifest's, else {','.join(DEMO_ENCODERS)}",
)
GATE_CQS = Option(
    "cqs",
    "cqs",
    "quality grid used to produce a missing corpus",
    None,
    cq_list,
    "N[,N...]",
    shown_default=f"the manifest's, else {','.join(map(str, DEMO_CQS))}",
)


#: Shared by frreg-corpus (--scheduler) and the plugin (--frreg-scheduler, ini frreg_scheduler).
SCHEDULER = Option(
    "scheduler",
    "scheduler",
    "run the corpus cells on the Dask cluster whose scheduler listens at ADDRESS "
    "(tcp://HOST:PORT; the cluster extra); the parts, manifest and corpus are still written "
    "here (default: a local process pool)",
    None,
    metavar="ADDRESS",
    show_default=False,
)


def corpus_option_groups() -> tuple[OptionGroup, ...]:
    """frreg-corpus's options, by help group; built on call, as some help reads the machine.

    Every help text states its own default (``show_default=False``), as the
    defaults here are rules ("the manifest's, else ...") rather than values.
    """
    from frreg.producer.encoders import DEFAULT_PRESETS, DEFAULT_QSV_DEVICE, DEFAULT_VAAPI_DEVICE
    from frreg.producer.ffmpeg import FFMPEG_ENV
    from frreg.producer.runner import default_jobs
    from frreg.producer.sources import (
        BUILTIN_SECONDS,
        BUILTIN_SIZE,
        BUILTIN_SOURCE_IDS,
        RAW_DEFAULTS,
        default_cache_dir,
    )

    def opt(name: str, dest: str, help: str, **kw: Any) -> Option:
        return Option(name, dest, help, show_default=False, **kw)

    software_presets = ", ".join(
        f"{e}={p}" for e, p in DEFAULT_PRESETS.items() if ENCODER_SPECS[e].hardware is None
    )
    sources = OptionGroup(
        "sources (exactly one of --source, --sources, --builtin)",
        exclusive=(
            opt(
                "source",
                "source",
                "one source file: raw YUV (needs --width/--height; --pix-fmt/--framerate "
                "have defaults) or any container ffmpeg reads (geometry probed)",
                type=Path,
                metavar="PATH",
            ),
            opt(
                "sources",
                "sources",
                "TOML or JSON manifest listing sources (and optionally encoders, cqs, presets)",
                type=Path,
                metavar="MANIFEST",
            ),
            opt(
                "builtin",
                "builtin",
                "built-in sources, made on demand: the ten lavfi generators, or the ids given "
                f"({', '.join(BUILTIN_SOURCE_IDS)}; the *_natural clips need the natural extra)",
                type=builtin_id,
                metavar="ID",
                nargs="*",
            ),
        ),
        exclusive_required=True,
        options=(
            opt("src-id", "src_id", "src id for --source (default: file stem)", metavar="ID"),
            opt("width", "width", "raw --source width", type=positive_int, metavar="W"),
            opt("height", "height", "raw --source height", type=positive_int, metavar="H"),
            opt(
                "pix-fmt",
                "pix_fmt",
                f"raw --source pixel format (default: {RAW_DEFAULTS['pix_fmt']}, as the "
                "fork's producer, with a warning)",
                type=raw_pix_fmt,
                metavar="F",
            ),
            opt(
                "framerate",
                "framerate",
                "raw --source frame rate, e.g. 24, 25.0, 30000/1001 "
                f"(default: {RAW_DEFAULTS['framerate']}, as the fork's producer, with a warning)",
                type=frame_rate,
                metavar="R",
            ),
            opt(
                "frames",
                "frames",
                "use only the first N frames of each source (built-ins are generated that "
                f"long); default: all (built-ins: {BUILTIN_SECONDS} s)",
                type=positive_int,
                metavar="N",
            ),
            opt(
                "builtin-size",
                "builtin_size",
                f"built-in source size (default: {BUILTIN_SIZE[0]}x{BUILTIN_SIZE[1]})",
                default=BUILTIN_SIZE,
                type=frame_size,
                metavar="WxH",
            ),
            opt(
                "cache-dir",
                "cache_dir",
                f"where built-in sources are cached (default: {default_cache_dir() / 'sources'})",
                type=Path,
                metavar="DIR",
            ),
        ),
    )
    grid = OptionGroup(
        "grid",
        options=(
            opt(
                "encoder",
                "encoders",
                f"encoder(s), repeatable ({', '.join(PRODUCIBLE_ENCODERS)}); "
                f"default: the manifest's, else {' '.join(DEMO_ENCODERS)}",
                type=producible_encoder,
                metavar="E",
                action="extend",
                nargs="+",
            ),
            opt(
                "cq",
                "cqs",
                "quality value(s), repeatable: -crf for x264/x265/svtav1/vp9, -qp for vvenc "
                "and VAAPI, -cq for NVENC, -global_quality for QSV, -q:v 100-2*N (N < 50) "
                "or N for VideoToolbox; "
                f"default: the manifest's, else {' '.join(map(str, DEMO_CQS))}",
                type=cq_value,
                metavar="N",
                action="extend",
                nargs="+",
            ),
            opt(
                "preset",
                "presets",
                f"speed preset override, repeatable (default: {software_presets})",
                type=encoder_preset,
                metavar="ENCODER=VALUE",
                action="append",
            ),
        ),
    )
    hardware = OptionGroup(
        "hardware encoders",
        options=(
            opt(
                "qsv-device",
                "qsv_device",
                "render node QSV cells open (-init_hw_device qsv:hw,child_device=PATH) "
                f"(default: {DEFAULT_QSV_DEVICE})",
                default=DEFAULT_QSV_DEVICE,
                metavar="PATH",
            ),
            opt(
                "vaapi-device",
                "vaapi_device",
                "render node VAAPI cells open (-init_hw_device vaapi=va:PATH) "
                f"(default: {DEFAULT_VAAPI_DEVICE})",
                default=DEFAULT_VAAPI_DEVICE,
                metavar="PATH",
            ),
        ),
    )
    run = OptionGroup(
        "output and run",
        options=(
            opt("out", "out", "corpus JSONL to write", type=Path, metavar="PATH", required=True),
            opt(
                "jobs",
                "jobs",
                f"cells run side by side (default: one per core, here {default_jobs()})",
                type=positive_int,
                metavar="N",
            ),
            opt(
                "vmaf-threads",
                "vmaf_threads",
                "libvmaf threads per cell (default: cores / jobs, at least 1)",
                type=positive_int,
                metavar="N",
            ),
            opt(
                "ffmpeg",
                "ffmpeg",
                f"ffmpeg binary with libvmaf (default: ${FFMPEG_ENV}, else imageio-ffmpeg's)",
                metavar="PATH",
            ),
            opt(
                "vmaf-bin",
                "vmaf_bin",
                "the fork's standalone libvmaf binary: accepted for its argv, must be a file, "
                "never run (every cell is scored by ffmpeg's libvmaf filter, one libvmaf "
                "build per corpus); the manifest records it (default: none)",
                type=Path,
                metavar="PATH",
            ),
            opt(
                "timeout",
                "timeout",
                "limit for each ffmpeg call (default: max(300, 2 s per frame per 720p of pixels))",
                type=positive_float,
                metavar="SECONDS",
            ),
            opt(
                "allow-missing",
                "allow_missing",
                "write the corpus even if cells failed, recording the gaps in the manifest "
                "(default: failed cells leave no corpus and exit 1)",
                action="store_true",
                default=False,
            ),
            SCHEDULER,
            opt(
                "allow-mixed-libvmaf",
                "allow_mixed_libvmaf",
                "accept cells scored on workers with different libvmaf builds (their features "
                "are not comparable; the corpus otherwise refuses to load) (default: off)",
                action="store_true",
                default=False,
            ),
            opt(
                "progress",
                "progress",
                "progress on stderr: a live line on a terminal, occasional lines otherwise "
                "(default: auto)",
                default="auto",
                choices=("auto", "tty", "plain", "none"),
            ),
        ),
    )
    return sources, grid, hardware, run


# ==========================================================================
# End of the corpus producer section
# ==========================================================================

# ==========================================================================
# Export (frreg-export, and the plugin's --frreg-export)
# ==========================================================================


def ensemble_id(text: str) -> str:
    """An ensemble id its member ids (``<id>_seed<N>``) can carry in the fork's registry."""
    import re

    from frreg.schema import REGISTRY_ID_MAX, REGISTRY_ID_PATTERN

    value = str(text)
    if not re.match(REGISTRY_ID_PATTERN, value) or len(value) + len("_seed99") > REGISTRY_ID_MAX:
        raise argparse.ArgumentTypeError(
            f"invalid ensemble id {text!r}: expected lowercase letters, digits, '_' and '-' "
            f"({REGISTRY_ID_PATTERN}), short enough for '<id>_seed<N>' to fit "
            f"{REGISTRY_ID_MAX} characters"
        )
    return value


EXPORT_VERDICT = Option(
    "verdict",
    "verdict",
    "the PROMOTE.json to export (a LOSO directory holding one also works)",
    None,
    metavar="PATH",
    shown_default="required unless --check",
)
EXPORT_CORPUS = Option(
    "corpus",
    "corpus",
    "the corpus the verdict judged; its sha256 must be the verdict's",
    None,
    metavar="PATH",
    shown_default="required unless --check",
)
EXPORT_OUT_DIR = Option(
    "out-dir",
    "out_dir",
    "where the members, their sidecars and the ensemble manifest are written",
    "model/tiny",
    metavar="DIR",
)
ENSEMBLE_ID = Option(
    "ensemble-id",
    "ensemble_id",
    "ensemble id; members are <id>_seed<N>",
    DEFAULT_ENSEMBLE_ID,
    ensemble_id,
    "ID",
)
EXPORT_REGISTRY = Option(
    "registry",
    "registry",
    "model registry (registry.json) to flip: one non-smoke entry per member, written last",
    None,
    metavar="PATH",
    shown_default="none",
)
EXPORT_FORCE = Option(
    "force",
    "force",
    "replace an existing model set of this ensemble id",
    False,
    action="store_true",
)
EXPORT_LICENSE = Option(
    "license",
    "license_id",
    "SPDX license of the registry entries",
    None,
    metavar="SPDX",
    shown_default=f"the replaced entry's, else {DEFAULT_MODEL_LICENSE}",
)
EXPORT_LICENSE_URL = Option(
    "license-url",
    "license_url",
    "license URL of the registry entries",
    None,
    metavar="URL",
    shown_default="the replaced entry's, else none",
)
EXPORT_DEVICE = Option(
    "device",
    "device",
    "torch device for the production fit",
    None,
    choices=("cpu", "cuda"),
    shown_default="the device the verdict's seeds were trained on",
)
EXPORT_CHECK = Option(
    "check",
    "check",
    "re-verify the exported set(s) in DIR instead of exporting (digests, manifest, "
    "graph contract, onnxruntime on the stored probe rows, the registry if any)",
    None,
    metavar="DIR",
    shown_default="off",
)
EXPORT_OPTIONS = (
    EXPORT_VERDICT,
    EXPORT_CORPUS,
    EXPORT_OUT_DIR,
    ENSEMBLE_ID,
    EXPORT_REGISTRY,
    EXPORT_FORCE,
    EXPORT_LICENSE,
    EXPORT_LICENSE_URL,
    EXPORT_DEVICE,
    EXPORT_CHECK,
)
#: The plugin's export options: --frreg-export=DIR turns the export on.
PLUGIN_EXPORT = Option(
    "export",
    "export_dir",
    "after the controller wrote PROMOTE, export the ensemble into DIR (as frreg-export does)",
    None,
    metavar="DIR",
    shown_default="off",
)
PLUGIN_EXPORT_REGISTRY = Option(
    "export-registry",
    "export_registry",
    EXPORT_REGISTRY.help,
    None,
    metavar="PATH",
    shown_default="none",
)
PLUGIN_EXPORT_FORCE = Option(
    "export-force", "export_force", EXPORT_FORCE.help, False, boolean, action="store_true"
)

# Options only the pytest plugin has (prefixed --frreg-, ini frreg_<dest>).
GATE_CORPUS = Option(
    "corpus",
    "corpus",
    "Phase A corpus (JSONL); turns the gate on; produced from --frreg-sources if missing",
    None,
    metavar="PATH",
    shown_default="off",
)
GATE_OUT_DIR = Option(
    "out-dir",
    "out_dir",
    "where loso_seed{N}.json, the verdict and the report land",
    "runs/frreg-gate",
    metavar="DIR",
)
GATE_CACHE_DIR = Option(
    "cache-dir",
    "cache_dir",
    "trained-seed cache shared by xdist workers and concurrent sessions",
    "runs/frreg-cache",
    metavar="DIR",
)
PLUGIN_AUDIT = Option(
    "audit",
    "audit",
    "retrain this many randomly chosen (seed, fold) jobs before writing the verdict",
    None,
    nonnegative_int,
    "K",
    shown_default=f"{DEFAULT_AUDIT_JOBS} unless this session trained every seed itself, else 0",
)

#: Every ``--frreg-*`` option, in help order.
PLUGIN_OPTIONS = (
    GATE_CORPUS,
    GATE_SOURCES,
    GATE_ENCODERS,
    GATE_CQS,
    SCHEDULER,
    SEEDS,
    *TRAINING_OPTIONS,
    ENGINE,
    DEVICE,
    GATE_OUT_DIR,
    GATE_CACHE_DIR,
    *THRESHOLD_OPTIONS,
    PLUGIN_AUDIT,
    PLUGIN_EXPORT,
    ENSEMBLE_ID,
    PLUGIN_EXPORT_REGISTRY,
    PLUGIN_EXPORT_FORCE,
)


def add_options(add: Callable[..., Any], options: tuple[Option, ...], prefix: str = "") -> None:
    """Add ``options`` through ``add`` (``add_argument`` or ``addoption``) with a flag prefix."""
    for opt in options:
        add(opt.flag(prefix), **opt.kwargs())


class StrictParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that refuses abbreviated long options.

    argparse's default lets ``--out`` silently bind ``--out-dir``; that is how
    a caller can drift from a CLI without anyone noticing. Every frreg parser
    is built from this class so callers must spell flags out in full.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
