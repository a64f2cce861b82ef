"""Text from CloudTrail records and findings, made safe to print on a terminal.

Session names, user agents and error messages are written by whoever made the call. Control characters could
drive the terminal (clear it, retitle it, hide lines); format characters (bidirectional overrides and isolates,
zero-width characters, the byte order mark) and line or paragraph separators could make one principal read as
another. Every such character (Unicode categories Cc, Cf, Zl, Zp and unpaired surrogates, Cs) is shown escaped.
"""

from __future__ import annotations

import json
import unicodedata

UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
"""The categories the finding builder replaces (functions/detector/finding.py), which a printer must escape."""


def is_unsafe(char: str) -> bool:
    return not char.isprintable() and unicodedata.category(char) in UNSAFE_CATEGORIES


def printable(text: str) -> str:
    """``text`` with control, format and separator characters escaped (``\\x1b``, ``\\u202e``)."""
    if text.isprintable():
        return text
    return "".join(char.encode("unicode_escape").decode("ascii") if is_unsafe(char) else char for char in text)


def printable_json(text: str) -> str:
    """JSON text with the same characters written as JSON escapes (``\\u202e``): the same JSON, safe to print.

    The line breaks of indented JSON are its own, outside any string (inside one, JSON escapes them already)."""
    return "".join(json.dumps(char)[1:-1] if char != "\n" and is_unsafe(char) else char for char in text)
