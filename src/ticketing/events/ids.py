"""The ids a tenant sees for its events: opaque, and telling nothing about other tenants.

Events are numbered in one sequence across all tenants (the outbox's position). Shown as
they are, a tenant would read how much every other tenant does from the gaps between its own
events' ids. Each id a tenant is shown is instead its event's position encrypted together
with a tag of the tenant (AES on one 16-byte block: 8 bytes of the tenant's tag, 8 of the
position), written as 22 base64url characters. The same event always has the same id, so a
client compares and resumes with it as before (`Last-Event-ID`); ids carry no order a tenant
can read, and an id of another tenant, or a made-up one, decodes to nothing.

The key is derived from the service secret (`TICKETING_PORTAL_SECRET`, else the data
folder's `portal-secret`): processes that serve one tenant's streams share it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import uuid

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ticketing.kit.secrets import derive_key

_ID = re.compile(r"[A-Za-z0-9_-]{22}", re.ASCII)


class EventIds:
    """Encodes and decodes the event ids shown to tenants."""

    def __init__(self, secret: str) -> None:
        # One block at a time with no chaining (ECB on a single block is the block cipher
        # itself): the encryptor and decryptor are reused for every id.
        key = derive_key(secret, "ticketing.events.ids", 16)
        cipher = Cipher(algorithms.AES(key), modes.ECB())  # noqa: S305 (one block: see above)
        self._encrypt = cipher.encryptor()
        self._decrypt = cipher.decryptor()
        self._tag_key = derive_key(secret, "ticketing.events.ids.tenant")
        self._tags: dict[uuid.UUID, bytes] = {}

    def _tag(self, tenant_id: uuid.UUID) -> bytes:
        tag = self._tags.get(tenant_id)
        if tag is None:
            tag = hmac.new(self._tag_key, tenant_id.bytes, hashlib.sha256).digest()[:8]
            if len(self._tags) > 100_000:
                self._tags.clear()
            self._tags[tenant_id] = tag
        return tag

    def encode(self, tenant_id: uuid.UUID, position: int) -> str:
        """The id `tenant_id` is shown for the event at `position`."""
        block = self._encrypt.update(self._tag(tenant_id) + position.to_bytes(8, "big"))
        return base64.urlsafe_b64encode(block).rstrip(b"=").decode("ascii")

    def decode(self, tenant_id: uuid.UUID, text: str) -> int | None:
        """The position of the event whose id `tenant_id` was shown as `text`; None when
        `text` is no such id. A plain number is none: taken as a position, a tenant could
        find how many events there are in all by trying numbers."""
        if not _ID.fullmatch(text):
            return None
        try:
            block = base64.urlsafe_b64decode(text + "==")
        except (binascii.Error, ValueError):
            return None
        plain = self._decrypt.update(block)
        if len(plain) != 16 or not hmac.compare_digest(plain[:8], self._tag(tenant_id)):
            return None
        return int.from_bytes(plain[8:], "big")
