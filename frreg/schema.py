"""The one home of every frreg constant.

Feature names and their column order, the encoder vocabulary and its version,
the codec-block layout, the gate thresholds, the ensemble seeds, the training
recipe defaults and the exit codes live here and nowhere else. CLI
``choices=``, validation, Hypothesis strategies and test ids read from this
module; a second copy of any of these numbers is a bug.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Final, Literal

# --------------------------------------------------------------------------
# Corpus schema
# --------------------------------------------------------------------------

#: Version of the per-frame corpus row schema and of every artifact frreg writes.
SCHEMA_VERSION: Final = 1
#: Version of ``loso_seed{N}.json``. 2: ``std_plcc`` is the sample std (ddof=1) and
#: ``wall_time_s`` the seed's own time, as in the fork; ``run_wall_time_s`` added.
SEED_RECORD_VERSION: Final = 2

#: The six canonical libvmaf features, in model input column order.
CANONICAL_6: Final = (
    "adm2",
    "vif_scale0",
    "vif_scale1",
    "vif_scale2",
    "vif_scale3",
    "motion2",
)

#: The regression target column.
TARGET: Final = "vmaf"

#: Columns that identify one row; no two rows of a corpus may share them.
KEY_COLUMNS: Final = ("src", "encoder", "cq", "frame_index")

#: Every column the trainer needs. Other columns are kept but ignored.
REQUIRED_COLUMNS: Final = (*KEY_COLUMNS, TARGET, *CANONICAL_6)

#: Optional column: the encoder preset of a row (``preset_norm`` under the ``ladder``
#: convention below).
PRESET_COLUMN: Final = "preset"

# --------------------------------------------------------------------------
# Encoder vocabulary and codec block
# --------------------------------------------------------------------------

#: Version of :data:`ENCODER_VOCAB`; bump it whenever the slot order changes.
ENCODER_VOCAB_VERSION: Final = 2

#: The 12 one-hot slots, in slot order. Unseen encoders map to ``unknown``.
ENCODER_VOCAB: Final = (
    "libx264",
    "libx265",
    "libsvtav1",
    "libvvenc",
    "libvpx-vp9",
    "h264_nvenc",
    "hevc_nvenc",
    "av1_nvenc",
    "h264_qsv",
    "hevc_qsv",
    "av1_qsv",
    "unknown",
)
UNKNOWN_ENCODER: Final = "unknown"

#: Codec block layout: one-hot slots, then ``preset_norm``, then ``crf_norm``.
CODEC_BLOCK_COLUMNS: Final = (
    *(f"enc_{name}" for name in ENCODER_VOCAB),
    "preset_norm",
    "crf_norm",
)
NUM_CODECS: Final = len(CODEC_BLOCK_COLUMNS)  # 14
PRESET_NORM_SLOT: Final = CODEC_BLOCK_COLUMNS.index("preset_norm")
CRF_NORM_SLOT: Final = CODEC_BLOCK_COLUMNS.index("crf_norm")

#: ``preset_norm`` when a row carries no preset, and ``crf_norm`` when every
#: cq in the corpus is the same value.
NEUTRAL_NORM: Final = 0.5

#: How the codec block's ``preset_norm`` is filled, a recipe setting (``--preset-norm``).
#: ``fixed``: 0.5 on every row, as the fork's authoritative trainer does (its corpus
#: records no preset): the ADR-0303 recipe and the default. ``ladder``: the row's
#: preset's position on its encoder's ladder (0.5 where a row has no preset): frreg's
#: preset-conditioned variant, a deviation from the ADR-0303 recipe.
PRESET_NORM_FIXED: Final = "fixed"
PRESET_NORM_LADDER: Final = "ladder"
PRESET_NORM_MODES: Final = (PRESET_NORM_FIXED, PRESET_NORM_LADDER)
DEFAULT_PRESET_NORM: Final = PRESET_NORM_FIXED
#: What a frreg seed file that records no ``preset_norm`` was trained with: frreg used
#: the ladder whenever a preset column was there (and 0.5, the same as ``fixed``, else).
LEGACY_PRESET_NORM: Final = PRESET_NORM_LADDER

#: The x264/x265 ladder (libx265 took x264's preset names).
_X26X_PRESETS: Final = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
)
#: NVENC's ladder, shared by its H.264, HEVC and AV1 encoders.
_NVENC_PRESETS: Final = ("p1", "p2", "p3", "p4", "p5", "p6", "p7")
#: Quick Sync's ladder, shared by its H.264, HEVC and AV1 encoders.
_QSV_PRESETS: Final = ("veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")

#: Each encoder's preset ladder, from fastest to slowest. ``preset_norm`` is
#: the preset's position on its encoder's ladder scaled to [0, 1]. Numeric
#: presets (SVT-AV1's ``-preset``, libvpx's ``-cpu-used``) are written as
#: strings so that the corpus's ``preset`` column has one type.
PRESET_LADDERS: Final[dict[str, tuple[str, ...]]] = {
    "libx264": _X26X_PRESETS,
    "libx265": _X26X_PRESETS,
    # SVT-AV1: preset 13 is fastest, 0 slowest.
    "libsvtav1": tuple(str(p) for p in range(13, -1, -1)),
    "libvvenc": ("faster", "fast", "medium", "slow", "slower"),
    # libvpx-vp9 -cpu-used (good deadline): 8 fastest, 0 slowest.
    "libvpx-vp9": tuple(str(p) for p in range(8, -1, -1)),
    "h264_nvenc": _NVENC_PRESETS,
    "hevc_nvenc": _NVENC_PRESETS,
    "av1_nvenc": _NVENC_PRESETS,
    "h264_qsv": _QSV_PRESETS,
    "hevc_qsv": _QSV_PRESETS,
    "av1_qsv": _QSV_PRESETS,
}

# --------------------------------------------------------------------------
# Model and training recipe (the trainer CLI's defaults)
# --------------------------------------------------------------------------

#: The network's shape (see :class:`frreg.training.network.MLPConfig`): hidden
#: layers, their width, the activation after each and the dropout after that.
HIDDEN_WIDTH: Final = 64
DEPTH: Final = 2
ACTIVATION: Final = "gelu"
DROPOUT: Final = 0.1

DEFAULT_SEEDS: Final = (0, 1, 2, 3, 4)
DEFAULT_CORPUS: Final = str(PurePosixPath("runs/phase_a/full_grid/per_frame_canonical6.jsonl"))
DEFAULT_OUT_DIR: Final = str(PurePosixPath("runs/ensemble_loso"))
DEFAULT_EPOCHS: Final = 200
DEFAULT_BATCH_SIZE: Final = 32
DEFAULT_LR: Final = 5e-4
DEFAULT_WEIGHT_DECAY: Final = 1e-5
DRY_RUN_EPOCHS: Final = 1
#: The built-in demo (``make demo``, the plugin's lazily produced corpus):
#: a grid small enough for a few minutes on two cores.
DEMO_ENCODERS: Final = ("libx264", "libx265")
DEMO_CQS: Final = (22, 30, 38, 46)
DEMO_EPOCHS: Final = 30
DRY_RUN_NOTE: Final = "dry-run"
#: ``frreg-train --sweep``: the sha256 of the sweep record a recipe was chosen from, as
#: every seed artifact records it (``sweep``; ``None``: no search chose the recipe).
SWEEP_DIGEST_HEX: Final = 64
#: How many of its hex digits a verdict's deviation line shows.
SWEEP_DIGEST_SHOWN: Final = 12


def is_sweep_digest(value: object) -> bool:
    """Whether ``value`` is a sweep digest: :data:`SWEEP_DIGEST_HEX` lowercase hex digits."""
    return (
        isinstance(value, str)
        and len(value) == SWEEP_DIGEST_HEX
        and all(c in "0123456789abcdef" for c in value)
    )


# --------------------------------------------------------------------------
# Ship gate
# --------------------------------------------------------------------------

#: Mean over seeds of each seed's mean held-out PLCC must reach this.
MEAN_PLCC_MIN: Final = 0.95
#: max - min of the per-seed mean PLCCs must not exceed this.
PLCC_SPREAD_MAX: Final = 0.005
#: Every seed's mean PLCC must reach this.
PER_SEED_PLCC_MIN: Final = 0.95
#: frreg's ensemble evidence thresholds (reported always, deciding under the strict
#: profile unless said otherwise; docs/evidence.md, "Gate power", says how the benchmark
#: chose them). On every fold the ensemble's PLCC at least the OLS baseline's plus this
#: (reported, deciding under no profile: clean 30-epoch ensembles miss it by up to 0.07 on
#: zoneplate while no harmful fault needs it):
EVIDENCE_MARGIN_MIN: Final = 0.0
#: ... its mean bias |y - mu| on every held-out source at most this many VMAF points (clean
#: ensembles reach 4.4 at 30 epochs on the tuning corpus and 6.0 on the held-out one; the
#: faults it catches alone sit at 9 and above):
EVIDENCE_BIAS_MAX: Final = 7.0
#: ... the conformal interval's coverage on every held-out source at least this (reported,
#: deciding under no profile: a broken model's wide interval wins it):
EVIDENCE_COVERAGE_MIN: Final = 0.8
#: ... and, against a previous verdict, no source's ensemble PLCC lower by more than this.
EVIDENCE_BASELINE_DROP_MAX: Final = 0.01
#: ... on every held-out source the ensemble's RMSE at most this multiple of the in-fold
#: OLS's (reported, deciding under no profile: clean built-in ensembles reach 1.67 at 30
#: epochs, on zoneplate, and on a near-linear target the OLS error is tiny so the ratio is
#: large for a good model; no harmful fault of the benchmark needs it):
EVIDENCE_RMSE_RATIO_MAX: Final = 2.0
#: ... the shipped interval's half-width (the conformal q of every LOSO residual) at most
#: this many VMAF points (clean: 4.1-6.0; shuffled features 12-23, broken scaling 40-99):
EVIDENCE_INTERVAL_Q_MAX: Final = 8.0
#: ... and the lower end of the ADR spread's bootstrap 95 % interval at most this (the
#: spread itself is one draw of seed noise; its interval says whether it is more).
EVIDENCE_STABLE_SPREAD_MAX: Final = PLCC_SPREAD_MAX

#: Data validity (frreg/corpus/validity.py; measured in docs/verdict.md, "Data validity").
#: Two source ids hold the same content when at least this share of either's rows (and at
#: least DATA_SOURCE_ROWS_MIN rows) has a match under the other id ...
DATA_SHARED_ROWS_MIN: Final = 0.5
#: ... a match being an identical six-feature vector, or a row of the same (encoder, cq)
#: within one frame index whose six features all lie within this many of the corpus's
#: standard deviations (the largest share of two sources of the clean 13-source corpus is
#: 0.28; a copy, re-encoded, noised or shifted by a frame, shares 0.58-1.0 of its original).
DATA_NEAR_SD: Final = 0.2
#: A source with fewer rows fails: its held-out PLCC is ±1 by construction at two rows and
#: reaches 0.95 for unrelated predictions with probability 1.5e-4 at eight.
DATA_SOURCE_ROWS_MIN: Final = 8
#: A source with fewer distinct frames (one second at 24 fps, the built-ins' lowest rate),
#: or one (encoder, cq) cell or one cq only, is reported: its held-out PLCC measures little.
DATA_SOURCE_FRAMES_MIN: Final = 24
#: The target is VMAF on its 0-100 scale: a corpus whose largest vmaf is at most this is
#: on another scale (VMAF/100, a 0-1 MOS), on which every VMAF-point check passes trivially
#: (a real corpus's best frames score 80-100; the gate-power benchmark's label-scale fault
#: has 0.99 at most).
DATA_TARGET_MAX_MIN: Final = 1.5
#: With a producer manifest (frreg-corpus scores with libvmaf's vmaf_v0.6.1), on every source
#: the corpus's target must be that model of its own six features to this RMSE (VMAF points;
#: the built-in corpus agrees to 6e-5): a label or feature edited, offset or rescaled
#: consistently is seen only so.
DATA_ORACLE_RMSE_MAX: Final = 0.5

#: Cells of a corpus produced on a Dask cluster that the client recomputes itself
#: (``frreg-corpus --audit-cells``) before the corpus is complete: workers are not
#: trusted to have scored what they say. Every cell is also checked without
#: recomputing it (frreg.producer.cluster.result_problem).
DEFAULT_AUDIT_CELLS: Final = 1

#: A cell's mean per-frame vmaf agrees with libvmaf's pooled mean (its part header's and
#: the manifest's ``vmaf_mean``) to this: both are printed with 6 decimals, so rounding
#: alone accounts for up to 1e-6. The producer refuses a log that does not agree, and the
#: data check fails a corpus whose rows do not (rows rewritten after scoring).
CELL_VMAF_MEAN_ATOL: Final = 1e-5

#: Nominal coverage of the confidence intervals frreg reports (and exports).
NOMINAL_COVERAGE: Final = 0.95

#: ``--audit all``: the audit retrains every (seed, fold) job.
AUDIT_ALL: Final[Literal["all"]] = "all"
#: What a verdict retrains by default to audit the artifacts: every job, so one forged
#: (seed, fold) job among N is found with certainty; a partial ``--audit K`` finds it with
#: probability K / N (1 job of 45: 2.2 %), which the verdict states. The full recipe
#: retrains in about 100 s on two cores (docs/benchmarks.md).
DEFAULT_AUDIT: Final[Literal["all"]] = AUDIT_ALL
#: The deployed deep ensemble.
ENSEMBLE_SEEDS: Final = DEFAULT_SEEDS
ENSEMBLE_SIZE: Final = len(ENSEMBLE_SEEDS)

# --------------------------------------------------------------------------
# Artifact names
# --------------------------------------------------------------------------

#: The verdicts. A PROMOTE judged on self-reported numbers
#: (``frreg-validate --accept-unverified``) is ``PROMOTE_UNVERIFIED`` in a file of that
#: name, never ``PROMOTE``: whatever consumes ``PROMOTE.json`` or checks
#: ``verdict == "PROMOTE"`` (the fork's exporter, a CI script) fails closed on it.
PROMOTE: Final = "PROMOTE"
PROMOTE_UNVERIFIED: Final = "PROMOTE_UNVERIFIED"
HOLD: Final = "HOLD"
PROMOTE_FILE: Final = "PROMOTE.json"
PROMOTE_UNVERIFIED_FILE: Final = "PROMOTE_UNVERIFIED.json"
HOLD_FILE: Final = "HOLD.json"
#: Every verdict file one directory may hold; writing one removes the others.
VERDICT_FILES: Final = (PROMOTE_FILE, PROMOTE_UNVERIFIED_FILE, HOLD_FILE)


def verdict_file(verdict: str) -> str:
    """The file a verdict is written to, named after it as the fork names it
    (``PROMOTE`` -> ``PROMOTE.json``)."""
    name = f"{verdict}.json"
    if name not in VERDICT_FILES:
        raise ValueError(f"not a verdict: {verdict!r}")
    return name


#: The fork validator's ``--corpus-root`` default: the source YUV directory whose file
#: list (sorted ``relpath<TAB>size`` lines of every ``*.yuv``) the verdict's
#: ``corpus.sha256`` hashes, as the fork's verdict does.
FORK_CORPUS_ROOT: Final = ".workingdir2/netflix"
#: The ADR the fork's validator writes as its verdict's ``adr`` (``parent_adr``: ADR-0303).
VERDICT_ADR: Final = "ADR-0309"

#: The ``schema`` field of every frreg verdict: frreg's layout, not the fork's.
VERDICT_SCHEMA: Final = "frreg-verdict"


def seed_artifact_name(seed: int) -> str:
    """File name of one seed's LOSO result, e.g. ``loso_seed3.json``."""
    return f"loso_seed{seed}.json"


def seed_predictions_name(seed: int) -> str:
    """File name of one seed's held-out predictions, next to its result."""
    return f"loso_seed{seed}.predictions.csv"


def seed_weights_name(seed: int) -> str:
    """File name of one seed's trained fold weights, next to its result."""
    return f"loso_seed{seed}.weights.npz"


def seed_files(seed: int) -> tuple[str, ...]:
    """Every file of one seed, in write order (the JSON, which names the others, last)."""
    return (seed_predictions_name(seed), seed_weights_name(seed), seed_artifact_name(seed))


SEED_ARTIFACT_GLOB: Final = "loso_seed*.json"


def seeds_in(directory: str | Path) -> list[int]:
    """The seeds whose ``loso_seed{N}.json`` is in ``directory`` (``N`` a plain decimal
    without leading zeros, as frreg-train and the fork write it), sorted."""
    out = []
    for path in Path(directory).glob(SEED_ARTIFACT_GLOB):
        digits = path.name[len("loso_seed") : -len(".json")]
        if digits.isascii() and digits.isdigit() and str(int(digits)) == digits:
            out.append(int(digits))
    return sorted(out)


# --------------------------------------------------------------------------
# Export: the fork's tiny-AI ONNX contract (model/tiny/ in the fork)
# --------------------------------------------------------------------------

#: The ensemble id the fork's registry knows; members are ``<id>_seed<N>``.
DEFAULT_ENSEMBLE_ID: Final = "fr_regressor_v2_ensemble_v1"
#: The ensemble id whose member sidecars (``<id>_seed<N>.json``) would be frreg-train's
#: seed files: refused, so an export into a LOSO directory cannot overwrite them.
RESERVED_ENSEMBLE_ID: Final = "loso"
#: The fork's registry id pattern and length limit (model/tiny/registry.schema.json).
REGISTRY_ID_PATTERN: Final = r"^[a-z0-9][a-z0-9_-]*$"
REGISTRY_ID_MAX: Final = 64
REGISTRY_NOTES_MAX: Final = 512
REGISTRY_ONNX_PATTERN: Final = r"^[a-z0-9][a-z0-9_./-]*\.onnx$"
#: The license the fork records for models it trains (an option of frreg-export).
DEFAULT_MODEL_LICENSE: Final = "BSD-3-Clause-Plus-Patent"
#: ONNX opset of every exported member, and its graph's inputs and output:
#: ``features`` float32 ``[batch, 6]`` (the canonical six, standardised by the
#: caller with the sidecar's ``feature_mean``/``feature_std``), ``codec_onehot``
#: float32 ``[batch, 14]``, and ``score`` float32 ``[batch]``.
ONNX_OPSET: Final = 17
ONNX_INPUT_NAMES: Final = ("features", "codec_onehot")
ONNX_OUTPUT_NAMES: Final = ("score",)
#: The codec block as the fork's sidecars name its slots (the same order as
#: :data:`CODEC_BLOCK_COLUMNS`).
CODEC_BLOCK_LAYOUT: Final = (
    *(f"encoder_onehot[{name}]" for name in ENCODER_VOCAB),
    "preset_norm",
    "crf_norm",
)
#: libvmaf's operator allowlist (libvmaf/src/dnn/op_allowlist.c): a graph
#: with any other operator is refused before it is written.
LIBVMAF_OP_ALLOWLIST: Final = frozenset(
    {
        # structural / shape
        "Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Concat",
        "Slice", "Gather", "Cast", "Shape", "Expand",
        # arithmetic
        "Add", "Sub", "Mul", "Div", "Neg", "Abs", "Sqrt", "Pow", "Exp", "Log", "Clip",
        "Min", "Max", "Sum", "Mean",
        # reductions
        "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "GlobalAveragePool",
        "GlobalMaxPool",
        # dense, convolutional, sampling, normalisation
        "Gemm", "MatMul", "Conv", "ConvTranspose", "MaxPool", "AveragePool", "Resize",
        "BatchNormalization", "LayerNormalization", "InstanceNormalization",
        # activations
        "Relu", "LeakyRelu", "Sigmoid", "Tanh", "Softmax", "Elu", "Selu", "Softplus",
        "Softsign", "Gelu", "Erf", "HardSigmoid", "HardSwish", "PRelu", "Dropout",
        # quantisation, misc, control flow
        "QuantizeLinear", "DequantizeLinear", "Constant", "ConstantOfShape", "Pad",
        "Reciprocal", "ReduceProd", "GatherND", "ScatterND", "BitShift", "Loop", "If",
    }
)  # fmt: skip
#: The ``schema`` field of frreg's ensemble manifest.
EXPORT_SCHEMA: Final = "frreg-export"
#: onnxruntime must reproduce the torch member to this (absolute, VMAF points).
EXPORT_ATOL: Final = 1e-4
#: Corpus rows stored in the manifest for ``frreg-export --check``.
PROBE_ROWS: Final = 64


def member_id(ensemble_id: str, seed: int) -> str:
    """Registry id of one exported member, e.g. ``fr_regressor_v2_ensemble_v1_seed3``."""
    return f"{ensemble_id}_seed{seed}"


def manifest_name(ensemble_id: str) -> str:
    """File name of the ensemble manifest, e.g. ``fr_regressor_v2_ensemble_v1.json``."""
    return f"{ensemble_id}.json"


# --------------------------------------------------------------------------
# Exit codes shared by every frreg CLI
# --------------------------------------------------------------------------

EXIT_OK: Final = 0
#: The gate said HOLD, or work (a corpus cell, a training run) failed.
EXIT_FAIL: Final = 1
#: Bad usage or bad input (argparse's own code for usage errors).
EXIT_USAGE: Final = 2
#: An unexpected error (a bug): never confused with HOLD, and no verdict is left.
EXIT_INTERNAL: Final = 3
#: Stopped by Ctrl-C / SIGTERM (128 + SIGINT, the shell convention); rerun to resume.
EXIT_INTERRUPTED: Final = 130
