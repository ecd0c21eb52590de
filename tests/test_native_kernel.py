"""The compiled kernel (frreg/training/batched/_native.c) piece by piece, against torch and
float64 oracles; and the pure-torch fallback's public GELU against ATen's and autograd."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch
from torch import nn

from frreg.schema import DEFAULT_LR, DEFAULT_WEIGHT_DECAY, DROPOUT
from frreg.training.batched import native_module
from frreg.training.batched.engine import _used_columns, native_recipe, predict_layers
from frreg.training.batched.kernels import gelu_backward_public, gelu_public, predict
from frreg.training.batched.layout import Layout
from frreg.training.model import FrRegressorMLP
from frreg.training.network import MLPConfig
from frreg.training.settings import TrainSettings

NATIVE = native_module()
needs_native = pytest.mark.skipif(NATIVE is None, reason="the native kernel is not built here")
CONFIG = MLPConfig()
LAYOUT = Layout(CONFIG)
H = CONFIG.hidden
N_IN1 = CONFIG.in_features + 1
BATCH = 32


def recipe(*, dropout: float = DROPOUT, batch: int = BATCH, lr: float = DEFAULT_LR) -> tuple:
    """The engine's own recipe tuple for the default network with these settings."""
    config = MLPConfig(dropout=dropout)
    return native_recipe(TrainSettings(batch_size=batch, lr=lr, model=config))


def test_ci_builds_the_native_kernel() -> None:
    """CI must test the compiled path, not fall back to torch without a word."""
    if os.environ.get("CI"):
        assert NATIVE is not None, "frreg/training/batched/_native.c was not built"


@needs_native
def test_erf_exp_and_gelu_are_float32_accurate() -> None:
    x = np.linspace(-9, 9, 20001, dtype=np.float32)
    got = np.empty_like(x)
    NATIVE.erf(x, got)
    want = np.array([math.erf(float(v)) for v in x])
    assert np.max(np.abs(got - want)) < 5e-7  # A&S 7.1.26: 1.5e-7, plus float32 rounding
    NATIVE.gelu(x, got)
    xd = x.astype(np.float64)
    want = 0.5 * xd * (1 + np.array([math.erf(v / math.sqrt(2)) for v in xd]))
    assert np.max(np.abs(got - want) / np.maximum(1.0, np.abs(want))) < 4e-7
    e = np.linspace(-87, 0, 20001, dtype=np.float32)
    NATIVE.exp(e, got)
    assert np.max(np.abs(got / np.exp(e.astype(np.float64)) - 1)) < 3e-7


def random_layers(gen: torch.Generator) -> list[np.ndarray]:
    """One model's layers in the layout's padded rows, float32."""
    rows = []
    for width, (r, c) in zip(LAYOUT.widths, LAYOUT.shapes, strict=True):
        row = np.zeros(width, dtype=np.float32)
        row[: r * c] = (torch.randn(r * c, generator=gen) * 0.3).numpy()
        rows.append(row)
    return rows


def as_module(layers: list[np.ndarray], dtype: torch.dtype) -> FrRegressorMLP:
    net = FrRegressorMLP(CONFIG).to(dtype)
    linears = [m for m in net.net if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for lin, row, (r, c) in zip(linears, layers, LAYOUT.shapes, strict=True):
            w = torch.from_numpy(row[: r * c].reshape(r, c).astype(np.float64))
            lin.weight.copy_(w[:-1].T)
            lin.bias.copy_(w[-1])
    return net


@needs_native
@pytest.mark.parametrize("nb", [BATCH, 5], ids=["full-batch", "partial-batch"])
def test_native_gradients_match_autograd_in_float64(nb: int) -> None:
    gen = torch.Generator().manual_seed(3)
    layers = random_layers(gen)
    xb = torch.randn(nb, N_IN1, generator=gen).numpy().astype(np.float32)
    xb[:, -1] = 1.0
    yb = (torch.randn(nb, generator=gen) * 10).numpy().astype(np.float32)
    scale = np.float32(1 / (1 - DROPOUT))
    masks = [
        ((torch.rand(nb, H, generator=gen) >= DROPOUT).numpy() * scale).astype(np.float32)
        for _ in range(2)
    ]
    grads = tuple(np.zeros(r * c, dtype=np.float32) for r, c in LAYOUT.shapes)
    w = tuple(row[: r * c].copy() for row, (r, c) in zip(layers, LAYOUT.shapes, strict=True))
    NATIVE.forward_backward(xb, yb, tuple(masks), w, grads, recipe())

    net = as_module(layers, torch.float64)
    x = torch.from_numpy(xb[:, :-1].astype(np.float64))
    m1, m2 = (torch.from_numpy(m.astype(np.float64)) for m in masks)
    hidden = net.net[4](net.net[3](net.net[1](net.net[0](x)) * m1)) * m2
    loss = nn.functional.mse_loss(
        net.net[6](hidden).squeeze(-1), torch.from_numpy(yb.astype(np.float64))
    )
    loss.backward()
    linears = [net.net[0], net.net[3], net.net[6]]
    for g, lin, (r, c) in zip(grads, linears, LAYOUT.shapes, strict=True):
        want = torch.cat([lin.weight.grad.T, lin.bias.grad[None, :]]).numpy()
        got = g.reshape(r, c)
        scale_of = max(1.0, float(np.abs(want).max()))
        np.testing.assert_allclose(got, want, rtol=0, atol=2e-5 * scale_of)


@needs_native
def test_native_steps_follow_torch_adam_without_dropout() -> None:
    """One model, one full batch per epoch (the shuffle cannot matter), no dropout: each
    epoch is one torch.optim.Adam step of the reference module, to float32 rounding."""
    gen = torch.Generator().manual_seed(5)
    n, epochs = 24, 6
    layers = random_layers(gen)
    x = torch.randn(n, CONFIG.in_features, generator=gen)
    y = torch.randn(n, generator=gen) * 5 + 50
    table = np.hstack([x.numpy(), np.ones((n, 1), np.float32), y.numpy()[:, None]])
    params = tuple(row[None, :].copy() for row in layers)
    moments = [tuple(np.zeros_like(p) for p in params) for _ in range(2)]
    step = np.zeros(1, np.int64)
    rng = np.array([[1, 2, 3, 4]], dtype=np.uint64)
    for _ in range(epochs):
        NATIVE.train_epoch(
            np.ascontiguousarray(table, dtype=np.float32), np.zeros(1, np.int64),
            np.full(1, n, np.int64), params, *moments, step, rng,
            recipe(dropout=0.0, batch=n, lr=1e-2),
        )  # fmt: skip
    assert step[0] == epochs

    net = as_module(layers, torch.float32).eval()  # eval: no dropout, as in the native run
    optim = torch.optim.Adam(net.parameters(), lr=1e-2, weight_decay=DEFAULT_WEIGHT_DECAY)
    for _ in range(epochs):
        optim.zero_grad()
        nn.functional.mse_loss(net(x), y).backward()
        optim.step()
    linears = [m for m in net.net if isinstance(m, nn.Linear)]
    for p, lin, (r, c) in zip(params, linears, LAYOUT.shapes, strict=True):
        want = torch.cat([lin.weight.T, lin.bias[None, :]]).detach().numpy()
        np.testing.assert_allclose(p[0, : r * c].reshape(r, c), want, rtol=0, atol=2e-5)
        assert not p[0, r * c :].any()  # the padding stays zero


@needs_native
def test_native_dropout_drops_at_rate_p_and_scales_the_rest() -> None:
    """Through the gradients: a dropped unit's column of the second layer gets no gradient."""
    gen = torch.Generator().manual_seed(9)
    n = 4000
    layers = random_layers(gen)
    table = np.hstack([torch.randn(n, CONFIG.in_features, generator=gen).numpy(),
                       np.ones((n, 1), np.float32), np.full((n, 1), 50, np.float32)])  # fmt: skip
    params = tuple(row[None, :].copy() for row in layers)
    before = params[1].copy()
    moments = [tuple(np.zeros_like(p) for p in params) for _ in range(2)]
    args = (np.ascontiguousarray(table, dtype=np.float32), np.zeros(1, np.int64),
            np.full(1, n, np.int64), params, *moments, np.zeros(1, np.int64),
            np.array([[7, 7, 7, 7]], dtype=np.uint64))  # fmt: skip
    NATIVE.train_epoch(*args, recipe(dropout=0.5, batch=1, lr=1e-3))
    # 4000 single-row steps with p=0.5: every unit is dropped about half the time, so
    # every weight moved; with p near 1 almost none of layer 2's would.
    assert np.mean(params[1] != before) > 0.9


@needs_native
def test_the_thread_gets_its_subnormals_back_after_the_kernel() -> None:
    """The kernel flushes subnormals while it runs (MXCSR FTZ and DAZ) and must restore the
    calling thread's state: numpy and torch in the same thread still compute them."""
    tiny = np.float32(1e-38)
    assert tiny * np.float32(0.5) > 0  # subnormal here before the kernel
    gen = torch.Generator().manual_seed(3)
    n = 64
    table = np.hstack([torch.randn(n, CONFIG.in_features, generator=gen).numpy(),
                       np.ones((n, 1), np.float32), np.full((n, 1), 50, np.float32)])  # fmt: skip
    params = tuple(row[None, :].copy() for row in random_layers(gen))
    moments = [tuple(np.zeros_like(p) for p in params) for _ in range(2)]
    NATIVE.train_epoch(np.ascontiguousarray(table, dtype=np.float32), np.zeros(1, np.int64),
                       np.full(1, n, np.int64), params, *moments, np.zeros(1, np.int64),
                       np.array([[7, 7, 7, 7]], dtype=np.uint64), recipe())  # fmt: skip
    assert tiny * np.float32(0.5) == np.float32(5e-39)
    assert torch.tensor(1e-38, dtype=torch.float32).mul(0.5).item() > 0


@needs_native
def test_bad_buffers_are_refused_with_a_value_error() -> None:
    table = np.zeros((10, N_IN1 + 1), np.float32)
    params = tuple(np.zeros((1, w), np.float32) for w in LAYOUT.widths)
    avgs, sqs = (tuple(np.zeros_like(p) for p in params) for _ in range(2))
    ok = (np.zeros(1, np.int64), np.full(1, 10, np.int64))
    rest = (np.zeros(1, np.int64), np.ones((1, 4), np.uint64), recipe())
    NATIVE.train_epoch(table, *ok, params, avgs, sqs, *rest)
    with pytest.raises(ValueError, match="outside the table"):
        NATIVE.train_epoch(table, np.zeros(1, np.int64), np.full(1, 11, np.int64), params,
                           avgs, sqs, *rest)  # fmt: skip
    with pytest.raises(ValueError, match="exp_avg"):
        NATIVE.train_epoch(table, *ok, params, (np.zeros((1, 3), np.float32), *avgs[1:]), sqs,
                           *rest)  # fmt: skip
    with pytest.raises(ValueError, match="a tuple of 3 layer buffers"):
        NATIVE.train_epoch(table, *ok, params[:2], avgs, sqs, *rest)
    with pytest.raises(ValueError, match="bad recipe"):
        NATIVE.train_epoch(table, *ok, params, avgs, sqs, *rest[:2], (N_IN1, 0, 2, 32, 0, 1.0,
                           1e-3, 0.0, 0.9, 0.999, 1e-8))  # fmt: skip
    for used in (np.ones(N_IN1 + 1, np.uint8), np.ones(N_IN1, np.int64)):  # length, type
        with pytest.raises(ValueError, match="used"):
            NATIVE.train_epoch(table, *ok, params, avgs, sqs, *rest, used=used)
    layers = tuple(np.zeros(r * c, np.float32) for r, c in LAYOUT.shapes)
    x, out = np.zeros((4, N_IN1 - 1), np.float32), np.empty(4)
    NATIVE.predict(x, layers, recipe(), out)
    with pytest.raises(ValueError, match="x"):
        NATIVE.predict(x[:, 1:].copy(), layers, recipe(), out)
    with pytest.raises(ValueError, match="out"):
        NATIVE.predict(x, layers, recipe(), np.empty(4, np.float32)[:3])
    with pytest.raises(ValueError, match="layer"):
        NATIVE.predict(x, (layers[0][1:], *layers[1:]), recipe(), out)
    multiple = NATIVE.hidden_multiple()  # a width that is not whole vectors
    with pytest.raises(ValueError, match=f"multiples of {multiple}"):
        NATIVE.train_epoch(table, *ok, params, avgs, sqs, *rest[:2], (N_IN1, multiple + 4, 2, 32,
                           0, 1.0, 1e-3, 0.0, 0.9, 0.999, 1e-8))  # fmt: skip


@needs_native
def test_skipping_unused_input_columns_changes_no_bit() -> None:
    """The kernel leaves out a model's input columns that are zero in all of its training
    rows (``used``, from the engine's ``_used_columns``): two models whose blocks use
    different columns, +0 and -0 among the zeros, dropout, a partial last batch, three
    epochs; every weight, moment, step and stream must come out as with every column used."""
    gen = torch.Generator().manual_seed(11)
    n = 2 * 150
    x = torch.randn(n, CONFIG.in_features, generator=gen).numpy()
    x[:150, 7:17] = 0.0  # model 0's rows: ten one-hot slots unused
    x[:150, 9] = -0.0
    x[150:, 3] = 0.0  # model 1's rows: one feature column unused, the slots used
    x[150:, 18] = -0.0
    y = torch.randn(n, generator=gen).numpy() * 5 + 50
    table = np.ascontiguousarray(np.hstack([x, np.ones((n, 1)), y[:, None]]), dtype=np.float32)
    base, n_train = np.array([0, 150], np.int64), np.array([150, 150], np.int64)
    used = _used_columns(table, base, n_train, N_IN1)
    assert used[0].sum() == N_IN1 - 10
    assert used[1].sum() == N_IN1 - 2

    start = [np.stack([row, row]) for row in random_layers(gen)]
    lie = used.copy()
    lie[0, 0] = 0  # a feature column model 0's rows do use
    runs = []
    for cols in (None, used, lie):
        state = (tuple(p.copy() for p in start), *(tuple(np.zeros_like(p) for p in start)
                 for _ in range(2)), np.zeros(2, np.int64), np.array([[1, 2, 3, 4], [5, 6, 7, 8]],
                 dtype=np.uint64))  # fmt: skip
        for _ in range(3):
            NATIVE.train_epoch(table, base, n_train, *state, recipe(dropout=0.2), used=cols)
        runs.append([a for part in state for a in (part if isinstance(part, tuple) else (part,))])
    dense, skipping, lying = runs
    assert not np.array_equal(dense[0], start[0])  # it trained
    for want, got in zip(dense, skipping, strict=True):
        assert want.tobytes() == got.tobytes()
    # The kernel does leave out what `used` says: told that a used column is not, it trains
    # another model.
    assert dense[0].tobytes() != lying[0].tobytes()


@needs_native
def test_native_predictions_are_float32_accurate_and_do_not_depend_on_the_chunk() -> None:
    """The kernel's eval-mode forward pass (the held-out predictions of a native run) against
    float64 with exact GELU (scipy's erf); and the same bits whether 32 rows go through at a
    time (the training recipe's batch) or predict_layers' 256."""
    from scipy.special import erf

    gen = torch.Generator().manual_seed(13)
    layers = [np.ascontiguousarray(w[: r * c].reshape(r, c)) for w, (r, c) in
              zip(random_layers(gen), LAYOUT.shapes, strict=True)]  # fmt: skip
    x = torch.randn(1001, CONFIG.in_features, generator=gen).numpy()
    a = x.astype(np.float64)
    for w in layers[:-1]:
        z = a @ w[:-1].astype(np.float64) + w[-1]
        a = 0.5 * z * (1 + erf(z / math.sqrt(2)))
    want = (a @ layers[-1][:-1].astype(np.float64) + layers[-1][-1])[:, 0]
    out = np.empty(len(x))
    NATIVE.predict(x, tuple(layers), recipe(), out)
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(out, want, rtol=0, atol=1e-6 * scale)
    assert predict_layers(layers, x).tobytes() == out.tobytes()
    # A shape the kernel does not train (hidden 24) goes through torch's forward pass.
    odd = [
        (torch.randn(r, c, generator=gen) * 0.3).numpy() for r, c in ((21, 24), (25, 24), (25, 1))
    ]
    with torch.inference_mode():
        want_odd = predict([torch.from_numpy(w) for w in odd], torch.from_numpy(x)).double()
    assert predict_layers(odd, x).tobytes() == want_odd.numpy().tobytes()


@needs_native
def test_a_native_runs_stored_models_reproduce_its_predictions_bit_for_bit(tmp_path) -> None:
    """What the verdict's recomputation re-runs (frreg.training.weights.predict on the stored
    layers) is what the run computed: no tolerance needed on a native run."""
    from frreg.corpus import load_corpus
    from frreg.synthetic import synthetic_rows, write_corpus
    from frreg.training.batched import fit_folds_batched
    from frreg.training.loso import plan_jobs
    from frreg.training.settings import fold_inputs
    from frreg.training.weights import predict

    rows = synthetic_rows(n_sources=3, frames=8)
    corpus = load_corpus(write_corpus(tmp_path / "corpus.jsonl", rows))
    jobs = plan_jobs(corpus, (0,))
    fits = fit_folds_batched(corpus.features, corpus.codec, corpus.target, jobs,
                             TrainSettings(epochs=2), kernel="native")  # fmt: skip
    for job, fit in zip(jobs, fits, strict=True):
        x = fold_inputs(corpus.features, corpus.codec, job.train_idx, job.test_idx)
        assert predict(fit.layers, x).tobytes() == fit.predictions.tobytes()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_public_gelu_fallback_matches_aten_and_autograd(dtype: torch.dtype) -> None:
    """The torch kernel's GELU without private ATen ops (used where torch lacks them)."""
    z = torch.linspace(-8, 8, 4001, dtype=dtype)
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    out = torch.empty_like(z)
    torch.testing.assert_close(gelu_public(z, out), nn.functional.gelu(z), rtol=tol, atol=tol)
    leaf = z.clone().requires_grad_(True)
    grad = torch.rand(z.shape, dtype=dtype, generator=torch.Generator().manual_seed(1))
    nn.functional.gelu(leaf).backward(grad)
    got = gelu_backward_public(grad, z, torch.empty_like(z))
    torch.testing.assert_close(got, leaf.grad, rtol=tol, atol=tol)


def _train_in_subprocess(target: str | None, **env_vars: str) -> tuple[str, str]:
    """(target, digest of every prediction and layer) of a short native run in a new process
    (``env_vars`` set in its environment)."""
    import subprocess
    import sys

    code = (
        "import hashlib\n"
        "from frreg.synthetic import synthetic_rows, write_corpus\n"
        "from frreg.corpus import load_corpus\n"
        "from frreg.training.loso import plan_jobs\n"
        "from frreg.training.batched import fit_folds_batched\n"
        "from frreg.training.batched import _native\n"
        "from frreg.training.settings import TrainSettings\n"
        "import sys, tempfile, pathlib\n"
        "d = pathlib.Path(tempfile.mkdtemp())\n"
        "c = load_corpus(write_corpus(d / 'c.jsonl', synthetic_rows(n_sources=3, frames=20)))\n"
        "fits = fit_folds_batched(c.features, c.codec, c.target, plan_jobs(c, (0,)),\n"
        "                         TrainSettings(epochs=3), kernel='native' if _native.target()"
        " != 'baseline' else None)\n"
        "h = hashlib.sha256()\n"
        "for f in fits:\n"
        "    h.update(f.predictions.tobytes())\n"
        "    for layer in f.layers: h.update(layer.tobytes())\n"
        "print(_native.target(), h.hexdigest())\n"
    )
    env = {**os.environ}
    env.pop("FRREG_NATIVE_TARGET", None)
    if target is not None:
        env["FRREG_NATIVE_TARGET"] = target
    env.update(env_vars)
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    got_target, digest = out.stdout.split()
    return got_target, digest


@pytest.mark.slow  # two trainings, each in a new interpreter
@needs_native
def test_avx512_and_avx2_variants_compute_the_same_numbers() -> None:
    """So an audit on an AVX2 machine reproduces a run trained on an AVX-512 one exactly."""
    best, digest = _train_in_subprocess(None)
    if best != "x86-64-v4":
        pytest.skip(f"needs an AVX-512 CPU to compare against AVX2 (this one runs {best})")
    lower, lower_digest = _train_in_subprocess("x86-64-v3")
    assert lower == "x86-64-v3"
    assert lower_digest == digest


@pytest.mark.slow  # two trainings, each in a new interpreter
@needs_native
def test_a_native_run_does_not_depend_on_torchs_instruction_set() -> None:
    """torch's own code differs by instruction set (ATEN_CPU_CAPABILITY; AVX-512, AVX2 or
    none): a native run must not pass through any of it that changes a bit, neither in its
    initial weights (torch's uniform_ gave other bits without its AVX2 code) nor in its held-out
    predictions (torch's float32 products), or an AVX2-only machine could not audit a run
    trained on an AVX-512 one. ``default`` (no vector code) differs from every CPU's own."""
    best, digest = _train_in_subprocess(None)
    plain, plain_digest = _train_in_subprocess(None, ATEN_CPU_CAPABILITY="default")
    assert plain == best
    assert plain_digest == digest
