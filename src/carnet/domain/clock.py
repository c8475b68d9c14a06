"""Time: one place, UTC, naive datetimes in the store (both backends agree on them)."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def to_utc_naive(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def iso(value: datetime) -> str:
    """FHIR instant for a stored (naive UTC) datetime."""
    if value.tzinfo is None:
        return value.isoformat(timespec="milliseconds") + "Z"
    return value.replace(tzinfo=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_id() -> str:
    """A random 128-bit id, 32 hex characters."""
    return os.urandom(16).hex()


def ordered_id() -> str:
    """A time-ordered 128-bit id (48-bit ms timestamp + 80 random bits), 32 hex characters."""
    return f"{int(time.time() * 1000):012x}{os.urandom(10).hex()}"
