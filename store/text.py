"""Case-insensitive substring search where the caller's text is only ever literal text.

`$indexOfCP` inside `$expr` would need no pattern at all, but mongomock does not implement it,
so the filter is a `$regex` whose every character comes from `re.escape`: metacharacters in the
input match themselves, and no quantifier or group of the caller's ever reaches the server.
"""

from __future__ import annotations

import re
from typing import Any

MAX_SEARCH_CHARS = 100


def literal_pattern(text: str) -> str:
    return re.escape(text[:MAX_SEARCH_CHARS])


def contains_text(fields: tuple[str, ...], text: str) -> dict[str, Any]:
    """A filter matching documents where any of `fields` contains `text`, ignoring case."""
    pattern = literal_pattern(text)
    return {"$and": [{"$or": [{field: {"$regex": pattern, "$options": "i"}} for field in fields]}]}
