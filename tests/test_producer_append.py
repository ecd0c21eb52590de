"""``frreg-corpus --out`` onto an existing corpus keeps its cells; ``--merge`` combines shards.

The fork's producer opens ``--out`` for appending, and its users accumulate
sources into one file by calling it once per source; its training kit produces
a corpus per machine and merges them. frreg carries whole cells instead of
appending lines: every call's rows are kept, a rerun adds nothing, a row key is
never there twice, and a cell of other settings at a taken (src, encoder, cq) is
refused with one line naming the file and ``--replace``. Every run here is the
real ``frreg-corpus`` (imageio-ffmpeg's ffmpeg and libvmaf) on tiny sources.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from media import lavfi_to

from frreg.cli.corpus import main
from frreg.corpus import load_corpus
from frreg.corpus.sidecar import check_corpus_complete
from frreg.corpus.validity import assess
from frreg.errors import CorpusError
from frreg.producer import builtin_sources, incomplete_marker, manifest_path, parts_dir
from frreg.producer.cells import NONDETERMINISTIC_COLUMNS
from frreg.schema import EXIT_FAIL, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, KEY_COLUMNS

#: Every test here runs the real frreg-corpus: real encodes and libvmaf scores.
pytestmark = pytest.mark.slow

FRREG_CORPUS = Path(sys.executable).parent / "frreg-corpus"
SIZE = "64x36"
FRAMES = "8"


def corpus_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed ``frreg-corpus`` as a real process in ``cwd``."""
    return subprocess.run(
        [str(FRREG_CORPUS), *args, "--progress", "none"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == EXIT_OK, done.stderr
    assert "Traceback" not in done.stderr
    return done.stdout


def refused(done: subprocess.CompletedProcess[str]) -> str:
    """The one error line of a run that exited 2."""
    assert done.returncode == EXIT_USAGE, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("frreg-corpus: error: "), lines[0]
    return lines[0]


def builtin(cache: Path, src: str, *more: str, out: str = "c.jsonl") -> list[str]:
    """One call for one built-in source: the shape ``--builtin testsrc2_30fps --frames 8
    --encoder libx264 --cq 30`` (more flags after)."""
    return ["--builtin", src, "--frames", FRAMES, "--builtin-size", SIZE,
            "--cache-dir", str(cache), "--encoder", "libx264", "--cq", "30", *more,
            "--out", out]  # fmt: skip


def rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def comparable(path: Path) -> list[dict[str, Any]]:
    """Rows without the columns that differ between identical runs (the encode's time)."""
    return [{k: v for k, v in r.items() if k not in NONDETERMINISTIC_COLUMNS} for r in rows(path)]


def keys(path: Path) -> list[tuple[Any, ...]]:
    return [tuple(r[c] for c in KEY_COLUMNS) for r in rows(path)]


def manifest(path: Path) -> dict[str, Any]:
    return json.loads(manifest_path(path).read_text(encoding="utf-8"))


def sidecars(path: Path) -> dict[str, bytes | None]:
    """The corpus and its manifest and marker, as bytes (``None``: absent)."""
    files = (path, manifest_path(path), incomplete_marker(path))
    return {p.name: p.read_bytes() if p.exists() else None for p in files}


def assert_one_usable_corpus(path: Path) -> None:
    """It loads, its manifest says complete with its digest, and every cell it records
    has exactly its rows (the gate's data check)."""
    check_corpus_complete(path)
    corpus = load_corpus(path)
    agreement = assess(corpus).manifest
    assert agreement.present
    assert agreement.problems == ()
    record = manifest(path)
    assert record["complete"] is True
    assert record["corpus"]["rows"] == corpus.n_rows
    cells = [(c["src"], c["encoder"], c["cq"]) for c in record["cells"]]
    assert len(cells) == len(set(cells)) == record["cells_total"]
    assert len({c["key"] for c in record["cells"]}) == len(cells)
    assert len(set(keys(path))) == corpus.n_rows


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built-in sources these tests use, rendered once."""
    cache = tmp_path_factory.mktemp("cache")
    ids = ["testsrc2_30fps", "life_25fps", "gradients_24fps"]
    builtin_sources(cache, ids=ids, frames=int(FRAMES), size=(64, 36))
    return cache


@pytest.fixture(scope="module")
def shards(cache: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two shards produced separately, as on two machines (b has no parts directory:
    only the corpus and its manifest were copied), and the union produced in one run."""
    made: dict[str, Path] = {}
    for name, srcs in (("a", ["testsrc2_30fps"]), ("b", ["life_25fps"]),
                       ("union", ["testsrc2_30fps", "life_25fps"])):  # fmt: skip
        where = tmp_path_factory.mktemp(f"machine_{name}")
        argv = ["--builtin", *srcs, "--frames", FRAMES, "--builtin-size", SIZE,
                "--cache-dir", str(cache), "--encoder", "libx264", "--cq", "30", "38",
                "--out", "corpus.jsonl"]  # fmt: skip
        ok(corpus_cli(where, *argv))
        made[name] = where / "corpus.jsonl"
    shutil.rmtree(parts_dir(made["b"]))
    return made


def copy_shard(shard: Path, to: Path) -> Path:
    """The corpus and its manifest, as one would carry them to another machine."""
    to.mkdir(parents=True, exist_ok=True)
    shutil.copy(shard, to / shard.name)
    shutil.copy(manifest_path(shard), manifest_path(to / shard.name))
    return to / shard.name


# --------------------------------------------------------------------------
# Appending: one call per source onto one --out
# --------------------------------------------------------------------------


def test_one_call_per_source_onto_one_out_keeps_every_calls_rows(tmp_path: Path) -> None:
    """The fork's runbook step 0, once per source, onto one --out (its argv as written,
    with libx264 and small raw sources)."""
    for name, graph in (("Tennis", "testsrc2"), ("Crowd", "mandelbrot")):
        lavfi_to(tmp_path / f"{name}.yuv", f"{graph}=size=64x48:rate=25", 4, raw_pix_fmt="yuv420p")
    vmaf = tmp_path / "build" / "libvmaf" / "tools" / "vmaf"
    vmaf.parent.mkdir(parents=True)
    vmaf.write_text("#!/bin/sh\nexit 99\n")
    out = tmp_path / "runs" / "phase_a" / "per_frame_canonical6.jsonl"
    for name in ("Tennis", "Crowd"):
        ok(
            corpus_cli(
                tmp_path,
                *["--vmaf-bin", "build/libvmaf/tools/vmaf", "--source", f"{name}.yuv"],
                *["--width", "64", "--height", "48", "--pix-fmt", "yuv420p", "--framerate", "25"],
                *["--encoder", "libx264", "--cq", "19", "--cq", "37"],
                *["--out", "runs/phase_a/per_frame_canonical6.jsonl"],
            )
        )
    assert {(r["src"], r["cq"]) for r in rows(out)} == {
        (src, cq) for src in ("Tennis", "Crowd") for cq in (19, 37)
    }
    assert len(rows(out)) == 2 * 2 * 4
    assert_one_usable_corpus(out)
    record = manifest(out)
    assert [s["id"] for s in record["sources"]] == ["Crowd", "Tennis"]
    assert record["carried_from"] == [
        {"corpus": str(out), "sha256": record["carried_from"][0]["sha256"], "cells": 2}
    ]


def test_a_rerun_of_any_call_adds_nothing(cache: Path, tmp_path: Path) -> None:
    first = builtin(cache, "testsrc2_30fps")
    second = builtin(cache, "life_25fps")
    ok(corpus_cli(tmp_path, *first))
    ok(corpus_cli(tmp_path, *second))
    out = tmp_path / "c.jsonl"
    before = out.read_bytes()
    assert {r["src"] for r in rows(out)} == {"testsrc2_30fps", "life_25fps"}
    for call in (second, first, second):
        said = ok(corpus_cli(tmp_path, *call))
        assert "16 rows from 2 cells (1 kept from earlier runs, 1 reused, 0 run)" in said
        assert out.read_bytes() == before
        assert manifest(out)["run"]["encodes"] == 0
    assert_one_usable_corpus(out)


def test_calls_started_together_onto_one_out_each_keep_their_rows(
    cache: Path, tmp_path: Path
) -> None:
    """The second waits for the first's lock, then adds its cells to what the first wrote."""
    calls = [
        subprocess.Popen(
            [str(FRREG_CORPUS), *builtin(cache, src), "--progress", "none"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for src in ("testsrc2_30fps", "life_25fps", "gradients_24fps")
    ]
    for call in calls:
        _, err = call.communicate(timeout=120)
        assert call.returncode == EXIT_OK, err
    out = tmp_path / "c.jsonl"
    assert {r["src"] for r in rows(out)} == {"testsrc2_30fps", "life_25fps", "gradients_24fps"}
    assert_one_usable_corpus(out)


@pytest.mark.parametrize(
    ("frames", "more", "named"),
    [
        ("4", [], "frames 8 vs 4"),
        (FRAMES, ["--preset", "libx264=fast"], "preset medium vs fast"),
    ],
    ids=["frames", "preset"],
)
def test_a_cell_of_other_settings_at_a_taken_key_is_refused_naming_replace(
    cache: Path, tmp_path: Path, frames: str, more: list[str], named: str
) -> None:
    ok(corpus_cli(tmp_path, *builtin(cache, "testsrc2_30fps")))
    ok(corpus_cli(tmp_path, *builtin(cache, "life_25fps")))
    out = tmp_path / "c.jsonl"
    before = sidecars(out)
    argv = builtin(cache, "testsrc2_30fps", *more)
    argv[argv.index("--frames") + 1] = frames
    line = refused(corpus_cli(tmp_path, *argv))
    assert line.startswith(f"frreg-corpus: error: {out}: cell 'testsrc2_30fps/libx264/cq30' "
                           "is already in this corpus from other settings: ")  # fmt: skip
    assert named in line
    assert "(the corpus vs this run); a corpus holds one cell per (src, encoder, cq)" in line
    assert line.endswith("pass --replace to replace the corpus with this run's cells, or write "
                         "to another --out")  # fmt: skip
    assert sidecars(out) == before  # nothing half-written: refused before anything ran

    # --replace: the corpus is exactly this run's cells.
    ok(corpus_cli(tmp_path, *argv, "--replace"))
    assert {(r["src"], r["preset"]) for r in rows(out)} == {
        ("testsrc2_30fps", "fast" if more else "medium")
    }
    assert len(rows(out)) == int(frames)
    assert [c["src"] for c in manifest(out)["cells"]] == ["testsrc2_30fps"]
    check_corpus_complete(out)


def test_cells_scored_by_another_libvmaf_are_refused_naming_allow_mixed_libvmaf(
    cache: Path, tmp_path: Path
) -> None:
    ok(corpus_cli(tmp_path, *builtin(cache, "testsrc2_30fps")))
    out = tmp_path / "c.jsonl"
    record = manifest(out)
    record["cells"][0]["libvmaf_version"] = "0.0.0-other"  # as if made with another ffmpeg
    manifest_path(out).write_text(json.dumps(record), encoding="utf-8")
    line = refused(corpus_cli(tmp_path, *builtin(cache, "life_25fps")))
    assert "by libvmaf 0.0.0-other" in line
    assert "pass --allow-mixed-libvmaf to keep both, or --replace" in line
    ok(corpus_cli(tmp_path, *builtin(cache, "life_25fps"), "--allow-mixed-libvmaf"))
    assert {r["src"] for r in rows(out)} == {"testsrc2_30fps", "life_25fps"}
    assert manifest(out)["settings"]["allow_mixed_libvmaf"] is True


def test_a_jsonl_not_written_by_frreg_corpus_is_refused_not_replaced(
    cache: Path, tmp_path: Path
) -> None:
    out = tmp_path / "c.jsonl"
    out.write_text('{"src": "x", "encoder": "h264_nvenc", "cq": 19, "frame_index": 0}\n')
    before = out.read_bytes()
    line = refused(corpus_cli(tmp_path, *builtin(cache, "testsrc2_30fps")))
    assert line == (
        f"frreg-corpus: error: {out}: exists and has no producer manifest (c.jsonl.manifest.json):"
        " it was not written by frreg-corpus, whose cells a run would add to; pass --replace "
        "to replace the corpus with this run's cells, or write to another --out"
    )
    assert out.read_bytes() == before
    assert not parts_dir(out).exists()


@pytest.mark.skipif(sys.platform == "darwin", reason="VideoToolbox may work")
def test_a_failed_call_keeps_the_earlier_calls_cells_for_its_retry(
    cache: Path, tmp_path: Path
) -> None:
    """A cell that fails leaves no corpus (exit 1), as any failed run; the earlier calls'
    cells stay recorded, and the retry with --allow-missing writes them all."""
    ok(corpus_cli(tmp_path, *builtin(cache, "testsrc2_30fps")))
    out = tmp_path / "c.jsonl"
    failing = builtin(cache, "life_25fps")
    failing[failing.index("libx264")] = "libx264,hevc_videotoolbox"
    done = corpus_cli(tmp_path, *failing)
    assert done.returncode == EXIT_FAIL, done.stderr
    assert not out.exists()
    with pytest.raises(CorpusError):
        check_corpus_complete(out)
    # Another call meanwhile is told about the unfinished cell.
    line = refused(corpus_cli(tmp_path, *builtin(cache, "gradients_24fps")))
    assert "1 cells an earlier run asked for are not done (life_25fps/hevc_videotoolbox/cq30)" in (
        line
    )
    assert "--allow-missing" in line
    ok(corpus_cli(tmp_path, *failing, "--allow-missing"))
    assert {r["src"] for r in rows(out)} == {"testsrc2_30fps", "life_25fps"}
    assert manifest(out)["missing"] == ["life_25fps/hevc_videotoolbox/cq30"]
    check_corpus_complete(out)  # the gap is recorded and allowed


@pytest.mark.slow
def test_an_interrupted_call_resumes_without_duplicates(cache: Path, tmp_path: Path) -> None:
    ok(corpus_cli(tmp_path, *builtin(cache, "testsrc2_30fps")))
    out = tmp_path / "c.jsonl"
    second = builtin(cache, "life_25fps", "--jobs", "1")
    second[second.index("--cq") + 1] = "20,26,32,38,44"
    proc = subprocess.Popen(
        [str(FRREG_CORPUS), *second, "--progress", "none"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    kept = {p.name for p in parts_dir(out).glob("[!.]*.jsonl")}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if {p.name for p in parts_dir(out).glob("[!.]*.jsonl")} - kept:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the call finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert incomplete_marker(out).exists()

    # Another call is refused until the interrupted one is finished (or its gaps allowed).
    assert "an earlier run asked for are not done" in refused(
        corpus_cli(tmp_path, *builtin(cache, "gradients_24fps"))
    )
    ok(corpus_cli(tmp_path, *second))
    ok(corpus_cli(tmp_path, *builtin(cache, "gradients_24fps")))
    assert len(keys(out)) == len(set(keys(out))) == (1 + 5 + 1) * int(FRAMES)
    assert_one_usable_corpus(out)

    # The same three calls, uninterrupted, give the same rows.
    clean = tmp_path / "clean"
    clean.mkdir()
    for call in (builtin(cache, "testsrc2_30fps"), second, builtin(cache, "gradients_24fps")):
        ok(corpus_cli(clean, *call))
    assert comparable(out) == comparable(clean / "c.jsonl")


# --------------------------------------------------------------------------
# --merge: shards produced separately
# --------------------------------------------------------------------------


def test_merging_two_shards_equals_producing_their_union_in_one_run(
    shards: dict[str, Path], tmp_path: Path
) -> None:
    said = ok(
        corpus_cli(tmp_path, "--merge", str(shards["a"]), str(shards["b"]), "--out", "m.jsonl")
    )
    out = tmp_path / "m.jsonl"
    assert said.startswith(f"merged 2 corpora into {out}: 32 rows from 4 cells;")
    union = shards["union"]
    assert keys(out) == keys(union)
    assert comparable(out) == comparable(union)  # row for row, every value
    assert_one_usable_corpus(out)
    merged, whole = manifest(out), manifest(union)
    assert [c["key"] for c in merged["cells"]] == [c["key"] for c in whole["cells"]]
    assert [s["sha256"] for s in merged["sources"]] == [s["sha256"] for s in whole["sources"]]
    assert [c["status"] for c in merged["cells"]] == ["done"] * 4
    assert merged["settings"]["merged"] == [str(shards["a"]), str(shards["b"])]
    assert [(m["corpus"], m["cells"]) for m in merged["carried_from"]] == [
        (str(shards["a"]), 2),
        (str(shards["b"]), 2),
    ]
    # Every cell has its part here; the shard that came with its parts brought their logs.
    for cell in merged["cells"]:
        assert (tmp_path / cell["part"]).is_file()
    assert len(list(parts_dir(out).glob("*.vmaf.json.gz"))) == 2

    # Rerunning the merge, or merging one shard again, changes nothing.
    before = out.read_bytes()
    ok(corpus_cli(tmp_path, "--merge", str(shards["a"]), str(shards["b"]), "--out", "m.jsonl"))
    ok(corpus_cli(tmp_path, "--merge", str(shards["b"]), "--out", "m.jsonl"))
    assert out.read_bytes() == before
    assert_one_usable_corpus(out)


def test_merging_onto_a_corpus_keeps_its_cells_and_a_later_call_appends(
    cache: Path, shards: dict[str, Path], tmp_path: Path
) -> None:
    ok(corpus_cli(tmp_path, "--merge", str(shards["a"]), "--out", "c.jsonl"))
    ok(corpus_cli(tmp_path, "--merge", str(shards["b"]), "--out", "c.jsonl"))
    out = tmp_path / "c.jsonl"
    assert comparable(out) == comparable(shards["union"])
    ok(corpus_cli(tmp_path, *builtin(cache, "gradients_24fps")))
    assert {r["src"] for r in rows(out)} == {"testsrc2_30fps", "life_25fps", "gradients_24fps"}
    assert_one_usable_corpus(out)
    # --replace: the merged corpora alone.
    ok(corpus_cli(tmp_path, "--merge", str(shards["b"]), "--out", "c.jsonl", "--replace"))
    assert comparable(out) == comparable(shards["b"])


def test_a_shard_with_a_duplicate_row_is_refused_naming_its_file_and_line(
    shards: dict[str, Path], tmp_path: Path
) -> None:
    shard = copy_shard(shards["a"], tmp_path / "box")
    lines = shard.read_text(encoding="utf-8").splitlines(keepends=True)
    shard.write_text("".join([*lines[:3], lines[1], *lines[3:]]), encoding="utf-8")
    record = manifest(shard)  # the manifest rewritten to match: only the rows can tell
    record["corpus"]["sha256"] = hashlib.sha256(shard.read_bytes()).hexdigest()
    manifest_path(shard).write_text(json.dumps(record), encoding="utf-8")
    out = tmp_path / "m.jsonl"
    line = refused(
        corpus_cli(tmp_path, "--merge", str(shards["b"]), str(shard), "--out", "m.jsonl")
    )
    assert line == (
        f"frreg-corpus: error: {shard}:4: row (src, encoder, cq, frame_index) "
        "('testsrc2_30fps', 'libx264', 30, 1) is also on line 2"
    )
    assert sidecars(out) == {p: None for p in sidecars(out)}
    assert not parts_dir(out).exists()


@pytest.mark.parametrize("problem", ["no manifest", "edited", "incomplete"])
def test_a_shard_that_cannot_be_trusted_is_refused_in_one_line(
    shards: dict[str, Path], tmp_path: Path, problem: str
) -> None:
    shard = copy_shard(shards["a"], tmp_path / "box")
    expected = {
        "no manifest": "no producer manifest beside it (corpus.jsonl.manifest.json)",
        "edited": "contents differ from what corpus.jsonl.manifest.json recorded",
        "incomplete": "corpus is incomplete: killed (see corpus.jsonl.incomplete)",
    }[problem]
    if problem == "no manifest":
        manifest_path(shard).unlink()
    elif problem == "edited":
        shard.write_text(shard.read_text().replace('"vmaf":', '"vmaf": ', 1))
    else:
        incomplete_marker(shard).write_text("killed\n")
    line = refused(corpus_cli(tmp_path, "--merge", str(shard), "--out", "m.jsonl"))
    assert line.startswith(f"frreg-corpus: error: {shard}: {expected}"), line
    assert not (tmp_path / "m.jsonl").exists()
    assert not manifest_path(tmp_path / "m.jsonl").exists()


def test_shards_holding_one_cell_from_other_settings_are_refused(
    cache: Path, shards: dict[str, Path], tmp_path: Path
) -> None:
    ok(corpus_cli(tmp_path, *builtin(cache, "testsrc2_30fps", "--preset", "libx264=fast")))
    line = refused(corpus_cli(tmp_path, "--merge", str(shards["a"]), "c.jsonl", "--out", "m.jsonl"))
    assert line == (
        "frreg-corpus: error: c.jsonl: cell 'testsrc2_30fps/libx264/cq30' is also in "
        f"{shards['a']} from other settings: preset medium vs fast ({shards['a']} vs c.jsonl); "
        "a corpus holds one cell per (src, encoder, cq): merge only one of them"
    )
    assert not (tmp_path / "m.jsonl").exists()
    # Onto a corpus that holds the cell, the option is named.
    ok(corpus_cli(tmp_path, "--merge", str(shards["a"]), "--out", "m.jsonl"))
    line = refused(corpus_cli(tmp_path, "--merge", "c.jsonl", "--out", "m.jsonl"))
    assert "is already in" in line
    assert "pass --replace to merge the shards alone" in line


def test_an_interrupted_merge_is_finished_by_rerunning_it(
    shards: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from frreg.producer import runner

    argv = ["--merge", str(shards["a"]), str(shards["b"]), "--out", str(tmp_path / "m.jsonl")]
    out = tmp_path / "m.jsonl"

    def killed(*args: Any) -> Any:
        raise KeyboardInterrupt  # after the parts, before the corpus

    with monkeypatch.context() as patch:
        patch.setattr(runner, "_assemble", killed)
        assert main(argv) == EXIT_INTERRUPTED
    assert not out.exists()
    assert incomplete_marker(out).exists()
    with pytest.raises(CorpusError):
        check_corpus_complete(out)
    assert main(argv) == EXIT_OK
    assert comparable(out) == comparable(shards["union"])
    assert_one_usable_corpus(out)


def test_merge_arguments_that_cannot_apply_are_refused_in_one_line(
    shards: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    shard = copy_shard(shards["a"], tmp_path)
    monkeypatch.chdir(tmp_path)
    ok(corpus_cli(tmp_path, "--merge", "corpus.jsonl", "--out", "m.jsonl"))
    before = sidecars(tmp_path / "m.jsonl")
    for merged, more, message in [
        (["corpus.jsonl"], ["--cq", "30"], "--cq applies to producing, not to --merge"),
        (["corpus.jsonl"], ["--jobs", "2"], "--jobs applies to producing, not to --merge"),
        (["corpus.jsonl"] * 2, [], "corpus.jsonl: given twice (merge each corpus once)"),
        (
            ["corpus.jsonl", str(shard)],
            [],
            f"{shard}: is corpus.jsonl too (merge each corpus once)",
        ),
        (["m.jsonl"], [], "m.jsonl: is --out itself; its cells are kept anyway"),
        (["nosuch.jsonl"], [], "nosuch.jsonl: no such file"),
    ]:
        assert main(["--merge", *merged, *more, "--out", "m.jsonl"]) == EXIT_USAGE
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"frreg-corpus: error: {message}"] or (
            len(err) == 1 and err[0].startswith(f"frreg-corpus: error: {message}")
        ), err
    assert sidecars(tmp_path / "m.jsonl") == before
