"""Cursors of listings paged newest first: where a page stopped, as text a link can carry.

A cursor is the (time, key) of the last row of a page, which the next page starts after. Ingest's
submissions listing and the web's read the same rows, so they share this text: a link to a page
stays valid across both.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime


class BadCursor(ValueError):
    """A cursor this listing did not give."""


def encode_cursor(updated: datetime, key: str) -> str:
    millis = int(updated.timestamp() * 1000)
    return base64.urlsafe_b64encode(json.dumps([millis, key]).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        millis, key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(millis, int) or isinstance(millis, bool) or not isinstance(key, str):
            raise TypeError
        return datetime.fromtimestamp(millis / 1000, UTC), key
    except (ValueError, TypeError, binascii.Error, OverflowError, OSError):
        raise BadCursor("not a cursor of this listing; start again from the first page") from None
