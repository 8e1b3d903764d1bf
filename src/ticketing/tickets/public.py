"""A ticket's public shape, as the create, get, update and list answers show it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ticketing.kit.time import isoformat, utcnow
from ticketing.sla import service as sla_service


def ticket_public(row: Mapping[str, Any]) -> dict[str, Any]:
    """Renders a ticket row (column name -> value) in the seed's order and names; `slas`
    and `metrics` as they stand now (a clock past its due time reads `breached`)."""
    created_at = row["created_at"]
    created = isoformat(created_at)
    updated_at = row["updated_at"]
    return {
        "id": str(row["id"]),
        "tenant_id": str(row["tenant_id"]),
        "object_id": row["object_id"],
        "etag": str(row["etag"]),
        "summary": row["summary"],
        "data": row["data"],
        "lookup_props": {"teamId": row["team_id"], "itemTypeId": row["item_type_id"]},
        # Files per key (attachment field UUID or `ticket`), as ticketing.attachments shows them.
        "attachments": row["attachments"],
        "moved_to": row["moved_to"],
        "deleted_seq": row["deleted_seq"],
        "version": row["version"],
        "status_type": row["status_type"],
        "status_category": row["status_category"],
        "created_at": created,
        # A new ticket's are one and the same.
        "updated_at": created if updated_at is created_at else isoformat(updated_at),
        "id_serial": row["id_serial"],
        **sla_service.public(row.get("sla"), now=utcnow()),
        "priority": row.get("priority"),
        "queueId": row.get("queue_id"),
        "assignee": row.get("assignee"),
    }


def etag_header(etag: Any) -> str:
    """The ETag header value: the ticket's etag, quoted."""
    return f'"{etag}"'
