"""Random ids for the hot path: version-4 UUIDs and request ids from the operating system's
random source, read in blocks.

`uuid.uuid4()` and `os.urandom(16)` each make a system call; a create needs three random ids
(the ticket's id, its etag, the request id), and with creates over 64 tenants those calls were
about a twentieth of the process's CPU per create. The bytes are the same kind (os.urandom),
taken 16 at a time from a block of `BLOCK` bytes. A child process forked from this one starts
with a block of its own, never a copy of its parent's.
"""

from __future__ import annotations

import os
import uuid

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


def new_request_id() -> str:
    """32 random hex digits."""
    return _source.take16().hex()
