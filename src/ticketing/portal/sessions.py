"""The portal's sessions, recorded server-side (table portal_sessions, migration 0022).

The browser's cookie holds a random session id and nothing else of the session. The row is
found by the id's SHA-256, so the table does not hold the id either; the bearer token (and
the ID token the provider's logout takes as a hint) is kept encrypted (AES-GCM) with a key
derived from the id. So a copy of the table gives no token away, and a cookie without its
row is worth nothing: sign-out, a tenant admin, or the token's expiry ends the session, and
a cookie saved before that is refused.

Every query here names the tenant (the cookie carries it beside the id, signed); the tenant
row-level security policy binds the table too.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.models import PortalSession

# Expired and ended rows are pruned this long after they expire (a sign-out of an expired
# session still finds its row for the provider's logout meanwhile).
KEEP_EXPIRED = timedelta(days=1)
_NONCE = 12


def new_session_id() -> str:
    """A new session id: 256 random bits, hex (the cookie's alphabet)."""
    return secrets.token_hex(32)


def session_key(session_id: str) -> str:
    """What the table keys a session by: the SHA-256 of its id."""
    return hashlib.sha256(session_id.encode()).hexdigest()


def _cipher(session_id: str, purpose: str) -> AESGCM:
    key = hmac.new(session_id.encode(), purpose.encode(), hashlib.sha256).digest()
    return AESGCM(key)


def seal(session_id: str, purpose: str, text: str) -> bytes:
    """`text` encrypted with the session's key for `purpose` (nonce first)."""
    nonce = secrets.token_bytes(_NONCE)
    aad = session_key(session_id).encode()
    return nonce + _cipher(session_id, purpose).encrypt(nonce, text.encode(), aad)


def unseal(session_id: str, purpose: str, sealed: bytes) -> str | None:
    """What `seal` encrypted, or None when this id's key does not open it."""
    aad = session_key(session_id).encode()
    try:
        plain = _cipher(session_id, purpose).decrypt(sealed[:_NONCE], sealed[_NONCE:], aad)
    except (InvalidTag, ValueError):
        return None
    return plain.decode()


@dataclass(frozen=True)
class NewSession:
    """Who signed in, with which tokens, until when."""

    tenant_id: uuid.UUID
    subject: str
    username: str
    email: str | None
    realm: str
    token: str
    id_token: str | None
    expires_at: datetime


@dataclass(frozen=True)
class OpenedSession:
    """A session's tokens, decrypted with the id from the cookie."""

    token: str
    id_token: str | None
    realm: str
    live: bool


async def start(db: AsyncSession, *, session_id: str, new: NewSession, now: datetime) -> None:
    """Records a new session, and prunes the tenant's sessions long expired."""
    await db.execute(
        delete(PortalSession).where(
            PortalSession.tenant_id == new.tenant_id,
            PortalSession.expires_at < now - KEEP_EXPIRED,
        )
    )
    db.add(
        PortalSession(
            tenant_id=new.tenant_id,
            id=session_key(session_id),
            subject=new.subject,
            username=new.username,
            email=new.email,
            realm=new.realm,
            token=seal(session_id, "token", new.token),
            id_token=seal(session_id, "id_token", new.id_token) if new.id_token else None,
            created_at=now,
            expires_at=new.expires_at,
            ended_at=None,
        )
    )


async def open_session(
    db: AsyncSession, *, tenant_id: uuid.UUID, session_id: str, now: datetime
) -> OpenedSession | None:
    """The session of the cookie's id, live (not ended, not expired) or not; None when there
    is none."""
    row = await db.scalar(
        select(PortalSession).where(
            PortalSession.tenant_id == tenant_id, PortalSession.id == session_key(session_id)
        )
    )
    if row is None:
        return None
    token = unseal(session_id, "token", row.token)
    if token is None:
        return None
    id_token = unseal(session_id, "id_token", row.id_token) if row.id_token else None
    live = row.ended_at is None and _aware(row.expires_at) > now
    return OpenedSession(token=token, id_token=id_token, realm=row.realm, live=live)


async def end(db: AsyncSession, *, tenant_id: uuid.UUID, session_id: str, now: datetime) -> None:
    """Ends one session (sign-out)."""
    await db.execute(
        update(PortalSession)
        .where(
            PortalSession.tenant_id == tenant_id,
            PortalSession.id == session_key(session_id),
            PortalSession.ended_at.is_(None),
        )
        .values(ended_at=now)
    )


async def end_for_user(db: AsyncSession, *, tenant_id: uuid.UUID, user: str, now: datetime) -> int:
    """Ends every live session of a user of the tenant (known by username or email); how
    many."""
    result = await db.execute(
        update(PortalSession)
        .where(
            PortalSession.tenant_id == tenant_id,
            or_(PortalSession.username == user, PortalSession.email == user),
            PortalSession.ended_at.is_(None),
            PortalSession.expires_at > now,
        )
        .values(ended_at=now)
        .returning(PortalSession.id)
    )
    return len(result.all())


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes (stored in UTC).
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
