"""Timestamps as the API writes them: ISO-8601 UTC with milliseconds and a Z."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Now, in UTC, truncated to the millisecond the API shows."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def isoformat(value: datetime) -> str:
    """`2025-07-10T12:34:56.737Z`; naive values (SQLite) are taken as UTC."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(timespec="milliseconds") + "Z"
