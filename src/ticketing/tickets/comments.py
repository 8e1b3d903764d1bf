"""Comments on tickets: sanitized like rich text; internal ones for agents and admins only."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.auth.access import AGENT_ROLES, Access
from ticketing.events import outbox
from ticketing.kit.errors import InputValidationFailure, PermissionFailure, Reasons
from ticketing.kit.html import sanitize
from ticketing.kit.time import isoformat, utcnow
from ticketing.models import TicketComment
from ticketing.sla import service as sla_service
from ticketing.tickets import repository
from ticketing.tickets.lifecycle import find_ticket, write_clock_change
from ticketing.tickets.service import actor
from ticketing.tickets.validation import NOT_PARSED, parse_body

MAX_COMMENT = 65_536


def comment_public(comment: TicketComment, object_id: str) -> dict[str, Any]:
    return {
        "id": str(comment.id),
        "objectId": object_id,
        "body": comment.body,
        "internal": comment.internal,
        "author": comment.author,
        "created_at": isoformat(comment.created_at),
    }


async def add_comment(
    session: AsyncSession,
    *,
    access: Access,
    object_id: str,
    raw_body: bytes,
    content_type: str | None,
) -> dict[str, Any]:
    """Adds a comment; the ticket's etag and version never change. An agent's first public
    comment meets the response clock: the clocks change in place, with a history entry and
    a `ticket.updated` event, and the etag stays (issue 3)."""
    ticket = await find_ticket(session, access=access, object_id=object_id)
    reasons = Reasons()
    body = parse_body(reasons, raw_body, content_type)
    if body is NOT_PARSED or not isinstance(body, dict):
        if body is not NOT_PARSED:
            reasons.add("body", "Request body must be a JSON object")
        raise InputValidationFailure(reasons.reason)
    for key in body:
        if key not in ("body", "internal"):
            reasons.add(key, f"Unknown key {key}")
    text = body.get("body")
    clean = ""
    if not isinstance(text, str) or not text.strip():
        reasons.add("body", "body is required and must be a string")
    elif len(text) > MAX_COMMENT:
        reasons.add("body", f"body must be at most {MAX_COMMENT} characters long")
    else:
        clean = sanitize(text, remote_images=access.catalog.desk.remote_images)
        if not clean.strip():
            reasons.add("body", "body is empty once unsafe HTML is removed")
    internal = body.get("internal", False)
    if not isinstance(internal, bool):
        reasons.add("internal", "internal must be true or false")
    reasons.raise_if_any()
    if internal and not access.principal.roles & AGENT_ROLES:
        raise PermissionFailure("You do not have the required permissions to add internal comments")
    # An agent's public answer meets the response clock: the ticket's clocks are written, so
    # its row is locked before the comment row references it.
    moves_clocks = not internal and bool(access.principal.roles & AGENT_ROLES) and ticket.get("sla")
    if moves_clocks:
        ticket = await find_ticket(session, access=access, object_id=object_id, for_update=True)
    comment = TicketComment(
        tenant_id=access.tenant_id,
        id=uuid.uuid4(),
        ticket_id=ticket["id"],
        body=clean,
        internal=internal,
        author=actor(access.principal),
        created_at=utcnow(),
    )
    await repository.insert_comment(session, comment=comment)
    if moves_clocks:
        update = sla_service.on_agent_public_comment(
            access.catalog.desk, ticket, at=comment.created_at
        )
        if update.changes:
            # The comment's event carries the ticket as the comment left it.
            ticket = await write_clock_change(
                session,
                access=access,
                current=ticket,
                update=update,
                action="comment",
                at=comment.created_at,
            )
    public = comment_public(comment, object_id)
    await outbox.record(
        session,
        kind=outbox.COMMENT_CREATED,
        ticket=ticket,
        actor=comment.author,
        extra={"comment": public},
    )
    return public


async def list_comments(
    session: AsyncSession, *, access: Access, object_id: str
) -> list[dict[str, Any]]:
    """A ticket's comments, oldest first; internal ones only for agents and admins."""
    ticket = await find_ticket(session, access=access, object_id=object_id)
    comments = await repository.list_comments(
        session,
        tenant_id=access.tenant_id,
        ticket_id=ticket["id"],
        internal=bool(access.principal.roles & AGENT_ROLES),
    )
    return [comment_public(c, object_id) for c in comments]
