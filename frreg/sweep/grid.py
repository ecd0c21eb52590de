"""The recipes a sweep tries: the product of its axes, each a training knob.

Every axis is a field of :class:`~frreg.training.settings.TrainSettings` (or of its
network, :class:`~frreg.training.network.MLPConfig`) that ``frreg-train`` takes as a flag,
so any recipe the sweep reports is one ``frreg-train`` argv away. The epoch count is
not an axis: every recipe trains for the sweep's ``--epochs`` and is scored on the
way (every ``curve_every`` epochs), so one run yields every shorter count. The
network's inputs, output, depth and activation are the fork's ONNX contract and are
never swept; its hidden width may be (the C consumer reads any width), as long as the
native kernel trains it (a multiple of 16).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from frreg.schema import DEFAULT_EPOCHS, DEFAULT_PRESET_NORM
from frreg.sweep.options import AXES
from frreg.training.network import MLPConfig
from frreg.training.settings import TrainSettings

#: Each axis (a :class:`TrainSettings` or :class:`MLPConfig` field) and its flag, which is
#: ``frreg-train``'s flag for the same knob (tests/test_sweep.py parses every
#: recommendation with frreg-train's own parser).
AXIS_FLAGS: Final[Mapping[str, str]] = {option.dest: option.flag() for option in AXES}


@dataclass(frozen=True)
class Recipe:
    """One point of the grid: an id (``r00``, ...) and the settings it trains with."""

    id: str
    settings: TrainSettings

    def axes(self) -> dict[str, float | int]:
        """The swept knobs' values."""
        s = self.settings
        return {
            "lr": s.lr,
            "weight_decay": s.weight_decay,
            "batch_size": s.batch_size,
            "dropout": s.model.dropout,
            "hidden": s.model.hidden,
        }

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, **self.axes(), "epochs": self.settings.epochs}

    def train_argv(self, epochs: int) -> list[str]:
        """This recipe at ``epochs`` as ``frreg-train`` flags."""
        argv = ["--epochs", str(epochs)]
        for axis, value in self.axes().items():
            argv += [AXIS_FLAGS[axis], _flag_value(value)]
        return argv


def _flag_value(value: float | int) -> str:
    """A value as a flag writes it: integers plainly, floats as Python reads them back."""
    return str(value) if isinstance(value, int) else repr(float(value))


def recipes(
    axes: Mapping[str, Sequence[float | int]],
    *,
    epochs: int = DEFAULT_EPOCHS,
    base: TrainSettings | None = None,
) -> list[Recipe]:
    """The product of ``axes`` (every key one of :data:`AXIS_FLAGS`; a missing axis keeps
    ``base``'s value), each trained for ``epochs``, in a fixed order, duplicates removed."""
    unknown = sorted(set(axes) - set(AXIS_FLAGS))
    if unknown:
        raise ValueError(f"unknown sweep axes {unknown}; the axes are {sorted(AXIS_FLAGS)}")
    base = base or TrainSettings(preset_norm=DEFAULT_PRESET_NORM)
    names = list(AXIS_FLAGS)
    values = [tuple(axes[n]) if n in axes else (Recipe("base", base).axes()[n],) for n in names]
    seen: set[TrainSettings] = set()
    out: list[Recipe] = []
    for combo in itertools.product(*values):
        point = dict(zip(names, combo, strict=True))
        model = replace(base.model, hidden=int(point["hidden"]), dropout=float(point["dropout"]))
        settings = replace(
            base,
            epochs=epochs,
            lr=float(point["lr"]),
            weight_decay=float(point["weight_decay"]),
            batch_size=int(point["batch_size"]),
            model=MLPConfig(**model.as_dict()),
        )
        if settings not in seen:
            seen.add(settings)
            out.append(Recipe(f"r{len(out):02d}", settings))
    return out
