"""Forgeries whose every digest, metric and prediction is consistent: a cache made
from nothing (``test_forged_cache.py``) and one (seed, fold) job swapped for another
seed's real model (``test_audit.py``, ``test_export.py``).

A module of its own (not a test file) so that a pytester session's conftest can
import it too.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
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
from frreg.training.record import SeedRecord
from frreg.training.settings import Fit, TrainSettings, fold_inputs
from frreg.training.weights import predict, read_weights, write_weights

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


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def forge_one_job(loso: Path, seed: int, donor: int, source: str) -> None:
    """Seed ``seed``'s fold ``source`` replaced by seed ``donor``'s real model of that fold,
    with predictions, metrics and digests made consistent."""
    n_layers = 3
    mine = read_weights(loso / f"loso_seed{seed}.weights.npz", n_layers)
    theirs = read_weights(loso / f"loso_seed{donor}.weights.npz", n_layers)
    mine[source] = theirs[source]
    write_weights(loso / f"loso_seed{seed}.weights.npz", sorted(mine.items()))

    def rows(s: int) -> list[list[str]]:
        return list(csv.reader(io.StringIO((loso / f"loso_seed{s}.predictions.csv").read_text())))

    donor_rows = {tuple(r[:-1]): r for r in rows(donor)[1:] if r[0] == source}
    own = rows(seed)
    header, body = own[0], own[1:]
    assert header[0] == "held_out"
    patched = [donor_rows.get(tuple(r[:-1]), r) if r[0] == source else r for r in body]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([header, *patched])
    (loso / f"loso_seed{seed}.predictions.csv").write_text(buf.getvalue())

    doc = json.loads((loso / f"loso_seed{seed}.json").read_text())
    donor_doc = json.loads((loso / f"loso_seed{donor}.json").read_text())
    donor_fold = next(f for f in donor_doc["folds"] if f["held_out"] == source)
    doc["folds"] = [donor_fold if f["held_out"] == source else f for f in doc["folds"]]
    for key in ("predictions", "weights"):
        doc[key]["sha256"] = sha(loso / doc[key]["file"])
    path = loso / f"loso_seed{seed}.json"
    path.write_text(json.dumps(doc))
    record = SeedRecord.read(path)  # the summary recomputed from the folds, as a forger would
    record = record.with_folds(record.folds, sources=record.sources, n_rows=record.n_rows)
    path.write_text(json.dumps(record.to_json()))
