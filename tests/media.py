"""Test clips rendered by ffmpeg's own generators, independently of the producer's code."""

from __future__ import annotations

import subprocess
from pathlib import Path

from frreg.producer import resolve_ffmpeg


def lavfi_to(path: Path, graph: str, frames: int, *, raw_pix_fmt: str | None = None) -> Path:
    """Render ``frames`` frames of a lavfi graph to ``path``: raw video when
    ``raw_pix_fmt`` is given, else the container its extension names."""
    fmt = ["-f", "rawvideo", "-pix_fmt", raw_pix_fmt] if raw_pix_fmt else []
    argv = [str(resolve_ffmpeg()), "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", graph,
            "-frames:v", str(frames), *fmt, str(path)]  # fmt: skip
    subprocess.run(argv, check=True, timeout=60)
    return path
