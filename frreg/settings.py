"""The one path from parsed options to settings objects.

``frreg-train``, ``frreg-gate``, ``frreg-validate`` and the pytest plugin all
resolve their options into a dict keyed by :class:`~frreg.options.Option`
``dest`` (``vars(namespace)``, or the plugin's option > ini > default
resolution) and hand it to the functions here. Cross-option rules (the codec
block width, CUDA availability, the widths the kernel trains) therefore live in
one place, and their error lines name the flag as the caller spells it
(``prefix``: ``"--"`` for the CLIs, ``"--frreg-"`` for the plugin).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from frreg.errors import InputError
from frreg.gate.criteria import Thresholds
from frreg.schema import ENCODER_VOCAB_VERSION, NUM_CODECS
from frreg.training.network import MLPConfig
from frreg.training.settings import TrainSettings


def train_settings(
    values: Mapping[str, Any], *, prefix: str = "--", epochs: int | None = None
) -> TrainSettings:
    """The training recipe from ``epochs``, ``batch_size``, ``lr``, ``weight_decay``,
    ``num_codecs``, ``preset_norm``, ``hidden``, ``dropout`` and ``sweep`` (``epochs``
    overrides the option, as ``--dry-run`` does)."""
    num_codecs = values["num_codecs"]
    if num_codecs != NUM_CODECS:
        raise InputError(
            f"{prefix}num-codecs {num_codecs} is not supported: encoder vocabulary "
            f"v{ENCODER_VOCAB_VERSION} gives a codec block of exactly {NUM_CODECS}"
        )
    return TrainSettings(
        epochs=values["epochs"] if epochs is None else epochs,
        batch_size=values["batch_size"],
        lr=values["lr"],
        weight_decay=values["weight_decay"],
        model=MLPConfig(num_codecs=num_codecs, hidden=values["hidden"], dropout=values["dropout"]),
        preset_norm=values["preset_norm"],
        sweep=values["sweep"],
    )


def kernel(engine: str, device: str, model: MLPConfig, *, prefix: str = "--") -> str:
    """The kernel that trains ``model`` under ``engine`` on ``device``
    (:func:`frreg.training.loso.engine_kernel`), refusing up front a network the kernel
    does not train: the native kernel trains only the widths its build supports, so
    ``{prefix}hidden`` is bad usage, said before any training (and so is a kernel that
    cannot run here: ``FRREG_KERNEL`` unknown, or native off the CPU)."""
    from frreg.training.loso import engine_kernel

    # The kernel itself first (FRREG_KERNEL, the device): its errors are not the width's.
    try:
        resolved = engine_kernel(engine, device)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    try:
        return engine_kernel(engine, device, resolved, model)
    except ValueError as exc:
        raise InputError(f"{prefix}hidden {model.hidden}: {exc}") from None


def thresholds(values: Mapping[str, Any]) -> Thresholds:
    """Gate thresholds from ``seeds``, ``strict`` and every threshold option's dest
    (:data:`~frreg.gate.criteria.CRITERIA`): each caller offers them all."""
    return Thresholds.from_options(values)


def device(values: Mapping[str, Any], *, prefix: str = "--") -> str:
    """The torch device, refused up front when it is not there."""
    name: str = values["device"]
    if name == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise InputError(f"{prefix}device cuda requested but torch sees no CUDA device")
    return name
