"""Passwords, hashed with argon2id at OWASP's recommended parameters: 19 MiB, two passes, one lane.
The API process verifies logins beside its reads, on a few cores: these cost a fraction of RFC
9106's "low memory" set (64 MiB, three passes, four lanes) in memory and CPU per login, so a burst
of logins cannot take the process's memory or starve its reads, while each guess still costs an
attacker the 19 MiB and two passes.

A hash is the PHC string argon2 writes (``$argon2id$v=19$m=...``): it names its own parameters,
so raising them later leaves old hashes verifiable, and ``needs_rehash`` says when a login should
store a new one.

Hashing is slow by design: callers in async code run these functions in a worker thread
(``asyncio.to_thread``), never on the event loop.

``verify`` for an unknown user (``stored`` None) still runs one full verification, against a hash
of a random password made once per process, so a login's time does not tell whether the username
exists.
"""

from __future__ import annotations

import secrets
from functools import cache

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1, type=Type.ID)


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


@cache
def _dummy_hash() -> str:
    return _HASHER.hash(secrets.token_urlsafe(24))


def verify(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches the hash ``stored``; False for no hash or a malformed one,
    after the same work as a real verification."""
    try:
        return _HASHER.verify(stored if stored is not None else _dummy_hash(), password) and stored is not None
    except (VerifyMismatchError, VerificationError):
        return False
    except InvalidHashError:
        _dummy_verify(password)
        return False


def _dummy_verify(password: str) -> None:
    try:
        _HASHER.verify(_dummy_hash(), password)
    except VerificationError:
        pass


def needs_rehash(stored: str) -> bool:
    """Whether ``stored`` was made with other parameters than today's (a login then stores a
    new hash of the password it just verified)."""
    try:
        return _HASHER.check_needs_rehash(stored)
    except InvalidHashError:
        return True
