"""Progress on long work: one display (frreg._terminal) for every CLI and the gate session.

Off a terminal: a plain line at the start, one per interval, one at the end; on a
terminal: one line rewritten in place. A real frreg-train subprocess and real gate
sessions (with and without xdist) show it.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from gate_runs import run_session
from media import lavfi_to

from frreg._terminal import (
    INTERVAL_ENV,
    PLAIN_INTERVAL_S,
    LogFollower,
    LogLines,
    ProgressDisplay,
    plain_interval,
    progress_printer,
)
from frreg.errors import InputError
from frreg.producer.progress import CorpusProgress, ProgressEvent
from frreg.synthetic import synthetic_rows, write_corpus

pytest_plugins = ["pytester"]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_a_terminal_plain_lines_at_the_interval_with_start_and_end() -> None:
    clock, out = FakeClock(), io.StringIO()
    show = ProgressDisplay("train", unit="epochs", stream=out, clock=clock)
    assert show.mode == "plain"
    assert show.interval_s == PLAIN_INTERVAL_S
    for done in range(1, 101):  # one epoch a second
        clock.now = float(done)
        show(done, 100)
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    # The first update, then one per interval, then the end.
    assert lines[0] == "train: 1/100 epochs (1%) | 0:01 elapsed | ETA 1:39"
    assert lines[1] == "train: 11/100 epochs (11%) | 0:11 elapsed | ETA 1:29"
    assert len(lines) == 1 + 9 + 1, lines
    assert lines[-1] == "train: 100/100 epochs (100%) | done in 1:40"


def test_on_a_terminal_one_line_rewritten_in_place() -> None:
    assert progress_printer("frreg-train: training", Terminal()).mode == "tty"
    clock, out = FakeClock(), Terminal()
    show = ProgressDisplay("frreg-train: training", unit="epochs", stream=out, clock=clock)
    for done in range(1, 6):
        clock.now += 1.0
        show(done, 5)
    text = out.getvalue()
    assert text.count("\r") == 5  # every update redrawn in place
    assert text.count("\n") == 1  # one newline, at the end
    assert text.endswith("\n")
    assert "\rfrreg-train: training: 3/5 epochs (60%) | 0:03 elapsed | ETA 0:02" in text
    assert text.rstrip().endswith("\rfrreg-train: training: 5/5 epochs (100%) | done in 0:05")


def test_a_live_line_left_open_is_closed() -> None:
    out = Terminal()
    show = ProgressDisplay("audit", unit="jobs", stream=out)
    show(1, 4)
    show.close()
    assert out.getvalue().endswith("\n")
    show.close()  # twice is once
    assert out.getvalue().count("\n") == 1


def test_interval_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(INTERVAL_ENV, "0.25")
    assert plain_interval() == 0.25
    assert ProgressDisplay("x", stream=io.StringIO()).interval_s == 0.25
    for bad in ("0", "-1", "soon", "nan"):
        monkeypatch.setenv(INTERVAL_ENV, bad)
        with pytest.raises(InputError, match=INTERVAL_ENV):
            plain_interval()


def test_the_corpus_draws_with_the_same_display() -> None:
    out = io.StringIO()
    progress = CorpusProgress(out, mode="plain", interval_s=3600)
    progress(ProgressEvent(4, 1, 0, 1, frames_done=0, frames_todo=24, elapsed_s=0.0))
    progress(ProgressEvent(4, 2, 0, 1, frames_done=8, frames_todo=24, elapsed_s=1.0))  # within
    progress(ProgressEvent(4, 4, 0, 1, 24, 24, elapsed_s=3.0, finished=True))
    first, last = out.getvalue().splitlines()
    assert first.startswith("frreg-corpus: cells 1/4 (1 reused) | ")
    assert first.endswith("elapsed | ETA --")
    assert re.fullmatch(
        r"frreg-corpus: cells 4/4 \(1 reused\) \| 8\.0 frames/s \| done in 0:0\d", last
    )


def test_plain_lines_reach_a_log_and_a_follower_shows_new_lines(tmp_path: Path) -> None:
    log = tmp_path / "session.log"
    log.write_text("an earlier session's line\n")
    shown: list[str] = []
    follower = LogFollower(log, shown.append, poll_s=0.05).start()

    def append(text: str) -> None:
        with log.open("a") as fh:
            fh.write(text)

    display = ProgressDisplay(
        "seed 0 training",
        unit="epochs",
        stream=LogLines(lambda line: append(line + "\n")),
        mode="plain",
    )
    display(1, 2)
    append("half a li")
    deadline = time.monotonic() + 10
    while not shown and time.monotonic() < deadline:
        time.sleep(0.02)
    assert shown == ["seed 0 training: 1/2 epochs (50%) | 0:00 elapsed | ETA 0:00"]
    append("ne\n")
    display(2, 2)
    started = time.monotonic()
    follower.stop()
    assert time.monotonic() - started < 5
    assert shown[1:] == ["half a line", "seed 0 training: 2/2 epochs (100%) | done in 0:00"]
    assert "an earlier session's line" not in shown


def test_a_follower_whose_terminal_broke_stops_showing_not_working(tmp_path: Path) -> None:
    log = tmp_path / "session.log"

    def broken(line: str) -> None:
        raise OSError("terminal gone")

    follower = LogFollower(log, broken, poll_s=0.05).start()
    log.write_text("one\ntwo\n")
    follower.stop()  # no exception, and it returns


@pytest.mark.slow
def test_frreg_train_off_a_terminal_prints_plain_lines_at_the_interval(tmp_path: Path) -> None:
    corpus = write_corpus(
        tmp_path / "corpus.jsonl",
        synthetic_rows(n_sources=3, encoders=("libx264",), cqs=(24, 36), frames=12),
    )
    env = {**os.environ, INTERVAL_ENV: "0.2"}
    argv = [sys.executable, "-m", "frreg.cli.train", "--corpus", str(corpus), "--seeds", "0"]
    argv += ["--out-dir", str(tmp_path / "out"), "--epochs", "12000"]
    started = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    wall = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("frreg-train: training: ")]
    assert lines[0].startswith("frreg-train: training: 1/12000 epochs (0%) | ")
    assert re.fullmatch(
        r"frreg-train: training: 12000/12000 epochs \(100%\) \| done in \d+:\d\d", lines[-1]
    )
    middle = lines[1:-1]
    assert all(
        re.search(r"\d+/12000 epochs \(\d+%\) \| \d+:\d\d elapsed \| ETA \d+:\d\d$", ln)
        for ln in middle
    )
    # One line per 0.2 s of training, give or take: periodic, not one per epoch.
    assert 1 <= len(middle) <= wall / 0.2 + 1, (wall, lines)


def _manifest_session(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """A gate session that produces its corpus (2 clips x 2 CRFs) and trains five seeds."""
    clips = pytester.path / "clips"
    clips.mkdir()
    lavfi_to(clips / "chart_24fps.yuv", "testsrc2=size=96x54:rate=24", 6, raw_pix_fmt="yuv420p")
    lavfi_to(clips / "bars_30fps.yuv", "smptebars=size=96x54:rate=30", 6, raw_pix_fmt="yuv420p")
    (pytester.path / "sources.toml").write_text(
        'encoders = ["libx264"]\ncqs = [24, 40]\n'
        '[[sources]]\npath = "clips/chart_24fps.yuv"\nwidth = 96\nheight = 54\n'
        'pix_fmt = "yuv420p"\nframerate = 24\n'
        '[[sources]]\npath = "clips/bars_30fps.yuv"\nwidth = 96\nheight = 54\n'
        'pix_fmt = "yuv420p"\nframerate = 30\n'
    )
    corpus = pytester.path / "runs" / "corpus.jsonl"
    argv = [f"--frreg-corpus={corpus}", "--frreg-sources=sources.toml", "--frreg-epochs=30"]
    return run_session(pytester, *argv, "-p", "no:cacheprovider", *args)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [None, "2"], ids=["no-xdist", "xdist-n2"])
def test_a_gate_session_shows_corpus_and_training_progress_on_its_terminal(
    pytester: pytest.Pytester, workers: str | None
) -> None:
    result = _manifest_session(pytester, *(["-n", workers] if workers else []))
    text = result.stdout.str()
    summary = text.index("frreg ensemble gate")
    shown = [ln for ln in text[:summary].splitlines() if ln.startswith("[frreg] ")]
    # Produced and trained while the terminal watched, before the summary.
    assert any(
        re.fullmatch(r"\[frreg\] frreg-corpus: cells 0/4 \| \d:\d\d elapsed \| ETA --", ln)
        for ln in shown
    ), text
    assert any(re.match(r"\[frreg\] frreg-corpus: cells 4/4 \| .* \| done in", ln) for ln in shown)
    for seed in range(5):
        assert any(
            ln.startswith(f"[frreg] seed {seed} training: 1/30 epochs (3%) | ") for ln in shown
        )
        assert any(
            ln.startswith(f"[frreg] seed {seed} training: 30/30 epochs (100%) | done in")
            for ln in shown
        )
    # Whole lines of their own, never glued to pytest's progress dots.
    assert not re.search(r"\S\[frreg\]", text)


@pytest.mark.slow
def test_qq_silences_the_session_progress(pytester: pytest.Pytester) -> None:
    corpus = write_corpus(
        pytester.path / "corpus.jsonl",
        synthetic_rows(n_sources=3, encoders=("libx264",), cqs=(24, 36), frames=8),
    )
    argv = [
        f"--frreg-corpus={corpus}",
        "--frreg-epochs=5",
        "--frreg-seeds=0",
        "-p",
        "no:cacheprovider",
    ]
    loud = run_session(pytester, *argv)
    assert loud.ret == 1  # one seed is not an ensemble: HOLD
    assert "[frreg] seed 0 training: 5/5 epochs (100%) | done in" in loud.stdout.str()
    quiet = run_session(pytester, *argv, "--frreg-cache-dir=other-cache", "-qq")
    assert quiet.ret == 1
    assert "[frreg]" not in quiet.stdout.str()
