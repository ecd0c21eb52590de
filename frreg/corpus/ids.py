"""What may name a source (the corpus's ``src``): one rule for the loader and the producer.

A source id names a leave-one-source-out fold, appears in file names of
reports and in every diagnosis a user reads, so it must be printable as one
unambiguous line: non-empty, no surrounding spaces, no slash or backslash, no
``..``, no control characters (newline, tab, ...), line separators or
bidirectional-control characters (which reorder how the rest of a line
displays), and no lone surrogates (not encodable as UTF-8). Two ids that are
the same text in different Unicode normal forms (``é`` composed and
decomposed) would look identical but split into two folds, so
:func:`src_id_key` is what must be unique.

Light on purpose (no numpy): :mod:`frreg.producer` imports it.
"""

from __future__ import annotations

import unicodedata
from typing import Final

#: Bidirectional formatting characters (Unicode's Bidi_Control property).
BIDI_CONTROLS: Final = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
#: Unicode categories no id may contain: controls, surrogates, line/paragraph separators.
_BAD_CATEGORIES: Final = {
    "Cc": "a control character",
    "Cs": "a lone surrogate (not UTF-8 encodable)",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
}

#: The rule in one phrase, for messages.
SRC_ID_RULE: Final = (
    "a source id is non-empty text without surrounding spaces, slashes, '..', "
    "control or bidirectional-control characters"
)


def src_id_problem(src_id: object) -> str | None:
    """Why ``src_id`` cannot name a source (a phrase such as ``"contains a slash"``), or None."""
    if not isinstance(src_id, str):
        return f"is not text ({type(src_id).__name__})"
    if not src_id:
        return "is empty"
    for ch in src_id:
        category = unicodedata.category(ch)
        if category in _BAD_CATEGORIES:
            return f"contains {_BAD_CATEGORIES[category]} ({ch!a})"
        if ch in BIDI_CONTROLS:
            return f"contains a bidirectional-control character ({ch!a})"
    if src_id != src_id.strip():
        return "has surrounding spaces"
    if "/" in src_id or "\\" in src_id:
        return "contains a slash"
    if ".." in src_id:
        return "contains '..'"
    return None


def src_id_key(src_id: str) -> str:
    """What must differ between two sources: the id in Unicode normal form NFC."""
    return unicodedata.normalize("NFC", src_id)
