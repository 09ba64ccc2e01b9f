"""Who a message on ``reports`` comes from, as the aggregator can tell.

Kafka consumers do not see which principal produced a message, and three kinds of producer may
write ``reports`` (services/ingest, the aggregator forwarding, units' own systems; the broker's
ACLs let nobody else). So the message says it, in a header the aggregator can check:

- ``baocao-stamp``: HMAC-SHA256 of the message value under a key derived from
  BAOCAO_AUTH_SECRET, which only the services hold. Ingest stamps the envelope it writes (the
  report, its own receipt time, the source); the aggregator stamps the envelopes it forwards. A
  stamped envelope is trusted as checked: its token was verified at ingest, its ``received_at``
  is a server's clock.
- ``baocao-token``: the bearer token (``bcv1...``, shared/domain/auth.py) of a unit's system producing
  straight to Kafka. The aggregator verifies it (signature, expiry when the broker appended the
  message, the ``submit`` scope, the report's unit in the token's subtree) and takes the receipt
  time from the broker's LogAppendTime timestamp, never from the message.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from shared.domain.auth import check_secret

STAMP_HEADER = "baocao-stamp"
TOKEN_HEADER = "baocao-token"
# A different key from the tokens' (which sign "bcv1.<payload>"): a stamp is never a token
# signature, nor the other way round.
_STAMP_CONTEXT = b"baocao report stamp v1"


def stamp_key(secret: str) -> bytes:
    return hmac.new(check_secret(secret), _STAMP_CONTEXT, hashlib.sha256).digest()


def stamp(key: bytes, value: bytes) -> bytes:
    """The value of the ``baocao-stamp`` header for ``value`` (hex, so it can be read in tools)."""
    return hmac.new(key, value, hashlib.sha256).hexdigest().encode()


def is_stamped(key: bytes, value: bytes, given: bytes | None) -> bool:
    return given is not None and hmac.compare_digest(stamp(key, value), given)


def header(headers: Iterable[tuple[str, bytes | None]] | None, name: str) -> bytes | None:
    """The last value of header ``name`` (None when absent or null)."""
    found = None
    for key, value in headers or ():
        if key == name:
            found = value
    return found
