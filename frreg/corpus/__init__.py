"""The Phase A per-frame corpus: loading it (:mod:`.loader`) and its sidecar files (:mod:`.sidecar`).

::

    from frreg.corpus import load_corpus

    corpus = load_corpus("corpus.jsonl")   # CorpusError (exit 2) if unusable

The loader (numpy) is imported on first use, so the producer can read
and write the sidecar format without paying for it. Nothing here imports
:mod:`frreg.producer`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from frreg._lazy import lazy_getattr
from frreg.corpus.sidecar import (
    check_corpus_complete,
    incomplete_marker,
    manifest_path,
    parts_dir,
    read_producer_manifest,
)

if TYPE_CHECKING:
    from frreg.corpus.loader import Corpus, load_corpus, parse_corpus_lines

_LOADER_EXPORTS = ("Corpus", "load_corpus", "parse_corpus_lines")

__all__ = [
    "Corpus",
    "check_corpus_complete",
    "incomplete_marker",
    "load_corpus",
    "manifest_path",
    "parse_corpus_lines",
    "parts_dir",
    "read_producer_manifest",
]


__getattr__ = lazy_getattr(__name__, dict.fromkeys(_LOADER_EXPORTS, "frreg.corpus.loader"))


def __dir__() -> list[str]:
    return sorted(__all__)
