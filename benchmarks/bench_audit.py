"""What a verdict costs beside the training it judges: recomputation, evidence, audit.

On the deterministic synthetic corpus (33,840 rows, 9 sources by default) it
trains the full recipe once -- every seed of the ensemble x every LOSO fold x
``--epochs`` -- with :func:`frreg.training.loso.run_loso` (what ``frreg-train``
runs), timed, then runs ``frreg-validate --audit all`` on what it wrote
(:func:`frreg.cli.validate.main`, so :func:`frreg.gate.verdict.judge` with
``audit_jobs="all"``), timing its parts from the outside in that one run:

recomputation
    everything but the two below: loading and hashing the corpus, the seed files,
    each seed's predictions and weights (hashed, read), the LOSO folds, every
    PLCC/SROCC/RMSE and summary, re-running every stored fold model, the data
    checks and the gate itself. The issue's budget: 5 s on this corpus.
ensemble evidence
    :func:`frreg.gate.verdict.ensemble_of`: per-source numbers, the OLS and SVR
    baselines, conformal intervals, stability (reported; no budget).
audit
    the ``--audit all`` retraining of every (seed, fold) job and its comparison
    with the recorded predictions (:func:`frreg.gate.evidence.retrain`, with the
    failure record around it). The issue's budget: 1.1x one training of the same
    jobs.

Training and verdict run in this one process, one after the other (after an
untimed warm-up), so the ratios hold up on a shared machine better than either
wall time does. It prints the CPU model, vector extensions, torch's thread
settings and the load average before and after.

    .venv/bin/python benchmarks/bench_audit.py              # full recipe, ~4-6 min on 2 cores
    .venv/bin/python benchmarks/bench_audit.py --epochs 5   # quick: the fixed costs dominate

Exit status: 0 when it ran (whether or not the budgets were met), 1 when it
could not run (the reason on one line), 2 for bad options.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# benchmarks/_machine.py, beside this file (also when this file is loaded by path)
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import load_line, machine, run_guarded

#: The issue's budgets: the audit against one training of the same jobs, and the
#: recomputation on the 33,840-row corpus.
TARGET_AUDIT_RATIO = 1.1
TARGET_RECOMPUTE_S = 5.0


def build_parser() -> argparse.ArgumentParser:
    from frreg.schema import DEFAULT_EPOCHS

    p = argparse.ArgumentParser(
        prog="bench_audit.py", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    p.add_argument(
        "--epochs",
        type=int,
        default=DEFAULT_EPOCHS,
        metavar="N",
        help=f"epochs of the trained (and audited) recipe (default: {DEFAULT_EPOCHS})",
    )
    p.add_argument(
        "--keep",
        metavar="DIR",
        default=None,
        help="write the corpus and seed files (and the verdict) under DIR and keep them "
        "(default: a temporary directory, removed)",
    )
    return p


def _progress(start: float, epochs: int) -> Callable[[int, int], None]:
    step = max(1, epochs // 10)

    def progress(done: int, total: int) -> None:
        if done % step == 0 or done == total:
            print(f"  epoch {done}/{total}  {time.perf_counter() - start:.1f} s", flush=True)

    return progress


class Stages:
    """Wall time spent inside named functions, by wrapping them where they are looked up."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    @contextlib.contextmanager
    def timing(self, owner: Any, attr: str, name: str) -> Iterator[None]:
        original: Callable[..., Any] = getattr(owner, attr)

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
                self.calls[name] = self.calls.get(name, 0) + 1

        setattr(owner, attr, timed)
        try:
            yield
        finally:
            setattr(owner, attr, original)

    def get(self, name: str) -> float:
        return self.seconds.get(name, 0.0)


def run(args: argparse.Namespace) -> int:
    import torch

    import frreg.corpus
    import frreg.gate.evidence
    import frreg.gate.verdict
    import frreg.training.loso
    from frreg.cli import validate
    from frreg.corpus import load_corpus
    from frreg.schema import ENSEMBLE_SEEDS
    from frreg.synthetic import synthetic_rows, write_corpus
    from frreg.training.batched import native_module, resolve_kernel
    from frreg.training.loso import plan_jobs, run_loso, train_jobs
    from frreg.training.settings import FoldJob, TrainSettings

    if args.epochs < 1:
        print("bench_audit: --epochs must be >= 1", file=sys.stderr)
        return 2

    kernel = resolve_kernel("cpu", None)
    native = native_module()
    target = native.target() if kernel == "native" and native is not None else None
    model, flags = machine()
    print(f"cpu: {model}; {os.cpu_count()} logical cores; vector extensions: {' '.join(flags)}")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} intra-op threads, "
        f"{torch.get_num_interop_threads()} inter-op; batched kernel: {kernel}"
        + (f" ({target})" if target else "")
        + f"; {load_line()}"
    )

    with contextlib.ExitStack() as stack:
        if args.keep is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench_audit-")))
        else:
            root = Path(args.keep)
            root.mkdir(parents=True, exist_ok=True)
        corpus_path = write_corpus(root / "corpus.jsonl", synthetic_rows())
        loso_dir = root / "loso"
        loso_dir.mkdir(exist_ok=True)
        corpus = load_corpus(corpus_path)
        settings = TrainSettings(epochs=args.epochs)
        n_jobs = len(ENSEMBLE_SEEDS) * len(corpus.sources)
        print(
            f"corpus: {corpus.n_rows} rows, {len(corpus.sources)} sources; recipe: "
            f"{len(ENSEMBLE_SEEDS)} seeds x {len(corpus.sources)} folds = {n_jobs} jobs x "
            f"{args.epochs} epochs"
        )

        # An untimed warm-up, so neither side pays the one-time start-up costs.
        first = plan_jobs(corpus, ENSEMBLE_SEEDS[:1])[0]
        warm = FoldJob(first.seed, first.held_out, first.train_idx[:64], first.test_idx[:8])
        train_jobs(corpus, [warm], TrainSettings(epochs=1), kernel=kernel)

        # 1. One training of every job, as frreg-train runs it (then its files written).
        train = Stages()
        print("training (run_loso):", flush=True)
        with train.timing(frreg.training.loso, "train_jobs", "train_jobs"):
            start = time.perf_counter()
            run_loso(
                corpus,
                ENSEMBLE_SEEDS,
                settings,
                loso_dir,
                argv=["bench_audit.py"],
                progress=_progress(start, args.epochs),
            )
            train_total = time.perf_counter() - start
        train_s = train.get("train_jobs")
        print(f"  {train_total:.1f} s ({train_s:.1f} s training, the rest writing the seed files)")
        print(f"  {load_line()}")

        # 2. frreg-validate --audit all on what was written, its parts timed in this one run.
        stages = Stages()
        verdict_mod, evidence_mod = frreg.gate.verdict, frreg.gate.evidence
        print("frreg-validate --audit all:", flush=True)
        with contextlib.ExitStack() as timers:
            for owner, attr, name in (
                (frreg.corpus, "load_corpus", "corpus"),
                (verdict_mod, "recompute", "recompute"),
                (evidence_mod, "_rerun", "rerun"),
                (verdict_mod, "data_checks", "data checks"),
                (verdict_mod, "ensemble_of", "ensemble evidence"),
                (verdict_mod, "_audit", "audit"),
                (frreg.training.loso, "train_jobs", "audit training"),
            ):
                timers.enter_context(stages.timing(owner, attr, name))
            report = io.StringIO()
            start = time.perf_counter()
            with contextlib.redirect_stdout(report):
                status = validate.main([str(loso_dir), "--audit", "all"])
            validate_total = time.perf_counter() - start
        lines = report.getvalue().splitlines()
        if status not in (0, 1):
            print("\n".join(lines[-5:]))
            raise RuntimeError(f"frreg-validate exited {status}")
        audit_s = stages.get("audit")
        ensemble_s = stages.get("ensemble evidence")
        recompute_s = validate_total - audit_s - ensemble_s
        print(f"  {lines[-2] if len(lines) >= 2 else ''}".rstrip())
        print(f"  {lines[-1] if lines else ''}".rstrip())
        print(f"  {load_line()} (other work on the machine slows both sides)")

    corpus_s, seeds_s, data_s = (stages.get(k) for k in ("corpus", "recompute", "data checks"))
    print(f"frreg-validate --audit all: {validate_total:.1f} s")
    print(
        f"  recomputation: {recompute_s:.2f} s (corpus load and hash {corpus_s:.2f} s; "
        f"{stages.calls.get('recompute', 0)} seeds recomputed {seeds_s:.2f} s, of which "
        f"re-running the stored models {stages.get('rerun'):.2f} s; data checks {data_s:.2f} s; "
        f"the rest {recompute_s - corpus_s - seeds_s - data_s:.2f} s)"
    )
    print(f"  ensemble evidence: {ensemble_s:.2f} s")
    print(
        f"  audit: {audit_s:.1f} s ({stages.get('audit training'):.1f} s retraining, "
        f"{audit_s - stages.get('audit training'):.2f} s selecting and comparing)"
    )
    ratio = audit_s / train_s
    whole = validate_total / train_total
    verdict = "meets" if ratio <= TARGET_AUDIT_RATIO else "MISSES"
    print(
        f"audit / training: {ratio:.3f}x ({audit_s:.1f} s / {train_s:.1f} s; {verdict} the "
        f"{TARGET_AUDIT_RATIO}x target)"
    )
    print(
        f"frreg-validate --audit all / run_loso (frreg-train's work): {whole:.3f}x "
        f"({validate_total:.1f} s / {train_total:.1f} s)"
    )
    verdict = "within" if recompute_s <= TARGET_RECOMPUTE_S else "OVER"
    print(
        f"recomputation: {recompute_s:.2f} s ({verdict} the {TARGET_RECOMPUTE_S:.0f} s budget; "
        f"{model})"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_guarded("bench_audit", run, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
