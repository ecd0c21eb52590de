"""``frreg-corpus`` takes the fork's Phase A producer argv (``hw_encoder_corpus.py``).

The fork's runbook step 0 runs as written (``--vmaf-bin``, repeated ``--cq``,
relative paths), with only the encoder and the inputs made small; raw input
defaults to the fork's pixel format and rate with a warning; its VAAPI and
VideoToolbox encoders are producible, open their devices as it does, fail
cleanly on a machine without them, and train the trainer's ``unknown`` slot.
Everything runs the real ffmpeg (imageio-ffmpeg's, with libvmaf).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from media import lavfi_to

from frreg.cli import train as train_cli
from frreg.cli.corpus import build_parser, main
from frreg.corpus import load_corpus
from frreg.producer import (
    ROW_COLUMNS,
    HardwareDevices,
    manifest_path,
    probe_ffmpeg,
    produce_corpus,
    quality_args,
    raw_source,
    resolve_ffmpeg,
)
from frreg.producer.cells import PRODUCER_VERSION, cell_spec
from frreg.producer.encoders import (
    DEFAULT_QSV_DEVICE,
    DEFAULT_VAAPI_DEVICE,
    OUTSIDE_VOCABULARY,
    check_cq,
    videotoolbox_quality,
)
from frreg.producer.settings import ProducerSettings, producer_settings
from frreg.schema import (
    CANONICAL_6,
    ENCODER_VOCAB,
    EXIT_FAIL,
    EXIT_OK,
    EXIT_USAGE,
    NEUTRAL_NORM,
    UNKNOWN_ENCODER,
)

#: The fork's runbook step 0 (one call per source and encoder), verbatim.
RUNBOOK_STEP_0 = (
    "python3 scripts/dev/hw_encoder_corpus.py --vmaf-bin build/libvmaf/tools/vmaf "
    "--source SRC.yuv --width 1920 --height 1080 --pix-fmt yuv420p --framerate 25 "
    "--encoder h264_nvenc --cq 19 --cq 25 --cq 31 --cq 37 "
    "--out runs/phase_a/full_grid/parts/SRC__h264_nvenc.jsonl"
)
WIDTH, HEIGHT, FRAMES = 64, 48, 4
CQS = (19, 25, 31, 37)
FRREG_CORPUS = Path(sys.executable).parent / "frreg-corpus"
SKIP_IF_VAAPI = pytest.mark.skipif(Path("/dev/dri").exists(), reason="a DRM device: VAAPI may work")


def fork_argv(**replace: str) -> list[str]:
    """The runbook's producer arguments, with some flag values replaced (``encoder="libx264"``)."""
    argv = shlex.split(RUNBOOK_STEP_0)[2:]
    for name, value in replace.items():
        flag = "--" + name.replace("_", "-")
        argv[argv.index(flag) + 1] = value
    return argv


def without(argv: list[str], *flags: str) -> list[str]:
    """``argv`` without every occurrence of the given flags and their values."""
    out = list(argv)
    for flag in flags:
        while flag in out:
            i = out.index(flag)
            del out[i : i + 2]
    return out


def read_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    assert lines[0].startswith("frreg-corpus: error: "), lines[0]
    return lines[0]


@pytest.fixture
def fork_tree(tmp_path: Path) -> Path:
    """A working directory laid out as the runbook expects: ``SRC.yuv`` (raw yuv420p,
    64x48, 4 frames, made by ffmpeg) and a file at ``build/libvmaf/tools/vmaf``."""
    lavfi_to(
        tmp_path / "SRC.yuv",
        f"testsrc2=size={WIDTH}x{HEIGHT}:rate=25",
        FRAMES,
        raw_pix_fmt="yuv420p",
    )
    vmaf = tmp_path / "build" / "libvmaf" / "tools" / "vmaf"
    vmaf.parent.mkdir(parents=True)
    vmaf.write_text("#!/bin/sh\necho 'the fork vmaf binary must not be run' >&2\nexit 99\n")
    vmaf.chmod(0o755)
    return tmp_path


def run_frreg_corpus(cwd: Path, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """The installed ``frreg-corpus`` as a real process in ``cwd``."""
    return subprocess.run(
        [str(FRREG_CORPUS), *argv, "--progress", "none"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


# --------------------------------------------------------------------------
# The runbook's command line
# --------------------------------------------------------------------------


def test_runbook_argv_parses_with_repeated_cq_and_one_encoder() -> None:
    args = build_parser().parse_args(fork_argv())
    assert args.encoders == ["h264_nvenc"]
    assert args.cqs == list(CQS)
    assert args.vmaf_bin == Path("build/libvmaf/tools/vmaf")
    assert (args.width, args.height, args.pix_fmt, args.framerate) == (1920, 1080, "yuv420p", "25")
    assert (args.qsv_device, args.vaapi_device) == (DEFAULT_QSV_DEVICE, DEFAULT_VAAPI_DEVICE)
    assert DEFAULT_QSV_DEVICE == DEFAULT_VAAPI_DEVICE == "/dev/dri/renderD129"  # the fork's
    # The fork's --framerate is a float: 25.0 is 25.
    assert build_parser().parse_args(fork_argv(framerate="25.0")).framerate == "25.0"


@pytest.mark.slow
def test_runbook_step_0_runs_with_libx264_and_small_inputs(fork_tree: Path) -> None:
    out = fork_tree / "runs/phase_a/full_grid/parts/SRC__libx264.jsonl"
    argv = fork_argv(
        encoder="libx264",
        width=str(WIDTH),
        height=str(HEIGHT),
        out="runs/phase_a/full_grid/parts/SRC__libx264.jsonl",
    )
    done = run_frreg_corpus(fork_tree, argv)
    assert done.returncode == EXIT_OK, done.stderr
    rows = read_rows(out)
    assert sorted({r["cq"] for r in rows}) == list(CQS)
    assert len(rows) == len(CQS) * FRAMES
    assert {(r["src"], r["encoder"]) for r in rows} == {("SRC", "libx264")}

    # One warning, naming the binary and the ffmpeg that scores instead; nothing else.
    warnings = [line for line in done.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1, done.stderr
    exe = str(resolve_ffmpeg())
    assert warnings[0].startswith(
        "frreg-corpus: warning: --vmaf-bin build/libvmaf/tools/vmaf is not run: frreg scores "
        f"every cell through ffmpeg's libvmaf filter ({exe}, libvmaf "
    )
    assert "the fork vmaf binary must not be run" not in done.stderr
    assert "Traceback" not in done.stderr

    record = json.loads(manifest_path(out).read_text())
    info = probe_ffmpeg(resolve_ffmpeg())
    assert record["vmaf_bin"] == {
        "path": "build/libvmaf/tools/vmaf",
        "used": False,
        "scored_by": f"ffmpeg's libvmaf filter ({exe}, libvmaf {info.libvmaf_version})",
    }
    assert record["ffmpeg"]["libvmaf_version"] == info.libvmaf_version
    assert record["settings"]["devices"] == {
        "qsv": DEFAULT_QSV_DEVICE,
        "vaapi": DEFAULT_VAAPI_DEVICE,
    }
    assert record["complete"] is True


@pytest.mark.slow
def test_raw_source_defaults_to_the_forks_pix_fmt_and_rate(fork_tree: Path) -> None:
    argv = fork_argv(encoder="libx264", width=str(WIDTH), height=str(HEIGHT), out="c.jsonl")
    argv = without(argv, "--pix-fmt", "--framerate", "--vmaf-bin", "--cq")
    done = run_frreg_corpus(fork_tree, [*argv, "--cq", "30"])
    assert done.returncode == EXIT_OK, done.stderr
    assert [line for line in done.stderr.splitlines() if "warning" in line] == [
        "frreg-corpus: warning: --source SRC.yuv: no --pix-fmt given, assuming yuv420p "
        "(the fork's default)",
        "frreg-corpus: warning: --source SRC.yuv: no --framerate given, assuming 25 "
        "(the fork's default)",
    ]
    assert len(read_rows(fork_tree / "c.jsonl")) == FRAMES
    (source,) = json.loads(manifest_path(fork_tree / "c.jsonl").read_text())["sources"]
    assert (source["pix_fmt"], source["framerate"]) == ("yuv420p", "25")


def test_raw_assumptions_only_for_what_is_missing(fork_tree: Path) -> None:
    exe = resolve_ffmpeg()

    def settings(**geometry: Any) -> Any:
        return producer_settings({"source": fork_tree / "SRC.yuv", **geometry}, Path())

    bare = settings(width=WIDTH, height=HEIGHT)
    assert bare.raw_assumptions() == {"pix_fmt": "yuv420p", "framerate": "25"}
    src = bare.single_source(exe)
    assert (src.pix_fmt, src.framerate, src.frames) == ("yuv420p", 25, FRAMES)
    given = settings(width=WIDTH, height=HEIGHT, pix_fmt="yuv420p", framerate="30000/1001")
    assert given.raw_assumptions() == {}
    assert str(given.single_source(exe).framerate) == "30000/1001"
    # The fork's float rate, and a container (never raw, so nothing assumed).
    assert settings(width=WIDTH, height=HEIGHT, framerate="25.0").single_source(exe).framerate == 25
    y4m = lavfi_to(fork_tree / "c.y4m", "testsrc2=size=64x48:rate=24,format=yuv420p", 2)
    assert producer_settings({"source": y4m}, Path()).raw_assumptions() == {}


def test_raw_source_still_needs_its_size(
    fork_tree: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(fork_tree)
    argv = without(fork_argv(encoder="libx264", out="c.jsonl"), "--width", "--height")
    assert main([*argv, "--progress", "none"]) == EXIT_USAGE
    line = one_error_line(capsys.readouterr().err)  # no warnings before the error
    assert "raw source SRC.yuv needs --width, --height (raw YUV has no header" in line
    assert not (fork_tree / "c.jsonl").exists()


@pytest.mark.parametrize("where", ["/does/not/exist", "a directory"])
def test_vmaf_bin_that_is_not_a_file_is_one_line_exit_2(
    where: str, fork_tree: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(fork_tree)
    vmaf_bin = where if where.startswith("/") else "build"
    argv = fork_argv(encoder="libx264", vmaf_bin=vmaf_bin, out="c.jsonl")
    before = sorted(fork_tree.rglob("*"))
    assert main(argv) == EXIT_USAGE
    line = one_error_line(capsys.readouterr().err)
    assert line == f"frreg-corpus: error: --vmaf-bin {vmaf_bin}: vmaf binary not found (not a file)"
    assert sorted(fork_tree.rglob("*")) == before  # refused before anything ran


def test_vmaf_bin_is_refused_by_the_library_too(tmp_path: Path) -> None:
    from frreg.errors import InputError

    src = raw_source(
        lavfi_to(tmp_path / "a.yuv", "testsrc2=size=64x48:rate=25", 2, raw_pix_fmt="yuv420p"),
        width=WIDTH,
        height=HEIGHT,
        pix_fmt="yuv420p",
        framerate=25,
    )
    settings = ProducerSettings(encoders=("libx264",), cqs=(30,), vmaf_bin=tmp_path / "nope")
    with pytest.raises(InputError, match="vmaf binary not found"):
        produce_corpus(tmp_path / "c.jsonl", [src], settings)
    assert not (tmp_path / "c.jsonl.parts").exists()


# --------------------------------------------------------------------------
# The fork's hardware encoders: argv, devices, quality mapping
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_raw(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("fork-raw")
    path = lavfi_to(root / "src.yuv", "testsrc2=size=64x48:rate=25", 3, raw_pix_fmt="yuv420p")
    return raw_source(path, width=WIDTH, height=HEIGHT, pix_fmt="yuv420p", framerate=25)


def encode_argv(source: Any, encoder: str, cq: int, devices: HardwareDevices) -> list[str]:
    """The encode argv a cell's key is computed from (built by the functions that run it)."""
    info = probe_ffmpeg(resolve_ffmpeg())
    spec = cell_spec(source, encoder, cq, None, 3, info, devices)
    return list(spec["encode_argv"])


def test_vaapi_cell_opens_its_device_and_uploads_frames(tiny_raw: Any) -> None:
    argv = encode_argv(tiny_raw, "h264_vaapi", 25, HardwareDevices(vaapi="/dev/dri/renderD128"))
    i = argv.index("-init_hw_device")
    assert argv[i + 1] == "vaapi=va:/dev/dri/renderD128"
    assert i < argv.index("<source>")  # before the input
    tail = argv[argv.index("-vf") :]
    assert tail[:6] == ["-vf", "format=nv12,hwupload=extra_hw_frames=16", "-c:v", "h264_vaapi",
                        "-qp", "25"]  # fmt: skip
    assert "-preset" not in argv


def test_qsv_cell_opens_its_child_device(tiny_raw: Any) -> None:
    argv = encode_argv(tiny_raw, "hevc_qsv", 25, HardwareDevices(qsv="/dev/dri/renderD130"))
    i = argv.index("-init_hw_device")
    assert argv[i + 1] == "qsv:hw,child_device=/dev/dri/renderD130"
    assert i < argv.index("<source>")
    assert argv[argv.index("-global_quality") + 1] == "25"


def test_videotoolbox_cell_spells_q_and_realtime(tiny_raw: Any) -> None:
    argv = encode_argv(tiny_raw, "hevc_videotoolbox", 19, HardwareDevices())
    assert argv[argv.index("-c:v") :][:6] == [
        "-c:v", "hevc_videotoolbox", "-q:v", "62", "-realtime", "0"
    ]  # fmt: skip
    assert "-init_hw_device" not in argv
    assert "-preset" not in argv


def test_devices_are_in_the_key_of_the_cells_that_open_them_only(tiny_raw: Any) -> None:
    info = probe_ffmpeg(resolve_ffmpeg())
    default, other_qsv = HardwareDevices(), HardwareDevices(qsv="/dev/dri/renderD128")
    other_vaapi = HardwareDevices(vaapi="/dev/dri/renderD128")

    def spec(encoder: str, devices: HardwareDevices) -> dict[str, Any]:
        return cell_spec(tiny_raw, encoder, 30, None if "vaapi" in encoder else "medium", 3,
                         info, devices)  # fmt: skip

    assert spec("h264_qsv", default) != spec("h264_qsv", other_qsv)
    assert spec("h264_qsv", default) == spec("h264_qsv", other_vaapi)
    assert spec("h264_vaapi", default) != spec("h264_vaapi", other_vaapi)
    assert spec("libx264", default) == spec("libx264", other_qsv) == spec("libx264", other_vaapi)


@pytest.mark.parametrize(("cq", "q"), [(19, 62), (60, 60), (0, 100), (49, 2), (200, 100)])
def test_videotoolbox_quality_mapping(cq: int, q: int) -> None:
    assert videotoolbox_quality(cq) == q


def test_videotoolbox_cq_range_stops_where_the_mapping_saturates() -> None:
    from frreg.errors import InputError

    assert quality_args("h264_videotoolbox", 100, None)[3] == "100"
    check_cq("h264_videotoolbox", 100)
    with pytest.raises(
        InputError, match=r"cq 101 is out of range for h264_videotoolbox \(0..100\)"
    ):
        check_cq("h264_videotoolbox", 101)
    with pytest.raises(InputError, match=r"cq 0 is out of range for h264_vaapi \(1..51\)"):
        check_cq("h264_vaapi", 0)


def test_no_preset_encoders_refuse_a_preset(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["--builtin", "--encoder", "h264_vaapi", "--preset", "h264_vaapi=fast", "--out", "x"]
    )
    assert code == EXIT_USAGE
    line = one_error_line(capsys.readouterr().err)
    assert "invalid preset 'h264_vaapi=fast': h264_vaapi has no speed preset" in line


@pytest.mark.slow
@SKIP_IF_VAAPI
@pytest.mark.skipif(sys.platform == "darwin", reason="VideoToolbox may work")
def test_vaapi_and_videotoolbox_cells_fail_cleanly_here(fork_tree: Path) -> None:
    out = fork_tree / "c.jsonl"
    node = str(fork_tree / "renderD199")
    argv = fork_argv(encoder="libx264", width=str(WIDTH), height=str(HEIGHT), out="c.jsonl")
    argv = [*without(argv, "--cq", "--encoder"), "--cq", "37"]
    argv += ["--encoder", "libx264", "h264_vaapi", "hevc_videotoolbox", "--vaapi-device", node]

    done = run_frreg_corpus(fork_tree, argv)
    assert done.returncode == EXIT_FAIL, done.stderr
    assert "Traceback" not in done.stderr
    failed = [line for line in done.stderr.splitlines() if line.startswith("FAILED ")]
    assert len(failed) == 2, done.stderr
    vaapi, vt = sorted(failed)
    assert vaapi.startswith("FAILED SRC/h264_vaapi/cq37: encode: ffmpeg exited with status")
    assert vaapi.endswith("(h264_vaapi needs a VAAPI GPU (Intel or AMD) and its VA driver, "
                          "at --vaapi-device)")  # fmt: skip
    assert node in done.stderr  # ffmpeg names the node it could not open
    assert vt.startswith("FAILED SRC/hevc_videotoolbox/cq37: encode: ffmpeg ")
    assert vt.endswith("has no hevc_videotoolbox encoder (hevc_videotoolbox needs macOS with "
                       "Apple's VideoToolbox and an ffmpeg built with it)")  # fmt: skip
    assert not out.exists()

    # --allow-missing: the libx264 cell's corpus, both gaps recorded, the device too.
    done = run_frreg_corpus(fork_tree, [*argv, "--allow-missing"])
    assert done.returncode == EXIT_OK, done.stderr
    assert {r["encoder"] for r in read_rows(out)} == {"libx264"}
    record = json.loads(manifest_path(out).read_text())
    assert record["missing"] == ["SRC/h264_vaapi/cq37", "SRC/hevc_videotoolbox/cq37"]
    assert record["allow_missing"] is True
    assert record["run"]["encodes"] == 1  # VAAPI retried; VideoToolbox cannot run; x264 reused
    assert record["settings"]["devices"]["vaapi"] == node
    assert record["settings"]["presets"] == {
        "h264_vaapi": None, "hevc_videotoolbox": None, "libx264": "medium"
    }  # fmt: skip


@pytest.mark.slow
@SKIP_IF_VAAPI
def test_a_failed_vaapi_cell_ran_the_argv_with_its_device(tiny_raw: Any, tmp_path: Path) -> None:
    settings = ProducerSettings(
        encoders=("h264_vaapi", "h264_qsv"),
        cqs=(30,),
        devices=HardwareDevices(qsv="/dev/dri/renderD131", vaapi="/dev/dri/renderD132"),
    )
    result = produce_corpus(tmp_path / "c.jsonl", [tiny_raw], settings)
    by_encoder = {f.label.split("/")[1]: f for f in result.failed}
    assert set(by_encoder) == {"h264_vaapi", "h264_qsv"}
    vaapi_argv, qsv_argv = by_encoder["h264_vaapi"].argv, by_encoder["h264_qsv"].argv
    assert vaapi_argv[vaapi_argv.index("-init_hw_device") + 1] == "vaapi=va:/dev/dri/renderD132"
    assert qsv_argv[qsv_argv.index("-init_hw_device") + 1] == (
        "qsv:hw,child_device=/dev/dri/renderD131"
    )


# --------------------------------------------------------------------------
# Rows outside the vocabulary; bitstream_bytes and the fork's enc_bytes
# --------------------------------------------------------------------------


def fork_rows() -> list[dict[str, Any]]:
    """Rows as the fork writes them: its ``enc_bytes`` (an MP4's size), no preset for VAAPI."""
    rows = []
    for s, src in enumerate(("alpha", "beta")):
        for encoder, preset in (("libx264", "medium"), ("h264_vaapi", None)):
            for frame in range(3):
                row: dict[str, Any] = {
                    "src": src, "encoder": encoder, "cq": 25 + 6 * frame, "frame_index": frame,
                    "vmaf": 60.0 + 5 * s + frame + (3 if preset else 0), "enc_bytes": 4096 + frame,
                }  # fmt: skip
                if preset is not None:
                    row["preset"] = preset
                row.update({f: 0.5 + 0.01 * (frame + s) for f in CANONICAL_6})
                rows.append(row)
    return rows


def write_rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_vaapi_rows_load_into_the_unknown_slot_and_the_warning_counts_them(tmp_path: Path) -> None:
    assert "h264_vaapi" in OUTSIDE_VOCABULARY
    assert "h264_vaapi" not in ENCODER_VOCAB
    corpus = load_corpus(write_rows(tmp_path / "fork.jsonl", fork_rows()))
    vaapi = corpus.columns["encoder"] == "h264_vaapi"
    unknown = ENCODER_VOCAB.index(UNKNOWN_ENCODER)
    assert vaapi.sum() == 6
    assert (corpus.codec[vaapi, unknown] == 1).all()
    assert (corpus.codec[vaapi, : len(ENCODER_VOCAB)].sum(axis=1) == 1).all()
    assert (corpus.codec[~vaapi, unknown] == 0).all()
    assert (corpus.codec[vaapi, len(ENCODER_VOCAB)] == NEUTRAL_NORM).all()  # no preset
    assert corpus.unknown_encoders == {"h264_vaapi": 6}
    assert [w for w in corpus.warnings() if "h264_vaapi (6 rows)" in w]
    # The fork's enc_bytes is an extra column: kept, not a model input.
    assert corpus.columns["enc_bytes"][:3].tolist() == [4096, 4097, 4098]
    assert corpus.features.shape == (12, len(CANONICAL_6))


def test_frreg_train_reports_and_records_the_unknown_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = write_rows(tmp_path / "fork.jsonl", fork_rows())
    out = tmp_path / "loso"
    argv = ["--corpus", str(corpus), "--out-dir", str(out), "--seeds", "0", "--dry-run"]
    assert train_cli.main(argv) == EXIT_OK
    err = capsys.readouterr().err
    assert "frreg-train: warning: " in err
    assert "'unknown' slot: h264_vaapi (6 rows)" in err
    assert json.loads((out / "loso_seed0.json").read_text())["unknown_encoders"] == {
        "h264_vaapi": 6
    }


def test_the_row_format_is_in_every_cell_key(tiny_raw: Any) -> None:
    """Parts cached with the old ``enc_bytes`` rows are keyed differently, so never reused."""
    spec = cell_spec(tiny_raw, "libx264", 30, "medium", 3, probe_ffmpeg(resolve_ffmpeg()))
    assert "bitstream_bytes" in spec["columns"]
    assert "enc_bytes" not in spec["columns"]
    assert spec["producer_version"] == PRODUCER_VERSION == 2


@pytest.mark.slow
def test_bitstream_bytes_is_the_elementary_streams_size(tiny_raw: Any, tmp_path: Path) -> None:
    out = tmp_path / "c.jsonl"
    result = produce_corpus(out, [tiny_raw], ProducerSettings(encoders=("libx264",), cqs=(30,)))
    assert result.written
    rows = read_rows(out)
    for row in rows:
        assert tuple(row) == ROW_COLUMNS
        assert "enc_bytes" not in row
    (size,) = {r["bitstream_bytes"] for r in rows}
    (cell,) = json.loads(manifest_path(out).read_text())["cells"]
    assert cell["bitstream_bytes"] == size
    assert "enc_bytes" not in cell

    # The cell's own encode argv, run again by hand: x264 is deterministic, so
    # the file it writes is the stream the row measured.
    info = probe_ffmpeg(resolve_ffmpeg())
    argv = cell_spec(tiny_raw, "libx264", 30, "medium", 3, info)["encode_argv"]
    stream = tmp_path / "again.h264"
    source_at = argv.index("<source>")
    argv = [*argv[:source_at], *tiny_raw.input_args(), *argv[source_at + 1 :]]
    argv[-1] = str(stream)
    subprocess.run([str(resolve_ffmpeg()), *argv], check=True, capture_output=True, timeout=60)
    assert stream.stat().st_size == size
    # The fork's enc_bytes, the same stream in an MP4, is a different (larger) number.
    mp4 = tmp_path / "again.mp4"
    subprocess.run(
        [str(resolve_ffmpeg()), "-v", "error", "-i", str(stream), "-c", "copy", str(mp4)],
        check=True,
        timeout=60,
    )
    assert mp4.stat().st_size > size
