"""Per-encoder knobs: the quality flag each encoder takes, its speed preset and bitstream format.

The corpus's ``cq`` column is one integer per cell, but every encoder spells
"constant quality" differently. This module is the only place that knows the
mapping, so the argv a cell runs and the range ``--cq`` accepts can never
disagree:

============  =====================================  ==========  =======================
encoder       quality knob (``cq`` → argv)           cq range    speed preset (default)
============  =====================================  ==========  =======================
libx264       ``-crf CQ``                            0..51       ``-preset`` (medium)
libx265       ``-crf CQ``                            0..51       ``-preset`` (fast)
libsvtav1     ``-crf CQ``                            1..63       ``-preset`` (10)
libvpx-vp9    ``-crf CQ -b:v 0`` (constant quality)  0..63       ``-cpu-used`` (6), with
                                                                 ``-deadline good -row-mt 1``
libvvenc      ``-qp CQ`` (vvenc has no CRF)          0..63       ``-preset`` (faster)
\\*_nvenc     ``-rc vbr -cq CQ -b:v 0``              1..51/63    ``-preset`` (p4)
\\*_qsv       ``-global_quality CQ`` (ICQ)           1..51/255   ``-preset`` (medium)
============  =====================================  ==========  =======================

``-b:v 0`` matters for libvpx-vp9 and NVENC: without it the encoder treats
``-crf``/``-cq`` as a cap on top of a default target bitrate, and the corpus
would mix two rate-control regimes. The defaults are the fast end of each
encoder's sensible range, so the built-in demo grid runs in minutes on two
cores; ``--preset ENCODER=VALUE`` overrides them.
"""

from __future__ import annotations

from typing import Final

from frreg.errors import InputError
from frreg.schema import ENCODER_VOCAB, PRESET_LADDERS, UNKNOWN_ENCODER

#: Encoders the producer can drive: the vocabulary minus its ``unknown`` slot.
PRODUCIBLE_ENCODERS: Final = tuple(e for e in ENCODER_VOCAB if e != UNKNOWN_ENCODER)

#: Default speed preset per encoder; every value is on ``PRESET_LADDERS[encoder]``.
DEFAULT_PRESETS: Final[dict[str, str]] = {
    "libx264": "medium",
    "libx265": "fast",
    "libsvtav1": "10",
    "libvvenc": "faster",
    "libvpx-vp9": "6",
    "h264_nvenc": "p4",
    "hevc_nvenc": "p4",
    "av1_nvenc": "p4",
    "h264_qsv": "medium",
    "hevc_qsv": "medium",
    "av1_qsv": "medium",
}

#: Inclusive ``cq`` range each encoder's quality knob accepts.
CQ_RANGES: Final[dict[str, tuple[int, int]]] = {
    "libx264": (0, 51),
    "libx265": (0, 51),
    # SVT-AV1 treats crf 0 as "unset"; 1..63 is its real range.
    "libsvtav1": (1, 63),
    "libvvenc": (0, 63),
    "libvpx-vp9": (0, 63),
    # NVENC's -cq 0 means "automatic", not "best".
    "h264_nvenc": (1, 51),
    "hevc_nvenc": (1, 51),
    "av1_nvenc": (1, 63),
    "h264_qsv": (1, 51),
    "hevc_qsv": (1, 51),
    "av1_qsv": (1, 255),
}

#: (ffmpeg muxer, file extension) of the elementary stream each encoder writes.
#: Raw streams rather than MP4/MKV so ``enc_bytes`` is the bitstream, not a container.
BITSTREAM_FORMATS: Final[dict[str, tuple[str, str]]] = {
    "libx264": ("h264", ".h264"),
    "h264_nvenc": ("h264", ".h264"),
    "h264_qsv": ("h264", ".h264"),
    "libx265": ("hevc", ".hevc"),
    "hevc_nvenc": ("hevc", ".hevc"),
    "hevc_qsv": ("hevc", ".hevc"),
    "libsvtav1": ("ivf", ".ivf"),
    "av1_nvenc": ("ivf", ".ivf"),
    "av1_qsv": ("ivf", ".ivf"),
    "libvpx-vp9": ("ivf", ".ivf"),
    "libvvenc": ("vvc", ".vvc"),
}

#: What a hardware encoder needs, quoted when its cell fails.
HARDWARE_NEEDS: Final[dict[str, str]] = {
    "nvenc": "an NVIDIA GPU with NVENC and its driver (libcuda)",
    "qsv": "an Intel GPU with Quick Sync and the oneVPL runtime",
}


def check_encoder(encoder: str) -> str:
    """Return ``encoder`` if the producer can drive it, else raise :class:`InputError`."""
    if encoder not in PRODUCIBLE_ENCODERS:
        raise InputError(
            f"unknown encoder {encoder!r}; choose from {', '.join(PRODUCIBLE_ENCODERS)}"
        )
    return encoder


def check_preset(encoder: str, preset: str) -> str:
    """Return ``preset`` if it is on ``encoder``'s ladder, else raise :class:`InputError`."""
    ladder = PRESET_LADDERS[check_encoder(encoder)]
    if preset not in ladder:
        raise InputError(
            f"preset {preset!r} is not on {encoder}'s ladder; choose from {', '.join(ladder)}"
        )
    return preset


def check_cq(encoder: str, cq: int) -> int:
    """Return ``cq`` if ``encoder``'s quality knob accepts it, else raise :class:`InputError`."""
    lo, hi = CQ_RANGES[check_encoder(encoder)]
    if not lo <= cq <= hi:
        raise InputError(f"cq {cq} is out of range for {encoder} ({lo}..{hi})")
    return cq


def quality_args(encoder: str, cq: int, preset: str) -> list[str]:
    """The ffmpeg output options that select ``encoder`` at quality ``cq`` and ``preset``.

    The caller validates ``cq`` and ``preset``; this function only spells them.
    """
    if encoder in ("libx264", "libx265"):
        args = ["-c:v", encoder, "-preset", preset, "-crf", str(cq)]
        if encoder == "libx265":
            # x265 logs every setting at info level; keep stderr tails about errors.
            args += ["-x265-params", "log-level=error"]
        return args
    if encoder == "libsvtav1":
        return ["-c:v", encoder, "-preset", preset, "-crf", str(cq)]
    if encoder == "libvpx-vp9":
        return [
            "-c:v",
            encoder,
            "-deadline",
            "good",
            "-cpu-used",
            preset,
            "-row-mt",
            "1",
            "-crf",
            str(cq),
            "-b:v",
            "0",
        ]
    if encoder == "libvvenc":
        return ["-c:v", encoder, "-preset", preset, "-qp", str(cq)]
    if encoder.endswith("_nvenc"):
        return ["-c:v", encoder, "-preset", preset, "-rc", "vbr", "-cq", str(cq), "-b:v", "0"]
    if encoder.endswith("_qsv"):
        return ["-c:v", encoder, "-preset", preset, "-global_quality", str(cq)]
    raise InputError(f"unknown encoder {encoder!r}; choose from {', '.join(PRODUCIBLE_ENCODERS)}")


def hardware_hint(encoder: str) -> str | None:
    """What ``encoder`` needs from the machine, or ``None`` for a software encoder."""
    for suffix, needs in HARDWARE_NEEDS.items():
        if encoder.endswith("_" + suffix):
            return f"{encoder} needs {needs}"
    return None
