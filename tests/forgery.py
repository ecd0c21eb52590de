"""A cache forged from nothing: entries for seeds 0-4 whose every digest, metric and
prediction is consistent, made without training (``test_forged_cache.py``).

A module of its own (not a test file) so that a pytester session's conftest can
import it too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.special import erf

from frreg._io import sha256_file, sha256_json, write_json_atomic
from frreg.cache import SeedCache
from frreg.corpus import Corpus, load_corpus
from frreg.schema import seed_files
from frreg.training.loso import (
    TrainedFold,
    fold_record,
    plan_jobs,
    run_config,
    seed_record,
    write_seed_artifacts,
)
from frreg.training.settings import Fit, TrainSettings, fold_inputs
from frreg.training.weights import predict

#: The plugin's epochs in the sessions these forgeries are served to.
EPOCHS = 30


def gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def forged_fit(corpus: Corpus, job, rng: np.random.Generator) -> Fit:  # type: ignore[no-untyped-def]
    """A model nobody trained that predicts its held-out rows very well."""
    x = fold_inputs(corpus.features, corpus.codec, job.train_idx, job.test_idx)
    n_in, hidden = x.shape[1], 64
    w1 = (rng.standard_normal((n_in + 1, hidden)) / np.sqrt(n_in)).astype(np.float32)
    w2 = (rng.standard_normal((hidden + 1, hidden)) / np.sqrt(hidden)).astype(np.float32)
    h = gelu(np.c_[gelu(np.c_[x, np.ones(len(x))] @ w1), np.ones(len(x))] @ w2)
    coef, *_ = np.linalg.lstsq(np.c_[h, np.ones(len(h))], corpus.target[job.test_idx], rcond=None)
    layers = (w1, w2, coef.astype(np.float32)[:, None])
    return Fit(predict(layers, x), layers)


def forge_cache(corpus_path: Path, cache_dir: Path) -> list[str]:
    """Cache entries for seeds 0-4 under the plugin's default settings, made from nothing."""
    corpus = load_corpus(corpus_path)
    settings = TrainSettings(epochs=EPOCHS)
    cache = SeedCache(cache_dir)
    rng = np.random.default_rng(7)
    keys = []
    for seed in range(5):
        config = run_config(corpus.sha256, seed, settings)
        key = SeedCache.key(config)
        directory = cache.entry_dir(key)
        folds = []
        for job in plan_jobs(corpus, [seed]):
            fit = forged_fit(corpus, job, rng)
            folds.append(TrainedFold(job, fit, fold_record(job, corpus.target, fit.predictions)))
        record = seed_record(
            corpus,
            seed,
            folds,
            settings,
            argv=["pytest-frreg", f"--frreg-seeds={seed}"],
            wall_time_s=1.0,
        )
        write_seed_artifacts(directory, record, corpus, folds)
        files = {name: sha256_file(directory / name) for name in seed_files(seed)}
        write_json_atomic(directory / "entry.json", {"key": key, "config": config, "files": files})
        assert sha256_json(config) == key
        keys.append(key)
    return keys
