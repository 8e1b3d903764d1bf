"""Idempotency-Key: a retried create or update returns the first answer instead of acting twice.

Keys are scoped to the tenant and the caller (the token's subject) and kept for 24 hours.
The same key with the same request replays the stored answer (status, body, ETag); with a
different request it answers 422. Concurrent requests with one key wait for the first one.
A create links its key to the new ticket in the same statement that creates it, so even a
crash before the answer is stored cannot lead to a second ticket.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request

from ticketing.auth.access import Access
from ticketing.kit.db import transaction
from ticketing.kit.errors import (
    HtmlNotFound,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    InputValidationFailure,
    TicketingError,
)
from ticketing.kit.time import utcnow
from ticketing.tickets import repository
from ticketing.tickets.public import etag_header, ticket_public

HEADER = "idempotency-key"
KEEP_FOR = timedelta(hours=24)
# A pending key whose request created nothing for this long belongs to a request that died.
ABANDONED_AFTER = timedelta(seconds=60)
WAIT_FOR_FIRST = 10.0
POLL_EVERY = 0.05


@dataclass(frozen=True)
class Answer:
    """An answer as it is stored and replayed."""

    status_code: int
    body: dict[str, Any]
    etag: str | None = None


@dataclass(frozen=True)
class Claim:
    """A key the current request owns."""

    tenant_access: Access
    caller: str
    key: str


def requested_key(request: Request) -> str | None:
    """The Idempotency-Key header, checked: 1 to 255 visible ASCII characters."""
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not 1 <= len(key) <= 255 or not all(33 <= ord(c) <= 126 for c in key):
        raise InputValidationFailure(
            {"Idempotency-Key": ["Idempotency-Key must be 1 to 255 visible ASCII characters"]}
        )
    return key


def fingerprint(request: Request, raw_body: bytes) -> str:
    """What makes two requests "the same": method, path, query and body."""
    digest = hashlib.sha256()
    for part in (request.method, request.url.path, str(sorted(request.query_params.multi_items()))):
        digest.update(part.encode())
        digest.update(b"\0")
    digest.update(raw_body)
    return digest.hexdigest()


async def run_once(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    access: Access,
    key: str,
    request_hash: str,
    action: Callable[[Claim], Awaitable[Answer]],
) -> tuple[Answer, bool]:
    """Runs `action` unless the key already has an answer; returns (answer, replayed)."""
    caller = access.principal.subject or access.principal.username
    claim = Claim(access, caller, key)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_FOR_FIRST
    while True:
        now = utcnow()
        async with transaction(sessionmaker) as session:
            record = await repository.claim_idempotency_key(
                session,
                tenant_id=access.tenant_id,
                caller=caller,
                key=key,
                request_hash=request_hash,
                now=now,
                expires_before=now - KEEP_FOR,
                abandoned_before=now - ABANDONED_AFTER,
            )
            if record is not None:
                if record.request_hash != request_hash:
                    raise IdempotencyKeyReused()
                if record.status_code is not None and record.response is not None:
                    return Answer(
                        record.status_code, orjson.loads(record.response), record.etag
                    ), True
                if record.ticket_id is not None:
                    # The ticket was created but its answer never stored: answer from it.
                    answer = await _created_answer(session, claim, record.ticket_id)
                    await _store(session, claim, answer)
                    return answer, True
        if record is None:
            break
        if loop.time() > deadline:
            raise IdempotencyKeyInUse()
        await asyncio.sleep(POLL_EVERY)

    try:
        answer = await action(claim)
    except TicketingError as exc:
        async with transaction(sessionmaker) as session:
            if exc.status < 500 and not isinstance(exc, HtmlNotFound):
                await _store(session, claim, Answer(exc.status, exc.body()))
            else:
                await _release(session, claim)
        raise
    except BaseException:
        async with transaction(sessionmaker) as session:
            await _release(session, claim)
        raise
    async with transaction(sessionmaker) as session:
        await _store(session, claim, answer)
    return answer, False


async def _created_answer(session: AsyncSession, claim: Claim, ticket_id: Any) -> Answer:
    row = await repository.get_ticket_by_id(
        session, tenant_id=claim.tenant_access.tenant_id, ticket_id=ticket_id
    )
    if row is None:  # the tenant's data was removed meanwhile
        raise IdempotencyKeyInUse("The ticket created with this Idempotency-Key is gone")
    ticket = ticket_public(dict(row))
    return Answer(200, created_body(ticket), etag_header(ticket["etag"]))


def created_body(ticket: dict[str, Any]) -> dict[str, Any]:
    """The create endpoint's success body."""
    return {
        "success": True,
        "message": "ticket created successfully",
        "status": 200,
        "objectId": ticket["object_id"],
        "ticket": ticket,
    }


async def _store(session: AsyncSession, claim: Claim, answer: Answer) -> None:
    await repository.finish_idempotency_key(
        session,
        tenant_id=claim.tenant_access.tenant_id,
        caller=claim.caller,
        key=claim.key,
        status_code=answer.status_code,
        response=orjson.dumps(answer.body).decode(),
        etag=answer.etag,
    )


async def _release(session: AsyncSession, claim: Claim) -> None:
    await repository.release_idempotency_key(
        session, tenant_id=claim.tenant_access.tenant_id, caller=claim.caller, key=claim.key
    )
