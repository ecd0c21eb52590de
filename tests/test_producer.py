"""The corpus producer as a library: real ffmpeg encodes and libvmaf, on tiny inputs.

No mocks: every encode and score here is imageio-ffmpeg's ffmpeg doing real
work on clips of a few dozen frames at 64x36..96x54, so the whole file runs
in seconds on two cores.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import shutil
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from media import lavfi_to

from frreg._io import sha256_file
from frreg.errors import CorpusError, InputError, ToolError
from frreg.producer import (
    BUILTIN_SOURCE_IDS,
    CQ_RANGES,
    DEFAULT_PRESETS,
    ENCODER_SPECS,
    PRODUCIBLE_ENCODERS,
    ROW_COLUMNS,
    available_builtin_ids,
    builtin_sources,
    check_corpus_complete,
    container_source,
    declared_source_ids,
    incomplete_marker,
    load_manifest,
    manifest_path,
    parts_dir,
    probe_ffmpeg,
    produce_corpus,
    produce_for_gate,
    quality_args,
    raw_source,
    resolve_ffmpeg,
    vmaf_log_path,
)
from frreg.producer import ffmpeg as ff
from frreg.producer.cells import build_cells
from frreg.producer.progress import ProgressEvent
from frreg.producer.settings import Grid, ProducerSettings, producer_settings
from frreg.producer.sources import BUILTIN_SPECS, LAVFI_SOURCE_IDS, frame_bytes
from frreg.schema import (
    CANONICAL_6,
    DEMO_CQS,
    DEMO_ENCODERS,
    ENCODER_VOCAB,
    KEY_COLUMNS,
    PRESET_LADDERS,
    REQUIRED_COLUMNS,
    TARGET,
    UNKNOWN_ENCODER,
)

# Two encoders exercise both the 8-bit path (x264) and the 10-bit one
# (vvenc only writes yuv420p10le, so scoring converts it back).
ENCODERS = ("libx264", "libvvenc")
CQS = (28, 40)


def read_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def row_key(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(row[c] for c in KEY_COLUMNS)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two raw YUV sources with their own geometry and rate (24 and 30 fps), in a dir with spaces."""
    root = tmp_path_factory.mktemp("producer") / "clips with spaces"
    root.mkdir()
    lavfi_to(root / "chart 24.yuv", "testsrc2=size=96x54:rate=24", 8, raw_pix_fmt="yuv420p")
    lavfi_to(
        root / "fractal30.yuv",
        "mandelbrot=size=80x48:rate=30,format=yuv420p",
        10,
        raw_pix_fmt="yuv420p",
    )
    (root / "sources.toml").write_text(
        f"encoders = {json.dumps(list(ENCODERS))}\n"
        f"cqs = {json.dumps(list(CQS))}\n\n"
        "[[sources]]\n"
        'path = "chart 24.yuv"\n'
        'id = "chart_24fps"\n'
        "width = 96\nheight = 54\n"
        'pix_fmt = "yuv420p"\n'
        "framerate = 24\n\n"
        "[[sources]]\n"
        'path = "fractal30.yuv"\n'
        "width = 80\nheight = 48\n"
        'pix_fmt = "yuv420p"\n'
        'framerate = "30"\n',
        encoding="utf-8",
    )
    return root


@pytest.fixture(scope="module")
def corpus(clips: Path) -> tuple[Path, Any, Any]:
    """A complete 2 sources x 2 encoders x 2 cqs corpus from the TOML manifest."""
    manifest = load_manifest(clips / "sources.toml", ffmpeg=resolve_ffmpeg())
    out = clips.parent / "out dir" / "corpus.jsonl"
    settings = ProducerSettings(encoders=manifest.encoders, cqs=manifest.cqs)
    result = produce_corpus(out, manifest.sources, settings)
    return out, result, manifest


# --------------------------------------------------------------------------
# Encoder knobs (argv only)
# --------------------------------------------------------------------------

EXPECTED_KNOBS = {
    "libx264": ["-crf", "31"],
    "libx265": ["-crf", "31"],
    "libsvtav1": ["-crf", "31"],
    "libvpx-vp9": ["-crf", "31", "-b:v", "0"],
    "libvvenc": ["-qp", "31"],
    "h264_nvenc": ["-rc", "vbr", "-cq", "31", "-b:v", "0"],
    "hevc_nvenc": ["-rc", "vbr", "-cq", "31", "-b:v", "0"],
    "av1_nvenc": ["-rc", "vbr", "-cq", "31", "-b:v", "0"],
    "h264_qsv": ["-global_quality", "31"],
    "hevc_qsv": ["-global_quality", "31"],
    "av1_qsv": ["-global_quality", "31"],
    "h264_vaapi": ["-c:v", "h264_vaapi", "-qp", "31"],
    "hevc_vaapi": ["-c:v", "hevc_vaapi", "-qp", "31"],
    # VideoToolbox's -q:v is 1..100, higher is better: cq 31 -> 100 - 62.
    "h264_videotoolbox": ["-c:v", "h264_videotoolbox", "-q:v", "38", "-realtime", "0"],
    "hevc_videotoolbox": ["-c:v", "hevc_videotoolbox", "-q:v", "38", "-realtime", "0"],
}
#: The fork's encoders outside the trainer's vocabulary, which the producer drives too.
OUTSIDE = ("h264_vaapi", "hevc_vaapi", "h264_videotoolbox", "hevc_videotoolbox")


def test_every_vocabulary_encoder_is_producible() -> None:
    assert set(PRODUCIBLE_ENCODERS) == set(ENCODER_VOCAB) - {UNKNOWN_ENCODER} | set(OUTSIDE)
    assert set(OUTSIDE).isdisjoint(ENCODER_VOCAB)
    assert set(EXPECTED_KNOBS) == set(PRODUCIBLE_ENCODERS) == set(CQ_RANGES) == set(DEFAULT_PRESETS)
    # One spec per encoder: the vocabulary's in slot order, then the others.
    assert tuple(ENCODER_SPECS) == PRODUCIBLE_ENCODERS
    assert PRODUCIBLE_ENCODERS[-len(OUTSIDE) :] == OUTSIDE
    for name, spec in ENCODER_SPECS.items():
        assert spec.name == name
        if name in OUTSIDE:  # no speed preset: no ladder, no flag, no default
            assert (spec.default_preset, spec.preset_flag, spec.ladder) == (None, None, ())
            assert name not in PRESET_LADDERS
        else:
            assert spec.default_preset in spec.ladder == PRESET_LADDERS[name]
        assert spec.cq_range[0] <= spec.cq_range[1]
        assert (spec.hardware is None) == (spec.hardware_hint() is None)
        assert spec.hardware is None or name.endswith("_" + spec.hardware)


@pytest.mark.parametrize("encoder", PRODUCIBLE_ENCODERS)
def test_quality_knob_per_encoder(encoder: str) -> None:
    preset = DEFAULT_PRESETS[encoder]
    args = quality_args(encoder, 31, preset)
    joined = " ".join(args)
    assert " ".join(EXPECTED_KNOBS[encoder]) in joined
    assert args.count("-c:v") == 1
    assert args[args.index("-c:v") + 1] == encoder
    if preset is None:
        assert not {"-preset", "-cpu-used"} & set(args)
        return
    assert args[:2] == ["-c:v", encoder]
    assert preset in PRESET_LADDERS[encoder]
    # The preset reaches the encoder through its own flag.
    flag = "-cpu-used" if encoder == "libvpx-vp9" else "-preset"
    assert args[args.index(flag) + 1] == preset


def test_vp9_uses_good_deadline_and_row_mt() -> None:
    args = quality_args("libvpx-vp9", 40, "6")
    assert args[args.index("-deadline") + 1] == "good"
    assert args[args.index("-row-mt") + 1] == "1"


def test_encode_argv_never_drops_or_duplicates_frames() -> None:
    argv = ff.encode_argv("ffmpeg", ["-i", "a b.y4m"], 12, ["-c:v", "libx264"], "h264", "o.h264")
    assert argv[argv.index("-fps_mode") + 1] == "passthrough"
    assert argv[argv.index("-frames:v") + 1] == "12"
    assert "a b.y4m" in argv  # one argv element: no shell, no quoting


def test_score_graph_keeps_paths_out_of_the_filtergraph() -> None:
    graph = ff.score_graph("yuv420p", 10, True, 2, "vmaf.json")
    assert "log_path=vmaf.json" in graph
    assert "n_threads=2" in graph
    assert "trim=end_frame=10" in graph
    assert ff.VMAF_MODEL in graph


@pytest.mark.parametrize(
    ("pix_fmt", "scored"),
    [
        ("yuv420p", "yuv420p"),
        ("yuv444p10le", "yuv444p10le"),
        ("nv12", "yuv420p"),
        ("p010le", "yuv420p10le"),
    ],
)
def test_score_pix_fmt(pix_fmt: str, scored: str) -> None:
    assert ff.score_pix_fmt(pix_fmt) == scored


# --------------------------------------------------------------------------
# Small pure helpers
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("w", "h", "pix_fmt", "size"),
    [
        (96, 54, "yuv420p", 96 * 54 * 3 // 2),
        (65, 37, "yuv420p", 65 * 37 + 2 * 33 * 19),
        (8, 2, "yuv422p10le", 64),
    ],
)
def test_frame_bytes(w: int, h: int, pix_fmt: str, size: int) -> None:
    assert frame_bytes(w, h, pix_fmt) == size


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "  Stream #0:0[0x1](und): Video: h264 (High) (avc1 / 0x31637661), "
            "yuv420p(tv, bt709, progressive), 320x180 [SAR 1:1 DAR 16:9], 51 kb/s, 29.97 fps, "
            "29.97 tbr, 30k tbn (default)",
            (320, 180, "yuv420p", Fraction(30000, 1001)),
        ),
        (
            "  Stream #0:0: Video: rawvideo (I420 / 0x30323449), yuv420p(progressive), "
            "96x54, SAR 1:1 DAR 16:9, 24 fps, 24 tbr, 24 tbn",
            (96, 54, "yuv420p", Fraction(24)),
        ),
    ],
)
def test_parse_video_stream(line: str, expected: tuple[int, int, str, Fraction]) -> None:
    assert ff.parse_video_stream(f"Input #0, whatever\n{line}\n") == expected


def test_tool_clock_counts_overlapping_calls_once() -> None:
    clock = ff.ToolClock()
    clock.record("encode", 0.0, 2.0)
    clock.record("score", 1.0, 3.0)
    clock.record("encode", 5.0, 6.0)
    assert clock.busy_s() == pytest.approx(4.0)
    assert clock.launches == {"encode": 2, "score": 1}


def test_progress_event_rates() -> None:
    event = ProgressEvent(10, 4, 1, 2, frames_done=100, frames_todo=300, elapsed_s=10.0)
    assert event.fps == pytest.approx(10.0)
    assert event.eta_s == pytest.approx(20.0)
    assert event.summary() == "cells 5/10 (2 reused, 1 failed) | 10.0 frames/s | ETA 0:20"


def test_builtin_ids_known_without_generating() -> None:
    assert len(set(BUILTIN_SOURCE_IDS)) == len(BUILTIN_SOURCE_IDS) >= 9
    rates = {spec.rate for spec in BUILTIN_SPECS}
    assert {24, 30} <= rates
    # The default set: every lavfi id (the natural clips are asked for by id;
    # tests/test_natural.py covers them with and without the extra).
    declared = declared_source_ids()
    assert declared == list(LAVFI_SOURCE_IDS)
    assert set(available_builtin_ids()) >= set(declared)
    assert declared[: len(BUILTIN_SPECS)] == [spec.id for spec in BUILTIN_SPECS]
    assert set(declared) <= set(BUILTIN_SOURCE_IDS)


def test_run_tool_times_out_and_reports_the_command() -> None:
    argv = [
        str(resolve_ffmpeg()),
        "-nostdin",
        "-re",
        "-f",
        "lavfi",
        "-i",
        "testsrc",
        "-f",
        "null",
        "-",
    ]
    with pytest.raises(ToolError, match="timed out") as info:
        ff.run_tool(argv, what="probe", timeout=0.5)
    assert info.value.argv == argv


def test_libvmaf_and_versions_detected() -> None:
    info = probe_ffmpeg(resolve_ffmpeg())
    assert info.has_libvmaf
    assert info.libvmaf_version
    assert {"libx264", "libvvenc"} <= info.encoders


def test_ffmpeg_without_libvmaf_is_refused() -> None:
    info = ff.FfmpegInfo("/opt/ff", "6.0", frozenset({"libx264"}), False, None)
    with pytest.raises(InputError, match="no libvmaf"):
        ff.require_capabilities(info, ["libx264"])
    info = ff.FfmpegInfo("/opt/ff", "6.0", frozenset({"libx264"}), True, "3.0")
    with pytest.raises(InputError, match="no encoder libx265"):
        ff.require_capabilities(info, ["libx264", "libx265"])


# --------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------


@pytest.mark.slow
def test_manifest_geometry_per_source(corpus: tuple[Path, Any, Any], clips: Path) -> None:
    _, _, manifest = corpus
    by_id = {s.id: s for s in manifest.sources}
    assert set(by_id) == {"chart_24fps", "fractal30"}  # explicit id, else the stem
    chart, fractal = by_id["chart_24fps"], by_id["fractal30"]
    assert (chart.width, chart.height, chart.framerate, chart.frames) == (96, 54, 24, 8)
    assert (fractal.width, fractal.height, fractal.framerate, fractal.frames) == (80, 48, 30, 10)
    assert chart.path == (clips / "chart 24.yuv").resolve()  # relative to the manifest
    assert chart.sha256 == sha256_file(clips / "chart 24.yuv")


def test_container_source_geometry_is_probed(tmp_path: Path) -> None:
    clip = lavfi_to(
        tmp_path / "ntsc clip.y4m", "testsrc2=size=64x36:rate=30000/1001,format=yuv420p", 7
    )
    src = container_source(clip, ffmpeg=resolve_ffmpeg())
    assert (src.id, src.width, src.height, src.pix_fmt) == ("ntsc clip", 64, 36, "yuv420p")
    assert src.framerate == Fraction(30000, 1001)
    assert src.frames == 7
    assert not src.raw


def test_raw_source_with_partial_frame_is_refused(tmp_path: Path) -> None:
    clip = tmp_path / "short.yuv"
    clip.write_bytes(b"\0" * (frame_bytes(64, 36, "yuv420p") + 5))
    with pytest.raises(InputError, match="not a positive multiple of the frame size 3456"):
        raw_source(clip, width=64, height=36, pix_fmt="yuv420p", framerate=24)


def test_builtin_sources_are_deterministic_and_cached(tmp_path: Path) -> None:
    first = builtin_sources(tmp_path, frames=3, size=(64, 36))
    assert [s.id for s in first] == declared_source_ids()
    assert len({s.sha256 for s in first}) == len(first)  # all distinct content
    assert {Fraction(24), Fraction(30)} <= {s.framerate for s in first}
    mtimes = [s.path.stat().st_mtime_ns for s in first]
    # A second cache renders the same bytes; the first is reused untouched.
    again = builtin_sources(tmp_path, frames=3, size=(64, 36))
    assert [s.path.stat().st_mtime_ns for s in again] == mtimes
    # Rendered again from scratch, every source is the same bytes (a colour left to
    # ffmpeg's "random" once made gradients_24fps differ on every render).
    other = builtin_sources(tmp_path / "other", frames=3, size=(64, 36))
    assert {s.id: s.sha256 for s in other} == {s.id: s.sha256 for s in first}


# --------------------------------------------------------------------------
# The produced corpus
# --------------------------------------------------------------------------


@pytest.mark.slow
def test_rows_follow_the_trainer_schema(corpus: tuple[Path, Any, Any]) -> None:
    out, result, _ = corpus
    assert result.complete
    assert result.written
    rows = read_rows(out)
    assert rows
    assert len(rows) == result.rows
    for row in rows:
        assert tuple(row) == ROW_COLUMNS
        assert set(REQUIRED_COLUMNS) <= set(row)
        assert type(row["cq"]) is int
        assert type(row["frame_index"]) is int
        assert isinstance(row["preset"], str)
        assert row["preset"] in PRESET_LADDERS[row["encoder"]]
        assert row["encoder"] in ENCODERS
        for col in (TARGET, *CANONICAL_6):
            assert isinstance(row[col], float)
            assert math.isfinite(row[col])
        assert 0.0 <= row[TARGET] <= 100.0
        assert row["bitstream_bytes"] > 0
        assert row["enc_time_ms"] >= 0


@pytest.mark.slow
def test_rows_sorted_unique_and_every_frame_present(corpus: tuple[Path, Any, Any]) -> None:
    out, _, manifest = corpus
    rows = read_rows(out)
    keys = [row_key(r) for r in rows]
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)
    frames = {s.id: s.frames for s in manifest.sources}
    cells: dict[tuple[str, str, int], list[int]] = {}
    for r in rows:
        cells.setdefault((r["src"], r["encoder"], r["cq"]), []).append(r["frame_index"])
    assert len(cells) == len(manifest.sources) * len(ENCODERS) * len(CQS)
    for (src, _, _), indexes in cells.items():
        assert indexes == list(range(frames[src]))


@pytest.mark.slow
def test_mean_vmaf_equals_libvmaf_pooled_mean(corpus: tuple[Path, Any, Any]) -> None:
    out, _, _ = corpus
    rows = read_rows(out)
    record = json.loads(manifest_path(out).read_text())
    for cell in record["cells"]:
        log = json.loads(gzip.decompress(vmaf_log_path(out, cell["key"]).read_bytes()))
        mine = [
            r[TARGET]
            for r in rows
            if (r["src"], r["encoder"], r["cq"]) == (cell["src"], cell["encoder"], cell["cq"])
        ]
        assert len(mine) == len(log["frames"]) == cell["frames"]
        assert mine == [f["metrics"]["vmaf"] for f in log["frames"]]
        assert sum(mine) / len(mine) == pytest.approx(
            log["pooled_metrics"]["vmaf"]["mean"], abs=1e-5
        )


@pytest.mark.slow
def test_manifest_tags_versions_settings_and_sources(corpus: tuple[Path, Any, Any]) -> None:
    out, result, _ = corpus
    record = json.loads(manifest_path(out).read_text())
    info = probe_ffmpeg(resolve_ffmpeg())
    assert record["ffmpeg"] == {
        "path": str(resolve_ffmpeg()),
        "version": info.version,
        "libvmaf_version": info.libvmaf_version,
    }
    assert record["complete"] is True
    assert record["missing"] == []
    assert record["settings"]["cqs"] == list(CQS)
    assert record["settings"]["presets"] == {e: DEFAULT_PRESETS[e] for e in ENCODERS}
    assert {s["framerate"] for s in record["sources"]} == {"24", "30"}
    assert all(len(s["sha256"]) == 64 for s in record["sources"])
    assert record["corpus"]["sha256"] == sha256_file(out)
    assert record["corpus"]["rows"] == result.rows
    assert {c["status"] for c in record["cells"]} == {"done"}
    assert not incomplete_marker(out).exists()
    check_corpus_complete(out)


@pytest.mark.slow
def test_rerun_of_complete_corpus_launches_no_encodes(corpus: tuple[Path, Any, Any]) -> None:
    out, first, manifest = corpus
    before = out.read_bytes()
    part_mtimes = {p: p.stat().st_mtime_ns for p in parts_dir(out).glob("*.jsonl")}
    settings = ProducerSettings(encoders=manifest.encoders, cqs=manifest.cqs)
    again = produce_corpus(out, manifest.sources, settings)
    assert again.encodes == 0
    assert again.cells_run == 0
    assert again.cells_reused == first.cells_total
    assert out.read_bytes() == before
    assert {p: p.stat().st_mtime_ns for p in parts_dir(out).glob("*.jsonl")} == part_mtimes
    assert json.loads(manifest_path(out).read_text())["run"]["encodes"] == 0


@pytest.mark.slow
def test_changed_settings_never_reuse_stale_cells(
    corpus: tuple[Path, Any, Any], tmp_path: Path
) -> None:
    out, _, manifest = corpus
    # Start from a copy of the finished parts: keys depend on content, not paths.
    copy = tmp_path / "copy.jsonl"
    shutil.copytree(parts_dir(out), parts_dir(copy))
    chart = next(s for s in manifest.sources if s.id == "chart_24fps")

    # Each run changes the grid over a complete corpus: told to replace it.
    x264 = ProducerSettings(encoders=("libx264",), cqs=tuple(CQS), replace_corpus=True)
    slower = produce_corpus(copy, [chart], replace(x264, presets={"libx264": "fast"}))
    assert slower.encodes == len(CQS)  # new preset: every x264 cell recomputed
    assert {r["preset"] for r in read_rows(copy)} == {"fast"}

    same = produce_corpus(copy, [chart], x264)
    assert same.encodes == 0  # the default-preset cells are still there

    new_cq = produce_corpus(copy, [chart], replace(x264, cqs=(*CQS, 34)))
    assert new_cq.encodes == 1

    shorter = produce_corpus(copy, [chart], replace(x264, frames=5))
    assert shorter.encodes == len(CQS)
    assert {r["frame_index"] for r in read_rows(copy)} == set(range(5))

    # Same path and geometry, different pixels: the source hash changes the key.
    edited_path = tmp_path / "chart 24.yuv"
    data = bytearray(chart.path.read_bytes())
    data[100] ^= 0xFF
    edited_path.write_bytes(bytes(data))
    edited = raw_source(
        edited_path, width=96, height=54, pix_fmt="yuv420p", framerate=24, src_id="chart_24fps"
    )
    changed = produce_corpus(copy, [edited], x264)
    assert changed.encodes == len(CQS)


@pytest.mark.slow
def test_cell_keys_change_with_everything_that_determines_rows(
    corpus: tuple[Path, Any, Any],
) -> None:
    _, _, manifest = corpus
    info = probe_ffmpeg(resolve_ffmpeg())
    base = build_cells(manifest.sources, ["libx264"], [30], {"libx264": "medium"}, None, info)
    variants = [
        build_cells(manifest.sources, ["libx264"], [31], {"libx264": "medium"}, None, info),
        build_cells(manifest.sources, ["libx264"], [30], {"libx264": "slow"}, None, info),
        build_cells(manifest.sources, ["libx264"], [30], {"libx264": "medium"}, 4, info),
        build_cells(
            manifest.sources,
            ["libx264"],
            [30],
            {"libx264": "medium"},
            None,
            ff.FfmpegInfo(info.path, info.version, info.encoders, True, "other-libvmaf"),
        ),
    ]
    for variant in variants:
        assert {c.key for c in variant}.isdisjoint({c.key for c in base})


@pytest.mark.slow
def test_failed_cell_leaves_an_incomplete_corpus(tmp_path: Path) -> None:
    good = raw_source(
        lavfi_to(tmp_path / "good.yuv", "testsrc2=size=64x36:rate=24", 4, raw_pix_fmt="yuv420p"),
        width=64,
        height=36,
        pix_fmt="yuv420p",
        framerate=24,
    )
    # x264 refuses odd dimensions in 4:2:0: a cell that fails on any machine.
    odd_clip = tmp_path / "odd.yuv"
    odd_clip.write_bytes(bytes(range(256)) * (4 * frame_bytes(65, 37, "yuv420p") // 256 + 1))
    odd_clip.write_bytes(odd_clip.read_bytes()[: 4 * frame_bytes(65, 37, "yuv420p")])
    odd = raw_source(odd_clip, width=65, height=37, pix_fmt="yuv420p", framerate=24)
    out = tmp_path / "c.jsonl"
    x264 = ProducerSettings(encoders=("libx264",), cqs=(30,))
    result = produce_corpus(out, [good, odd], x264)
    assert not result.written
    assert not result.complete
    assert [f.label for f in result.failed] == ["odd/libx264/cq30"]
    assert "encode: ffmpeg exited with status" in result.failed[0].message
    assert "divisible by 2" in result.failed[0].stderr_tail
    assert not out.exists()
    assert incomplete_marker(out).exists()
    record = json.loads(manifest_path(out).read_text())
    assert record["complete"] is False
    assert record["missing"] == ["odd/libx264/cq30"]
    with pytest.raises(CorpusError, match="incomplete"):
        check_corpus_complete(out)

    # --allow-missing: the corpus is written, the gap recorded, and accepted.
    allowed = produce_corpus(out, [good, odd], replace(x264, allow_missing=True))
    assert allowed.written
    assert not allowed.complete
    assert allowed.encodes == 1  # only the failed cell is retried
    assert {r["src"] for r in read_rows(out)} == {"good"}
    record = json.loads(manifest_path(out).read_text())
    assert record["allow_missing"] is True
    assert record["missing"] == ["odd/libx264/cq30"]
    check_corpus_complete(out)


@pytest.mark.slow
@pytest.mark.skipif(
    Path("/dev/nvidiactl").exists(), reason="an NVIDIA device is present: NVENC may work"
)
def test_hardware_encoder_without_hardware_fails_its_cell(tmp_path: Path) -> None:
    if "h264_nvenc" not in probe_ffmpeg(resolve_ffmpeg()).encoders:
        pytest.skip("this ffmpeg build has no h264_nvenc")
    src = builtin_sources(tmp_path / "cache", ids=["testsrc2_30fps"], frames=2, size=(64, 36))
    nvenc = ProducerSettings(encoders=("h264_nvenc",), cqs=(30,))
    result = produce_corpus(tmp_path / "c.jsonl", src, nvenc)
    assert not result.written
    (failure,) = result.failed
    assert "needs an NVIDIA GPU" in failure.message
    assert failure.stderr_tail


@pytest.mark.slow
def test_edited_corpus_is_refused(tmp_path: Path, corpus: tuple[Path, Any, Any]) -> None:
    out, _, _ = corpus
    copy = tmp_path / "c.jsonl"
    shutil.copy(out, copy)
    shutil.copy(manifest_path(out), manifest_path(copy))
    check_corpus_complete(copy)
    with copy.open("a") as fh:
        fh.write("\n")
    with pytest.raises(CorpusError, match="differ from what"):
        check_corpus_complete(copy)


def test_corpus_without_manifest_passes(tmp_path: Path) -> None:
    path = tmp_path / "legacy.jsonl"
    path.write_text("{}\n")
    check_corpus_complete(path)


@pytest.mark.slow
def test_max_frames_trims_reference_and_encode(tmp_path: Path) -> None:
    (src,) = builtin_sources(tmp_path / "cache", ids=["zoneplate_30fps"], frames=9, size=(64, 36))
    out = tmp_path / "c.jsonl"
    settings = ProducerSettings(encoders=("libx264",), cqs=(30,), frames=4, jobs=1, vmaf_threads=1)
    result = produce_corpus(out, [src], settings)
    assert result.rows == 4
    rows = read_rows(out)
    assert [r["frame_index"] for r in rows] == [0, 1, 2, 3]
    key = json.loads(manifest_path(out).read_text())["cells"][0]["key"]
    log = json.loads(gzip.decompress(vmaf_log_path(out, key).read_bytes()))
    assert sum(r[TARGET] for r in rows) / 4 == pytest.approx(
        log["pooled_metrics"]["vmaf"]["mean"], abs=1e-5
    )


def test_bad_grid_is_refused_before_anything_runs(tmp_path: Path) -> None:
    src: Any = [object()]  # never touched: validation comes first
    out = tmp_path / "c.jsonl"
    with pytest.raises(InputError, match="unknown encoder 'x999'"):
        produce_corpus(out, src, ProducerSettings(encoders=("x999",), cqs=(30,)))
    with pytest.raises(InputError, match=r"cq 60 is out of range for libx264 \(0..51\)"):
        produce_corpus(out, src, ProducerSettings(encoders=("libx264",), cqs=(60,)))
    warp = ProducerSettings(encoders=("libx264",), cqs=(30,), presets={"libx264": "warp"})
    with pytest.raises(InputError, match="preset 'warp' is not on libx264's ladder"):
        produce_corpus(out, src, warp)
    assert not os.listdir(tmp_path)


def test_declared_source_ids_read_the_manifest_only(clips: Path) -> None:
    assert declared_source_ids(clips / "sources.toml") == ["chart_24fps", "fractal30"]


@pytest.mark.slow
def test_produce_for_gate_from_a_manifest(clips: Path, tmp_path: Path) -> None:
    lines: list[str] = []
    out = tmp_path / "gate.jsonl"
    settings = ProducerSettings(
        manifest=clips / "sources.toml", encoders=("libx264",), cqs=(35,), frames=3
    )
    result = produce_for_gate(out, settings, log=lines.append)
    assert result.written
    assert result.rows == 2 * 3
    assert lines
    assert lines[-1].startswith("frreg-corpus: cells 2/2")
    check_corpus_complete(out)
    # The gate surfaces a failed grid as a ToolError naming the first failed cell.
    odd = tmp_path / "odd.yuv"
    odd.write_bytes(b"\x80" * 2 * frame_bytes(65, 37, "yuv420p"))
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {
                "sources": [
                    {
                        "path": "odd.yuv",
                        "width": 65,
                        "height": 37,
                        "pix_fmt": "yuv420p",
                        "framerate": 25,
                    }
                ]
            }
        )
    )
    with pytest.raises(
        ToolError, match=r"1 of 1 corpus cells failed, first odd/libx264/cq35"
    ) as info:
        produce_for_gate(tmp_path / "bad.jsonl", replace(settings, manifest=bad, frames=None))
    assert "divisible by 2" in str(info.value)
    assert info.value.stderr_tail


@pytest.mark.slow
def test_produce_for_gate_takes_settings_built_from_plugin_values(
    clips: Path, tmp_path: Path
) -> None:
    # The plugin's resolved values, paths relative to its rootdir.
    values = {"sources": "sources.toml", "encoders": ("libx264",), "cqs": (35,)}
    settings = producer_settings(values, clips)
    assert settings.manifest == clips / "sources.toml"
    assert not settings.uses_builtin
    out = tmp_path / "gate.jsonl"
    first = produce_for_gate(out, settings)
    # Settings built directly name the same cells: nothing is encoded again.
    direct = ProducerSettings(manifest=clips / "sources.toml", encoders=("libx264",), cqs=(35,))
    again = produce_for_gate(out, direct)
    assert (first.encodes, again.encodes) == (2, 0)


def test_producer_settings_defaults_and_grid() -> None:
    plugin = producer_settings({"sources": None, "encoders": None, "cqs": None}, Path("/root"))
    assert plugin.uses_builtin
    assert plugin.grid() == Grid(DEMO_ENCODERS, DEMO_CQS, {})
    cli = producer_settings(
        {
            "source": Path("clip.yuv"),
            "width": 64,
            "height": None,
            "presets": [("libx264", "slow")],
            "cqs": [30],
            "builtin_size": (64, 36),
        },
        Path(),
    )
    # Path() keeps paths as typed, so error messages quote what the user wrote.
    assert cli.source == Path("clip.yuv")
    assert cli.geometry == {"width": 64}
    assert cli.builtin_size == (64, 36)
    assert cli.grid() == Grid(DEMO_ENCODERS, (30,), {"libx264": "slow"})


@pytest.mark.slow
def test_every_software_encoder_really_encodes(tmp_path: Path) -> None:
    src = builtin_sources(tmp_path / "cache", ids=["testsrc2_30fps"], frames=3, size=(64, 36))
    encoders = ["libx264", "libx265", "libsvtav1", "libvpx-vp9", "libvvenc"]
    out = tmp_path / "c.jsonl"
    result = produce_corpus(out, src, ProducerSettings(encoders=tuple(encoders), cqs=(40,)))
    assert result.written, [f.format() for f in result.failed]
    rows = read_rows(out)
    assert sorted({r["encoder"] for r in rows}) == sorted(encoders)
    assert len(rows) == 3 * len(encoders)
    # A different quality really changes the bitstream for each encoder.
    wider = ProducerSettings(encoders=tuple(encoders), cqs=(20, 40), replace_corpus=True)
    result = produce_corpus(out, src, wider)
    sizes = {(r["encoder"], r["cq"]): r["bitstream_bytes"] for r in read_rows(out)}
    for enc in encoders:
        assert sizes[(enc, 20)] > sizes[(enc, 40)], enc
