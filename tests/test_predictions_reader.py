"""The recomputation's fast paths give what the plain ones give.

``read_predictions`` reads a well-formed predictions file a column at a time
(split at newlines and commas) and hands anything else (quotes, carriage
returns, NUL, a problem) to its row-by-row ``csv`` reader, which names the
problems: on
every file below, valid or not, it must return exactly what the row-by-row
reader alone returns (the same array bits, the same messages). Re-running the
stored models single-threaded must leave torch's thread count as it was.
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from frreg.corpus import Corpus, load_corpus
from frreg.gate import evidence
from frreg.gate.evidence import corpus_folds, corpus_keys, read_predictions
from frreg.synthetic import synthetic_rows, write_corpus
from frreg.training.loso import PREDICTIONS_HEADER


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    path = tmp_path_factory.mktemp("corpus") / "corpus.jsonl"
    return load_corpus(write_corpus(path, synthetic_rows(n_sources=3, frames=6)))


def _lines(corpus: Corpus) -> list[str]:
    """A valid predictions file's lines (header first), in fold order as frreg-train writes."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(PREDICTIONS_HEADER)
    rng = np.random.default_rng(0)
    for src, idx in corpus_folds(corpus).test_indices:
        for (s, enc, cq, fi), y in zip(corpus.row_keys(idx), corpus.target[idx], strict=True):
            pred = float(np.float32(y + rng.normal()))
            writer.writerow([src, s, enc, cq, fi, repr(float(y)), repr(pred)])
    return buf.getvalue().splitlines(keepends=True)


def _field(line: str, k: int, value: str) -> str:
    fields = line.rstrip("\n").split(",")
    fields[k] = value
    return ",".join(fields) + "\n"


def _edit_pred(k: int, edit: Callable[[str], str]) -> Callable[[list[str]], list[str]]:
    def apply(lines: list[str]) -> list[str]:
        return [
            *lines[:k],
            _field(lines[k], 6, edit(lines[k].rstrip("\n").split(",")[6])),
            *lines[k + 1 :],
        ]

    return apply


def _shuffled(lines: list[str]) -> list[str]:
    body = lines[1:]
    random.Random(3).shuffle(body)
    return [lines[0], *body]


VARIANTS: dict[str, Callable[[list[str]], list[str]]] = {
    "valid": lambda ls: ls,
    "shuffled rows": _shuffled,
    "padded number": _edit_pred(5, lambda v: f"  {v} "),
    "underscored number": _edit_pred(6, lambda v: f"{v[0]}_{v[1:]}" if v[:2].isdigit() else v),
    "crlf": lambda ls: [line.replace("\n", "\r\n") for line in ls],
    "no trailing newline": lambda ls: [*ls[:-1], ls[-1].rstrip("\n")],
    "empty file": lambda ls: [],
    "header only": lambda ls: ls[:1],
    "other header": lambda ls: [ls[0].replace("pred", "prediction"), *ls[1:]],
    "missing row": lambda ls: ls[:-1],
    "extra row": lambda ls: [*ls, ls[1]],
    "row twice, one missing": lambda ls: [*ls[:-1], ls[1]],
    "short row": lambda ls: [ls[0], ls[1].rsplit(",", 1)[0] + "\n", *ls[2:]],
    "long row": lambda ls: [ls[0], ls[1].rstrip("\n") + ",1\n", *ls[2:]],
    "wrong fold": lambda ls: [ls[0], _field(ls[1], 0, "synth01"), *ls[2:]],
    "row not in corpus": lambda ls: [ls[0], _field(ls[1], 4, "99999"), *ls[2:]],
    "cq spelled as float": lambda ls: [ls[0], _field(ls[1], 3, "22.0"), *ls[2:]],
    "other vmaf": lambda ls: [ls[0], _field(ls[1], 5, "12.5"), *ls[2:]],
    "nan vmaf": lambda ls: [ls[0], _field(ls[1], 5, "nan"), *ls[2:]],
    "non-numeric pred": _edit_pred(2, lambda v: "abc"),
    "nan pred": _edit_pred(3, lambda v: "nan"),
    "inf pred": _edit_pred(3, lambda v: "-inf"),
    "many problems": lambda ls: [ls[0], *(_field(x, 6, "x") for x in ls[1:])],
    "blank line": lambda ls: [ls[0], "\n", *ls[1:]],
    "quoted newline": lambda ls: [ls[0], _field(ls[1], 6, '"1\n2"'), *ls[2:]],
    "quoted number": _edit_pred(4, lambda v: f'"{v}"'),
    "nul byte": _edit_pred(4, lambda v: f"{v}\0"),
    "cr in a field": _edit_pred(4, lambda v: f"{v}\r"),
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_the_fast_reader_returns_what_the_row_by_row_reader_returns(
    corpus: Corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    path = tmp_path / "loso_seed0.predictions.csv"
    path.write_bytes("".join(VARIANTS[name](_lines(corpus))).encode())
    keys = corpus_keys(corpus)
    fast, fast_problems = read_predictions(path, corpus, keys)
    with monkeypatch.context() as m:
        m.setattr(evidence, "_read_predictions_fast", lambda *a: None)
        slow, slow_problems = read_predictions(path, corpus, keys)
    assert fast_problems == slow_problems
    if slow is None:
        assert fast is None
    else:
        assert fast is not None
        assert fast.tobytes() == slow.tobytes()
    if name in ("valid", "shuffled rows", "padded number", "underscored number"):
        assert slow is not None  # the fast path's own cases: accepted
        assert evidence._read_predictions_fast(path, corpus, keys) is not None


def test_undecodable_and_oversized_files_go_row_by_row(
    corpus: Corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = corpus_keys(corpus)
    path = tmp_path / "p.csv"
    path.write_bytes(b"".join(line.encode() for line in _lines(corpus)) + b"\xff\xfe\n")
    assert evidence._read_predictions_fast(path, corpus, keys) is None
    assert read_predictions(path, corpus, keys)[0] is None
    path.write_bytes("".join(_lines(corpus)).encode())
    monkeypatch.setattr(evidence, "_FAST_BYTES_PER_ROW", 1)
    assert evidence._read_predictions_fast(path, corpus, keys) is None
    assert read_predictions(path, corpus, keys)[1] == []


@pytest.mark.parametrize("limit", [40, 10_000])
def test_a_field_over_the_csv_limit_is_what_the_csv_module_says(
    corpus: Corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: int
) -> None:
    """``float`` takes a number padded with zeros; ``csv`` refuses a field over its limit
    (the row-by-row reader: unreadable). Under the limit both read it."""
    lines = _lines(corpus)
    lines[4] = _field(lines[4], 5, "0" * 60 + lines[4].split(",")[5])
    path = tmp_path / "p.csv"
    path.write_text("".join(lines), encoding="utf-8")
    keys = corpus_keys(corpus)
    old = csv.field_size_limit(limit)
    try:
        fast, fast_problems = read_predictions(path, corpus, keys)
        with monkeypatch.context() as m:
            m.setattr(evidence, "_read_predictions_fast", lambda *a: None)
            slow, slow_problems = read_predictions(path, corpus, keys)
    finally:
        csv.field_size_limit(old)
    assert fast_problems == slow_problems
    assert (fast is None) == (slow is None) == (limit == 40)


def test_rerunning_stored_models_restores_torch_threads() -> None:
    import torch

    before = torch.get_num_threads()
    with evidence._single_threaded_torch():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), evidence._single_threaded_torch():
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before
