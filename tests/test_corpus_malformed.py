"""Malformed corpora: each kind ends in ONE line naming the file (and line) and exit 2.

Every case is a small corpus (two sources, three rows each) broken one way.
It goes through ``frreg-train --corpus X`` (``main``, as a user runs it) and
through :func:`load_corpus` (which must raise :class:`CorpusError` with the
same text): never a traceback, never a silently dropped or accepted row.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from frreg.cli.train import main as train_main
from frreg.corpus import load_corpus
from frreg.corpus.loader import MAX_LINE_BYTES, VMAF_TOLERANCE
from frreg.errors import CorpusError
from frreg.schema import CANONICAL_6, EXIT_USAGE


def row(src: str = "a", frame_index: int = 0, vmaf: float = 80.0, **extra: Any) -> dict[str, Any]:
    r: dict[str, Any] = {"src": src, "encoder": "libx264", "cq": 30, "frame_index": frame_index}
    r["vmaf"] = vmaf
    r.update({f: 0.5 + 0.01 * frame_index for f in CANONICAL_6})
    r.update(extra)
    return r


def good_rows() -> list[dict[str, Any]]:
    return [row("a", i, 70.0 + i) for i in range(3)] + [row("b", i, 60.0 + i) for i in range(3)]


def jsonl(rows: list[Any]) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)


GOOD = jsonl(good_rows())


def with_line(n: int, text: str) -> bytes:
    """The good corpus with its line ``n`` (1-based) replaced by ``text``."""
    lines = GOOD.splitlines()
    lines[n - 1] = text
    return ("\n".join(lines) + "\n").encode()


def edited(n: int, **changes: Any) -> bytes:
    """The good corpus with row ``n`` (1-based) changed."""
    rows = good_rows()
    rows[n - 1].update(changes)
    return jsonl(rows).encode()


def src_everywhere(old: str, new_json: str) -> bytes:
    """Every row of source ``old`` renamed to the raw JSON string literal ``new_json``."""
    return GOOD.replace(f'"src": "{old}"', f'"src": {new_json}').encode()


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def manifest(text: str) -> Callable[[Path], Path]:
    def make(path: Path) -> Path:
        path.write_text(GOOD)
        path.with_name(path.name + ".manifest.json").write_text(text)
        return path

    return make


def directory(path: Path) -> Path:
    path.mkdir()
    return path


#: (id, corpus bytes or a function making the corpus at a path, expected message after the
#: path). ``{path}`` is the corpus path; a message starting ``:N:`` names line N.
CASES: list[tuple[str, bytes | Callable[[Path], Path], str]] = [
    # Not UTF-8 JSONL at all
    ("gzip", gzip.compress(GOOD.encode()),
     ": not a JSONL corpus: the file is gzip-compressed; decompress it first"),
    ("utf16-bom", GOOD.encode("utf-16"),
     ": not a JSONL corpus: the file is UTF-16 text (byte-order mark); convert it to UTF-8"),
    ("utf16le-no-bom", GOOD.encode("utf-16-le"),
     ":1: NUL byte: not UTF-8 text (UTF-16/UTF-32 without a byte-order mark, or binary?)"),
    ("utf8-bom", b"\xef\xbb\xbf" + GOOD.encode(),
     ": not a JSONL corpus: the file is UTF-8 with a byte-order mark; write it without one"),
    ("latin1", GOOD.replace('"cq": 30, "frame_index": 1', '"cq": 30, "x": "caf\xe9", '
                            '"frame_index": 1', 1).encode("latin-1"),
     ":2: not UTF-8 text (byte"),
    ("overlong-line", with_line(4, json.dumps(row("b", 0, pad="x" * MAX_LINE_BYTES))),
     f":4: line is {len(json.dumps(row('b', 0, pad='x' * MAX_LINE_BYTES)))} bytes, longer "
     "than any row"),
    ("nested-too-deep", with_line(3, "[" * 100_000 + "]" * 100_000),
     ":3: JSON nested too deeply to be a corpus row"),
    # Values JSON allows and Python cannot hold
    ("int-overflows-float", with_line(2, json.dumps(row("a", 1)).replace(
        '"vmaf": 80.0', '"vmaf": 1' + "0" * 400)),
     ":2: integer literal with 401 digits (at most 19; no corpus value is that large)"),
    ("int-past-str-limit", with_line(5, json.dumps(row("b", 1)).replace(
        '"cq": 30', '"cq": 1' + "0" * 4999)),
     ":5: integer literal with 5000 digits (at most 19"),
    ("lone-surrogate-src", src_everywhere("b", '"\\ud800"'),
     ":4: a string holds a lone surrogate escape (such as \\ud800): not text"),
    ("duplicate-key", with_line(2, json.dumps(row("a", 1))[:-1] + ', "vmaf": 12.0}'),
     ":2: duplicate key 'vmaf' in one object (JSON would keep only the last)"),
    # Rows that parse but are not a usable corpus
    ("vmaf-above-100", edited(3, vmaf=100.5),
     ":3: column 'vmaf' is 100.5, outside [0, 100] (tolerance 0.001; row key a/libx264/cq30/frame 2)"),
    ("vmaf-below-0", edited(6, vmaf=-0.01),
     ":6: column 'vmaf' is -0.01, outside [0, 100]"),
    ("negative-cq", edited(1, cq=-4),
     ":1: column 'cq' must be a finite non-negative number, got -4"),
    ("src-slash", src_everywhere("b", '"clips/b"'),
     ":4: column 'src' 'clips/b' contains a slash; a source id is non-empty text"),
    ("src-newline", src_everywhere("a", '"a\\nb"'),
     ":1: column 'src' 'a\\nb' contains a control character ('\\n')"),
    ("src-dotdot", src_everywhere("b", '".."'),
     ":4: column 'src' '..' contains '..'"),
    ("src-bidi", src_everywhere("a", '"a\\u202egpj.exe"'),
     ":1: column 'src' 'a\\u202egpj.exe' contains a bidirectional-control character ('\\u202e')"),
    ("src-nfc-vs-nfd", GOOD.replace('"src": "a"', '"src": "caf\\u00e9"', 2)
     .replace('"src": "a"', '"src": "cafe\\u0301"').encode(),
     ":3: source ids 'cafe\\u0301' and 'caf\\xe9' (line 1) are the same name in different "
     "Unicode forms (NFC/NFD)"),
    ("single-row-source", (GOOD + json.dumps(row("c", 0)) + "\n").encode(),
     ":7: source 'c' has 1 row; a held-out source's PLCC/SROCC need at least 2 rows"),
    # Not a file a corpus can be read from
    ("fifo", fifo, ": corpus is not a regular file (a device or pipe); a corpus is a JSONL file"),
    ("directory", directory, ": corpus is a directory; a corpus is a JSONL file"),
    ("manifest-is-a-list", manifest("[1, 2]"),
     ".manifest.json: unreadable producer manifest: a JSON list, not an object"),
    ("manifest-nested", manifest("[" * 100_000 + "]" * 100_000),
     ".manifest.json: unreadable producer manifest: nested too deeply"),
    ("manifest-missing-not-list", manifest('{"complete": false, "missing": 3}'),
     ".manifest.json: unreadable producer manifest: 'missing' is int, not list"),
]  # fmt: skip


def make_corpus(tmp_path: Path, content: bytes | Callable[[Path], Path]) -> Path:
    path = tmp_path / "corpus.jsonl"
    if isinstance(content, bytes):
        path.write_bytes(content)
        return path
    return content(path)


@pytest.mark.parametrize(("content", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_corpus_is_one_line_exit_2(
    content: bytes | Callable[[Path], Path],
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = make_corpus(tmp_path, content)
    expected = f"{path}{message}"
    with pytest.raises(CorpusError) as info:
        load_corpus(path)
    assert str(info.value).startswith(expected), str(info.value)
    assert "\n" not in str(info.value)

    argv = ["--corpus", str(path), "--out-dir", str(tmp_path / "loso"), "--seeds", "0"]
    assert train_main([*argv, "--dry-run"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"frreg-train: error: {expected}"), lines[0]
    assert not (tmp_path / "loso").exists()  # refused before any training


def test_there_are_at_least_fifteen_kinds() -> None:
    assert len({c[0] for c in CASES}) == len(CASES) >= 15


def test_dev_zero_is_refused_without_reading_it(capsys: pytest.CaptureFixture[str]) -> None:
    """An unbounded device: refused by what it is, never read (the fifo case, for real)."""
    with pytest.raises(CorpusError, match=r"^/dev/zero: corpus is not a regular file"):
        load_corpus("/dev/zero")


@pytest.mark.parametrize("vmaf", [100.0 + VMAF_TOLERANCE, -VMAF_TOLERANCE, 0.0, 100.0])
def test_vmaf_within_the_documented_tolerance_is_accepted(tmp_path: Path, vmaf: float) -> None:
    path = tmp_path / "corpus.jsonl"
    path.write_bytes(edited(2, vmaf=vmaf))
    assert load_corpus(path).target[1] == vmaf


def test_valid_escapes_and_unicode_ids_still_load(tmp_path: Path) -> None:
    """The hardening refuses what is broken, not what is unusual."""
    rows = good_rows()
    for r in rows[:3]:
        r["src"] = "café_😀"  # NFC, a surrogate pair when escaped
    text = jsonl(rows).replace("😀", "\\ud83d\\ude00")
    path = tmp_path / "corpus.jsonl"
    path.write_text(text, encoding="utf-8")
    corpus = load_corpus(path)
    assert corpus.sources == ("b", "café_😀")


def test_loading_time_does_not_grow_with_the_number_of_sources(tmp_path: Path) -> None:
    """Per-source work is one pass over the rows, not one pass per source.

    The loader used to compare every row against every source (rows x
    sources): at 20,000 rows, 10,000 sources took ~100x as long as 10.
    """
    import time

    def corpus(n_sources: int) -> Path:
        per = 20_000 // n_sources
        rows = [row(f"s{s}", i, 50.0 + i % 7) for s in range(n_sources) for i in range(per)]
        path = tmp_path / f"c{n_sources}.jsonl"
        path.write_text(jsonl(rows))
        return path

    few, many = corpus(10), corpus(10_000)

    def seconds(path: Path) -> float:
        t0 = time.perf_counter()
        loaded = load_corpus(path)
        assert loaded.n_rows == 20_000
        return time.perf_counter() - t0

    seconds(few)  # warm up imports and caches
    ratio = min(seconds(many) for _ in range(2)) / min(seconds(few) for _ in range(2))
    assert ratio < 5, f"10,000 sources took {ratio:.1f}x as long as 10"
