"""Listing and counting tickets with search, filter, sort and paging."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.auth.access import Access
from ticketing.kit.errors import InputValidationFailure, Reasons
from ticketing.tickets import repository
from ticketing.tickets.filters import ListQuery, parse_list_request
from ticketing.tickets.public import ticket_public
from ticketing.tickets.validation import NOT_PARSED, parse_body


def _parse(raw_body: bytes, content_type: str | None) -> Any:
    reasons = Reasons()
    if not raw_body.strip():
        return {}
    body = parse_body(reasons, raw_body, content_type)
    if body is NOT_PARSED:
        raise InputValidationFailure(reasons.reason)
    return body


async def list_tickets(
    session: AsyncSession, *, access: Access, raw_body: bytes, content_type: str | None
) -> dict[str, Any]:
    """One page of the tickets the caller may see, and how many match in all."""
    query = parse_list_request(_parse(raw_body, content_type), access.catalog)
    rows = await repository.list_tickets(
        session,
        tenant_id=access.tenant_id,
        submitted_by=access.own_only,
        where=query.where,
        order_by=query.order_by,
        top=query.top,
        offset=query.offset,
    )
    total = await _count(session, access, query)
    return {"value": [ticket_public(dict(row)) for row in rows], "count": total}


async def _count(session: AsyncSession, access: Access, query: ListQuery) -> int:
    # The two commonest counts (all tickets, tickets in some statuses) are kept as counters,
    # in step with the tickets; anything else is counted from the indexes.
    tenant_id = access.tenant_id
    if access.own_only is None and query.unfiltered:
        return await repository.count_live(session, tenant_id=tenant_id)
    if access.own_only is None and query.statuses_only is not None:
        names = [repository.status_counter(status) for status in query.statuses_only]
        return await repository.sum_counters(session, tenant_id=tenant_id, names=names)
    return await repository.count_tickets(
        session, tenant_id=tenant_id, submitted_by=access.own_only, where=query.where
    )


async def count_tickets(
    session: AsyncSession, *, access: Access, raw_body: bytes, content_type: str | None
) -> int:
    """How many tickets the caller may see match the filter."""
    query = parse_list_request(_parse(raw_body, content_type), access.catalog, paged=False)
    return await _count(session, access, query)
