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

#: sha256 of loso_seed{0,1}.predictions.csv for the run below (ENGINE_VERSION 3), per
#: ``preset_norm`` convention: the same on the AVX-512 and the AVX2
#: (FRREG_NATIVE_TARGET=x86-64-v3) variants and whatever instruction set torch dispatches to
#: (ATEN_CPU_CAPABILITY, tests/test_native_kernel.py). ``ladder`` is each row's preset
#: position, ``fixed`` 0.5 on every row (the default, the fork trainer's): they differ only in
#: that input column. Version 2's digests (``ladder`` 8abfc306..., 931804cf...; ``fixed``
#: 47f2b512..., 5ec3c0b0...) failed on an AVX2-only CPU (an AMD EPYC without AVX-512): a
#: version 2 run passed through torch code that differs by instruction set (its uniform_ for
#: the initial weights, its float32 products and GELU for the predictions; each gave other
#: bits with ATEN_CPU_CAPABILITY=default than with avx2), so version 3 draws the initial
#: weights without torch's uniform_ and predicts with the kernel's own forward pass. Version 1's (``ladder`` 28e6cb12..., a6278f6f...;
#: ``fixed`` 17a830a9..., 9b057d72...) moved with Adam's divisions replaced by products with
#: reciprocals, GELU's derivative taking its density from erf's exponential and the dropout
#: draws coming from four lanes (git log -S ENGINE_VERSION). Leaving out a model's unused
#: input columns left every digest as it was.
GOLDEN = {
    "ladder": {
        0: "4b56139722804a31c496163fe2eb741efc73786b8a3a4fa9ed07a12d0f8278bd",
        1: "66ffcf6548459364d3c5d81a914caa3cfe7a18a32767005d12a3fe7210f09210",
    },
    "fixed": {
        0: "6b852f43642dc9af28739209d985d1d22b3547fe509b17202fde6eb4ecee02ef",
        1: "2125099b4d7b11a41f4507b6d28f9d9ef9ffabca8d1210e0b0a8c49bd9e514f8",
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
