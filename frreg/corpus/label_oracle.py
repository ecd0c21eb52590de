"""The label oracle: the corpus's target recomputed from its own six features.

A Phase A corpus's ``vmaf`` is libvmaf's ``vmaf_v0.6.1`` score, which is a
nu-SVR of exactly the six canonical features (frreg-corpus and the fork's
producer both score with it). Its numbers ship beside this module
(``vmaf_v0.6.1.svr.json``, re-laid out from libvmaf's model file), so the
gate can recompute every label from the features and see labels that were
edited, offset or rescaled consistently, which no check on the labels alone
can (measured on the built-in corpus: the recomputed scores agree with the
corpus's to RMSE 6e-5, the largest difference 1.6e-4).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Final

import numpy as np

from frreg.schema import CANONICAL_6

#: The model the corpus's target is taken to be.
ORACLE_MODEL: Final = "vmaf_v0.6.1"
_MODEL_FILE: Final = "vmaf_v0.6.1.svr.json"
#: Rows scored at once (the kernel matrix of a chunk is rows x support vectors).
_CHUNK: Final = 4096


@dataclass(frozen=True)
class _SVR:
    columns: tuple[int, ...]  # CANONICAL_6 positions in the model's input order
    slopes: np.ndarray
    intercepts: np.ndarray
    clip: tuple[float, float]
    gamma: float
    rho: float
    coef: np.ndarray
    support: np.ndarray


@cache
def _model() -> _SVR:
    doc = json.loads(resources.files(__package__).joinpath(_MODEL_FILE).read_text("utf-8"))
    lo, hi = doc["score_clip"]
    return _SVR(
        columns=tuple(CANONICAL_6.index(name) for name in doc["feature_order"]),
        slopes=np.asarray(doc["slopes"], dtype=np.float64),
        intercepts=np.asarray(doc["intercepts"], dtype=np.float64),
        clip=(float(lo), float(hi)),
        gamma=float(doc["gamma"]),
        rho=float(doc["rho"]),
        coef=np.asarray(doc["coef"], dtype=np.float64),
        support=np.asarray(doc["support_vectors"], dtype=np.float64),
    )


def oracle_scores(features: np.ndarray) -> np.ndarray:
    """``vmaf_v0.6.1`` of each row of ``features`` (columns in :data:`CANONICAL_6` order)."""
    m = _model()
    x = np.asarray(features, dtype=np.float64)[:, list(m.columns)]
    x = x * m.slopes[1:] + m.intercepts[1:]
    out = np.empty(len(x))
    sv_sq = (m.support**2).sum(axis=1)
    for start in range(0, len(x), _CHUNK):
        chunk = x[start : start + _CHUNK]
        d2 = (chunk**2).sum(axis=1)[:, None] + sv_sq[None, :] - 2.0 * chunk @ m.support.T
        f = np.exp(-m.gamma * np.maximum(d2, 0.0)) @ m.coef - m.rho
        out[start : start + _CHUNK] = (f - m.intercepts[0]) / m.slopes[0]
    return np.clip(out, *m.clip)
