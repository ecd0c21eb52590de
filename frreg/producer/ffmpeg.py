"""One small function per ffmpeg job: build the argv, run it, parse what it said.

Every run goes through :func:`run_tool`: no shell, a timeout, and on failure a
:class:`~frreg.errors.ToolError` that carries the exact argv and the tail of
stderr. Argv builders are separate from runners so tests can pin the command
line an encoder gets without running it.

Paths never go inside a filtergraph string, where spaces, colons and quotes
would need two levels of escaping: libvmaf writes its log to a bare file name
in the working directory the caller passes as ``cwd``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Final

from frreg.errors import InputError, ToolError
from frreg.schema import CANONICAL_6, TARGET

#: Environment variable naming the ffmpeg binary when ``--ffmpeg`` is not given.
FFMPEG_ENV: Final = "FRREG_FFMPEG"
#: The libvmaf model every corpus is scored with (its features are CANONICAL_6).
VMAF_MODEL: Final = "version=vmaf_v0.6.1"
#: Lines of stderr kept on a ToolError.
STDERR_TAIL_LINES: Final = 12
#: Timeout for quick metadata calls (``-version``, ``-encoders``, probes).
PROBE_TIMEOUT_S: Final = 60.0

#: libvmaf log metric → corpus column. The vmaf_v0.6.1 model computes the
#: integer (fixed-point) feature extractors, logged as ``integer_<name>``;
#: older float builds log the bare name, accepted as a fallback.
LIBVMAF_METRICS: Final[dict[str, tuple[str, ...]]] = {
    TARGET: (TARGET,),
    **{name: (f"integer_{name}", name) for name in CANONICAL_6},
}

#: Pixel formats libvmaf's ffmpeg filter accepts. Other sources are scored
#: after conversion to :func:`score_pix_fmt`'s choice.
VMAF_PIX_FMTS: Final = (
    "yuv420p",
    "yuv422p",
    "yuv444p",
    "yuv420p10le",
    "yuv422p10le",
    "yuv444p10le",
)

# Both streams are renumbered 0, 1, 2, … in one shared time base before
# libvmaf, so frame i of the encode is always scored against frame i of the
# source whatever timestamps the bitstream or container carried.
_SYNC: Final = "settb=1/1000,setpts=N"


# --------------------------------------------------------------------------
# Running a tool
# --------------------------------------------------------------------------


@dataclass
class ToolClock:
    """Wall-clock intervals spent inside tool subprocesses (thread-safe).

    The benchmark reports harness overhead as the part of the wall time when
    no subprocess was running; with cells side by side the intervals overlap,
    so it is their union that counts, not their sum.
    """

    intervals: list[tuple[float, float]] = field(default_factory=list)
    launches: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, what: str, start: float, end: float) -> None:
        with self._lock:
            self.intervals.append((start, end))
            self.launches[what] = self.launches.get(what, 0) + 1

    def busy_s(self) -> float:
        """Length of the union of all recorded intervals, in seconds."""
        total, cur_start, cur_end = 0.0, None, None
        for start, end in sorted(self.intervals):
            if cur_end is None or start > cur_end:
                if cur_end is not None and cur_start is not None:
                    total += cur_end - cur_start
                cur_start, cur_end = start, end
            else:
                cur_end = max(cur_end, end)
        if cur_end is not None and cur_start is not None:
            total += cur_end - cur_start
        return total


class _Live:
    """Processes started by :func:`run_tool` that are still running.

    On Ctrl-C or SIGTERM the CLI kills these so no ffmpeg outlives the producer.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._procs: set[subprocess.Popen[bytes]] = set()

    def add(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._procs.add(proc)

    def discard(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._procs.discard(proc)

    def kill_all(self) -> None:
        with self._lock:
            procs = list(self._procs)
        for proc in procs:
            with contextlib.suppress(OSError):
                proc.kill()


LIVE_PROCESSES: Final = _Live()


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` (on this host) still runs: how a writer's leftovers are judged."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


# ffmpeg runs with ``-v level+LEVEL``, which tags every line "[error]",
# "[verbose]", ...; libx265 and SVT-AV1 tag their own ("x265 [error]:",
# "Svt[warn]:"). A failure's useful lines are the tagged problems, not the
# verbose stream dump around them.
_ERROR_RE: Final = re.compile(r"\[(panic|fatal|error)\]")
_WARNING_RE: Final = re.compile(r"\[(warning|warn)\]")
_ADDR_RE: Final = re.compile(r" @ 0x[0-9a-fA-F]+")
_LEVEL_TAG_RE: Final = re.compile(r" ?\[(panic|fatal|error|warning|info|verbose|debug)\] ?")


def stderr_tail(stderr: str, lines: int = STDERR_TAIL_LINES) -> str:
    """The last ``lines`` error lines of ``stderr``; else warnings; else any last lines."""
    kept = [line.rstrip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in kept if _ERROR_RE.search(line)]
    warnings = [line for line in kept if _WARNING_RE.search(line)]
    pool = errors or warnings or kept
    # The first error is usually the root cause; the last ones say how it ended.
    chosen = pool if len(pool) <= lines else [pool[0], *pool[-(lines - 1) :]]
    # Context pointers ("[libx264 @ 0x55d0c0ffee00]") differ every run and say nothing.
    return "\n".join(
        _ADDR_RE.sub("", _LEVEL_TAG_RE.sub(" ", line, count=1)).strip() for line in chosen
    )


def run_tool(
    argv: Sequence[str],
    *,
    what: str,
    timeout: float,
    cwd: str | os.PathLike[str] | None = None,
    clock: ToolClock | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (no shell) and return it completed; raise ToolError on failure.

    ``what`` names the step in the message ("encode", "score", ...). A timeout
    kills the process. Non-zero exit and death by signal are failures.
    """
    argv = [str(a) for a in argv]
    start = time.perf_counter()
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    except OSError as exc:
        raise ToolError(f"{what}: cannot run {argv[0]}: {exc.strerror or exc}", argv) from exc
    LIVE_PROCESSES.add(proc)
    try:
        out_b, err_b = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err_b = proc.communicate()
        err = err_b.decode("utf-8", "replace")
        raise ToolError(
            f"{what}: ffmpeg timed out after {timeout:g} s", argv, stderr_tail(err)
        ) from None
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        LIVE_PROCESSES.discard(proc)
        if clock is not None:
            clock.record(what, start, time.perf_counter())
    out = out_b.decode("utf-8", "replace")
    err = err_b.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise ToolError(f"{what}: {_describe_exit(proc.returncode)}", argv, stderr_tail(err))
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def _describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"ffmpeg was killed by {name}"
    return f"ffmpeg exited with status {returncode}"


# --------------------------------------------------------------------------
# Finding and inspecting ffmpeg
# --------------------------------------------------------------------------


def resolve_ffmpeg(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The ffmpeg binary to use: ``explicit``, else ``$FRREG_FFMPEG``, else imageio-ffmpeg's.

    Raises :class:`InputError` when the chosen binary does not exist.
    """
    origin = "--ffmpeg"
    chosen: str | None = os.fspath(explicit) if explicit is not None else None
    if chosen is None and os.environ.get(FFMPEG_ENV):
        chosen, origin = os.environ[FFMPEG_ENV], f"${FFMPEG_ENV}"
    if chosen is None:
        try:
            import imageio_ffmpeg
        except ImportError as exc:
            raise InputError(
                f"no ffmpeg: install imageio-ffmpeg or pass --ffmpeg PATH (or set {FFMPEG_ENV})"
            ) from exc
        return Path(imageio_ffmpeg.get_ffmpeg_exe())
    found = shutil.which(chosen) if os.sep not in chosen else chosen
    path = Path(found) if found else Path(chosen)
    if not path.is_file() or not os.access(path, os.X_OK):
        raise InputError(f"{origin} {chosen!r} is not an executable file")
    return path.resolve()


@dataclass(frozen=True)
class FfmpegInfo:
    """What one ffmpeg binary is and can do."""

    path: str
    version: str
    encoders: frozenset[str]
    has_libvmaf: bool
    libvmaf_version: str | None

    def describe(self) -> dict[str, Any]:
        """The record stored in the corpus manifest."""
        return {
            "path": self.path,
            "version": self.version,
            "libvmaf_version": self.libvmaf_version,
        }

    def scorer(self) -> str:
        """What scores every cell: this binary's libvmaf filter."""
        return f"ffmpeg's libvmaf filter ({self.path}, libvmaf {self.libvmaf_version})"


def _batch_head(
    ffmpeg: str | os.PathLike[str], log_level: str, *, overwrite: bool = False
) -> list[str]:
    """How every unattended ffmpeg run starts: no banner, never read stdin, this log level.

    ``overwrite`` adds ``-y`` (replace the output file without asking).
    """
    return [
        os.fspath(ffmpeg),
        "-hide_banner",
        "-nostdin",
        *(["-y"] if overwrite else []),
        "-v",
        log_level,
    ]


#: Decode for the side effects (logs, libvmaf) and write nothing.
_NULL_OUTPUT = ("-f", "null", "-")


def version_argv(ffmpeg: str | os.PathLike[str]) -> list[str]:
    """``ffmpeg -version``."""
    return [os.fspath(ffmpeg), "-hide_banner", "-version"]


def encoders_argv(ffmpeg: str | os.PathLike[str]) -> list[str]:
    """``ffmpeg -encoders``."""
    return [os.fspath(ffmpeg), "-hide_banner", "-encoders"]


def filters_argv(ffmpeg: str | os.PathLike[str]) -> list[str]:
    """``ffmpeg -filters``."""
    return [os.fspath(ffmpeg), "-hide_banner", "-filters"]


def libvmaf_probe_argv(ffmpeg: str | os.PathLike[str], log_name: str) -> list[str]:
    """Score two frames of flat grey against themselves, to learn libvmaf's version.

    64x64: libvmaf crashes on inputs much smaller than that.
    """
    graph = (
        "color=c=gray:size=64x64:rate=1:duration=2,format=yuv420p,split[a][b];"
        f"[a][b]libvmaf=model={VMAF_MODEL}:log_fmt=json:log_path={log_name}"
    )
    return [
        *_batch_head(ffmpeg, "error"),
        "-filter_complex",
        graph,
        *_NULL_OUTPUT,
    ]


@functools.lru_cache(maxsize=8)
def _probe_cached(path: str, _mtime_ns: int, _size: int) -> FfmpegInfo:
    version_out = run_tool(version_argv(path), what="ffmpeg -version", timeout=PROBE_TIMEOUT_S)
    first = version_out.stdout.splitlines()[0] if version_out.stdout else ""
    match = re.match(r"ffmpeg version (\S+)", first)
    version = match.group(1) if match else first.strip() or "unknown"
    enc_out = run_tool(encoders_argv(path), what="ffmpeg -encoders", timeout=PROBE_TIMEOUT_S)
    encoders = frozenset(
        m.group(1)
        for m in re.finditer(r"^\s*V[\w.]{5}\s+(\S+)", enc_out.stdout, flags=re.MULTILINE)
    )
    filt_out = run_tool(filters_argv(path), what="ffmpeg -filters", timeout=PROBE_TIMEOUT_S)
    has_libvmaf = re.search(r"^\s*\S+\s+libvmaf\s", filt_out.stdout, flags=re.MULTILINE) is not None
    libvmaf_version = None
    if has_libvmaf:
        with tempfile.TemporaryDirectory(prefix="frreg-vmaf-probe-") as tmp:
            run_tool(
                libvmaf_probe_argv(path, "probe.json"),
                what="libvmaf probe",
                timeout=PROBE_TIMEOUT_S,
                cwd=tmp,
            )
            log = json.loads(Path(tmp, "probe.json").read_text(encoding="utf-8"))
            libvmaf_version = str(log.get("version", "unknown"))
    return FfmpegInfo(path, version, encoders, has_libvmaf, libvmaf_version)


def probe_ffmpeg(ffmpeg: str | os.PathLike[str]) -> FfmpegInfo:
    """Version, encoders and libvmaf support of ``ffmpeg`` (cached per binary).

    libvmaf's version comes from a two-frame test run, which also proves the
    built-in vmaf_v0.6.1 model loads.
    """
    path = os.fspath(ffmpeg)
    st = os.stat(path)
    return _probe_cached(path, st.st_mtime_ns, st.st_size)


def require_capabilities(
    info: FfmpegInfo, encoders: Sequence[str], *, hardware: Collection[str] = ()
) -> None:
    """Refuse a binary without libvmaf or without one of ``encoders`` (InputError).

    An encoder in ``hardware`` the build lacks is not refused: a build without
    it (ffmpeg on Linux has no VideoToolbox) is a machine without that
    hardware, and its cells fail like those of a build that has the encoder
    but not the device (:func:`missing_encoder_error`).
    """
    if not info.has_libvmaf:
        raise InputError(
            f"ffmpeg {info.path} ({info.version}) has no libvmaf filter; "
            f"use imageio-ffmpeg's build or pass --ffmpeg PATH to one configured --enable-libvmaf"
        )
    missing = [e for e in encoders if e not in info.encoders and e not in hardware]
    if missing:
        raise InputError(
            f"ffmpeg {info.path} ({info.version}) has no encoder {', '.join(missing)}; "
            f"pass --ffmpeg PATH to a build that has it, or drop it from --encoder"
        )


def check_vmaf_bin(path: str | os.PathLike[str]) -> Path:
    """``path`` if it is a file (the fork's ``--vmaf-bin`` check), else :class:`InputError`.

    The binary is never run: frreg scores through ffmpeg's libvmaf filter.
    """
    if not Path(path).is_file():
        raise InputError(f"--vmaf-bin {os.fspath(path)}: vmaf binary not found (not a file)")
    return Path(path)


def missing_encoder_error(info: FfmpegInfo, encoder: str) -> ToolError:
    """The failure of a cell whose (hardware) encoder this ffmpeg build does not have."""
    return ToolError(
        f"encode: ffmpeg {info.path} ({info.version}) has no {encoder} encoder",
        [info.path, "-encoders"],
    )


# --------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------


def raw_input_args(
    path: str | os.PathLike[str], width: int, height: int, pix_fmt: str, framerate: Fraction
) -> list[str]:
    """Input options that read a headerless raw YUV file with explicit geometry."""
    return [
        "-f",
        "rawvideo",
        "-pix_fmt",
        pix_fmt,
        "-video_size",
        f"{width}x{height}",
        "-framerate",
        str(framerate),
        "-i",
        os.fspath(path),
    ]


def container_input_args(path: str | os.PathLike[str]) -> list[str]:
    """Input options for any file ffmpeg can open by itself."""
    return ["-i", os.fspath(path)]


# --------------------------------------------------------------------------
# Probing a container source
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbedVideo:
    """Geometry and decoded frame count of a container's first video stream."""

    width: int
    height: int
    pix_fmt: str
    framerate: Fraction
    frames: int


def probe_argv(ffmpeg: str | os.PathLike[str], path: str | os.PathLike[str]) -> list[str]:
    """Decode the first video stream to nothing, logging stream info and frame counts."""
    return [
        *_batch_head(ffmpeg, "level+verbose"),
        *container_input_args(path),
        "-map",
        "0:v:0",
        *_NULL_OUTPUT,
    ]


def probe_video(
    ffmpeg: str | os.PathLike[str], path: str | os.PathLike[str], *, timeout: float
) -> ProbedVideo:
    """Geometry of ``path``'s first video stream, and how many frames it decodes to.

    There is no ffprobe next to imageio-ffmpeg, so this parses ffmpeg's own
    stream dump and counts frames by decoding (container frame counts in
    headers are often missing or wrong).
    """
    done = run_tool(probe_argv(ffmpeg, path), what="probe", timeout=timeout)
    stream = parse_video_stream(done.stderr)
    if stream is None:
        raise ToolError(
            f"probe: no video stream found in {os.fspath(path)}",
            done.args,
            stderr_tail(done.stderr),
        )
    width, height, pix_fmt, framerate = stream
    frames = parse_decoded_frames(done.stderr, 0)
    if frames is None:
        raise ToolError(
            "probe: ffmpeg did not report a frame count", done.args, stderr_tail(done.stderr)
        )
    return ProbedVideo(width, height, pix_fmt, framerate, frames)


_STREAM_RE: Final = re.compile(r"Stream #0:\d+\S*: Video: (.*)$", re.MULTILINE)


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside parentheses or brackets."""
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in text:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur).strip())
    return parts


def _parse_rate(text: str) -> Fraction:
    """ffmpeg prints rates rounded to 2 decimals; snap NTSC rates back to k*1000/1001."""
    value = float(text[:-1]) * 1000 if text.endswith("k") else float(text)
    for k in (24, 30, 48, 60, 120, 240):
        ntsc = Fraction(k * 1000, 1001)
        if abs(value - float(ntsc)) < 0.006:
            return ntsc
    return Fraction(text if not text.endswith("k") else str(value)).limit_denominator(1001)


def parse_video_stream(stderr: str) -> tuple[int, int, str, Fraction] | None:
    """(width, height, pix_fmt, frame rate) of the first video stream in ffmpeg's input dump."""
    match = _STREAM_RE.search(stderr)
    if match is None:
        return None
    fields = _split_top_level(match.group(1))
    pix_fmt = None
    width = height = None
    rate: Fraction | None = None
    for i, item in enumerate(fields):
        size = re.match(r"(\d+)x(\d+)\b", item)
        if size and width is None:
            width, height = int(size.group(1)), int(size.group(2))
            # The pixel format is the field just before the size: "yuv420p(tv, progressive)".
            if i >= 1:
                pix_fmt = fields[i - 1].split("(")[0].strip()
        fps = re.fullmatch(r"([\d.]+k?) (fps|tbr)", item)
        if fps and (rate is None or fps.group(2) == "fps"):
            rate = _parse_rate(fps.group(1))
    if width is None or height is None or not pix_fmt or rate is None:
        return None
    return width, height, pix_fmt, rate


def parse_decoded_frames(stderr: str, input_index: int) -> int | None:
    """Frames decoded from input ``input_index``'s first video stream, from verbose stats."""
    match = re.search(
        rf"Input stream #{input_index}:\d+ \(video\): \d+ packets read \(\d+ bytes\); "
        r"(\d+) frames decoded",
        stderr,
    )
    return int(match.group(1)) if match else None


def parse_encoded_frames(stderr: str) -> int | None:
    """Frames the first output stream encoded, from verbose stats."""
    match = re.search(r"Output stream #0:\d+ \(video\): (\d+) frames encoded", stderr)
    return int(match.group(1)) if match else None


# --------------------------------------------------------------------------
# Generating a source with lavfi
# --------------------------------------------------------------------------


#: Output flags of every raw render: bit-exact Y4M (no encoder tags, no timestamps
#: that vary between ffmpeg builds or runs).
_BITEXACT_Y4M: Final = ("-fflags", "+bitexact", "-flags:v", "+bitexact", "-f", "yuv4mpegpipe")


def generate_argv(
    ffmpeg: str | os.PathLike[str], graph: str, frames: int, out: str | os.PathLike[str]
) -> list[str]:
    """Render ``frames`` frames of a lavfi ``graph`` to a Y4M file, bit-exactly."""
    return [
        *_batch_head(ffmpeg, "error", overwrite=True),
        "-filter_threads",
        "1",
        "-f",
        "lavfi",
        "-i",
        graph,
        "-frames:v",
        str(frames),
        *_BITEXACT_Y4M,
        os.fspath(out),
    ]


def generate(
    ffmpeg: str | os.PathLike[str],
    graph: str,
    frames: int,
    out: str | os.PathLike[str],
    *,
    timeout: float,
) -> None:
    """Render a lavfi graph to ``out`` (the caller renames it into place)."""
    run_tool(generate_argv(ffmpeg, graph, frames, out), what="generate", timeout=timeout)


def decode_argv(
    ffmpeg: str | os.PathLike[str],
    path: str | os.PathLike[str],
    vf: str,
    frames: int,
    out: str | os.PathLike[str],
) -> list[str]:
    """Decode the first ``frames`` frames of ``path``'s first video stream through ``vf`` to Y4M.

    Every decoded frame is written once (``-fps_mode passthrough``: none
    dropped or duplicated to fit a frame rate); the path stays out of the
    filtergraph.
    """
    return [
        *_batch_head(ffmpeg, "error", overwrite=True),
        "-filter_threads",
        "1",
        *container_input_args(path),
        "-map",
        "0:v:0",
        "-vf",
        vf,
        "-frames:v",
        str(frames),
        "-fps_mode",
        "passthrough",
        *_BITEXACT_Y4M,
        os.fspath(out),
    ]


def decode(
    ffmpeg: str | os.PathLike[str],
    path: str | os.PathLike[str],
    vf: str,
    frames: int,
    out: str | os.PathLike[str],
    *,
    timeout: float,
) -> None:
    """Decode a video file to a Y4M ``out`` (the caller renames it into place)."""
    run_tool(decode_argv(ffmpeg, path, vf, frames, out), what="decode", timeout=timeout)


# --------------------------------------------------------------------------
# Encoding one cell
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Encoded:
    """One finished encode."""

    path: Path
    frames: int
    #: Size of the elementary stream written (no container).
    bitstream_bytes: int
    enc_time_ms: int


def encode_argv(
    ffmpeg: str | os.PathLike[str],
    input_args: Sequence[str],
    frames: int,
    codec_args: Sequence[str],
    muxer: str,
    out: str | os.PathLike[str],
) -> list[str]:
    """Encode the first ``frames`` frames of the input's first video stream.

    ``-fps_mode passthrough`` so ffmpeg never duplicates or drops a frame to
    meet a nominal rate; ``-v verbose`` so it reports how many it encoded.
    """
    return [
        *_batch_head(ffmpeg, "level+verbose", overwrite=True),
        *input_args,
        "-map",
        "0:v:0",
        "-an",
        "-sn",
        "-dn",
        "-frames:v",
        str(frames),
        "-fps_mode",
        "passthrough",
        *codec_args,
        "-f",
        muxer,
        os.fspath(out),
    ]


def encode(
    ffmpeg: str | os.PathLike[str],
    input_args: Sequence[str],
    frames: int,
    codec_args: Sequence[str],
    muxer: str,
    out: Path,
    *,
    timeout: float,
    clock: ToolClock | None = None,
) -> Encoded:
    """Run one encode; ``enc_time_ms`` is its wall time (decode of the source included)."""
    argv = encode_argv(ffmpeg, input_args, frames, codec_args, muxer, out)
    start = time.perf_counter()
    done = run_tool(argv, what="encode", timeout=timeout, clock=clock, env=_quiet_env())
    elapsed_ms = round((time.perf_counter() - start) * 1000)
    encoded = parse_encoded_frames(done.stderr)
    if encoded is None:
        raise ToolError(
            "encode: ffmpeg did not report a frame count", argv, stderr_tail(done.stderr)
        )
    return Encoded(out, encoded, out.stat().st_size, elapsed_ms)


def _quiet_env() -> dict[str, str]:
    # SVT-AV1 logs its banner to stderr itself, past ffmpeg's -v; level 1 = errors.
    env = dict(os.environ)
    env.setdefault("SVT_LOG", "1")
    return env


# --------------------------------------------------------------------------
# Scoring one cell
# --------------------------------------------------------------------------


def score_pix_fmt(pix_fmt: str) -> str:
    """The pixel format both streams are scored in: the source's, if libvmaf takes it."""
    if pix_fmt in VMAF_PIX_FMTS:
        return pix_fmt
    # More than 8 bits per sample is spelled with an endianness suffix
    # (yuv420p12le, p010le, gray10le); nv12's "12" is bits per pixel.
    high_depth = re.search(r"(9|10|12|14|16)(le|be)$", pix_fmt)
    return "yuv420p10le" if high_depth else "yuv420p"


def score_graph(pix_fmt: str, frames: int, trim_ref: bool, n_threads: int, log_name: str) -> str:
    """The filtergraph: [0] the decoded encode, [1] the source, into libvmaf.

    ``format=`` puts the encode back into the source's pixel format (libx264
    keeps it, libvvenc always writes 10 bit). ``shortest=1`` stops at the
    shorter stream; the caller then checks both counts equal the encode's.
    """
    ref_trim = f"trim=end_frame={frames}," if trim_ref else ""
    return (
        f"[0:v]format={pix_fmt},{_SYNC}[dist];"
        f"[1:v]{ref_trim}format={pix_fmt},{_SYNC}[ref];"
        f"[dist][ref]libvmaf=model={VMAF_MODEL}:log_fmt=json:log_path={log_name}"
        f":n_threads={n_threads}:shortest=1"
    )


def score_argv(
    ffmpeg: str | os.PathLike[str],
    dist: str | os.PathLike[str],
    ref_input_args: Sequence[str],
    graph: str,
) -> list[str]:
    """Decode the encode and the source side by side straight into libvmaf (no raw YUV on disk)."""
    return [
        *_batch_head(ffmpeg, "level+verbose"),
        *container_input_args(dist),
        *ref_input_args,
        "-filter_complex",
        graph,
        # The renumbered timestamps are in 1/1000; keep that base so the null
        # muxer does not see colliding timestamps and spam warnings.
        "-enc_time_base",
        "1/1000",
        "-fps_mode",
        "passthrough",
        *_NULL_OUTPUT,
    ]


@dataclass(frozen=True)
class Scored:
    """libvmaf's JSON log of one cell and how many frames ffmpeg decoded from the encode."""

    log: dict[str, Any]
    dist_frames: int


def score(
    ffmpeg: str | os.PathLike[str],
    dist: Path,
    ref_input_args: Sequence[str],
    pix_fmt: str,
    frames: int,
    trim_ref: bool,
    workdir: Path,
    *,
    n_threads: int,
    timeout: float,
    clock: ToolClock | None = None,
) -> Scored:
    """Score ``dist`` against the source with libvmaf; the log lands in ``workdir``."""
    log_name = "vmaf.json"
    graph = score_graph(score_pix_fmt(pix_fmt), frames, trim_ref, n_threads, log_name)
    argv = score_argv(ffmpeg, dist, ref_input_args, graph)
    done = run_tool(argv, what="score", timeout=timeout, cwd=workdir, clock=clock)
    dist_frames = parse_decoded_frames(done.stderr, 0)
    if dist_frames is None:
        raise ToolError(
            "score: ffmpeg did not report a frame count", argv, stderr_tail(done.stderr)
        )
    try:
        log = json.loads((workdir / log_name).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ToolError(
            f"score: unreadable libvmaf log: {exc}", argv, stderr_tail(done.stderr)
        ) from exc
    return Scored(log, dist_frames)
