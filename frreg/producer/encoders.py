"""One spec per encoder: its quality knob, speed preset, bitstream format and hardware.

The corpus's ``cq`` column is one integer per cell, but every encoder spells
"constant quality" differently. :data:`ENCODER_SPECS` is the only place that
knows the mapping, so the argv a cell runs and the range ``--cq`` accepts can
never disagree. The vocabulary and preset ladders stay in :mod:`frreg.schema`;
adding an encoder is one name there and one :class:`EncoderSpec` here.

==================  ======================================  ==========  =======================
encoder             quality knob (``cq`` → argv)            cq range    speed preset (default)
==================  ======================================  ==========  =======================
libx264             ``-crf CQ``                             0..51       ``-preset`` (medium)
libx265             ``-crf CQ``                             0..51       ``-preset`` (fast)
libsvtav1           ``-crf CQ``                             1..63       ``-preset`` (10)
libvpx-vp9          ``-crf CQ -b:v 0`` (constant quality)   0..63       ``-cpu-used`` (6), with
                                                                        ``-deadline good -row-mt 1``
libvvenc            ``-qp CQ`` (vvenc has no CRF)           0..63       ``-preset`` (faster)
\\*_nvenc           ``-rc vbr -cq CQ -b:v 0``               1..51/63    ``-preset`` (p4)
\\*_qsv             ``-global_quality CQ`` (ICQ)            1..51/255   ``-preset`` (medium)
\\*_vaapi           ``-qp CQ`` (constant QP), after an      1..51       none
                    upload filter
\\*_videotoolbox    ``-q:v Q -realtime 0``,                 0..100      none
                    Q = :func:`videotoolbox_quality`
==================  ======================================  ==========  =======================

``-b:v 0`` matters for libvpx-vp9 and NVENC: without it the encoder treats
``-crf``/``-cq`` as a cap on top of a default target bitrate, and the corpus
would mix two rate-control regimes. The defaults are the fast end of each
encoder's sensible range, so the built-in demo grid runs in minutes on two
cores; ``--preset ENCODER=VALUE`` overrides them.

The VAAPI and VideoToolbox encoders (the fork's producer drives them too) are
producible but outside the trainer's 12-slot vocabulary: their rows train the
``unknown`` slot, as the fork's trainer maps them. QSV and VAAPI cells open a
device node (:class:`HardwareDevices`) with ``-init_hw_device`` before the
input.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

from frreg.errors import InputError
from frreg.schema import ENCODER_VOCAB, PRESET_LADDERS

HardwareFamily = Literal["nvenc", "qsv", "vaapi", "videotoolbox"]

#: What each hardware family needs, quoted when its cell fails.
HARDWARE_NEEDS: Final[dict[HardwareFamily, str]] = {
    "nvenc": "an NVIDIA GPU with NVENC and its driver (libcuda)",
    "qsv": "an Intel GPU with Quick Sync and the oneVPL runtime, at --qsv-device",
    "vaapi": "a VAAPI GPU (Intel or AMD) and its VA driver, at --vaapi-device",
    "videotoolbox": "macOS with Apple's VideoToolbox and an ffmpeg built with it",
}

#: The render node QSV and VAAPI cells open when none is given: the fork's
#: producer's default (``renderD129``, the second GPU of its build machines).
DEFAULT_QSV_DEVICE: Final = "/dev/dri/renderD129"
DEFAULT_VAAPI_DEVICE: Final = "/dev/dri/renderD129"

#: (ffmpeg muxer, file extension) per bitstream. Raw elementary streams rather
#: than MP4/MKV, so ``bitstream_bytes`` is the bitstream, not a container.
_H264: Final = ("h264", ".h264")
_HEVC: Final = ("hevc", ".hevc")
_IVF: Final = ("ivf", ".ivf")
_VVC: Final = ("vvc", ".vvc")


@dataclass(frozen=True)
class HardwareDevices:
    """The device nodes hardware cells open (``--qsv-device``, ``--vaapi-device``)."""

    qsv: str = DEFAULT_QSV_DEVICE
    vaapi: str = DEFAULT_VAAPI_DEVICE

    def describe(self) -> dict[str, str]:
        """The record stored in the corpus manifest's settings."""
        return {"qsv": self.qsv, "vaapi": self.vaapi}


def same_value(cq: int) -> int:
    """The quality knob takes ``cq`` as it is (every encoder but VideoToolbox)."""
    return cq


def videotoolbox_quality(cq: int) -> int:
    """VideoToolbox's ``-q:v`` (1..100, higher is better) for ``cq``, as the fork maps it.

    A ``cq`` below 50 is read as a CRF-like value (lower is better) and
    mirrored, ``100 - 2*cq``; from 50 up it is taken as the native quality.
    Both are clamped to 1..100.
    """
    value = 100 - 2 * cq if cq < 50 else cq
    return max(1, min(100, value))


@dataclass(frozen=True)
class EncoderSpec:
    """How the producer drives one encoder.

    The encoder's output options are, in order::

        *before_codec -c:v NAME *before_preset [PRESET_FLAG PRESET] *before_quality
        QUALITY_FLAG quality_value(CQ) *after_quality

    and a hardware family that opens a device adds :meth:`device_args` before
    the input. That order is part of every cell key, so changing it recomputes
    every cell.
    """

    name: str
    #: ``None`` for a software encoder, else the vendor family it needs.
    hardware: HardwareFamily | None
    #: The ffmpeg muxer and file extension of the elementary stream it writes.
    bitstream: tuple[str, str]
    #: Default speed preset, on ``PRESET_LADDERS[name]``; ``None``: the encoder has
    #: no speed preset (its rows carry none, so their ``preset_norm`` is neutral).
    default_preset: str | None
    #: Inclusive ``cq`` range the quality knob accepts.
    cq_range: tuple[int, int]
    quality_flag: str = "-crf"
    #: ``None`` exactly when ``default_preset`` is.
    preset_flag: str | None = "-preset"
    #: Output options before ``-c:v`` (VAAPI's upload into GPU frames).
    before_codec: tuple[str, ...] = ()
    before_preset: tuple[str, ...] = ()
    before_quality: tuple[str, ...] = ()
    after_quality: tuple[str, ...] = ()
    #: ``cq`` → the value the quality flag gets.
    quality_value: Callable[[int], int] = same_value

    @property
    def muxer(self) -> str:
        return self.bitstream[0]

    @property
    def extension(self) -> str:
        return self.bitstream[1]

    @property
    def ladder(self) -> tuple[str, ...]:
        """The encoder's presets, fastest first (from :data:`frreg.schema.PRESET_LADDERS`);
        empty for an encoder without a speed preset."""
        return PRESET_LADDERS.get(self.name, ())

    def quality_args(self, cq: int, preset: str | None) -> list[str]:
        """The ffmpeg output options selecting this encoder at ``cq`` and ``preset``.

        The caller validates ``cq`` and ``preset`` (``None`` for an encoder
        without presets); this only spells them.
        """
        speed = [self.preset_flag, preset] if self.preset_flag and preset is not None else []
        return [
            *self.before_codec,
            "-c:v",
            self.name,
            *self.before_preset,
            *speed,
            *self.before_quality,
            self.quality_flag,
            str(self.quality_value(cq)),
            *self.after_quality,
        ]

    def device_args(self, devices: HardwareDevices) -> list[str]:
        """Global options opening the device a QSV or VAAPI cell encodes on (before the input).

        A VAAPI device named ``va`` is the only one initialised, so ffmpeg
        hands it to the ``hwupload`` filter without ``-filter_hw_device``.
        """
        if self.hardware == "qsv":
            return ["-init_hw_device", f"qsv:hw,child_device={devices.qsv}"]
        if self.hardware == "vaapi":
            return ["-init_hw_device", f"vaapi=va:{devices.vaapi}"]
        return []

    def hardware_hint(self) -> str | None:
        """What the encoder needs from the machine, or ``None`` for a software encoder."""
        if self.hardware is None:
            return None
        return f"{self.name} needs {HARDWARE_NEEDS[self.hardware]}"


def _nvenc(name: str, bitstream: tuple[str, str], cq_max: int) -> EncoderSpec:
    # NVENC's -cq 0 means "automatic", not "best".
    return EncoderSpec(
        name,
        "nvenc",
        bitstream,
        "p4",
        (1, cq_max),
        quality_flag="-cq",
        before_quality=("-rc", "vbr"),
        after_quality=("-b:v", "0"),
    )


def _qsv(name: str, bitstream: tuple[str, str], cq_max: int) -> EncoderSpec:
    return EncoderSpec(
        name, "qsv", bitstream, "medium", (1, cq_max), quality_flag="-global_quality"
    )


def _vaapi(name: str, bitstream: tuple[str, str]) -> EncoderSpec:
    # Constant QP; ffmpeg's VAAPI encoders read -qp 0 as "not set", and 51 is
    # the H.264/HEVC maximum. Frames are uploaded as nv12 (8 bit) as the fork does.
    return EncoderSpec(
        name,
        "vaapi",
        bitstream,
        None,
        (1, 51),
        quality_flag="-qp",
        preset_flag=None,
        before_codec=("-vf", "format=nv12,hwupload=extra_hw_frames=16"),
    )


def _videotoolbox(name: str, bitstream: tuple[str, str]) -> EncoderSpec:
    # cq 0..100: above 100 the fork's mapping clamps every value to q 100, so
    # such cells would be the cq-100 encode under another cq.
    return EncoderSpec(
        name,
        "videotoolbox",
        bitstream,
        None,
        (0, 100),
        quality_flag="-q:v",
        preset_flag=None,
        after_quality=("-realtime", "0"),
        quality_value=videotoolbox_quality,
    )


#: Every encoder the producer can drive, keyed by name: the vocabulary's, in
#: slot order, then those outside it (whose rows land in the ``unknown`` slot).
ENCODER_SPECS: Final[dict[str, EncoderSpec]] = {
    spec.name: spec
    for spec in (
        EncoderSpec("libx264", None, _H264, "medium", (0, 51)),
        # x265 logs every setting at info level; keep stderr tails about errors.
        EncoderSpec(
            "libx265",
            None,
            _HEVC,
            "fast",
            (0, 51),
            after_quality=("-x265-params", "log-level=error"),
        ),
        # SVT-AV1 treats crf 0 as "unset"; 1..63 is its real range.
        EncoderSpec("libsvtav1", None, _IVF, "10", (1, 63)),
        EncoderSpec("libvvenc", None, _VVC, "faster", (0, 63), quality_flag="-qp"),
        EncoderSpec(
            "libvpx-vp9",
            None,
            _IVF,
            "6",
            (0, 63),
            preset_flag="-cpu-used",
            before_preset=("-deadline", "good"),
            before_quality=("-row-mt", "1"),
            after_quality=("-b:v", "0"),
        ),
        _nvenc("h264_nvenc", _H264, 51),
        _nvenc("hevc_nvenc", _HEVC, 51),
        _nvenc("av1_nvenc", _IVF, 63),
        _qsv("h264_qsv", _H264, 51),
        _qsv("hevc_qsv", _HEVC, 51),
        _qsv("av1_qsv", _IVF, 255),
        _vaapi("h264_vaapi", _H264),
        _vaapi("hevc_vaapi", _HEVC),
        _videotoolbox("h264_videotoolbox", _H264),
        _videotoolbox("hevc_videotoolbox", _HEVC),
    )
}

#: Encoders the producer can drive, in :data:`ENCODER_SPECS` order.
PRODUCIBLE_ENCODERS: Final = tuple(ENCODER_SPECS)
#: The producible encoders the trainer's vocabulary has no slot for (``unknown`` rows).
OUTSIDE_VOCABULARY: Final = tuple(e for e in PRODUCIBLE_ENCODERS if e not in ENCODER_VOCAB)
#: Encoders that need hardware: an ffmpeg build without one still runs the other
#: cells, and that encoder's cells fail (the machine lacks it), never the whole run.
HARDWARE_ENCODERS: Final = tuple(e for e, spec in ENCODER_SPECS.items() if spec.hardware)

# Views of the table, for callers that want one field of every encoder.
#: Default speed preset per encoder (``None``: it has none).
DEFAULT_PRESETS: Final = {name: spec.default_preset for name, spec in ENCODER_SPECS.items()}
#: Inclusive ``cq`` range per encoder.
CQ_RANGES: Final = {name: spec.cq_range for name, spec in ENCODER_SPECS.items()}
#: (ffmpeg muxer, file extension) per encoder.
BITSTREAM_FORMATS: Final = {name: spec.bitstream for name, spec in ENCODER_SPECS.items()}
#: The widest ``cq`` range any encoder accepts (what ``--cq`` takes before the encoder is known).
CQ_BOUNDS: Final = (
    min(lo for lo, _ in CQ_RANGES.values()),
    max(hi for _, hi in CQ_RANGES.values()),
)


def encoder_spec(encoder: str) -> EncoderSpec:
    """The spec of ``encoder``; :class:`InputError` naming the choices if there is none."""
    spec = ENCODER_SPECS.get(encoder)
    if spec is None:
        raise InputError(
            f"unknown encoder {encoder!r}; choose from {', '.join(PRODUCIBLE_ENCODERS)}"
        )
    return spec


def check_encoder(encoder: str) -> str:
    """Return ``encoder`` if the producer can drive it, else raise :class:`InputError`."""
    return encoder_spec(encoder).name


def check_preset(encoder: str, preset: str) -> str:
    """Return ``preset`` if it is on ``encoder``'s ladder, else raise :class:`InputError`."""
    ladder = encoder_spec(encoder).ladder
    if not ladder:
        raise InputError(f"{encoder} has no speed preset; drop the preset {preset!r} for it")
    if preset not in ladder:
        raise InputError(
            f"preset {preset!r} is not on {encoder}'s ladder; choose from {', '.join(ladder)}"
        )
    return preset


def check_cq(encoder: str, cq: int) -> int:
    """Return ``cq`` if ``encoder``'s quality knob accepts it, else raise :class:`InputError`."""
    lo, hi = encoder_spec(encoder).cq_range
    if not lo <= cq <= hi:
        raise InputError(f"cq {cq} is out of range for {encoder} ({lo}..{hi})")
    return cq


def quality_args(encoder: str, cq: int, preset: str | None) -> list[str]:
    """The ffmpeg output options that select ``encoder`` at quality ``cq`` and ``preset``."""
    return encoder_spec(encoder).quality_args(cq, preset)


def hardware_hint(encoder: str) -> str | None:
    """What ``encoder`` needs from the machine, or ``None`` for a software encoder."""
    spec = ENCODER_SPECS.get(encoder)
    return spec.hardware_hint() if spec is not None else None
