"""Whole numbers written in headers, query strings and forms: ASCII digits only.

Python's `str.isdigit()` is true for characters `int()` cannot read (`²`, `①`), and `int()`
reads digits of every script (`٣`), underscores (`1_000`), signs and surrounding spaces.
None of that is a number in an HTTP header or a query string; each place that reads one goes
through `parse_digits`, so that anything else is refused as the caller's error (4xx), never a
500.
"""

from __future__ import annotations

import re

_DIGITS = re.compile(r"[0-9]+", re.ASCII)


def parse_digits(text: str | None, *, max_digits: int = 18) -> int | None:
    """The number `text` spells in 1 to `max_digits` ASCII digits, else None."""
    if text is None or not 0 < len(text) <= max_digits or not _DIGITS.fullmatch(text):
        return None
    return int(text)
