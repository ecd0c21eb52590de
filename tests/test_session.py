"""The gate session's cache key names everything a trained number depends on."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from frreg.gate.checks import Thresholds
from frreg.session import GateConfig, GateSession
from frreg.training.batched import KERNEL_ENV, native_module
from frreg.training.loso import run_config
from frreg.training.network import MLPConfig
from frreg.training.settings import TrainSettings


def session(corpus: Path, tmp_path: Path, settings: TrainSettings, **kw: object) -> GateSession:
    config = GateConfig(
        corpus=corpus,
        out_dir=tmp_path / "out",
        cache_dir=tmp_path / "cache",
        settings=settings,
        thresholds=Thresholds(seeds=(0,)),
        **kw,  # type: ignore[arg-type]
    )
    return GateSession(config, log=lambda message: None)


@pytest.mark.parametrize(
    "change",
    [
        {"hidden": 32},
        {"depth": 1},
        {"dropout": 0.2},
        {"num_codecs": 13},
    ],
    ids=["width", "depth", "dropout", "codec-block"],
)
def test_every_model_field_is_in_the_cache_key(change):
    base = TrainSettings(epochs=3)
    changed = dataclasses.replace(base, model=dataclasses.replace(base.model, **change))
    assert run_config("d" * 64, 0, base) != run_config("d" * 64, 0, changed)


def test_engine_and_its_numerics_version_are_in_the_cache_key(monkeypatch):
    base = run_config("d" * 64, 0, TrainSettings(epochs=3))
    assert base["engine"] == "batched"
    assert run_config("d" * 64, 0, TrainSettings(epochs=3), engine="reference") != base
    from frreg.training.batched import engine

    monkeypatch.setattr(engine, "ENGINE_VERSION", engine.ENGINE_VERSION + 1)
    monkeypatch.setattr("frreg.training.batched.ENGINE_VERSION", engine.ENGINE_VERSION)
    assert run_config("d" * 64, 0, TrainSettings(epochs=3))["engine_version"] == (
        base["engine_version"] + 1
    )


@pytest.mark.slow
def test_changing_the_model_configuration_retrains(tiny_corpus, tmp_path):
    settings = TrainSettings(epochs=2)
    first = session(tiny_corpus, tmp_path, settings)
    entry = first.seed_entry(0)
    assert entry.trained_now
    assert first.cache.trained_count() == 1

    # The same settings in a new session: served from the cache.
    again = session(tiny_corpus, tmp_path, settings).seed_entry(0)
    assert (again.trained_now, again.key) == (False, entry.key)

    # A narrower network under otherwise identical settings: a new key, retrained.
    narrow = dataclasses.replace(settings, model=MLPConfig(hidden=16))
    other = session(tiny_corpus, tmp_path, narrow)
    retrained = other.seed_entry(0)
    assert retrained.trained_now
    assert retrained.key != entry.key
    assert other.cache.trained_count() == 2
    assert retrained.record().config["model"]["hidden"] == 16


@pytest.mark.skipif(native_module() is None, reason="the refusal is the native kernel's")
def test_the_batched_engine_refuses_a_shape_its_kernel_does_not_train(
    tiny_corpus, tmp_path, monkeypatch
):
    monkeypatch.delenv(KERNEL_ENV, raising=False)
    odd = TrainSettings(epochs=1, model=MLPConfig(hidden=native_module().hidden_multiple() + 4))
    with pytest.raises(ValueError, match="the native kernel trains hidden widths"):
        session(tiny_corpus, tmp_path, odd).seed_entry(0)


@pytest.mark.slow
def test_the_reference_engine_trains_any_depth(tiny_corpus, tmp_path):
    deep = TrainSettings(epochs=1, model=MLPConfig(depth=3))
    entry = session(tiny_corpus, tmp_path, deep, engine="reference").seed_entry(0)
    assert entry.record().config["model"]["depth"] == 3
