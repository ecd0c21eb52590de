"""The numbers do not move unnoticed: a pinned digest of what the native kernel trains.

Refactors must give byte-identical predictions for the same corpus, seeds and
settings (a change that moves them bumps ``ENGINE_VERSION``, so caches
retrain). The native kernel computes the same bits on its AVX-512 and AVX2
variants (tests/test_native_kernel.py), so one digest holds on every machine
that runs it; the torch kernel and the reference loop depend on torch's own
CPU kernels and are held to the native one in distribution and step by step
(tests/test_network_spec.py) instead.
"""

from __future__ import annotations

import hashlib

import pytest

from frreg.corpus import load_corpus
from frreg.synthetic import synthetic_rows, write_corpus
from frreg.training.batched import native_module
from frreg.training.loso import run_loso
from frreg.training.settings import TrainSettings

#: sha256 of loso_seed{0,1}.predictions.csv for the run below (ENGINE_VERSION 2), per
#: ``preset_norm`` convention, on both the AVX-512 and the AVX2
#: (FRREG_NATIVE_TARGET=x86-64-v3) variants. ``ladder`` is each row's preset position,
#: ``fixed`` 0.5 on every row (the default, the fork trainer's): they differ only in that
#: input column. Version 1's digests (``ladder`` 28e6cb12..., a6278f6f...; ``fixed``
#: 17a830a9..., 9b057d72...) moved with Adam's divisions replaced by products with
#: reciprocals, GELU's derivative taking its density from erf's exponential and the dropout
#: draws coming from four lanes (git log -S ENGINE_VERSION); the same version's tiled products and flushed subnormals alone left a
#: 9-fold benchmark run's predictions byte for byte as they were.
GOLDEN = {
    "ladder": {
        0: "8abfc3064a16839d1522e85db8dfb22eb0e973b7cf383ac47cc82287392ab84d",
        1: "931804cf70c41708e46be576b3e274f2ae1977ece0ea34661c7251da982e7afe",
    },
    "fixed": {
        0: "47f2b5129851dc9c4ab912cf8676ed8b283b7661e664188874b7bdb8dd54e6a3",
        1: "5ec3c0b06d01ff9fcfa443778fcd4ed5d149b3659f12bf8f27b5b4be2c63ad9e",
    },
}


@pytest.mark.skipif(native_module() is None, reason="the native kernel is not built here")
@pytest.mark.parametrize("preset_norm", sorted(GOLDEN))
def test_the_native_kernel_trains_the_pinned_numbers(tmp_path, monkeypatch, preset_norm):
    monkeypatch.setenv("FRREG_KERNEL", "native")
    rows = synthetic_rows(n_sources=3, encoders=("libx264", "libx265"), cqs=(22, 38), frames=6)
    corpus = load_corpus(write_corpus(tmp_path / "corpus.jsonl", rows))
    settings = TrainSettings(epochs=3, preset_norm=preset_norm)
    run_loso(corpus, (0, 1), settings, tmp_path / "loso")
    found = {
        seed: hashlib.sha256(
            (tmp_path / "loso" / f"loso_seed{seed}.predictions.csv").read_bytes()
        ).hexdigest()
        for seed in (0, 1)
    }
    assert found == GOLDEN[preset_norm]
