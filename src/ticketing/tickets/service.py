"""Creating tickets: resolve team and type, authorize, validate, number, insert."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.auth.access import Access
from ticketing.catalog.service import TicketTypeSpec
from ticketing.kit.errors import Forbidden, HtmlNotFound
from ticketing.kit.time import isoformat, utcnow
from ticketing.tickets import repository
from ticketing.tickets.validation import CreateRequest, validate_create

# The seed's create response shows a new ticket at version 2: the record is written, then
# its system fields; integrations read this number, so it is kept.
INITIAL_VERSION = 2


def format_display_id(prefix: str, number: int) -> str:
    """`CTC-0054`: at least four digits, more when the number needs them (`CTC-10000`)."""
    return f"{prefix}-{number:04d}"


def resolve_target(access: Access, *, team_id: str, item_type_id: str) -> TicketTypeSpec:
    """Checks 5 and 6: the team and item type exist, and the caller's roles may use them."""
    catalog = access.catalog
    team = catalog.teams.get(team_id)
    if team is None:
        raise HtmlNotFound(f"Team {team_id} does not exist")
    ticket_type = catalog.ticket_types.get(item_type_id)
    if ticket_type is None:
        raise HtmlNotFound(f"Item type {item_type_id} does not exist")
    roles = access.principal.roles
    if not roles & team.create_roles:
        raise Forbidden(f"Your roles may not create tickets for team {team_id}")
    if not roles & ticket_type.create_roles:
        raise Forbidden(f"Your roles may not create tickets of item type {item_type_id}")
    return ticket_type


async def create_ticket(
    session: AsyncSession,
    *,
    access: Access,
    team_id: str,
    item_type_id: str,
    headers: Mapping[str, str],
    query: Mapping[str, str],
    raw_body: bytes,
) -> dict[str, Any]:
    """Creates a ticket and returns it in its public shape. Flushes; the caller commits."""
    ticket_type = resolve_target(access, team_id=team_id, item_type_id=item_type_id)
    request = validate_create(
        raw_body, headers=headers, query=query, catalog=access.catalog, ticket_type=ticket_type
    )

    principal = access.principal
    data = _ticket_data(request, access)
    now = utcnow()
    ticket_id, etag = uuid.uuid4(), uuid.uuid4()
    tenant_id = access.catalog.tenant_id
    prefix = ticket_type.prefix
    number = await repository.next_display_number(session, tenant_id=tenant_id, prefix=prefix)
    object_id = format_display_id(prefix, number)
    status = ticket_type.initial_status
    id_serial = await repository.insert_ticket(
        session,
        values={
            "tenant_id": tenant_id,
            "id": ticket_id,
            "object_id": object_id,
            "display_prefix": prefix,
            "display_number": number,
            "team_id": team_id,
            "item_type_id": item_type_id,
            "offer_id": request.offer_id,
            "source": request.source,
            "summary": request.summary,
            "data": data,
            "attachments": request.attachments,
            "ticket_relation": request.ticket_relation,
            "etag": etag,
            "version": INITIAL_VERSION,
            "status_type": status.name,
            "status_category": status.category,
            "moved_to": None,
            "deleted_seq": -1,
            "submitted_by": principal.submitter,
            "is_support_request": request.is_support_request,
            "created_at": now,
            "updated_at": now,
        },
    )
    timestamp = isoformat(now)
    return {
        "id": str(ticket_id),
        "tenant_id": str(tenant_id),
        "object_id": object_id,
        "etag": str(etag),
        "summary": request.summary,
        "data": data,
        "lookup_props": {"teamId": team_id, "itemTypeId": item_type_id},
        "moved_to": None,
        "deleted_seq": -1,
        "version": INITIAL_VERSION,
        "status_type": status.name,
        "status_category": status.category,
        "created_at": timestamp,
        "updated_at": timestamp,
        "id_serial": id_serial,
        "metrics": [],
        "slas": [],
    }


def _ticket_data(request: CreateRequest, access: Access) -> dict[str, Any]:
    principal = access.principal
    return {
        **request.values,
        "offerId": request.offer_id,
        "ccWatchers": request.watchers["ccWatchers"],
        "toWatchers": request.watchers["toWatchers"],
        "submittedBy": principal.submitter,
        "lastUpdatedBy": {
            "lastName": principal.last_name,
            "username": principal.username,
            "firstName": principal.first_name,
        },
    }
