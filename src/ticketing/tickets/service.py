"""Creating tickets: resolve team and type, authorize, validate, number, insert."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from ticketing.attachments.service import FileBinding
from ticketing.auth.access import Access
from ticketing.auth.tokens import Principal
from ticketing.catalog.service import StaleCatalog, TicketTypeSpec
from ticketing.kit.db import StatementPool
from ticketing.kit.errors import Forbidden, HtmlNotFound
from ticketing.kit.ids import new_ordered_uuid, new_uuid
from ticketing.kit.time import utcnow
from ticketing.queues import service as routing_service
from ticketing.tickets import repository
from ticketing.tickets.public import ticket_public
from ticketing.tickets.validation import CreateRequest, validate_create

# The seed's create response shows a new ticket at version 2: the record is written, then
# its system fields; integrations read this number, so it is kept.
INITIAL_VERSION = 2
NOT_DELETED = -1
# Kept by the system; never sent as field values.
SYSTEM_DATA_KEYS = frozenset({"submittedBy", "lastUpdatedBy"})


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
    engine: AsyncEngine,
    *,
    statements: StatementPool | None,
    access: Access,
    team_id: str,
    item_type_id: str,
    headers: Mapping[str, str],
    query: Mapping[str, str],
    raw_body: bytes,
    idempotency: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """Creates a ticket and returns it in its public shape (its own atomic write).

    Raises StaleCatalog, writing nothing, when the tenant's configuration changed after the
    catalog used for validation was read.
    """
    ticket_type = resolve_target(access, team_id=team_id, item_type_id=item_type_id)
    request = validate_create(
        raw_body, headers=headers, query=query, catalog=access.catalog, ticket_type=ticket_type
    )
    principal = access.principal
    data = _ticket_data(request, access)
    now = utcnow()
    prefix = ticket_type.prefix
    status = ticket_type.initial_status
    routing = routing_service.route_new_ticket(
        access.catalog.desk,
        ticket_type_id=item_type_id,
        offer_id=request.offer_id,
        data=data,
        at=now,
    )
    values: dict[str, Any] = {
        "tenant_id": access.tenant_id,
        "id": new_ordered_uuid(now),
        "display_prefix": prefix,
        "team_id": team_id,
        "item_type_id": item_type_id,
        "offer_id": request.offer_id,
        "source": request.source,
        "summary": request.summary,
        "data": data,
        # Set to the uploads' metadata when they are bound (repository.insert_new_ticket).
        "attachments": {},
        "ticket_relation": request.ticket_relation,
        "etag": new_uuid(),
        "version": INITIAL_VERSION,
        "status_type": status.name,
        "status_category": status.category,
        "moved_to": None,
        "deleted_seq": NOT_DELETED,
        "submitted_by": principal.submitter,
        "is_support_request": request.is_support_request,
        "created_at": now,
        "updated_at": now,
        **routing.values,
    }
    relation_changes = []
    companion = None
    if request.ticket_relation is not None:
        # Imported here: the relations package builds on this module.
        from ticketing.relations.service import NewTicketRelation

        companion = NewTicketRelation(access, request.ticket_relation)
        relation_changes = [{"field": "relation", "old": None, "new": request.ticket_relation}]
    created = await repository.insert_new_ticket(
        engine,
        statements=statements,
        config_version=access.catalog.version,
        counters={
            prefix: 1,
            repository.status_counter(status.name): 1,
            **routing.counters,
        },
        values=values,
        changed_by=actor(principal),
        idempotency=idempotency,
        files=FileBinding(access, request.attachments) if request.attachments else None,
        companion=companion,
        round_robin=routing.round_robin,
        changes=[
            {"field": "summary", "old": None, "new": request.summary},
            {"field": "status", "old": None, "new": status.name},
            *(
                {"field": key, "old": None, "new": value}
                for key, value in data.items()
                if key not in SYSTEM_DATA_KEYS
            ),
            *(
                [{"field": "attachments", "old": None, "new": request.attachments}]
                if request.attachments
                else []
            ),
            *relation_changes,
            *routing.changes,
        ],
    )
    if created is None:
        raise StaleCatalog()
    number, values["id_serial"], values["assignee"] = created
    values["display_number"] = number
    values["object_id"] = repository.format_display_id(prefix, number)
    return ticket_public(values)


def last_updated_by(principal: Principal) -> dict[str, str]:
    """The `lastUpdatedBy` the seed shows: the caller's names from the token."""
    return {
        "lastName": principal.last_name,
        "username": principal.username,
        "firstName": principal.first_name,
    }


def actor(principal: Principal) -> dict[str, str]:
    """Who made a change, as history and comments record it."""
    return {
        "username": principal.username,
        "email": principal.submitter,
        "firstName": principal.first_name,
        "lastName": principal.last_name,
    }


def _ticket_data(request: CreateRequest, access: Access) -> dict[str, Any]:
    principal = access.principal
    return {
        **request.values,
        "offerId": request.offer_id,
        "ccWatchers": request.watchers["ccWatchers"],
        "toWatchers": request.watchers["toWatchers"],
        "submittedBy": principal.submitter,
        "lastUpdatedBy": last_updated_by(principal),
    }
