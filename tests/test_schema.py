"""The schema module is the one source of truth; nothing else restates its numbers."""

from __future__ import annotations

import re
from pathlib import Path

from frreg import schema

ROOT = Path(__file__).resolve().parent.parent


def test_canonical_six_in_model_column_order():
    assert schema.CANONICAL_6 == (
        "adm2",
        "vif_scale0",
        "vif_scale1",
        "vif_scale2",
        "vif_scale3",
        "motion2",
    )


def test_encoder_vocabulary_v2_slot_order():
    assert schema.ENCODER_VOCAB_VERSION == 2
    assert schema.ENCODER_VOCAB == (
        "libx264",
        "libx265",
        "libsvtav1",
        "libvvenc",
        "libvpx-vp9",
        "h264_nvenc",
        "hevc_nvenc",
        "av1_nvenc",
        "h264_qsv",
        "hevc_qsv",
        "av1_qsv",
        "unknown",
    )


def test_codec_block_is_fourteen_wide_onehot_then_preset_then_crf():
    assert schema.NUM_CODECS == 14
    assert schema.CODEC_BLOCK_COLUMNS[:12] == tuple(f"enc_{e}" for e in schema.ENCODER_VOCAB)
    assert schema.CODEC_BLOCK_COLUMNS[12:] == ("preset_norm", "crf_norm")


def test_gate_thresholds_and_ensemble():
    assert schema.MEAN_PLCC_MIN == 0.95
    assert schema.PLCC_SPREAD_MAX == 0.005
    assert schema.PER_SEED_PLCC_MIN == 0.95
    assert schema.ENSEMBLE_SEEDS == (0, 1, 2, 3, 4)
    assert schema.ENSEMBLE_SIZE == 5


def test_every_known_encoder_has_a_preset_ladder():
    known = [e for e in schema.ENCODER_VOCAB if e != schema.UNKNOWN_ENCODER]
    assert sorted(schema.PRESET_LADDERS) == sorted(known)
    for ladder in schema.PRESET_LADDERS.values():
        assert len(set(ladder)) == len(ladder) >= 2


def _python_sources() -> list[Path]:
    files = []
    for top in ("frreg", "pytest_frreg", "scripts", "benchmarks"):
        files += [p for p in (ROOT / top).rglob("*") if p.suffix in {".py", ".sh"}]
    return [p for p in files if p.name != "schema.py"]


def test_gate_thresholds_are_not_restated_outside_the_schema():
    # A literal 0.95 or 0.005 anywhere else in shipped code is a second copy of
    # a threshold: the original harness had three and they disagreed.
    pattern = re.compile(r"(?<![\d.])0?\.95(?!\d)|(?<![\d.])0?\.005(?!\d)")
    offenders = [
        f"{p.relative_to(ROOT)}:{i}: {line.strip()}"
        for p in _python_sources()
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []


def test_feature_names_are_not_restated_outside_the_schema():
    # The canonical-six tuple is spelled out once; other modules import it.
    needle = re.compile(r"""["']adm2["']\s*,\s*["']vif_scale0["']""")
    offenders = [
        str(p.relative_to(ROOT))
        for p in _python_sources()
        if needle.search(p.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_public_surface_resolves_lazily():
    import subprocess
    import sys

    code = (
        "import sys, frreg\n"
        "assert 'torch' not in sys.modules\n"
        "missing = [n for n in frreg.__all__ if getattr(frreg, n, None) is None]\n"
        "print(missing)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_default_builtin_set_is_pinned_not_derived():
    """A new built-in is available by id; joining the default set (every default
    corpus, its digest, the demo's verdict) is a deliberate edit of this list."""
    from frreg.producer.sources.builtins import DEFAULT_BUILTIN_IDS, LAVFI_SOURCE_IDS

    assert DEFAULT_BUILTIN_IDS == (
        "testsrc2_30fps",
        "mandelbrot_24fps",
        "life_25fps",
        "cellauto_30fps",
        "gradients_24fps",
        "zoneplate_30fps",
        "noise_25fps",
        "testsrc_blur_50fps",
        "smptehdbars_scroll_30fps",
        "sierpinski_24fps",
    )
    assert set(DEFAULT_BUILTIN_IDS) <= set(LAVFI_SOURCE_IDS)


def test_the_codec_block_is_the_forks_fourteen_wide_contract():
    from frreg.schema import CODEC_BLOCK_COLUMNS, CODEC_BLOCK_LAYOUT, ENCODER_VOCAB

    assert len(CODEC_BLOCK_COLUMNS) == len(CODEC_BLOCK_LAYOUT) == 14
    assert ENCODER_VOCAB[-1] == "unknown"
    assert CODEC_BLOCK_COLUMNS[-2:] == ("preset_norm", "crf_norm")
