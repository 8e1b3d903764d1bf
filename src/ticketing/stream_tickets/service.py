"""Stream tickets: issued for one event stream, taken to open that stream as their user.

A browser's EventSource cannot send headers, and the bearer token must not travel in a URL
(it would be written to access logs, proxies and browser history, and live as long as the
token). So a client with the normal headers asks for a ticket (`POST /ticket/sse/ticket`),
and the stream's URL carries that instead (`?ticket=`). A ticket

- is 32 random bytes after the tenant's 16 (the tenant lets the row be found under the
  tenant policy), base64url: opaque to clients; only its SHA-256 is stored;
- can be used for `TTL_SECONDS` (60), once: the statement that finds it deletes it, so of
  two uses at once, in any processes on any hosts, one gets it;
- opens only the stream it was issued for, as the user it was issued to (their tenant,
  realm, subject, roles and scopes, as the token said when the ticket was issued), and the
  stream ends when that token expires, as it would have with the token in a header;
- is accepted by the two event streams alone: every other endpoint reads only headers.

Any failure to use one is 401 AUTHENTICATION_FAILURE, and the ticket is spent even when
it was presented on the wrong stream.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ticketing.auth.access import Access
from ticketing.auth.tokens import Principal
from ticketing.kit.db import transaction
from ticketing.kit.errors import AuthenticationFailure, Reasons
from ticketing.kit.tenancy import bind_tenant
from ticketing.stream_tickets import repository
from ticketing.stream_tickets.schemas import StreamTicketRequest
from ticketing.tickets.validation import NOT_PARSED, check_query, parse_body

TTL_SECONDS = 60
# 48 bytes in base64url: 64 characters, no padding.
_TICKET = re.compile(r"[A-Za-z0-9_-]{64}")


@dataclass(frozen=True)
class Grant:
    """What a ticket let in: the user, their tenant, and when their token expires."""

    principal: Principal
    tenant_id: uuid.UUID
    token_expires_at: float


def requested_stream(raw_body: bytes, content_type: str | None, query: Mapping[str, str]) -> str:
    """The stream a ticket is asked for; every fault of the query and the body at once."""
    reasons = Reasons()
    # `type` and `module` name no catalog here: optional, checked when sent.
    if "type" in query or "module" in query:
        check_query(reasons, query)
    body = parse_body(reasons, raw_body, content_type)
    stream = ""
    if body is not NOT_PARSED:
        if not isinstance(body, dict):
            reasons.add("body", "Request body must be a JSON object")
        else:
            try:
                stream = StreamTicketRequest.model_validate(body).stream
            except ValidationError as exc:
                for error in exc.errors():
                    key = ".".join(str(p) for p in error["loc"]) or "body"
                    reasons.add(key, str(error["msg"]))
    reasons.raise_if_any("Invalid request")
    return stream


async def issue(
    session: AsyncSession, *, access: Access, stream: str, token_expires_at: float
) -> str:
    """A new ticket for `stream`, as the admitted caller (clears the tenant's expired ones)."""
    now = time.time()
    await repository.drop_expired(session, tenant_id=access.tenant_id, now=_datetime(now))
    ticket = base64.urlsafe_b64encode(access.tenant_id.bytes + secrets.token_bytes(32)).decode()
    principal = access.principal
    await repository.add(
        session,
        {
            "tenant_id": access.tenant_id,
            "token_hash": _hash(ticket),
            "stream": stream,
            "realm": principal.realm,
            "subject": principal.subject,
            "claims": _claims(principal),
            "token_expires_at": _datetime(token_expires_at),
            "expires_at": _datetime(now + TTL_SECONDS),
        },
    )
    return ticket


async def take(
    sessionmaker: async_sessionmaker[AsyncSession], *, ticket: str, stream: str
) -> Grant:
    """Uses up `ticket` to open `stream` (401 when it is malformed, unknown, used, expired
    or for another stream)."""
    tenant_id = _tenant_of(ticket)
    if tenant_id is None:
        raise AuthenticationFailure("Malformed stream ticket")
    # The row is under the tenant policy: this request's database work is the ticket's
    # tenant's, and a made-up tenant finds nothing.
    bind_tenant(tenant_id)
    async with transaction(sessionmaker) as session:
        row = await repository.take(session, tenant_id=tenant_id, token_hash=_hash(ticket))
    if row is None:
        raise AuthenticationFailure("The stream ticket is unknown or was used already")
    if _timestamp(row.expires_at) <= time.time():
        raise AuthenticationFailure("The stream ticket has expired")
    if row.stream != stream:
        raise AuthenticationFailure("The stream ticket is for another stream")
    return Grant(
        principal=_principal(row.realm, row.subject, row.claims),
        tenant_id=tenant_id,
        token_expires_at=_timestamp(row.token_expires_at),
    )


def _hash(ticket: str) -> str:
    return hashlib.sha256(ticket.encode("ascii")).hexdigest()


def _tenant_of(ticket: str) -> uuid.UUID | None:
    if not _TICKET.fullmatch(ticket):
        return None
    return uuid.UUID(bytes=base64.urlsafe_b64decode(ticket)[:16])


def _claims(principal: Principal) -> dict[str, Any]:
    """What the stream needs of the user beyond realm and subject."""
    return {
        "tenant_id": principal.tenant_id,
        "roles": sorted(principal.roles),
        "scopes": sorted(principal.scopes),
        "teams": list(principal.teams),
        "username": principal.username,
        "email": principal.email,
        "first_name": principal.first_name,
        "last_name": principal.last_name,
    }


def _principal(realm: str, subject: str, claims: dict[str, Any]) -> Principal:
    return Principal(
        realm=realm,
        subject=subject,
        tenant_id=claims["tenant_id"],
        roles=frozenset(claims["roles"]),
        scopes=frozenset(claims["scopes"]),
        teams=tuple(claims["teams"]),
        username=claims["username"],
        email=claims["email"],
        first_name=claims["first_name"],
        last_name=claims["last_name"],
    )


def _datetime(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def _timestamp(value: datetime) -> float:
    # SQLite gives back naive values, in UTC.
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
