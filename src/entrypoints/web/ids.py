"""The id rule, written once: ASCII digits, no leading zero, within PostgreSQL's BIGINT.

Paths use the ``id`` URL converter (an id out of range matches no route: 404); query strings
and JSON bodies use the schema types built on ``parse_id`` and ``MAX_ID`` (422 naming the field).
"""

from __future__ import annotations

import re
from typing import Any

from werkzeug.routing import BaseConverter, ValidationError

MIN_ID = 1
MAX_ID = 2**63 - 1  # ids are BIGINT identity columns

# ``[0-9]``, not ``\d``: ``\d`` matches any Unicode digit (Arabic-Indic, fullwidth, ...).
ID_PATTERN = "^[1-9][0-9]{0,18}$"
_ID = re.compile(ID_PATTERN)


def is_id(value: int) -> bool:
    return MIN_ID <= value <= MAX_ID


def parse_id(text: str) -> int | None:
    """The id written in ``text``, or None (``01``, ``1_0``, ``+1``, Unicode digits, too big)."""
    if not _ID.fullmatch(text):
        return None
    value = int(text)
    return value if is_id(value) else None


def _at_most(limit: int) -> str:
    """A regular expression for the numbers 1..``limit`` in ASCII digits, no leading zero."""
    digits = str(limit)
    shorter = f"[1-9][0-9]{{0,{len(digits) - 2}}}"
    same_length = []
    for i, digit in enumerate(digits):
        low = "1" if i == 0 else "0"
        if int(digit) > int(low):
            rest = len(digits) - i - 1
            same_length.append(f"{digits[:i]}[{low}-{int(digit) - 1}][0-9]{{{rest}}}")
    same_length.append(digits)
    return "|".join([shorter, *same_length])


class IdConverter(BaseConverter):
    """``<id:name>``: a path segment that names a row id; anything else matches no route.

    The pattern itself stops at MAX_ID: an id beyond it must match no rule at all, or Werkzeug
    answers 405 for a path that another method's rule would have matched (it compares methods
    before it runs converters).
    """

    regex = f"(?:{_at_most(MAX_ID)})"
    part_isolating = True

    def to_python(self, value: str) -> int:
        parsed = parse_id(value)
        if parsed is None:
            raise ValidationError()
        return parsed

    def to_url(self, value: Any) -> str:
        return str(int(value))
