"""Corpus loader: every bad-input kind is one ``PATH:LINE: problem`` line."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest

from frreg.corpus import load_corpus
from frreg.errors import CorpusError
from frreg.schema import CANONICAL_6, ENCODER_VOCAB, EXIT_USAGE, NEUTRAL_NORM


def row(src="a", encoder="libx264", cq=30, frame_index=0, vmaf=80.0, **extra):
    r = {"src": src, "encoder": encoder, "cq": cq, "frame_index": frame_index, "vmaf": vmaf}
    r.update({f: 0.5 + 0.01 * frame_index for f in CANONICAL_6})
    r.update(extra)
    return r


def two_sources(n=3):
    return [row("a", frame_index=i, vmaf=70 + i) for i in range(n)] + [
        row("b", frame_index=i, vmaf=60 + i) for i in range(n)
    ]


def test_loads_rows_arrays_and_sorted_sources(write_jsonl):
    rows = [row("zeta", frame_index=i, vmaf=70 + i) for i in range(2)] + [
        row("alpha", frame_index=i, vmaf=60 + i, extra_col="kept") for i in range(3)
    ]
    corpus = load_corpus(write_jsonl(rows))
    assert corpus.n_rows == 5
    assert corpus.sources == ("alpha", "zeta")
    assert corpus.features.shape == (5, 6)
    assert corpus.codec.shape == (5, 14)
    np.testing.assert_array_equal(corpus.target, [70, 71, 60, 61, 62])
    assert list(corpus.groups) == ["zeta", "zeta", "alpha", "alpha", "alpha"]
    assert corpus.columns["extra_col"].tolist() == [None, None, "kept", "kept", "kept"]


def test_sha256_is_of_the_file_bytes(tiny_corpus):
    corpus = load_corpus(tiny_corpus)
    assert corpus.sha256 == hashlib.sha256(tiny_corpus.read_bytes()).hexdigest()


def test_codec_block_onehot_unknown_preset_and_crf(write_jsonl):
    rows = [
        row("a", "libx265", cq=20, frame_index=0, preset="medium"),
        row("a", "libx265", cq=40, frame_index=1),
        row("b", "mpeg2video", cq=30, frame_index=0, vmaf=50),
        row("b", "mpeg2video", cq=30, frame_index=1, vmaf=51),
    ]
    corpus = load_corpus(write_jsonl(rows))
    onehot = corpus.codec[:, :12]
    assert onehot.sum(axis=1).tolist() == [1, 1, 1, 1]
    assert onehot[0, ENCODER_VOCAB.index("libx265")] == 1
    assert onehot[2, ENCODER_VOCAB.index("unknown")] == 1
    assert corpus.unknown_encoders == {"mpeg2video": 2}
    assert any("mpeg2video (2 rows)" in w for w in corpus.warnings())
    # preset_norm as the fork's trainer fills it: 0.5 on every row, preset or not.
    assert corpus.codec[:, 12].tolist() == [NEUTRAL_NORM] * 4
    # The ladder convention: 'medium' is index 5 of x265's 10-step ladder; no preset
    # (or an encoder without a ladder) -> neutral.
    ladder = corpus.codec_for("ladder")
    assert ladder[0, 12] == pytest.approx(5 / 9)
    assert ladder[1:, 12].tolist() == [NEUTRAL_NORM] * 3
    np.testing.assert_array_equal(np.delete(ladder, 12, axis=1), np.delete(corpus.codec, 12, 1))
    # crf_norm = (cq - min) / (max - min) over the corpus.
    np.testing.assert_allclose(corpus.codec[:, 13], [0.0, 1.0, 0.5, 0.5])


def test_the_default_codec_block_is_the_fork_trainers(write_jsonl):
    """The fork's authoritative trainer builds the block as [one-hot(encoder) in
    ENCODER_VOCAB order, 0.5, (cq - min cq) / (max cq - min cq)] whatever the corpus's
    preset column says (its corpus records none); frreg's default is that block."""
    rows = [
        row("a", enc, cq=cq, frame_index=i, preset=preset)
        for i, (enc, cq, preset) in enumerate(
            [("libx264", 22, "medium"), ("libx265", 46, "fast"), ("libx264", 30, "veryslow")]
        )
    ] + [row("b", "libx264", cq=38, frame_index=i, vmaf=40 + i, preset="ultrafast") for i in (0, 1)]
    corpus = load_corpus(write_jsonl(rows))
    encoders = [r["encoder"] for r in rows]
    cqs = np.array([r["cq"] for r in rows], dtype=float)
    oracle = np.zeros((len(rows), 14))
    oracle[np.arange(len(rows)), [ENCODER_VOCAB.index(e) for e in encoders]] = 1.0
    oracle[:, 12] = 0.5
    oracle[:, 13] = (cqs - cqs.min()) / (cqs.max() - cqs.min())
    np.testing.assert_array_equal(corpus.codec, oracle)
    assert not np.array_equal(corpus.codec_for("ladder"), oracle)  # the presets differ


def test_crf_norm_is_neutral_when_all_cq_equal(write_jsonl):
    corpus = load_corpus(write_jsonl(two_sources()))
    assert set(corpus.codec[:, 13]) == {NEUTRAL_NORM}


def test_constant_target_source_is_reported(write_jsonl):
    rows = [row("a", frame_index=i, vmaf=70.0) for i in range(3)] + [
        row("b", frame_index=i, vmaf=60 + i) for i in range(3)
    ]
    corpus = load_corpus(write_jsonl(rows))
    assert corpus.constant_target_sources == ("a",)
    assert any("'a' has a constant 'vmaf'" in w for w in corpus.warnings())


BAD = {
    "invalid json": (lambda rows: [*rows[:2], "{not json", *rows[2:]], 3, "invalid JSON"),
    "missing column": (
        lambda rows: [*rows[:1], {k: v for k, v in rows[1].items() if k != "vif_scale2"}],
        2,
        "missing column 'vif_scale2'",
    ),
    "null feature": (
        lambda rows: [*rows[:3], {**rows[3], "adm2": None}],
        4,
        "column 'adm2' is null (row key b/libx264/cq30/frame 0)",
    ),
    "nan feature": (
        lambda rows: [*rows[:1], json.dumps({**rows[1], "vif_scale2": float("nan")})],
        2,
        "column 'vif_scale2' is NaN (row key a/libx264/cq30/frame 1)",
    ),
    "inf target": (
        lambda rows: [json.dumps({**rows[0], "vmaf": float("inf")})],
        1,
        "column 'vmaf' is infinite",
    ),
    "string feature": (
        lambda rows: [{**rows[0], "motion2": "3.1"}],
        1,
        "column 'motion2' is not a number ('3.1')",
    ),
    "bool target": (lambda rows: [{**rows[0], "vmaf": True}], 1, "column 'vmaf' is not a number"),
    "duplicate key": (
        lambda rows: [*rows, rows[1]],
        7,
        "duplicate row key a/libx264/cq30/frame 1 (first at line 2)",
    ),
    "negative frame index": (
        lambda rows: [{**rows[0], "frame_index": -1}],
        1,
        "'frame_index' must be a non-negative integer",
    ),
    "empty src": (lambda rows: [{**rows[0], "src": ""}], 1, "'src' must be a non-empty string"),
    "not an object": (lambda rows: ["[1, 2]"], 1, "expected a JSON object, got list"),
    "bad preset": (
        lambda rows: [{**rows[0], "preset": "ludicrous"}, *rows[1:]],
        1,
        "preset 'ludicrous' is not a libx264 preset",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_rows_name_file_line_and_problem(write_jsonl, case):
    mutate, line, problem = BAD[case]
    path = write_jsonl(mutate(two_sources()))
    with pytest.raises(CorpusError) as info:
        load_corpus(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}:{line}: "), msg
    assert problem in msg
    assert "\n" not in msg


def test_torn_last_line(write_jsonl):
    lines = [json.dumps(r) for r in two_sources()]
    path = write_jsonl([*lines[:-1], lines[-1][:15]], trailing_newline=False)
    with pytest.raises(CorpusError, match=rf"^{path}:6: torn last line"):
        load_corpus(path)


def test_line_that_is_not_utf8(tmp_path):
    path = tmp_path / "latin1.jsonl"
    lines = [json.dumps(r).encode() for r in two_sources()]
    lines[2] = lines[2].replace(b'"a"', b'"\xe9"', 1)
    path.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(CorpusError, match=rf"^{path}:3: not UTF-8 text"):
        load_corpus(path)


def test_empty_file(write_jsonl):
    path = write_jsonl([], trailing_newline=False)
    with pytest.raises(CorpusError, match="corpus is empty"):
        load_corpus(path)


def test_fewer_than_two_sources(write_jsonl):
    path = write_jsonl([row("only", frame_index=i) for i in range(3)])
    with pytest.raises(CorpusError, match="at least two sources, found 1: only"):
        load_corpus(path)


def test_missing_file(tmp_path):
    with pytest.raises(CorpusError, match="corpus not found"):
        load_corpus(tmp_path / "nope.jsonl")


def test_bad_corpus_through_the_trainer_cli_is_one_line_exit_2(write_jsonl, tmp_path):
    path = write_jsonl([*two_sources()[:3], {**two_sources()[3], "vif_scale2": None}])
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "frreg.cli.train",
            "--corpus",
            str(path),
            "--out-dir",
            str(tmp_path / "out"),
            "--seeds",
            "0",
            "--epochs",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == EXIT_USAGE
    assert "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if "error" in ln]
    assert errors == [
        f"frreg-train: error: {path}:4: column 'vif_scale2' is null (row key b/libx264/cq30/frame 0)"
    ]
    assert not (tmp_path / "out").exists()


def test_importing_the_corpus_does_not_import_the_producer() -> None:
    # The loader reads the producer's sidecar files through frreg.corpus.sidecar;
    # the trainer must never pay for (or depend on) the producer.
    code = (
        "import sys, frreg.corpus\n"
        "from frreg.corpus import Corpus, check_corpus_complete, load_corpus\n"
        "print(sorted(m for m in sys.modules if m.startswith('frreg.producer')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
