"""The rolled-up stream: one message per change of a totals document, on a compacted topic.

The message schema is shared/data/totals-message.schema.json (schema_version 1).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("data") / "totals-message.schema.json"
COUNTERS = ("reports", "units_reported", "units_on_time", "own")


def totals_message(doc: dict[str, Any]) -> dict[str, Any]:
    """The stream's view of a stored totals document."""
    return {
        "schema_version": SCHEMA_VERSION,
        "id": doc["_id"],
        "unit": doc["unit"],
        "series": doc["series"],
        "period": doc["period"],
        "parents": list(doc.get("parents", [])),
        "version": int(doc.get("version", 0)),
        "sums": {k: int(v) for k, v in (doc.get("sums") or {}).items()},
        **{c: int(doc.get(c, 0)) for c in COUNTERS},
        "updated_at": datetime.now(UTC).isoformat(),
    }


def encode(message: dict[str, Any]) -> tuple[bytes, bytes]:
    return message["id"].encode(), json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()
