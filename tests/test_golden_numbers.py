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

#: sha256 of loso_seed{0,1}.predictions.csv for the run below (frreg 0.1.0, ENGINE_VERSION 1),
#: per ``preset_norm`` convention. ``ladder`` (each row's preset position) is what frreg
#: trained before the fork trainer's 0.5 became the default: the same digests as a5d2829
#: (before the network had one specification), on both the AVX-512 and the AVX2
#: (FRREG_NATIVE_TARGET=x86-64-v3) variants. ``fixed`` (0.5 on every row, the default)
#: differs only in that input column.
GOLDEN = {
    "ladder": {
        0: "28e6cb12a74af4242068e296254cb02d2356de0fb79aafbf5f84923e6c594064",
        1: "a6278f6feaebce3f41f7800d1586445a44e85bc94bcc6ac2ed20bf6dbb827476",
    },
    "fixed": {
        0: "17a830a965fcd50caedac77a9555fdcd8e0b6b9d5ee8058662e5ba8ddcda6098",
        1: "9b057d7203f14321aeaa4189e1994c0129223ab4bb5625594897a6c5b3104323",
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
