"""``frreg-corpus`` through ``build_parser()``, ``main([...])`` and a real subprocess.

Exit codes, one-line errors without tracebacks, the per-call and manifest
forms, failing cells, and resuming after the producer is killed mid-run.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from media import lavfi_to

from frreg.cli.corpus import build_parser, main
from frreg.producer import (
    builtin_sources,
    incomplete_marker,
    manifest_path,
    parts_dir,
    resolve_ffmpeg,
)
from frreg.producer.cells import NONDETERMINISTIC_COLUMNS
from frreg.producer.options import cq_list, encoder_list
from frreg.producer.options import cq_value as cq_arg
from frreg.producer.options import encoder_preset as preset_arg
from frreg.producer.options import frame_size as size_arg
from frreg.producer.options import producible_encoder as encoder_arg
from frreg.producer.sources import frame_bytes
from frreg.schema import EXIT_FAIL, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, KEY_COLUMNS

REPO = Path(__file__).resolve().parents[1]


def read_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def run_cli(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """``python -m frreg.cli.corpus ARGS`` as a real process."""
    return subprocess.run(
        [sys.executable, "-m", "frreg.cli.corpus", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        **kwargs,
    )


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    assert lines[0].startswith("frreg-corpus: error: "), lines[0]
    return lines[0]


# --------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------


def test_parser_refuses_abbreviations(capsys: pytest.CaptureFixture[str]) -> None:
    assert build_parser().allow_abbrev is False
    assert main(["--builtin", "--enc", "libx264", "--cq", "30", "--out", "x.jsonl"]) == EXIT_USAGE
    assert "unrecognized arguments: --enc" in one_error_line(capsys.readouterr().err)


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == EXIT_OK
    assert "--preset ENCODER=VALUE" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("func", "value", "quoted", "allowed"),
    [
        (encoder_arg, "x266", "'x266'", "libx264, libx265"),
        (encoder_arg, "unknown", "'unknown'", "av1_qsv"),
        (preset_arg, "libx264=warp", "'warp'", "ultrafast, superfast"),
        (preset_arg, "libx264", "'libx264'", "ENCODER=VALUE"),
        (preset_arg, "libsvtav1=14", "'14'", "13, 12"),
        (cq_arg, "high", "'high'", "0..255"),
        (size_arg, "320x181", "'320x181'", "even"),
    ],
)
def test_type_callables_quote_value_and_allowed_set(
    func: Any, value: str, quoted: str, allowed: str
) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as info:
        func(value)
    assert quoted in str(info.value)
    assert allowed in str(info.value)


def test_nargs_and_comma_list_forms_share_one_check() -> None:
    """``--encoder a b`` (frreg-corpus) and ``--frreg-encoders=a,b`` (plugin) agree."""
    args = build_parser().parse_args(
        ["--builtin", "--encoder", "libx264", "libx265", "--cq", "22", "30", "--out", "x"]
    )
    assert tuple(args.encoders) == encoder_list("libx264,libx265")
    assert tuple(args.cqs) == cq_list("22,30")
    for bad in ("x266", "unknown"):
        with pytest.raises(argparse.ArgumentTypeError) as single:
            encoder_arg(bad)
        with pytest.raises(argparse.ArgumentTypeError) as listed:
            encoder_list(f"libx264,{bad}")
        assert (
            str(single.value).split("choose from")[1] == str(listed.value).split("choose from")[1]
        )
    for bad in ("+5", "-1", "x", "²"):
        with pytest.raises(argparse.ArgumentTypeError):
            cq_arg(bad)
        with pytest.raises(argparse.ArgumentTypeError):
            cq_list(f"22,{bad}")


def test_geometry_flags_only_with_source(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--builtin", "--width", "64", "--encoder", "libx264", "--cq", "30", "--out", "x"])
    assert code == EXIT_USAGE
    assert "--width applies only to --source" in one_error_line(capsys.readouterr().err)


def test_cq_out_of_range_for_encoder(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(["--builtin", "--encoder", "libx264", "--cq", "60", "--out", str(tmp_path / "c")])
    assert code == EXIT_USAGE
    assert "cq 60 is out of range for libx264 (0..51)" in one_error_line(capsys.readouterr().err)


def test_ffmpeg_without_libvmaf_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # /bin/true is a real executable that lists no filters at all.
    args = ["--builtin", "--encoder", "libx264", "--cq", "30", "--out", str(tmp_path / "c")]
    assert main([*args, "--ffmpeg", "/bin/true"]) == EXIT_USAGE
    assert "has no libvmaf filter" in one_error_line(capsys.readouterr().err)
    assert main([*args, "--ffmpeg", str(tmp_path / "nope")]) == EXIT_USAGE
    assert "is not an executable file" in one_error_line(capsys.readouterr().err)


def test_ffmpeg_env_var_is_honoured(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FRREG_FFMPEG", "/bin/true")
    code = main(["--builtin", "--encoder", "libx264", "--cq", "30", "--out", str(tmp_path / "c")])
    assert code == EXIT_USAGE
    assert "/bin/true" in one_error_line(capsys.readouterr().err)


# --------------------------------------------------------------------------
# Bad manifests: one clear line, exit 2, in-process and as a real process
# --------------------------------------------------------------------------


def _write_bad_manifest(root: Path, case: str) -> tuple[Path, str]:
    """A manifest with one problem, and the text its error line must contain."""
    good = root / "ok.yuv"
    if not good.exists():
        lavfi_to(good, "testsrc2=size=64x36:rate=24", 2, raw_pix_fmt="yuv420p")
    short = root / "short.yuv"
    short.write_bytes(b"\0" * (frame_bytes(64, 36, "yuv420p") + 17))
    entry = (
        '[[sources]]\npath = "{p}"\nwidth = 64\nheight = 36\npix_fmt = "yuv420p"\nframerate = 24\n'
    )
    manifest = root / f"{case}.toml"
    if case == "missing-manifest":
        return root / "absent.toml", "absent.toml: no such file"
    if case == "missing-file":
        manifest.write_text(entry.format(p="gone.yuv"))
        return manifest, "missing-file.toml:2: sources[0] ('gone.yuv'): "
    if case == "wrong-geometry":
        manifest.write_text(entry.format(p="short.yuv"))
        return manifest, "is not a positive multiple of the frame size 3456 (64x36 yuv420p)"
    if case == "unknown-encoder":
        manifest.write_text('encoders = ["libx264", "x266"]\n' + entry.format(p="ok.yuv"))
        return manifest, "unknown-encoder.toml:1: encoders: unknown encoder 'x266'"
    if case == "missing-fields":
        manifest.write_text('[[sources]]\npath = "ok.yuv"\nwidth = 64\n')
        return manifest, "sources[0] ('ok.yuv'): missing fields 'height', 'pix_fmt', 'framerate'"
    if case == "bad-toml":
        manifest.write_text("[[sources]\npath = 1\n")
        return manifest, "bad-toml.toml:1: invalid TOML"
    # Ids the corpus loader would refuse are refused here by the same rule.
    with_id = entry.format(p="ok.yuv") + 'id = "{id}"\n'
    if case == "id-dotdot":
        manifest.write_text(with_id.format(id=".."))
        return manifest, "sources[0] ('ok.yuv'): source id '..' contains '..'"
    if case == "id-bidi":
        manifest.write_text(with_id.format(id="clip\\u202eevil"))
        return manifest, "source id 'clip\\u202eevil' contains a bidirectional-control character"
    if case == "id-nfc-nfd":
        manifest.write_text(with_id.format(id="caf\\u00e9") + with_id.format(id="cafe\\u0301"))
        return manifest, "('caf\\xe9' and 'cafe\\u0301' in different Unicode forms)"
    if case == "json-too-deep":
        manifest = root / f"{case}.json"
        manifest.write_text("[" * 100_000 + "]" * 100_000)
        return manifest, "json-too-deep.json: invalid JSON: nested too deeply"
    if case == "json-huge-int":
        manifest = root / f"{case}.json"
        manifest.write_text('{"sources": [{"path": "ok.yuv", "width": 1' + "0" * 5000 + "}]}")
        return manifest, "json-huge-int.json: invalid JSON: Exceeds the limit (4300 digits)"
    raise AssertionError(case)


BAD_MANIFESTS = (
    "missing-manifest",
    "missing-file",
    "wrong-geometry",
    "unknown-encoder",
    "missing-fields",
    "bad-toml",
    "id-dotdot",
    "id-bidi",
    "id-nfc-nfd",
    "json-too-deep",
    "json-huge-int",
)


@pytest.mark.parametrize("case", BAD_MANIFESTS)
def test_bad_manifest_main(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest, expected = _write_bad_manifest(tmp_path, case)
    out = tmp_path / "c.jsonl"
    code = main(
        ["--sources", str(manifest), "--encoder", "libx264", "--cq", "30", "--out", str(out)]
    )
    assert code == EXIT_USAGE
    assert expected in one_error_line(capsys.readouterr().err)
    assert not out.exists()


@pytest.mark.parametrize("case", BAD_MANIFESTS)
def test_bad_manifest_subprocess(case: str, tmp_path: Path) -> None:
    manifest, expected = _write_bad_manifest(tmp_path, case)
    done = run_cli(
        "--sources",
        str(manifest),
        "--encoder",
        "libx264",
        "--cq",
        "30",
        "--out",
        str(tmp_path / "c"),
    )
    assert done.returncode == EXIT_USAGE
    assert expected in one_error_line(done.stderr)


def test_json_manifest_errors_name_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "m.json"
    manifest.write_text('{\n  "sources": [\n    {"path": "a.yuv",}\n  ]\n}\n')
    code = main(["--sources", str(manifest), "--encoder", "libx264", "--cq", "30", "--out", "x"])
    assert code == EXIT_USAGE
    assert "m.json:3: invalid JSON" in one_error_line(capsys.readouterr().err)


# --------------------------------------------------------------------------
# Producing through the CLI
# --------------------------------------------------------------------------


@pytest.mark.slow
def test_per_call_form_raw_and_container(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = lavfi_to(tmp_path / "clip a.yuv", "testsrc2=size=64x36:rate=24", 5, raw_pix_fmt="yuv420p")
    out = tmp_path / "raw.jsonl"
    argv = ["--source", str(raw), "--width", "64", "--height", "36", "--pix-fmt", "yuv420p"]
    argv += ["--framerate", "24", "--encoder", "libx264", "--cq", "30", "--cq", "40"]
    argv += ["--out", str(out), "--progress", "none"]
    assert main(argv) == EXIT_OK
    rows = read_rows(out)
    assert len(rows) == 10
    assert {r["src"] for r in rows} == {"clip a"}
    assert "wrote" in capsys.readouterr().out

    # Raw YUV without its size is refused; the size is never guessed (the pixel
    # format and rate default to the fork's: tests/test_producer_fork_argv.py).
    assert (
        main(["--source", str(raw), "--encoder", "libx264", "--cq", "30", "--out", str(out)]) == 2
    )
    err = one_error_line(capsys.readouterr().err)
    assert "needs --width, --height (raw YUV has no header" in err

    # A container needs no geometry flags.
    y4m = tmp_path / "clip b.y4m"
    subprocess.run(
        [
            str(resolve_ffmpeg()),
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=64x36:rate=30",
            "-frames:v",
            "3",
            "-pix_fmt",
            "yuv420p",
            str(y4m),
        ],
        check=True,
        timeout=60,
    )
    out2 = tmp_path / "container.jsonl"
    argv2 = ["--source", str(y4m), "--src-id", "b", "--encoder", "libx264", "--cq", "30"]
    assert (
        main([*argv2, "--preset", "libx264=veryfast", "--out", str(out2), "--progress", "none"])
        == 0
    )
    rows = read_rows(out2)
    assert [r["frame_index"] for r in rows] == [0, 1, 2]
    assert {r["preset"] for r in rows} == {"veryfast"}


@pytest.mark.slow
def test_failing_cell_exits_1_and_marks_corpus_incomplete(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache"
    out = tmp_path / "c.jsonl"
    base = ["--builtin", "testsrc2_30fps", "--frames", "2", "--builtin-size", "64x36"]
    base += ["--cache-dir", str(cache), "--cq", "30", "--out", str(out), "--progress", "none"]
    # x264 with an impossible --timeout fails every cell the same way on every machine.
    code = main([*base, "--encoder", "libx264", "--timeout", "0.001"])
    assert code == EXIT_FAIL
    err = capsys.readouterr().err
    assert "FAILED testsrc2_30fps/libx264/cq30: encode: ffmpeg timed out after 0.001 s" in err
    assert "corpus incomplete" in err
    assert "--allow-missing" in err
    assert "Traceback" not in err
    assert not out.exists()
    assert incomplete_marker(out).exists()
    assert json.loads(manifest_path(out).read_text())["complete"] is False


@pytest.mark.slow
@pytest.mark.skipif(Path("/dev/nvidiactl").exists(), reason="NVENC may work here")
def test_hardware_encoder_cell_fails_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "c.jsonl"
    argv = ["--builtin", "testsrc2_30fps", "--frames", "2", "--builtin-size", "64x36"]
    argv += ["--cache-dir", str(tmp_path / "cache"), "--cq", "30", "--progress", "none"]
    argv += ["--encoder", "libx264", "h264_nvenc", "--out", str(out)]
    assert main(argv) == EXIT_FAIL
    err = capsys.readouterr().err
    assert "FAILED testsrc2_30fps/h264_nvenc/cq30" in err
    assert "needs an NVIDIA GPU" in err
    assert not out.exists()

    # --allow-missing writes what succeeded and records the gap.
    assert main([*argv, "--allow-missing"]) == EXIT_OK
    err = capsys.readouterr().err
    assert "--allow-missing: wrote" in err
    assert {r["encoder"] for r in read_rows(out)} == {"libx264"}
    record = json.loads(manifest_path(out).read_text())
    assert record["missing"] == ["testsrc2_30fps/h264_nvenc/cq30"]
    assert record["run"]["encodes"] == 1  # the x264 cell was reused, nvenc retried
    assert not incomplete_marker(out).exists()


@pytest.mark.slow
def test_rerun_of_complete_corpus_via_cli_encodes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "c.jsonl"
    argv = [
        "--builtin",
        "noise_25fps",
        "gradients_24fps",
        "--frames",
        "3",
        "--builtin-size",
        "64x36",
    ]
    argv += ["--cache-dir", str(tmp_path / "cache"), "--encoder", "libx264", "--cq", "30"]
    argv += ["--out", str(out), "--progress", "none"]
    assert main(argv) == EXIT_OK
    first = out.read_bytes()
    assert main(argv) == EXIT_OK
    assert "(2 reused, 0 run)" in capsys.readouterr().out
    assert out.read_bytes() == first
    assert json.loads(manifest_path(out).read_text())["run"]["encodes"] == 0


@pytest.mark.slow
def test_kill_mid_run_then_resume_equals_uninterrupted_run(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    ids = ["testsrc2_30fps", "zoneplate_30fps", "life_25fps"]
    builtin_sources(cache, ids=ids, frames=10, size=(64, 36))  # render before timing anything

    def argv(out: Path) -> list[str]:
        return [
            "--builtin", *ids, "--frames", "10", "--builtin-size", "64x36",
            "--cache-dir", str(cache), "--encoder", "libx264", "libx265",
            "--cq", "20", "26", "32", "38", "44", "--jobs", "1",
            "--out", str(out), "--progress", "none",
        ]  # fmt: skip

    killed = tmp_path / "killed" / "c.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "frreg.cli.corpus", *argv(killed)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    parts: list[Path] = []
    while time.monotonic() < deadline and proc.poll() is None:
        parts = list(parts_dir(killed).glob("[!.]*.jsonl")) if parts_dir(killed).exists() else []
        if parts:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the producer finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    total = len(ids) * 2 * 5
    done_at_kill = len(list(parts_dir(killed).glob("[!.]*.jsonl")))
    assert 1 <= done_at_kill < total
    assert not killed.exists()
    assert incomplete_marker(killed).exists()

    # Resume in-process, then an uninterrupted run from scratch for comparison.
    assert main(argv(killed)) == EXIT_OK
    record = json.loads(manifest_path(killed).read_text())
    assert record["run"]["cells_reused"] >= done_at_kill
    assert record["run"]["encodes"] == total - record["run"]["cells_reused"]
    clean = tmp_path / "clean" / "c.jsonl"
    assert main(argv(clean)) == EXIT_OK

    def comparable(path: Path) -> list[dict[str, Any]]:
        return [
            {k: v for k, v in row.items() if k not in NONDETERMINISTIC_COLUMNS}
            for row in read_rows(path)
        ]

    resumed_rows, clean_rows = comparable(killed), comparable(clean)
    assert len(resumed_rows) == total * 10
    assert len({tuple(r[c] for c in KEY_COLUMNS) for r in resumed_rows}) == len(resumed_rows)
    assert resumed_rows == clean_rows


@pytest.mark.slow
def test_sigterm_stops_cleanly_with_exit_130(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    builtin_sources(cache, ids=["mandelbrot_24fps"], frames=40, size=(96, 54))
    out = tmp_path / "c.jsonl"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "frreg.cli.corpus",
            "--builtin",
            "mandelbrot_24fps",
            "--frames",
            "40",
            "--builtin-size",
            "96x54",
            "--cache-dir",
            str(cache),
            "--encoder",
            "libx265",
            "--cq",
            "20",
            "25",
            "30",
            "35",
            "40",
            "45",
            "--jobs",
            "1",
            "--out",
            str(out),
            "--progress",
            "none",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not manifest_path(out).exists():
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    if proc.returncode == EXIT_OK:
        pytest.skip("the producer finished before SIGTERM arrived")
    assert proc.returncode == EXIT_INTERRUPTED
    assert "interrupted; rerun the same command to resume" in err
    assert "Traceback" not in err
    assert incomplete_marker(out).exists()


# --------------------------------------------------------------------------
# Where the corpus goes: refused before any work, relative paths work
# --------------------------------------------------------------------------


def _tiny_argv(out: str, cache: Path) -> list[str]:
    return [
        "--builtin", "testsrc2_30fps", "--frames", "3", "--builtin-size", "64x36",
        "--cache-dir", str(cache), "--encoder", "libx264", "--cq", "30",
        "--out", out, "--progress", "none",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("out", "message"),
    [
        # A FIFO stands for /dev/null and every other device: an unfixed
        # producer would replace it, and a test must not break the machine.
        ("afifo", "afifo: exists and is not a regular file (a device, pipe or socket); "
                  "refusing to replace it"),
        ("adir", "adir: is a directory; the corpus must be a file path"),
        ("afile/c.jsonl", "afile/c.jsonl: {tmp}/afile is not a directory"),
        ("afile/deeper/c.jsonl", "afile/deeper/c.jsonl: {tmp}/afile is not a directory"),
        ("sidecar/c.jsonl", "{tmp}/sidecar/c.jsonl.manifest.json: is a directory"),
        ("parts/c.jsonl", "{tmp}/parts/c.jsonl.parts: exists and is not a directory"),
    ],
    ids=["fifo", "directory", "parent-is-file", "ancestor-is-file", "sidecar-is-dir",
         "parts-is-file"],
)  # fmt: skip
def test_unusable_out_is_refused_before_any_work(
    out: str,
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    os.mkfifo(tmp_path / "afifo")
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("not a directory\n")
    (tmp_path / "sidecar" / "c.jsonl.manifest.json").mkdir(parents=True)
    (tmp_path / "parts").mkdir()
    (tmp_path / "parts" / "c.jsonl.parts").write_text("")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert main(_tiny_argv(out, tmp_path / "cache")) == EXIT_USAGE
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith(f"frreg-corpus: error: {message.format(tmp=tmp_path)}"), line
    # Nothing rendered, encoded or written: the refusal came first.
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert (tmp_path / "afifo").is_fifo()


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_out_in_an_unwritable_directory_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # /proc/self is read-only even for root, where a chmod'ed directory is not.
    assert main(_tiny_argv("/proc/self/x/c.jsonl", tmp_path / "cache")) == EXIT_USAGE
    assert one_error_line(capsys.readouterr().err).startswith(
        "frreg-corpus: error: /proc/self/x/c.jsonl: cannot create files in /proc/self "
        "(not writable)"
    )
    assert not (tmp_path / "cache").exists()


def _readme_command(prefix: str) -> list[str]:
    """The README's runbook command starting with ``prefix``, split as a shell would."""
    import shlex

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    found = [ln.strip() for ln in readme.splitlines() if ln.strip().startswith(prefix)]
    assert len(found) == 1, f"README.md has {len(found)} lines starting {prefix!r}"
    return shlex.split(found[0])


@pytest.mark.slow
def test_readme_step_0_runs_as_written_from_another_directory(tmp_path: Path) -> None:
    """The runbook's relative ``--out`` used to fail every cell (ffmpeg ran in a work dir)."""
    argv = _readme_command("frreg-corpus --builtin ")
    assert argv[argv.index("--out") + 1] == "runs/phase_a/full_grid/per_frame_canonical6.jsonl"
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    env = {**os.environ, "FRREG_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run(
        [str(Path(sys.executable).parent / argv[0]), *argv[1:]],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == EXIT_OK, proc.stderr[-3000:]
    out = cwd / "runs/phase_a/full_grid/per_frame_canonical6.jsonl"
    record = json.loads(manifest_path(out).read_text())
    assert record["complete"] is True
    assert record["cells_total"] == len(record["sources"]) * 2 * 4
    rows = read_rows(out)
    assert len(rows) == record["corpus"]["rows"] > 0
    assert {r["encoder"] for r in rows} == {"libx264", "libx265"}
    assert {r["cq"] for r in rows} == {22, 30, 38, 46}
    assert not incomplete_marker(out).exists()


@pytest.mark.slow
def test_next_run_removes_what_killed_writers_left(tmp_path: Path) -> None:
    """kill -9 leaves temporaries (corpus, manifest, marker, parts, renders); a rerun removes them.

    Files a live writer may still own stay: another corpus's, and ours written
    to moments ago.
    """
    cache = tmp_path / "cache"
    argv = _tiny_argv(str(tmp_path / "runs" / "c.jsonl"), cache)
    [src] = builtin_sources(cache, ids=["testsrc2_30fps"], frames=3, size=(64, 36))
    dead = subprocess.Popen(["true"])
    dead.wait()
    # A render killed mid-way: no final file, its temporary left behind.
    src.path.unlink()
    render = src.path.with_name(f".{src.path.name}.{dead.pid}.tmp")
    render.write_bytes(b"half a y4m")

    out = tmp_path / "runs" / "c.jsonl"
    pdir = parts_dir(out)
    work = pdir / f".work-{dead.pid}-{'0' * 12}-abcdefgh"
    work.mkdir(parents=True)
    (work / "encoded.h264").write_bytes(b"\0")
    key = "0" * 64
    stale = [
        out.parent / ".c.jsonl.abcdefgh.tmp",
        out.parent / ".c.jsonl.manifest.json.abcdefgh.tmp",
        out.parent / ".c.jsonl.incomplete.abcdefgh.tmp",
        pdir / f".{key}.jsonl.abcdefgh.tmp",
        pdir / f".{key}.vmaf.json.gz.abcdefgh.tmp",
    ]
    kept = [
        out.parent / ".other.jsonl.abcdefgh.tmp",  # another corpus's
        out.parent / ".c.jsonl.justnow1.tmp",  # ours, but just written: maybe live
        pdir / f".{key}.jsonl.justnow1.tmp",
    ]
    ten_minutes_ago = time.time() - 600
    for path in stale + kept:
        path.write_text("torn")
        if "justnow" not in path.name:
            os.utime(path, (ten_minutes_ago, ten_minutes_ago))

    assert main(argv) == EXIT_OK
    assert [p for p in [*stale, work, render] if p.exists()] == []
    assert [p for p in kept if not p.exists()] == []
    assert src.path.exists()


def test_another_grid_onto_a_complete_corpus_adds_its_cells_and_replace_drops_the_rest(
    tmp_path, capsys
):
    out = tmp_path / "c.jsonl"
    grid = ["--builtin", "testsrc2_30fps", "--frames", "3", "--builtin-size", "64x48",
            "--encoder", "libx264", "--progress", "none", "--out", str(out)]  # fmt: skip
    assert main([*grid, "--cq", "30"]) == EXIT_OK
    first = out.read_bytes()
    assert main([*grid, "--cq", "30"]) == EXIT_OK  # the same grid: confirmed, unchanged
    assert out.read_bytes() == first
    capsys.readouterr()
    # Another grid: the cq 30 cell is kept and cq 38 is added, as the fork's --out appends.
    assert main([*grid, "--cq", "38"]) == EXIT_OK
    assert "3 rows" not in capsys.readouterr().out
    assert out.read_bytes().startswith(first)
    assert sorted({r["cq"] for r in read_rows(out)}) == [30, 38]
    assert len(read_rows(out)) == 6
    # --replace: exactly this run's cells.
    assert main([*grid, "--cq", "38", "--replace"]) == EXIT_OK
    assert {r["cq"] for r in read_rows(out)} == {38}
    assert [c["cq"] for c in json.loads(manifest_path(out).read_text())["cells"]] == [38]


def test_help_ends_with_the_exit_status(capsys):
    assert main(["--help"]) == EXIT_OK
    out = " ".join(capsys.readouterr().out.split())  # however argparse wraps it
    assert "Exit status: 0 corpus written (or merged), 1 cells failed" in out
    assert out.endswith("3 internal error, 130 interrupted.")
