"""Text from CloudTrail records, made safe to print on a terminal.

Session names, user agents and error messages are written by whoever made the call. Control characters could
drive the terminal (clear it, retitle it, hide lines), and bidirectional overrides could make one principal read
as another, so both are shown escaped.
"""

from __future__ import annotations

import re

_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` with control and bidirectional characters escaped (``\\x1b``, ``\\u202e``)."""
    return _UNPRINTABLE.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), text)
