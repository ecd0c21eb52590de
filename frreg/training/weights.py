"""Trained fold weights beside a seed artifact: ``loso_seed{N}.weights.npz``.

Every fold's model is stored (they are tiny: ~5.6 k float32 each), so a
verdict can re-run the models on the corpus instead of trusting the
predictions file. The file is a NumPy ``.npz`` without pickled objects: an
array ``held_out`` naming the fold of each model, in fold order, and
``fold{i}.layer{k}``: layer ``k`` of fold ``i`` as a ``(fan_in + 1, fan_out)``
float32 matrix (the bias is the last row).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

import numpy as np

from frreg._io import atomic_writer
from frreg.errors import ArtifactError

#: A weights file unpacking to more is refused before anything is decompressed (the
#: full recipe's 9 folds of 20-64-64-1 are 0.2 MB; 256-wide ones 2.6 MB).
MAX_WEIGHTS_BYTES: Final = 64 * 1024 * 1024

FoldLayers = tuple[np.ndarray, ...]


def _key(fold: int, layer: int) -> str:
    return f"fold{fold}.layer{layer}"


def write_weights(path: str | Path, folds: Sequence[tuple[str, FoldLayers]]) -> Path:
    """Write ``(held_out, layers)`` per fold, atomically."""
    arrays: dict[str, np.ndarray] = {"held_out": np.array([h for h, _ in folds], dtype=str)}
    for i, (_, layers) in enumerate(folds):
        for k, layer in enumerate(layers):
            arrays[_key(i, k)] = np.ascontiguousarray(layer, dtype=np.float32)
    buf = io.BytesIO()
    np.savez(buf, allow_pickle=False, **arrays)
    path = Path(path)
    with atomic_writer(path, "wb") as fh:
        fh.write(buf.getvalue())
    return path


def read_weights(path: str | Path, n_layers: int) -> dict[str, FoldLayers]:
    """The layers of every fold, by held-out source; one-line :class:`ArtifactError` if unusable."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
        if unpacked > MAX_WEIGHTS_BYTES:
            raise ArtifactError(
                path,
                f"unpacks to {unpacked} bytes, more than the {MAX_WEIGHTS_BYTES} any stored "
                "model set needs",
            )
        with np.load(path, allow_pickle=False) as data:
            names = [str(h) for h in data["held_out"]]
            out: dict[str, FoldLayers] = {}
            for i, held_out in enumerate(names):
                if held_out in out:
                    raise ArtifactError(path, f"fold {held_out!r} is stored twice")
                layers = tuple(np.asarray(data[_key(i, k)]) for k in range(n_layers))
                if any(x.dtype != np.float32 or x.ndim != 2 for x in layers):
                    raise ArtifactError(path, f"fold {held_out!r}: layers must be 2-D float32")
                out[held_out] = layers
            return out
    except ArtifactError:
        raise
    except FileNotFoundError:
        raise ArtifactError(path, "weights file not found") from None
    except KeyError as exc:
        raise ArtifactError(path, f"missing array {exc.args[0]!r}") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ArtifactError(path, f"not a readable weights file ({exc})") from None


def predict(layers: FoldLayers, x: np.ndarray) -> np.ndarray:
    """Eval-mode outputs (float64) of one stored model for float32 inputs ``x``: the native
    kernel's forward pass where it is built, as a run it trained computed its held-out
    predictions (see :func:`frreg.training.batched.engine.predict_layers`)."""
    from frreg.training.batched.engine import predict_layers

    return predict_layers(layers, x)


def check_shapes(
    path: Path, weights: Mapping[str, FoldLayers], shapes: list[tuple[int, int]]
) -> None:
    for held_out, layers in weights.items():
        found = [tuple(w.shape) for w in layers]
        if found != shapes:
            raise ArtifactError(path, f"fold {held_out!r} has layers {found}, expected {shapes}")
