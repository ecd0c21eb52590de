"""frreg-sweep: many recipes in one batched run, chosen with nested leave-one-source-out.

Oracles: the model a mixed run trains is the one trained alone (bit for bit); each
hyperparameter moves the batched kernels as it moves the reference loop; the nested
choice is recomputed by brute force and shown blind to the fold it is judged on; the
metrics are scikit-learn's and scipy's; the cluster sweep is the local one.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import pearsonr
from sklearn.metrics import mean_squared_error

from frreg._io import sha256_json
from frreg.cli import sweep as sweep_cli
from frreg.cli import train as train_cli
from frreg.corpus import Corpus, load_corpus
from frreg.gate.evidence import _single_threaded_torch
from frreg.schema import EXIT_OK, EXIT_USAGE
from frreg.sweep.grid import recipes
from frreg.sweep.run import CorpusArrays, run_local, shard_problem
from frreg.sweep.select import (
    SourceErrors,
    candidate_metrics,
    nested_selection,
    pareto_front,
    source_errors,
)
from frreg.synthetic import synthetic_rows, write_corpus
from frreg.training.batched import fit_folds_batched, fit_recipes_batched, native_module
from frreg.training.network import MLPConfig
from frreg.training.reference import fit_fold_reference
from frreg.training.settings import FoldJob, TrainSettings
from frreg.training.splits import LeaveOneSourceOut

KERNEL = pytest.mark.parametrize(
    "kernel",
    [
        pytest.param(
            "native",
            marks=pytest.mark.skipif(native_module() is None, reason="native kernel not built"),
        ),
        "torch",
    ],
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    """4 sources x 2 encoders x 4 cq x 20 frames: 640 rows."""
    path = tmp_path_factory.mktemp("sweep") / "corpus.jsonl"
    return load_corpus(write_corpus(path, synthetic_rows(n_sources=4, frames=20)))


def jobs_for(corpus: Corpus, seeds: tuple[int, ...]) -> list[FoldJob]:
    splitter = LeaveOneSourceOut()
    folds = list(zip(splitter.sources(corpus.groups), splitter.split(corpus.groups), strict=True))
    return [FoldJob(s, str(src), tr, te) for s in seeds for src, (tr, te) in folds]


def pooled_rmse(corpus: Corpus, jobs: list[FoldJob], preds: list[np.ndarray]) -> float:
    y = np.concatenate([corpus.target[j.test_idx] for j in jobs])
    return float(np.sqrt(mean_squared_error(y, np.concatenate(preds))))


# --------------------------------------------------------------------------
# Every model carries its own recipe
# --------------------------------------------------------------------------


@KERNEL
def test_a_model_in_a_mixed_run_is_the_one_trained_alone(corpus: Corpus, kernel: str) -> None:
    jobs = jobs_for(corpus, (0, 1))
    a = TrainSettings(epochs=5, lr=2e-3, model=MLPConfig(dropout=0.0))
    b = TrainSettings(epochs=3, batch_size=64, weight_decay=1e-3, model=MLPConfig(hidden=32))
    points: dict[int, list[tuple[int, np.ndarray]]] = {}
    mixed = fit_recipes_batched(
        corpus.features, corpus.codec, corpus.target, jobs + jobs, [a] * len(jobs) + [b] * len(jobs),
        kernel=kernel, curve_every=2, curve=lambda j, e, p: points.setdefault(j, []).append((e, p)),
    )  # fmt: skip
    alone = [
        *fit_folds_batched(corpus.features, corpus.codec, corpus.target, jobs, a, kernel=kernel),
        *fit_folds_batched(corpus.features, corpus.codec, corpus.target, jobs, b, kernel=kernel),
    ]
    for m, s in zip(mixed, alone, strict=True):
        np.testing.assert_array_equal(m.predictions, s.predictions)
        for x, y in zip(m.layers, s.layers, strict=True):
            np.testing.assert_array_equal(x, y)
    assert [e for e, _ in points[0]] == [2, 4, 5]  # every 2nd epoch and the last
    assert [e for e, _ in points[len(jobs)]] == [2, 3]
    np.testing.assert_array_equal(points[0][-1][1], mixed[0].predictions)


#: One pair of values per swept hyperparameter, far enough apart to move the held-out
#: error of a 15-epoch run clearly.
PAIRS = {
    "lr": (TrainSettings(epochs=15, lr=1e-4), TrainSettings(epochs=15, lr=5e-3)),
    "weight_decay": (TrainSettings(epochs=15, weight_decay=0.0), TrainSettings(epochs=15, weight_decay=3.0)),
    "batch_size": (TrainSettings(epochs=15, batch_size=8), TrainSettings(epochs=15, batch_size=256)),
    "dropout": (TrainSettings(epochs=15, model=MLPConfig(dropout=0.0)), TrainSettings(epochs=15, model=MLPConfig(dropout=0.5))),
    "hidden": (TrainSettings(epochs=15, model=MLPConfig(hidden=16)), TrainSettings(epochs=15, model=MLPConfig(hidden=128))),
}  # fmt: skip


@pytest.fixture(scope="module")
def reference_rmse(corpus: Corpus) -> dict[TrainSettings, float]:
    """The reference loop's pooled held-out RMSE (seed 0, every fold) of every value in
    :data:`PAIRS`."""
    jobs = jobs_for(corpus, (0,))
    out = {}
    # One intra-op thread (the suite runs one worker per core): on a 32-row batch a second
    # thread only adds hand-offs (7.0 s against 4.9 s for two pairs on 2 cores).
    with _single_threaded_torch():
        for pair in PAIRS.values():
            for s in pair:
                fits = [
                    fit_fold_reference(corpus.features, corpus.codec, corpus.target, j, s)
                    for j in jobs
                ]
                out[s] = pooled_rmse(corpus, jobs, [f.predictions for f in fits])
    return out


@pytest.mark.slow
@KERNEL
def test_each_hyperparameter_moves_the_batched_models_as_it_moves_the_reference_loop(
    corpus: Corpus, reference_rmse: dict[TrainSettings, float], kernel: str
) -> None:
    """Every value of every axis, all in one mixed run: each recipe's held-out RMSE is
    within 25 % of the reference loop's under the same recipe, and nearer to it than to
    the reference's under the other value of the pair (a kernel that ignored the
    hyperparameter would give both values one error, and fail one of the two)."""
    jobs = jobs_for(corpus, (0,))
    every = [s for pair in PAIRS.values() for s in pair]
    fits = fit_recipes_batched(
        corpus.features, corpus.codec, corpus.target,
        [j for _ in every for j in jobs], [s for s in every for _ in jobs], kernel=kernel,
    )  # fmt: skip
    got = {
        s: pooled_rmse(corpus, jobs, [f.predictions for f in fits[i * len(jobs) : (i + 1) * len(jobs)]])
        for i, s in enumerate(every)
    }  # fmt: skip
    for axis, (lo, hi) in PAIRS.items():
        for own, other in ((lo, hi), (hi, lo)):
            ref, alt = reference_rmse[own], reference_rmse[other]
            assert got[own] == pytest.approx(ref, rel=0.25), (axis, got[own], ref)
            assert abs(got[own] - ref) < abs(got[own] - alt), (axis, got[own], ref, alt)


def test_a_recipe_list_must_match_the_jobs_and_share_preset_norm(corpus: Corpus) -> None:
    jobs = jobs_for(corpus, (0,))
    with pytest.raises(ValueError, match="jobs but"):
        fit_recipes_batched(corpus.features, corpus.codec, corpus.target, jobs, [TrainSettings()])
    mixed = [TrainSettings(preset_norm="fixed"), TrainSettings(preset_norm="ladder")]
    with pytest.raises(ValueError, match="preset_norm"):
        fit_recipes_batched(corpus.features, corpus.codec, corpus.target, jobs[:2], mixed)


# --------------------------------------------------------------------------
# Scoring and choosing
# --------------------------------------------------------------------------


def test_candidate_metrics_are_scikit_learns_and_scipys(corpus: Corpus) -> None:
    rng = np.random.default_rng(7)
    stack = corpus.target + rng.normal(0, 2, size=(3, corpus.n_rows))
    m = candidate_metrics(stack, corpus.target, corpus.groups)
    mu = stack.mean(axis=0)
    assert m["pooled_rmse"] == pytest.approx(np.sqrt(mean_squared_error(corpus.target, mu)))
    per_source = {
        s: np.sqrt(mean_squared_error(corpus.target[corpus.groups == s], mu[corpus.groups == s]))
        for s in corpus.sources
    }
    assert m["worst_source"] == max(per_source, key=per_source.__getitem__)
    assert m["worst_source_rmse"] == pytest.approx(max(per_source.values()))
    assert m["abs_bias"] == pytest.approx(abs(np.mean(mu - corpus.target)))
    seed_means = [
        np.mean([pearsonr(corpus.target[corpus.groups == s], p[corpus.groups == s])[0] for s in corpus.sources])
        for p in stack
    ]  # fmt: skip
    assert m["mean_plcc"] == pytest.approx(np.mean(seed_means))
    assert m["plcc_spread"] == pytest.approx(max(seed_means) - min(seed_means))


@st.composite
def sse_tables(draw: st.DrawFn) -> SourceErrors:
    n_c = draw(st.integers(2, 6))
    n_s = draw(st.integers(3, 7))
    sse = draw(st.lists(st.floats(0, 1e4, allow_nan=False), min_size=n_c * n_s, max_size=n_c * n_s))
    rows = draw(st.lists(st.integers(1, 500), min_size=n_s, max_size=n_s))
    return SourceErrors(
        tuple(f"s{i}" for i in range(n_s)),
        np.array(sse, dtype=np.float64).reshape(n_c, n_s),
        np.array(rows, dtype=np.float64),
    )


@settings(max_examples=150, deadline=None)
@given(errors=sse_tables(), data=st.data())
def test_the_nested_choice_for_a_source_never_reads_that_sources_errors(
    errors: SourceErrors, data: st.DataObject
) -> None:
    nested = nested_selection(errors)
    n_c, n_s = errors.sse.shape
    for i, s in enumerate(errors.sources):
        # Brute force: the pooled RMSE over the other sources, first minimum on a tie.
        others = [j for j in range(n_s) if j != i]
        pooled = [
            np.sqrt(sum(errors.sse[c, j] for j in others) / sum(errors.rows[j] for j in others))
            for c in range(n_c)
        ]
        assert nested.choices[s] == int(np.argmin(pooled))
        # Whatever the judged source's own errors are, the choice for it stays.
        changed = errors.sse.copy()
        changed[:, i] = data.draw(
            st.lists(st.floats(0, 1e6, allow_nan=False), min_size=n_c, max_size=n_c)
        )
        again = nested_selection(SourceErrors(errors.sources, changed, errors.rows))
        assert again.choices[s] == nested.choices[s]
    picked = [errors.sse[nested.choices[s], i] for i, s in enumerate(errors.sources)]
    assert nested.estimate == pytest.approx(np.sqrt(sum(picked) / errors.rows.sum()))


def test_source_errors_sum_the_ensemble_means_squared_errors(corpus: Corpus) -> None:
    rng = np.random.default_rng(3)
    stacks = [corpus.target + rng.normal(0, k + 1, size=(2, corpus.n_rows)) for k in range(3)]
    errors = source_errors(stacks, corpus.target, corpus.groups)
    for c, stack in enumerate(stacks):
        whole = np.sqrt(mean_squared_error(corpus.target, stack.mean(axis=0)))
        assert errors.pooled_rmse()[c] == pytest.approx(whole)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(*(st.integers(0, 5) for _ in range(3))), min_size=1, max_size=25))
def test_the_pareto_front_is_every_point_no_other_dominates(points: list[tuple[int, ...]]) -> None:
    pts = np.array(points, dtype=np.float64)
    front = set(pareto_front(pts).tolist())
    for i, p in enumerate(points):
        dominated = any(
            all(q[k] <= p[k] for k in range(3)) and any(q[k] < p[k] for k in range(3))
            for q in points
        )
        assert (i in front) is (not dominated)


def test_a_workers_shard_is_checked_before_use() -> None:
    good = ({10: np.zeros((1, 4)), 20: np.zeros((1, 4))}, 1.5)
    assert shard_problem(good, (10, 20), 4) is None
    assert "epochs" in (shard_problem(({10: np.zeros((1, 4))}, 1.5), (10, 20), 4) or "")
    assert "finite" in (shard_problem(({10: np.full((1, 4), np.nan), 20: np.zeros((1, 4))}, 1.0), (10, 20), 4) or "")  # fmt: skip
    assert "rows" in (shard_problem(({10: np.zeros((1, 3)), 20: np.zeros((1, 3))}, 1.0), (10, 20), 4) or "")  # fmt: skip
    assert "seconds" in (shard_problem((good[0], -1.0), (10, 20), 4) or "")
    assert shard_problem("nonsense", (10, 20), 4) is not None


# --------------------------------------------------------------------------
# The CLI
# --------------------------------------------------------------------------

TINY = ["--epochs", "4", "--curve-every", "2", "--seeds", "100,101", "--lr", "2e-3", "5e-4",
        "--dropout", "0", "--batch-size", "64", "--weight-decay", "1e-5"]  # fmt: skip


@pytest.mark.slow
def test_a_sweep_writes_its_record_report_and_an_argv_frreg_train_accepts(
    corpus: Corpus, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sweep"
    argv = ["--corpus", str(corpus.path), "--out-dir", str(out), *TINY]
    assert sweep_cli.main(argv) == EXIT_OK
    record = json.loads((out / "sweep.json").read_text())
    assert record["digest"] == sha256_json(record["sweep"])
    sweep = record["sweep"]
    assert sweep["selection"]["candidates_tried"] == 2 * 2 == len(sweep["candidates"])
    assert sweep["selection"]["recipes_tried"] == 2
    assert {b for b in sweep["baselines"]} == {"ols", "svr"}
    assert sorted(sweep["selection"]["nested"]["choices"]) == sorted(corpus.sources)
    best = min(sweep["candidates"], key=lambda c: c["pooled_rmse"])
    assert record["recommended"]["candidate"] == best["name"]
    argv_out = record["recommended"]["argv"]
    assert capsys.readouterr().out.strip() == record["recommended"]["command"]
    assert argv_out[0] == "frreg-train"
    assert argv_out[-2:] == ["--sweep", record["digest"]]
    parsed = train_cli.build_parser().parse_args(argv_out[1:])
    assert parsed.epochs == best["epochs"]
    report = (out / "sweep.md").read_text()
    assert report.startswith(f"# frreg-sweep: {best['name']} recommended")
    assert "selection-adjusted" in report
    assert "OLS (in-fold)" in report


def test_the_same_recipes_give_the_same_predictions_run_twice(corpus: Corpus) -> None:
    arrays = CorpusArrays(corpus.features, corpus.codec, corpus.target, corpus.groups)
    grid = recipes({"lr": (2e-3,), "dropout": (0.0,)}, epochs=2)
    one = run_local(arrays, grid, (0,), 1, workers=2)
    two = run_local(arrays, grid, (0,), 1, workers=1)
    for e in (1, 2):
        np.testing.assert_array_equal(one.curves["r00"][e], two.curves["r00"][e])


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (
            ["--dropout", "1"],
            "--dropout: invalid value '1': expected a dropout probability in [0, 1)",
        ),
        (["--hidden", "24"], "the native kernel trains hidden widths that are multiples of 16"),
        (["--curve-every", "9"], "--curve-every 9 is more than --epochs 4"),
        (["--lr", "0"], "--lr: invalid value '0'"),
        (["--epoch", "3"], "unrecognized arguments: --epoch"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(
    corpus: Corpus,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    needle: str,
) -> None:
    if "--hidden" in extra and native_module() is None:
        pytest.skip("the native kernel's widths are refused only where it is built")
    argv = ["--corpus", str(corpus.path), "--out-dir", str(tmp_path / "o"), *TINY, *extra]
    assert run_cli(argv) == EXIT_USAGE
    err = capsys.readouterr().err.splitlines()
    err = [line for line in err if line.strip() and not line.startswith(("usage:", " "))]
    assert len(err) == 1, err
    assert needle in err[0]
    assert not (tmp_path / "o").exists()


def run_cli(argv: list[str]) -> int:
    """frreg-sweep's exit status, whether argparse exits or main returns."""
    try:
        return sweep_cli.main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def test_a_missing_corpus_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = sweep_cli.main(
        ["--corpus", str(tmp_path / "none.jsonl"), "--out-dir", str(tmp_path / "o")]
    )
    assert code == EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("frreg-sweep: error: ")
    assert "none.jsonl" in err[0]


def test_its_help_loads_neither_torch_nor_numpy() -> None:
    code = (
        "import sys\n"
        "from frreg.cli import sweep\n"
        "try:\n    sweep.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


# --------------------------------------------------------------------------
# On a cluster
# --------------------------------------------------------------------------


@pytest.mark.slow
def test_a_cluster_sweep_on_loopback_equals_the_local_one(corpus: Corpus) -> None:
    distributed = pytest.importorskip("distributed")
    from frreg.sweep.run import run_cluster

    arrays = CorpusArrays(corpus.features, corpus.codec, corpus.target, corpus.groups)
    grid = recipes({"lr": (2e-3, 5e-4), "dropout": (0.0,), "batch_size": (64,)}, epochs=3)
    local = run_local(arrays, grid, (0, 1), 1)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address=None, silence_logs=50,
        ) as lc,
        distributed.Client(lc.scheduler_address, set_as_default=False) as client,
    ):  # fmt: skip
        remote = run_cluster(client, arrays, grid, (0, 1), 1)
    assert remote.epochs == local.epochs == (1, 2, 3)
    for r in grid:
        for e in local.epochs:
            np.testing.assert_array_equal(remote.curves[r.id][e], local.curves[r.id][e])
        assert remote.cpu_seconds[r.id] > 0
