"""Ids for the hot path: version-4 UUIDs, time-ordered (version 7) UUIDs and request ids,
their random bits from the operating system's random source, read in blocks.

`uuid.uuid4()` and `os.urandom(16)` each make a system call; a create needs three random ids
(the ticket's id, its etag, the request id), and with creates over 64 tenants those calls were
about a twentieth of the process's CPU per create. The bytes are the same kind (os.urandom),
taken 16 at a time from a block of `BLOCK` bytes. A child process forked from this one starts
with a block of its own, never a copy of its parent's.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta

BLOCK = 4096  # bytes: 256 ids per system call


class _RandomBytes:
    __slots__ = ("_block", "_offset")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._block = b""
        self._offset = BLOCK

    def take16(self) -> bytes:
        offset = self._offset
        if offset >= BLOCK:
            self._block = os.urandom(BLOCK)
            offset = 0
        self._offset = offset + 16
        return self._block[offset : offset + 16]


_source = _RandomBytes()
os.register_at_fork(after_in_child=_source.reset)


def new_uuid() -> uuid.UUID:
    """A random (version 4) UUID, as uuid.uuid4() makes."""
    return uuid.UUID(bytes=_source.take16(), version=4)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)
_MS_MASK = (1 << 48) - 1
_RAND_A_MASK = (1 << 12) - 1
_RAND_B_MASK = (1 << 62) - 1
_VERSION_7 = 0x7 << 76
_VARIANT = 0b10 << 62


def new_ordered_uuid(at: datetime) -> uuid.UUID:
    """A version-7 UUID (RFC 9562): the Unix time of `at` in milliseconds, then 74 random bits.

    Ids made later sort later (within a millisecond, in any order), so an index over them
    takes new entries at its right edge, as it does for a sequence. A ticket's primary key
    and its history's were version-4 UUIDs, which put every new entry on a random page of
    the index: once the index outgrows the server's buffers each create reads and dirties a
    page of its own, and after every checkpoint the first change to each of those pages
    writes the whole page to the WAL. The time in the id is the ticket's `createdAt`, which
    the ticket shows anyway.
    """
    millis = ((at - _EPOCH) // _MILLISECOND) & _MS_MASK
    rand = int.from_bytes(_source.take16(), "big")
    return uuid.UUID(
        int=(millis << 80)
        | _VERSION_7
        | ((rand >> 64) & _RAND_A_MASK) << 64
        | _VARIANT
        | (rand & _RAND_B_MASK)
    )


def new_request_id() -> str:
    """32 random hex digits."""
    return _source.take16().hex()
