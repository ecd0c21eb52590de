"""A cache forged from nothing cannot PROMOTE: the cache is a cache, not an authority.

The forger knows the cache layout and computes every digest correctly. Its
models are made up (random hidden layers, an output layer fit by least
squares to the held-out targets themselves), its predictions are exactly what
those models predict, and its metrics are exactly what those predictions
score, so every recomputation agrees. Only retraining can tell: the audit.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.special import erf

# torch is imported here, not inside a test: pytester restores sys.modules
# after each test, and importing torch twice into one process corrupts it.
import frreg.gate.verdict  # noqa: F401
from conftest import LENIENT_GATE
from frreg._io import sha256_file, sha256_json, write_json_atomic
from frreg.cache import SeedCache
from frreg.cli import validate as validate_cli
from frreg.corpus import Corpus, load_corpus
from frreg.schema import EXIT_FAIL, EXIT_OK, HOLD_FILE, PROMOTE_FILE, seed_files
from frreg.synthetic import synthetic_rows, write_corpus
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

pytest_plugins = ["pytester"]

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


@pytest.fixture
def corpus(pytester: pytest.Pytester) -> Path:
    rows = synthetic_rows(n_sources=4, encoders=("libx264",), cqs=(22, 30, 38, 46), frames=8)
    return write_corpus(pytester.path / "corpus.jsonl", rows)


def test_the_forgery_is_self_consistent_and_only_the_audit_catches_it(corpus, tmp_path):
    forge_cache(corpus, tmp_path / "cache")
    loso = tmp_path / "loso"
    loso.mkdir()
    for entry in (tmp_path / "cache").glob("*/*"):
        for name in entry.iterdir():
            if name.name != "entry.json":
                (loso / name.name).write_bytes(name.read_bytes())
    assert validate_cli.main([str(loso), *LENIENT_GATE, "--audit", "0"]) == EXIT_OK
    verdict = json.loads((loso / PROMOTE_FILE).read_text())
    assert all(s["verified"] for s in verdict["verification"]["seeds"].values())
    assert verdict["gate"]["seed_means"]["0"] > 0.95  # a forgery better than real training

    assert validate_cli.main([str(loso), *LENIENT_GATE]) == EXIT_FAIL  # the default audit
    assert not (loso / PROMOTE_FILE).exists()
    hold = json.loads((loso / HOLD_FILE).read_text())
    assert "not what this recipe trains" in hold["recommendation"]


@pytest.mark.slow
def test_the_plugin_audits_what_it_did_not_train(pytester, corpus):
    forge_cache(corpus, pytester.path / "runs" / "frreg-cache")
    lenient = [
        f"--frreg-{flag.removeprefix('--')}={value}"
        for flag, value in zip(LENIENT_GATE[::2], LENIENT_GATE[1::2], strict=True)
    ]
    result = pytester.runpytest_subprocess(
        f"--frreg-corpus={corpus}", f"--frreg-epochs={EPOCHS}", "-p", "no:cacheprovider", *lenient,
        timeout=300,
    )  # fmt: skip
    out = pytester.path / "runs" / "frreg-gate"
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert not (out / PROMOTE_FILE).exists()
    result.stdout.fnmatch_lines(["trained this run: none; from cache: 0, 1, 2, 3, 4 *"])
    hold = json.loads((out / HOLD_FILE).read_text())
    [job] = hold["verification"]["audit"]["jobs"]
    assert not job["passed"]
    assert "not what this recipe trains" in hold["recommendation"]
