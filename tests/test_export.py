"""frreg-export: from a PROMOTE verdict to the fork's ONNX members, checked against
independent oracles (onnx itself, onnxruntime, a hand-built torch network, numpy)."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import torch  # noqa: E402  (after the extra is known to be there)
from forgery import forge_one_job  # noqa: E402

from conftest import LENIENT_GATE  # noqa: E402
from frreg.cli import export as export_cli  # noqa: E402
from frreg.cli import validate as validate_cli  # noqa: E402
from frreg.corpus import load_corpus  # noqa: E402
from frreg.schema import (  # noqa: E402
    DEFAULT_ENSEMBLE_ID,
    EXIT_FAIL,
    EXIT_OK,
    EXIT_USAGE,
    HOLD_FILE,
    NOMINAL_COVERAGE,
    PROMOTE_FILE,
    SWEEP_DIGEST_SHOWN,
    manifest_name,
    member_id,
)

#: A test that exports for real (five members through torch's ONNX exporter, checked
#: with onnxruntime), or reads the module's export (``exported``), is slow; a refusal
#: before anything is exported is not.
EXPORTS = pytest.mark.slow

SEEDS = (0, 1, 2, 3, 4)
ENS = DEFAULT_ENSEMBLE_ID
#: What torch's exporter makes of Linear-GELU-Dropout x2 -> Linear in eval mode
#: (exact GELU as x * 0.5 * (1 + erf(x / sqrt 2))): the fork's shipped graphs have
#: the same operators in the same order.
EXPECTED_OPS = [
    "Concat",
    "Gemm", "Div", "Erf", "Add", "Mul", "Mul",
    "Gemm", "Div", "Erf", "Add", "Mul", "Mul",
    "Gemm",
    "Squeeze",
]  # fmt: skip


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def promote(corpus: Path, loso: Path) -> Path:
    code = validate_cli.main([str(loso), f"--corpus={corpus}", "--audit=0", *LENIENT_GATE])
    assert code == EXIT_OK
    return loso / PROMOTE_FILE


def export(verdict: Path, corpus: Path, out: Path, *extra: str, lenient: bool = True) -> int:
    """frreg-export; ``lenient``: the tests' verdicts are gated with LENIENT_GATE, which
    the export accepts only when told."""
    argv = [f"--verdict={verdict}", f"--corpus={corpus}", f"--out-dir={out}", *extra]
    return export_cli.main([*argv, "--accept-deviations"] if lenient else argv)


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


@pytest.fixture(scope="module")
def exported(exported_set: tuple[Path, Path, Path]) -> tuple[Path, Path, Path]:
    """``(corpus, loso_dir with PROMOTE.json, model dir)``: conftest.py's
    :func:`exported_set`, exported once per run. Shared: copy before changing anything."""
    return exported_set


def manifest(out: Path) -> dict:
    return json.loads((out / manifest_name(ENS)).read_text(encoding="utf-8"))


def production_member(corpus_path: Path, seed: int, epochs: int) -> torch.nn.Module:
    """The torch member, trained here again (CPU training is deterministic) and built by hand
    as a plain nn.Sequential: an oracle independent of frreg's export module."""
    from frreg.training.loso import train_jobs
    from frreg.training.settings import FoldJob, TrainSettings

    corpus = load_corpus(corpus_path)
    everything = np.arange(corpus.n_rows)
    [trained] = train_jobs(
        corpus, [FoldJob(seed, "full_corpus", everything, everything)], TrainSettings(epochs=epochs)
    )
    linears = []
    for layer in trained.fit.layers:
        lin = torch.nn.Linear(layer.shape[0] - 1, layer.shape[1])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(layer[:-1].T.copy()))
            lin.bias.copy_(torch.from_numpy(layer[-1].copy()))
        linears.append(lin)
    gelu = torch.nn.GELU()
    return torch.nn.Sequential(linears[0], gelu, linears[1], gelu, linears[2]).eval()


# --------------------------------------------------------------------------
# What is exported
# --------------------------------------------------------------------------


@EXPORTS
def test_onnxruntime_reproduces_the_torch_members_trained_with_the_recorded_recipe(exported):
    corpus_path, loso, out = exported
    corpus = load_corpus(corpus_path)
    epochs = json.loads((loso / "loso_seed0.json").read_text())["epochs"]
    # The scaler is the full corpus's population standard scaler, computed here with numpy.
    mean, std = corpus.features.mean(axis=0), corpus.features.std(axis=0)
    for seed in SEEDS:
        side = json.loads((out / f"{member_id(ENS, seed)}.json").read_text())
        np.testing.assert_allclose(side["feature_mean"], mean, rtol=0, atol=1e-12)
        np.testing.assert_allclose(side["feature_std"], std, rtol=0, atol=1e-12)
        assert side["training_recipe"]["epochs"] == epochs
        assert side["training_recipe"]["fit_set"] == "full_corpus"
        assert side["training_recipe"]["sweep"] is None  # trained without a search
        assert side["training_recipe"]["scaler"] == "fit_on_full_corpus"
        x = ((corpus.features - mean) / std).astype(np.float32)
        codec = corpus.codec.astype(np.float32)
        sess = ort.InferenceSession(
            str(out / f"{member_id(ENS, seed)}.onnx"), providers=["CPUExecutionProvider"]
        )
        got = sess.run(["score"], {"features": x, "codec_onehot": codec})[0]
        with torch.no_grad():
            want = production_member(corpus_path, seed, epochs)(
                torch.from_numpy(np.hstack([x, codec]))
            ).squeeze(-1)
        assert got.shape == (corpus.n_rows,)
        np.testing.assert_allclose(got, want.numpy(), rtol=0, atol=1e-4)


@EXPORTS
def test_graph_ops_io_names_shapes_and_dtypes_are_the_contract(exported):
    _, _, out = exported
    for seed in SEEDS:
        model = onnx.load(str(out / f"{member_id(ENS, seed)}.onnx"))
        assert [n.op_type for n in model.graph.node] == EXPECTED_OPS
        assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]
        shapes = {}
        for value in [*model.graph.input, *model.graph.output]:
            t = value.type.tensor_type
            assert t.elem_type == onnx.TensorProto.FLOAT, value.name
            shapes[value.name] = [d.dim_param or d.dim_value for d in t.shape.dim]
        assert [i.name for i in model.graph.input] == ["features", "codec_onehot"]
        assert [o.name for o in model.graph.output] == ["score"]
        batch = shapes["features"][0]
        assert isinstance(batch, str)
        assert batch
        assert shapes == {"features": [batch, 6], "codec_onehot": [batch, 14], "score": [batch]}
        # Every weight is inside the file: the registry's digest covers it.
        assert all(t.data_location == onnx.TensorProto.DEFAULT for t in model.graph.initializer)
        # A dynamic batch axis really is dynamic.
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        for n in (1, 7):
            feeds = {
                "features": np.zeros((n, 6), np.float32),
                "codec_onehot": np.zeros((n, 14), np.float32),
            }
            assert sess.run(["score"], feeds)[0].shape == (n,)


def _inputs_from_the_stated_conventions(
    corpus_path: Path, side: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """The member's two inputs for every corpus row, built from the raw JSONL and the
    sidecar's ``input_conventions`` alone (no frreg code), as a consumer would."""
    conv = side["input_conventions"]
    rows = [json.loads(line) for line in corpus_path.read_text().splitlines() if line.strip()]
    raw = np.array([[r[f] for f in conv["features"]["order"]] for r in rows], dtype=np.float64)
    x = (raw - np.array(side["feature_mean"])) / np.array(side["feature_std"])
    vocab, layout = side["encoder_vocab"], side["codec_block_layout"]
    codec = np.zeros((len(rows), len(layout)))
    preset, crf = conv["preset_norm"], conv["crf_norm"]
    for i, r in enumerate(rows):
        enc = r["encoder"] if r["encoder"] in vocab else "unknown"
        codec[i, vocab.index(enc)] = 1.0
        if preset["convention"] == "fixed":
            codec[i, layout.index("preset_norm")] = preset["value"]
        else:
            ladder = preset["ladders"].get(r["encoder"])
            p = r.get("preset")
            codec[i, layout.index("preset_norm")] = (
                0.5 if ladder is None or p is None else ladder.index(p) / (len(ladder) - 1)
            )
        span = crf["cq_max"] - crf["cq_min"]
        codec[i, layout.index("crf_norm")] = (r["cq"] - crf["cq_min"]) / span if span else 0.5
    return x.astype(np.float32), codec.astype(np.float32)


def _scores_by_the_stated_conventions_match_the_probe(corpus_path: Path, out: Path) -> None:
    manifest = json.loads((out / f"{ENS}.json").read_text())
    rows = manifest["probe"]["rows"]
    for seed in SEEDS:
        side = json.loads((out / f"{member_id(ENS, seed)}.json").read_text())
        x, codec = _inputs_from_the_stated_conventions(corpus_path, side)
        sess = ort.InferenceSession(str(out / side["onnx"]), providers=["CPUExecutionProvider"])
        got = sess.run(["score"], {"features": x[rows], "codec_onehot": codec[rows]})[0]
        np.testing.assert_allclose(got, manifest["probe"]["scores"][str(seed)], atol=1e-4)


@EXPORTS
def test_the_default_members_expect_the_fork_trainers_codec_block(exported):
    corpus_path, _, out = exported
    side = json.loads((out / f"{member_id(ENS, 0)}.json").read_text())
    assert side["input_conventions"]["preset_norm"]["convention"] == "fixed"
    assert side["input_conventions"]["preset_norm"]["value"] == 0.5
    assert side["training_recipe"]["preset_norm"] == "fixed"
    manifest = json.loads((out / f"{ENS}.json").read_text())
    assert manifest["input_conventions"] == side["input_conventions"]
    slot = side["codec_block_layout"].index("preset_norm")
    assert {row[slot] for row in manifest["probe"]["codec_onehot"]} == {0.5}
    _scores_by_the_stated_conventions_match_the_probe(corpus_path, out)


@EXPORTS
def test_members_of_a_swept_recipe_carry_the_sweeps_digest(tmp_path):
    """A run trained with --sweep DIGEST: every sidecar's and the manifest's
    training_recipe names the sweep, and the gate's deviations say a search chose it."""
    from frreg.synthetic import synthetic_rows, write_corpus
    from frreg.training.loso import run_loso
    from frreg.training.settings import TrainSettings

    digest = "ab" * 32
    rows = synthetic_rows(n_sources=4, encoders=("libx264",), cqs=(22, 38), frames=8)
    corpus_path = write_corpus(tmp_path / "corpus.jsonl", rows)
    loso = tmp_path / "loso"
    run_loso(load_corpus(corpus_path), SEEDS, TrainSettings(epochs=30, sweep=digest), loso)
    out = tmp_path / "tiny"
    assert export(promote(corpus_path, loso), corpus_path, out) == EXIT_OK
    for seed in SEEDS:
        side = json.loads((out / f"{member_id(ENS, seed)}.json").read_text())
        assert side["training_recipe"]["sweep"] == digest
        assert any(
            d.startswith(f"recipe chosen by sweep {digest[:SWEEP_DIGEST_SHOWN]}")
            for d in side["gate"]["deviations"]
        )
    assert manifest(out)["training_recipe"]["sweep"] == digest


@EXPORTS
def test_preset_conditioned_members_say_so_and_score_only_with_the_ladder(tmp_path):
    """Members trained with --preset-norm ladder: the sidecar states the ladder (and the
    deviation), the probe rows carry it, and the stated conventions reproduce the scores;
    the fork trainer's 0.5 in its place moves them."""
    from frreg.synthetic import synthetic_rows, write_corpus
    from frreg.training.loso import run_loso
    from frreg.training.settings import TrainSettings

    rows = synthetic_rows(n_sources=4, encoders=("libx264", "libx265"), cqs=(22, 38), frames=8)
    corpus_path = write_corpus(tmp_path / "corpus.jsonl", rows)
    loso = tmp_path / "loso"
    run_loso(load_corpus(corpus_path), SEEDS, TrainSettings(epochs=30, preset_norm="ladder"), loso)
    out = tmp_path / "tiny"
    assert export(promote(corpus_path, loso), corpus_path, out) == EXIT_OK
    side = json.loads((out / f"{member_id(ENS, 0)}.json").read_text())
    assert side["input_conventions"]["preset_norm"]["convention"] == "ladder"
    assert side["training_recipe"]["preset_norm"] == "ladder"
    assert "preset_norm ladder (ADR-0303: fixed)" in side["gate"]["deviations"]
    assert "preset_norm ladder" in side["notes"]
    _scores_by_the_stated_conventions_match_the_probe(corpus_path, out)
    manifest = json.loads((out / f"{ENS}.json").read_text())
    probe = manifest["probe"]
    slot = side["codec_block_layout"].index("preset_norm")
    codec = np.array(probe["codec_onehot"], dtype=np.float32)
    assert set(codec[:, slot]) != {0.5}
    x = ((np.array(probe["features_raw"]) - side["feature_mean"]) / side["feature_std"]).astype(
        np.float32
    )
    sess = ort.InferenceSession(str(out / side["onnx"]), providers=["CPUExecutionProvider"])
    as_fork = codec.copy()
    as_fork[:, slot] = 0.5
    moved = sess.run(["score"], {"features": x, "codec_onehot": as_fork})[0]
    assert np.max(np.abs(moved - np.array(probe["scores"]["0"]))) > 1e-3


@EXPORTS
def test_manifest_sidecars_and_registry_carry_the_digests_of_the_files(exported):
    _, loso, out = exported
    man = manifest(out)
    verdict = json.loads((loso / PROMOTE_FILE).read_text())
    assert man["ensemble_size"] == len(man["members"]) == len(SEEDS)
    assert man["confidence"]["method"] == "ensemble+conformal"
    assert man["confidence"]["nominal_coverage"] == NOMINAL_COVERAGE
    assert man["codec_vocab_version"] == 2
    assert len(man["codec_vocab"]) == 12
    assert man["smoke"] is False
    assert man["corpus"]["sha256"] == verdict["corpus_sha256"]
    assert man["verdict"]["sha256"] == sha(loso / PROMOTE_FILE)
    registry = json.loads((out / "registry.json").read_text())
    entries = {m["id"]: m for m in registry["models"]}
    for m in man["members"]:
        onnx_path, side_path = out / m["onnx"], out / m["sidecar"]
        assert m["sha256"] == sha(onnx_path)
        assert m["sidecar_sha256"] == sha(side_path)
        side = json.loads(side_path.read_text())
        assert side["sha256"] == m["sha256"]
        assert (
            side["gate"]["this_seed_loso_plcc"] == verdict["gate"]["per_seed_plccs"][str(m["seed"])]
        )
        assert side["feature_mean"] == man["feature_mean"] == man["confidence"]["feature_mean"]
        entry = entries[m["id"]]
        assert entry["sha256"] == m["sha256"]
        assert entry["smoke"] is False
        assert entry["opset"] == 17
        assert entry["kind"] == "fr"
        assert (out / entry["onnx"]).resolve() == onnx_path.resolve()
        assert len(entry["notes"]) <= 512
    # The registry keeps unrelated entries, in place, and the replaced entry's license.
    assert registry["models"][0]["id"] == "other_model"
    seed0 = entries[member_id(ENS, 0)]
    assert seed0["license_url"] == "https://example.invalid/LICENSE"
    # Where the new member's bundle must go, beside it, as the fork names bundles; none is
    # there yet, which the export says.
    for m in man["members"]:
        assert entries[m["id"]]["sigstore_bundle"] == f"{entries[m['id']]['onnx']}.sigstore.json"


@EXPORTS
def test_sidecar_reads_the_same_through_libvmafs_substring_reader(exported):
    """libvmaf's sidecar reader takes the first ``"kind"``/``"onnx_opset"`` in the file."""
    _, _, out = exported
    for seed in SEEDS:
        text = (out / f"{member_id(ENS, seed)}.json").read_text()
        assert text.count('"kind"') == 1
        assert '"name"' not in text
        after = text[text.index('"kind"') + len('"kind"') :].lstrip(" :")
        assert after.startswith('"fr"')
        assert text.count('"onnx_opset"') == 1
        assert text[text.index('"onnx_opset"') :].split(":")[1].strip().startswith("17")


def loso_predictions(loso: Path, corpus_path: Path) -> np.ndarray:
    """Each seed's held-out predictions, aligned with the corpus rows: ``(seeds, rows)``."""
    corpus = load_corpus(corpus_path)
    index = {
        (str(src), str(enc), int(cq), int(fi)): i
        for i, (src, enc, cq, fi) in enumerate(corpus.row_keys())
    }
    stack = np.full((len(SEEDS), corpus.n_rows), np.nan)
    for k, seed in enumerate(SEEDS):
        with (loso / f"loso_seed{seed}.predictions.csv").open(newline="") as fh:
            for row in csv.DictReader(fh):
                key = (row["src"], row["encoder"], int(row["cq"]), int(row["frame_index"]))
                stack[k, index[key]] = float(row["pred"])
    assert np.isfinite(stack).all()
    return stack


@EXPORTS
def test_the_absolute_half_width_is_the_split_conformal_quantile_of_the_loso_residuals(exported):
    """frreg's absolute interval mu ± q (VMAF points), under its own key and method."""
    corpus_path, loso, out = exported
    corpus = load_corpus(corpus_path)
    resid = np.abs(corpus.target - loso_predictions(loso, corpus_path).mean(axis=0))
    n = len(resid)
    level = math.ceil((n + 1) * NOMINAL_COVERAGE) / n
    expected = float(np.quantile(resid, level, method="inverted_cdf"))
    conf = manifest(out)["confidence"]
    absolute = conf["absolute"]
    assert absolute["method"] == "frreg-conformal-absolute"
    assert absolute["method"] != conf["method"]
    assert absolute["conformal_half_width"] == pytest.approx(expected, abs=1e-9)
    assert absolute["n_calibration_rows"] == n
    assert absolute["coverage_in_sample"] == pytest.approx(np.mean(resid <= expected))
    # Per source: the coverage the shipped q gives its held-out residuals.
    for src, facts in absolute["per_source"].items():
        rows = corpus.groups == src
        assert facts["n_rows"] == int(rows.sum())
        assert facts["coverage_at_shipped_q"] == pytest.approx(np.mean(resid[rows] <= expected))
    assert "sigma_mean" in conf["members_spread"]


@EXPORTS
def test_the_forks_rule_on_the_manifest_covers_the_loso_rows_as_stated(exported):
    """The fork's documented rule (docs/ai/models/fr_regressor_v2_probabilistic.md,
    ai/scripts/eval_probabilistic_proxy.py): method ensemble+conformal, interval
    mu ± conformal_q_residual · sigma, sigma the members' sample std (ddof=1). Applied here
    with numpy to the exported manifest and the members' scores on the LOSO held-out rows,
    it covers at least the nominal level, the share the manifest states; per source, the q
    calibrated without the source covers the share the manifest states for it."""
    corpus_path, loso, out = exported
    corpus = load_corpus(corpus_path)
    y = corpus.target
    scores = loso_predictions(loso, corpus_path)
    mu, sigma = scores.mean(axis=0), scores.std(axis=0, ddof=1)
    conf = manifest(out)["confidence"]
    assert conf["method"] == "ensemble+conformal"
    assert conf["nominal_coverage"] == NOMINAL_COVERAGE
    q = conf["conformal_q_residual"]
    inside = (y >= mu - q * sigma) & (y <= mu + q * sigma)
    assert inside.mean() >= conf["nominal_coverage"]
    assert conf["coverage_in_sample"] == pytest.approx(inside.mean())
    # The oracle's q: numpy's quantile with the conformal (n + 1) correction.
    n = len(y)
    level = math.ceil((n + 1) * NOMINAL_COVERAGE) / n
    normalised = np.abs(y - mu) / np.maximum(sigma, 1e-6)
    assert q == pytest.approx(float(np.quantile(normalised, level, method="inverted_cdf")))
    nested = np.zeros(n, dtype=bool)
    for src, facts in conf["per_source"].items():
        rows = corpus.groups == src
        others = normalised[~rows]
        k = math.ceil((len(others) + 1) * NOMINAL_COVERAGE)
        q_without = float(np.sort(others)[k - 1])
        assert facts["q_without_source"] == pytest.approx(q_without)
        nested[rows] = (y[rows] >= mu[rows] - q_without * sigma[rows]) & (
            y[rows] <= mu[rows] + q_without * sigma[rows]
        )
        assert facts["coverage_held_out"] == pytest.approx(nested[rows].mean())
    assert conf["pooled_coverage_loso_conformal"] == pytest.approx(nested.mean())
    assert conf["nested_coverage"]["pooled"] == pytest.approx(nested.mean())


@EXPORTS
def test_the_forks_consumer_run_on_the_exported_members_reproduces_the_manifest(exported):
    """eval_probabilistic_proxy.py's steps, re-done with onnxruntime on the exported files:
    members found through the manifest's onnx names, features scaled with its
    feature_mean/feature_std (a std below 1e-8 counts as 1), mu and sigma (ddof=1) of the
    members' scores, the conformal row mu ± conformal_q_residual · sigma. On the corpus the
    production members were fit on, that coverage is the manifest's in-sample figure."""
    corpus_path, _, out = exported
    corpus = load_corpus(corpus_path)
    doc = manifest(out)
    mean = np.asarray(doc["feature_mean"], dtype=np.float32)
    std = np.asarray(doc["feature_std"], dtype=np.float32)
    x = ((corpus.features.astype(np.float32) - mean) / np.where(std < 1e-8, 1.0, std)).astype(
        np.float32
    )
    preds = np.vstack(
        [
            ort.InferenceSession(str(out / m["onnx"]), providers=["CPUExecutionProvider"])
            .run(None, {"features": x, "codec_onehot": corpus.codec.astype(np.float32)})[0]
            .reshape(-1)
            for m in doc["members"]
        ]
    ).astype(np.float64)
    mu, sigma = preds.mean(axis=0), preds.std(axis=0, ddof=1)
    q = doc["confidence"]["conformal_q_residual"]
    y = corpus.target
    inside = (y >= mu - q * sigma) & (y <= mu + q * sigma)
    spread = doc["confidence"]["members_spread"]
    # float32 graphs against the float64 torch scores the export used: a row or two may
    # sit on the interval's edge
    assert spread["full_fit_coverage_in_sample"] == pytest.approx(inside.mean(), abs=2 / len(y))
    assert spread["full_fit_sigma_mean"] == pytest.approx(sigma.mean(), rel=1e-3)


@EXPORTS
def test_check_verifies_the_exported_set(exported, capsys):
    _, _, out = exported
    assert export_cli.main([f"--check={out}"]) == EXIT_OK
    text = capsys.readouterr().out
    assert text.count("contract holds") == len(SEEDS)
    assert f"verified: {manifest_name(ENS)}" in text


@EXPORTS
def test_checking_a_set_imports_neither_torch_nor_the_exporter(exported):
    """``frreg-export --check`` reads graphs and runs onnxruntime: a process of its own
    that loads no torch (a second of start-up) and no onnxscript."""
    _, _, out = exported
    probe = (
        "import sys\n"
        "from frreg.cli import export\n"
        f"code = export.main(['--check={out}'])\n"
        "print('LOADED', sorted({'torch', 'onnxscript', 'onnxruntime'} & set(sys.modules)), code)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert f"verified: {manifest_name(ENS)}" in proc.stdout, proc.stdout + proc.stderr
    # onnxruntime scored the probe rows; neither torch nor the exporter was loaded.
    assert proc.stdout.splitlines()[-1] == f"LOADED ['onnxruntime'] {EXIT_OK}", proc.stdout


def copy_set(out: Path, tmp_path: Path) -> Path:
    target = tmp_path / "tiny"
    shutil.copytree(out, target)
    return target


@EXPORTS
def test_check_catches_a_flipped_byte_in_a_member(exported, tmp_path, capsys):
    target = copy_set(exported[2], tmp_path)
    member = target / f"{member_id(ENS, 2)}.onnx"
    data = bytearray(member.read_bytes())
    data[len(data) // 2] ^= 0x01  # inside the weights
    member.write_bytes(bytes(data))
    assert export_cli.main([f"--check={target}"]) == EXIT_FAIL
    text = capsys.readouterr().out
    assert f"member seed 2: {member.name} has sha256" in text
    assert f"{member_id(ENS, 2)} sha256 does not match" in text  # the registry too


@EXPORTS
def test_check_catches_a_stale_manifest_digest(exported, tmp_path, capsys):
    target = copy_set(exported[2], tmp_path)
    doc = manifest(target)
    doc["members"][1]["sha256"] = "f" * 64
    (target / manifest_name(ENS)).write_text(json.dumps(doc), encoding="utf-8")
    assert export_cli.main([f"--check={target}", f"--ensemble-id={ENS}"]) == EXIT_FAIL
    assert "member seed 1" in capsys.readouterr().out


@EXPORTS
def test_check_catches_a_probe_that_the_members_do_not_reproduce(exported, tmp_path, capsys):
    target = copy_set(exported[2], tmp_path)
    doc = manifest(target)
    doc["feature_mean"][0] += 0.5  # scaling the members were not trained with
    doc["confidence"]["feature_mean"][0] += 0.5
    (target / manifest_name(ENS)).write_text(json.dumps(doc), encoding="utf-8")
    assert export_cli.main([f"--check={target}"]) == EXIT_FAIL
    assert "differs from the recorded probe scores" in capsys.readouterr().out


@EXPORTS
def test_check_applies_its_own_tolerance_not_the_manifests(exported, tmp_path, capsys):
    """A manifest that sets its own probe tolerance would pass a member 99 VMAF off."""
    target = copy_set(exported[2], tmp_path)
    doc = manifest(target)
    doc["probe"]["atol"] = 1e9
    doc["probe"]["scores"]["2"] = [s + 99.0 for s in doc["probe"]["scores"]["2"]]
    (target / manifest_name(ENS)).write_text(json.dumps(doc), encoding="utf-8")
    assert export_cli.main([f"--check={target}"]) == EXIT_FAIL
    text = capsys.readouterr().out
    assert "probe.atol is 1000000000.0" in text
    assert "member seed 2: onnxruntime differs from the recorded probe scores" in text


@EXPORTS
def test_check_refuses_a_manifest_whose_conformal_q_residual_is_an_absolute_half_width(
    exported, tmp_path, capsys
):
    """frreg's earlier layout: the absolute half-width under the fork's key, no
    confidence.absolute. The fork's rule would read it as a multiple of sigma."""
    target = copy_set(exported[2], tmp_path)
    doc = manifest(target)
    conf = doc["confidence"]
    conf["conformal_q_residual"] = conf.pop("absolute")["conformal_half_width"]
    (target / manifest_name(ENS)).write_text(json.dumps(doc), encoding="utf-8")
    assert export_cli.main([f"--check={target}"]) == EXIT_FAIL
    assert "confidence.absolute is missing" in capsys.readouterr().out
    conf["absolute"] = {"method": "ensemble+conformal", "conformal_half_width": -1.0}
    (target / manifest_name(ENS)).write_text(json.dumps(doc), encoding="utf-8")
    assert export_cli.main([f"--check={target}"]) == EXIT_FAIL
    out = capsys.readouterr().out
    assert "confidence.absolute.method 'ensemble+conformal'" in out
    assert "confidence.absolute.conformal_half_width -1.0" in out


@EXPORTS
def test_check_refuses_a_one_member_ensemble(exported, tmp_path, capsys):
    target = copy_set(exported[2], tmp_path)
    doc = manifest(target)
    doc["members"] = doc["members"][:1]
    doc["ensemble_size"] = 1
    (target / manifest_name(ENS)).write_text(json.dumps(doc), encoding="utf-8")
    assert export_cli.main([f"--check={target}"]) == EXIT_FAIL
    assert "1 member(s); a deployed ensemble has at least 5" in capsys.readouterr().out


@EXPORTS
def test_check_refuses_a_member_outside_the_directory(exported, tmp_path, capsys):
    target = copy_set(exported[2], tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    doc = manifest(target)
    name = doc["members"][1]["onnx"]
    shutil.move(target / name, elsewhere / name)
    doc["members"][1]["onnx"] = f"../elsewhere/{name}"
    (target / manifest_name(ENS)).write_text(json.dumps(doc), encoding="utf-8")
    assert export_cli.main([f"--check={target}"]) == EXIT_FAIL
    assert f"../elsewhere/{name} is not a file in" in capsys.readouterr().out


# --------------------------------------------------------------------------
# Refusals: exit 2, one line, nothing written
# --------------------------------------------------------------------------


def test_a_hold_verdict_is_refused(loso_copy, tmp_path, capsys):
    corpus, loso = loso_copy
    assert validate_cli.main([str(loso), f"--corpus={corpus}", "--audit=0"]) == EXIT_FAIL
    capsys.readouterr()
    out = tmp_path / "tiny"
    assert export(loso / HOLD_FILE, corpus, out) == EXIT_USAGE
    assert "not PROMOTE" in one_error_line(capsys)
    assert export(loso, corpus, out) == EXIT_USAGE  # the LOSO directory, holding a HOLD
    assert "the verdict is HOLD" in one_error_line(capsys)
    assert not out.exists()


def test_a_forged_promote_is_refused_by_the_rederived_verdict(loso_copy, tmp_path, capsys):
    """A HOLD edited to say PROMOTE: every file still hashes as recorded, but the
    evidence does not support it."""
    corpus, loso = loso_copy
    assert validate_cli.main([str(loso), f"--corpus={corpus}", "--audit=0"]) == EXIT_FAIL
    doc = json.loads((loso / HOLD_FILE).read_text())
    doc["verdict"] = "PROMOTE"
    (loso / PROMOTE_FILE).write_text(json.dumps(doc))
    capsys.readouterr()
    assert export(loso / PROMOTE_FILE, corpus, tmp_path / "tiny") == EXIT_USAGE
    assert "the evidence now gives HOLD" in one_error_line(capsys)
    assert not (tmp_path / "tiny" / manifest_name(ENS)).exists()


def test_export_runs_the_audit_a_forged_promote_skipped(loso_copy, tmp_path, capsys):
    """One (seed, fold) job of 20 forged consistently: frreg-validate's audit HOLDs it;
    the HOLD edited to PROMOTE and renamed does not export, because the export audits
    too (it used to re-derive without an audit)."""
    corpus, loso = loso_copy
    forge_one_job(loso, 3, 1, load_corpus(corpus).sources[2])
    assert validate_cli.main([str(loso), f"--corpus={corpus}", *LENIENT_GATE]) == EXIT_FAIL
    hold = loso / HOLD_FILE
    doc = json.loads(hold.read_text())
    doc["verdict"] = "PROMOTE"
    hold.rename(loso / PROMOTE_FILE)
    (loso / PROMOTE_FILE).write_text(json.dumps(doc))
    capsys.readouterr()
    assert export(loso / PROMOTE_FILE, corpus, tmp_path / "tiny") == EXIT_USAGE
    line = one_error_line(capsys)
    assert "the evidence now gives HOLD" in line
    assert "not what this recipe trains" in line
    assert not (tmp_path / "tiny" / manifest_name(ENS)).exists()


def test_thresholds_edited_in_the_verdict_are_refused_unless_accepted(loso_copy, tmp_path, capsys):
    """An honest HOLD at the defaults, its plcc_spread_max raised in the file: the
    export does not take the file's word for what was gated."""
    corpus, loso = loso_copy
    assert validate_cli.main([str(loso), f"--corpus={corpus}", "--audit=0"]) == EXIT_FAIL
    doc = json.loads((loso / HOLD_FILE).read_text())
    doc["verdict"] = "PROMOTE"
    doc["gate"]["thresholds"]["plcc_spread_max"] = 1.0
    (loso / PROMOTE_FILE).write_text(json.dumps(doc))
    capsys.readouterr()
    out = tmp_path / "tiny"
    assert export(loso / PROMOTE_FILE, corpus, out, lenient=False) == EXIT_USAGE
    line = one_error_line(capsys)
    assert "other than frreg's defaults" in line
    assert "plcc_spread_max 1.0 (default 0.005)" in line
    assert not (out / manifest_name(ENS)).exists()


@EXPORTS
def test_the_manifest_records_the_audit_the_export_ran(exported):
    _, _, out = exported
    verdict = json.loads((out / manifest_name(ENS)).read_text())["verdict"]
    assert verdict["audit"] == {
        "requested": "all",
        "candidates": 20,
        "retrained": 20,
        "passed": True,
    }
    assert verdict["accepted_deviations"]  # the tests' lenient thresholds, recorded


def test_seed_keys_that_are_not_seed_numbers_are_refused_before_anything_moves(
    loso_copy, tmp_path, capsys
):
    """'0', '00' and '000' are one seed three times: refused (exit 2), not a crash after
    files were renamed into place."""
    corpus, loso = loso_copy
    verdict = promote(corpus, loso)
    doc = json.loads(verdict.read_text())
    entry = doc["seed_files"]["0"]
    doc["seed_files"] = {"0": entry, "00": entry, "000": entry}
    verdict.write_text(json.dumps(doc))
    capsys.readouterr()
    out = tmp_path / "tiny"
    assert export(verdict, corpus, out) == EXIT_USAGE
    assert "seed_files key '00' is not a seed number" in one_error_line(capsys)
    assert not (out / manifest_name(ENS)).exists()


@pytest.mark.parametrize(
    ("ensemble", "needle"),
    [
        ("loso", "the name of frreg-train's seed files"),
        ("ens\n", "must match"),
    ],
)
def test_ensemble_ids_that_would_clobber_or_break_file_names_are_refused(
    loso_copy, tmp_path, capsys, ensemble, needle
):
    corpus, loso = loso_copy
    verdict = promote(corpus, loso)
    before = {p.name: p.read_bytes() for p in loso.iterdir() if p.is_file()}
    capsys.readouterr()
    from frreg.errors import InputError
    from frreg.export import ExportRequest, export_ensemble

    request = ExportRequest(
        verdict=verdict, corpus=corpus, out_dir=loso, ensemble_id=ensemble, force=True,
        accept_deviations=True,
    )  # fmt: skip
    with pytest.raises(InputError, match=needle):
        export_ensemble(request)
    after = {p.name: p.read_bytes() for p in loso.iterdir() if p.is_file()}
    assert after == before  # no seed file overwritten


def test_the_export_lock_is_in_the_out_dir_and_refuses_a_second_export(loso_copy, tmp_path, capsys):
    from frreg.dirlock import flocked

    corpus, loso = loso_copy
    verdict = promote(corpus, loso)
    out = tmp_path / "tiny"
    out.mkdir()
    lock = out / f".frreg-export-{ENS}.lock"
    with flocked(lock, exclusive=True, busy="held"):  # another export, mid-way
        capsys.readouterr()
        assert export(verdict, corpus, out) == EXIT_USAGE
    assert f"another frreg-export of {ENS} is writing here" in one_error_line(capsys)
    # A lock name squatted with a symlink is refused, and its target left alone.
    victim = tmp_path / "victim"
    victim.write_text("keep")
    lock.unlink()
    lock.symlink_to(victim)
    assert export(verdict, corpus, out) == EXIT_USAGE
    assert "cannot open the lock" in one_error_line(capsys)
    assert victim.read_text() == "keep"


def test_the_forks_verdict_is_refused_as_not_frregs(loso_copy, tmp_path, capsys):
    corpus, loso = loso_copy
    fork_style = {
        "schema_version": 1,
        "verdict": "PROMOTE",
        "gate": {"passed": True, "per_seed_plccs": {"0": 0.99}, "failing_seeds": []},
    }
    (loso / PROMOTE_FILE).write_text(json.dumps(fork_style))
    assert export(loso / PROMOTE_FILE, corpus, tmp_path / "tiny") == EXIT_USAGE
    assert "not a frreg verdict" in one_error_line(capsys)


@EXPORTS
def test_another_corpus_is_refused(exported, tmp_path, capsys):
    corpus, loso, _ = exported
    changed = tmp_path / "corpus.jsonl"
    changed.write_bytes(corpus.read_bytes().replace(b'"cq": 22', b'"cq": 23', 1))
    assert changed.read_bytes() != corpus.read_bytes()
    assert export(loso / PROMOTE_FILE, changed, tmp_path / "tiny") == EXIT_USAGE
    assert "is not the corpus the verdict judged" in one_error_line(capsys)


@EXPORTS
def test_changed_seed_files_are_refused(exported, tmp_path, capsys):
    corpus, loso, _ = exported
    copy = tmp_path / "loso"
    shutil.copytree(loso, copy)
    seed = copy / "loso_seed3.json"
    seed.write_text(seed.read_text() + " ")
    assert export(copy / PROMOTE_FILE, corpus, tmp_path / "tiny") == EXIT_USAGE
    line = one_error_line(capsys)
    assert "loso_seed3.json" in line
    assert "changed since it was written" in line


@EXPORTS
def test_an_existing_set_is_not_overwritten_without_force(exported, tmp_path, capsys):
    corpus, loso, out = exported
    target = copy_set(out, tmp_path)
    before = {p.name: sha(p) for p in target.iterdir()}
    assert export(loso / PROMOTE_FILE, corpus, target) == EXIT_USAGE
    assert "pass --force" in one_error_line(capsys)
    assert {p.name: sha(p) for p in target.iterdir()} == before


@EXPORTS
def test_a_graph_off_the_allowlist_is_refused_before_anything_is_written(
    exported, tmp_path, monkeypatch, capsys
):
    """Exporter drift (here: a graph with an operator libvmaf refuses) fails the export."""
    from onnx import TensorProto, helper

    from frreg.export import graph

    def drifted(module):
        b = "batch"
        nodes = [
            helper.make_node("Concat", ["features", "codec_onehot"], ["x"], axis=1),
            helper.make_node("ReduceL2", ["x"], ["score"], keepdims=0, axes=[1]),
        ]
        g = helper.make_graph(
            nodes,
            "drifted",
            [
                helper.make_tensor_value_info("features", TensorProto.FLOAT, [b, 6]),
                helper.make_tensor_value_info("codec_onehot", TensorProto.FLOAT, [b, 14]),
            ],
            [helper.make_tensor_value_info("score", TensorProto.FLOAT, [b])],
        )
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
        return m.SerializeToString()

    monkeypatch.setattr(graph, "export_member", drifted)
    corpus, loso, _ = exported
    out = tmp_path / "tiny"
    assert export(loso / PROMOTE_FILE, corpus, out) == EXIT_FAIL
    line = one_error_line(capsys)
    assert "not on libvmaf's allowlist: ReduceL2" in line
    assert [p.name for p in out.iterdir()] == []


def test_contract_problems_names_what_breaks_it():
    from onnx import TensorProto, helper

    from frreg.export.graph import contract_problems

    g = helper.make_graph(
        [helper.make_node("Sin", ["features"], ["score"])],
        "bad",
        [helper.make_tensor_value_info("features", TensorProto.DOUBLE, [3, 6])],
        [helper.make_tensor_value_info("score", TensorProto.DOUBLE, [3, 6])],
    )
    data = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)]).SerializeToString()
    problems = " | ".join(contract_problems(data))
    for part in ("opset imports", "Sin", "batch axis is not symbolic", "inputs", "outputs"):
        assert part in problems


def test_usage_errors_are_one_line(tmp_path, capsys):
    assert export_cli.main([f"--out-dir={tmp_path}"]) == EXIT_USAGE
    assert "--verdict required" in capsys.readouterr().err
    assert export_cli.main([f"--check={tmp_path}"]) == EXIT_USAGE
    assert "no frreg ensemble manifest" in one_error_line(capsys)
    with pytest.raises(SystemExit) as exc:
        export_cli.main(["--check", str(tmp_path), "--ensemble-id=Not Valid"])
    assert exc.value.code == EXIT_USAGE


def test_the_corpus_defaults_to_the_one_the_verdict_recorded(trained_loso, tmp_path, capsys):
    """Without --corpus, the path the verdict recorded is used: as recorded, else from the
    verdict's directory or its parent; not found is one line, exit 2, nothing written."""
    from frreg.export import judged_corpus

    corpus, loso = trained_loso
    shutil.copytree(loso, tmp_path / "runs" / "loso")
    verdict = promote(corpus, tmp_path / "runs" / "loso")
    assert judged_corpus(verdict) == corpus
    # Recorded relative to where frreg-validate ran (the directory above runs/loso,
    # which the verdict's recorded loso_dir gives), not the cwd of the export.
    doc = json.loads(verdict.read_text())
    doc["corpus"]["jsonl"] = "runs/corpus.jsonl"
    doc["loso_dir"] = "runs/loso"
    verdict.write_text(json.dumps(doc))
    assert not (Path.cwd() / "runs").exists()
    shutil.copy(corpus, tmp_path / "runs" / "corpus.jsonl")
    assert judged_corpus(verdict).resolve() == (tmp_path / "runs" / "corpus.jsonl").resolve()
    (tmp_path / "runs" / "corpus.jsonl").unlink()
    out = tmp_path / "tiny"
    code = export_cli.main([f"--verdict={verdict}", f"--out-dir={out}", "--accept-deviations"])
    assert code == EXIT_USAGE
    line = one_error_line(capsys)
    assert "the corpus it judged (runs/corpus.jsonl) is not at" in line
    assert "give --corpus PATH" in line
    assert not out.exists()


def test_check_with_a_corpus_but_no_verdict_says_so(tmp_path, capsys):
    code = export_cli.main([f"--check={tmp_path}", f"--corpus={tmp_path / 'c.jsonl'}"])
    assert code == EXIT_USAGE
    assert "needs --verdict too" in one_error_line(capsys)


@EXPORTS
def test_a_missing_extra_is_one_line_naming_the_install(exported, tmp_path, monkeypatch, capsys):
    corpus, loso, _ = exported
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # import now raises ImportError
    assert export(loso / PROMOTE_FILE, corpus, tmp_path / "tiny") == EXIT_USAGE
    assert "pip install 'frreg[export]'" in one_error_line(capsys)


# --------------------------------------------------------------------------
# Interruption and replacement
# --------------------------------------------------------------------------


@EXPORTS
def test_a_killed_export_leaves_the_previous_set_intact(exported, tmp_path):
    """Replace a set with a differently trained one, kill the export between members:
    every old file is byte for byte what it was, and it still verifies."""
    from frreg.training.loso import run_loso
    from frreg.training.settings import TrainSettings

    corpus, _, out = exported
    target = copy_set(out, tmp_path)
    before = {p.name: sha(p) for p in target.iterdir()}
    other = tmp_path / "loso-10"
    run_loso(load_corpus(corpus), SEEDS, TrainSettings(epochs=10), other)
    promote(corpus, other)
    argv = [
        sys.executable, "-m", "frreg.cli.export", f"--verdict={other / PROMOTE_FILE}",
        f"--corpus={corpus}", f"--out-dir={target}", "--force", "--accept-deviations",
    ]  # fmt: skip
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, env={**os.environ})
    assert proc.stderr is not None
    deadline = time.monotonic() + 240
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "member seed 1:" in line:
            proc.send_signal(signal.SIGKILL)
            break
        assert time.monotonic() < deadline, seen
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "".join(seen)
    visible = {p.name: sha(p) for p in target.iterdir() if not p.name.startswith(".")}
    assert visible == before
    assert export_cli.main([f"--check={target}"]) == EXIT_OK
    # The next export clears the killed one's staging directory and replaces the set.
    assert any(p.name.startswith(".frreg-export-") for p in target.iterdir())
    assert export(other / PROMOTE_FILE, corpus, target, "--force") == EXIT_OK
    assert not any(p.name.startswith(".") for p in target.iterdir())
    after = {p.name: sha(p) for p in target.iterdir()}
    assert after["registry.json"] == before["registry.json"]  # no --registry: untouched
    assert all(after[n] != before[n] for n in before if n.endswith(".onnx"))
    assert manifest(target)["training_recipe"]["epochs"] == 10


@EXPORTS
def test_exported_bytes_are_reproducible(exported, tmp_path):
    """The same verdict and corpus export the same members, bit for bit (CPU)."""
    corpus, loso, out = exported
    again = tmp_path / "again"
    assert export(loso / PROMOTE_FILE, corpus, again) == EXIT_OK
    for seed in SEEDS:
        name = f"{member_id(ENS, seed)}.onnx"
        assert sha(again / name) == sha(out / name)


# --------------------------------------------------------------------------
# The verdict the fork's exporter and flip scripts read
# --------------------------------------------------------------------------


def fold_plccs_from_predictions(loso: Path, seed: int) -> dict[str, float]:
    """Per held-out source PLCC of one seed, with scipy, from its predictions file."""
    from scipy.stats import pearsonr

    by_fold: dict[str, tuple[list[float], list[float]]] = {}
    with (loso / f"loso_seed{seed}.predictions.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            ys, ps = by_fold.setdefault(row["held_out"], ([], []))
            ys.append(float(row["vmaf"]))
            ps.append(float(row["pred"]))
    return {src: float(pearsonr(ys, ps).statistic) for src, (ys, ps) in by_fold.items()}


@pytest.mark.parametrize("lenient", [True, False], ids=["promote", "hold"])
def test_verdict_carries_the_forks_gate_fields_with_the_forks_meanings(loso_copy, lenient, capsys):
    corpus, loso = loso_copy
    argv = [str(loso), f"--corpus={corpus}", "--audit=0", *(LENIENT_GATE if lenient else ())]
    validate_cli.main(argv)
    doc = json.loads((loso / (PROMOTE_FILE if lenient else HOLD_FILE)).read_text())
    assert doc["schema"] == "frreg-verdict"
    assert doc["verdict"] == ("PROMOTE" if lenient else "HOLD")
    assert doc["seeds"] == list(SEEDS)
    assert doc["parent_adr"] == "ADR-0303"
    gate = doc["gate"]
    means = {s: float(np.mean(list(fold_plccs_from_predictions(loso, s).values()))) for s in SEEDS}
    for s in SEEDS:
        assert gate["per_seed_plccs"][str(s)] == pytest.approx(means[s], abs=1e-9)
    values = list(means.values())
    th = gate["thresholds"]
    assert gate["mean_plcc"] == pytest.approx(np.mean(values), abs=1e-9)
    assert gate["plcc_spread"] == pytest.approx(max(values) - min(values), abs=1e-9)
    assert gate["mean_plcc_threshold"] == th["mean_plcc_min"]
    assert gate["plcc_spread_max"] == th["plcc_spread_max"]
    assert gate["per_seed_min"] == th["per_seed_min"]
    assert gate["mean_plcc_pass"] == (np.mean(values) >= th["mean_plcc_min"])
    assert gate["plcc_spread_pass"] == (max(values) - min(values) <= th["plcc_spread_max"])
    failing = [s for s in SEEDS if means[s] < th["per_seed_min"]]
    assert gate["failing_seeds"] == failing
    assert gate["per_seed_pass"] == (not failing)
    assert gate["passed"] is lenient


@EXPORTS
def test_a_foreign_member_with_every_digest_recomputed_is_caught_by_the_registry(
    exported, tmp_path, capsys
):
    """Seed 1's member replaced by seed 2's, and the manifest, sidecar digests and probe
    scores rewritten to match: self-consistent, so only the registry the export flipped
    (which records what was exported) can tell."""
    target = copy_set(exported[2], tmp_path)
    doc = manifest(target)
    one, two = (next(m for m in doc["members"] if m["seed"] == s) for s in (1, 2))
    shutil.copy(target / two["onnx"], target / one["onnx"])
    one["sha256"] = sha(target / one["onnx"])
    doc["probe"]["scores"]["1"] = doc["probe"]["scores"]["2"]
    scores = [doc["probe"]["scores"][str(s)] for s in range(5)]
    doc["probe"]["ensemble_mean"] = [sum(col) / len(col) for col in zip(*scores, strict=True)]
    side = json.loads((target / one["sidecar"]).read_text())
    side["sha256"] = one["sha256"]
    (target / one["sidecar"]).write_text(json.dumps(side))
    one["sidecar_sha256"] = sha(target / one["sidecar"])
    (target / manifest_name(ENS)).write_text(json.dumps(doc), encoding="utf-8")
    registry = target / "registry.json"
    moved = tmp_path / "registry-under-review.json"
    shutil.move(registry, moved)
    assert export_cli.main([f"--check={target}"]) in (EXIT_OK, EXIT_FAIL)
    assert "no registry: the members were checked against their own manifest only" in (
        capsys.readouterr().out
    )
    assert export_cli.main([f"--check={target}", f"--registry={moved}"]) == EXIT_FAIL
    out = capsys.readouterr().out
    assert f"{member_id(ENS, 1)} sha256 does not match" in out
    # With the evidence instead of a registry: checked against a re-export.
    corpus, loso, _ = exported
    evidence = [
        f"--verdict={loso / PROMOTE_FILE}", f"--corpus={corpus}", "--accept-deviations",
        "--audit=0",
    ]  # fmt: skip
    assert export_cli.main([f"--check={target}", *evidence]) == EXIT_FAIL
    out = capsys.readouterr().out
    assert "member seed 1 is not what the verdict exports" in out
    assert "member seed 2 is not what" not in out
    assert export_cli.main([f"--check={exported[2]}", *evidence]) == EXIT_OK
    assert "byte for byte the member the verdict exports again" in capsys.readouterr().out


@pytest.mark.parametrize(("hidden", "depth"), [(64, 2), (32, 3)])
def test_a_member_from_the_shapes_template_is_the_exporters_own_bytes(hidden, depth):
    # After the first member of a shape, export_member puts each member's weights into
    # that first graph instead of running torch's exporter again: the bytes must be the
    # exporter's, for members whose weights share nothing with the template's.
    from frreg.export import graph
    from frreg.training.network import MLPConfig

    config = MLPConfig(hidden=hidden, depth=depth)
    rng = np.random.default_rng(hidden + depth)

    def member() -> Any:
        return graph.member_module(
            [rng.standard_normal(s).astype(np.float32) for s in config.layer_shapes], config
        )

    graph.export_member(member())  # the template, if no earlier test made one
    assert config in graph._TEMPLATES
    for _ in range(2):
        module = member()
        assert graph.export_member(module) == graph.export_member_with_torch(module)
