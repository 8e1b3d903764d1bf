"""OpenAPI descriptions of the event streams."""

from __future__ import annotations

from typing import Any

from ticketing.kit.schemas import CATALOG_QUERY, ERROR_RESPONSES, TICKETING_HEADERS

LAST_EVENT_ID: dict[str, Any] = {
    "name": "Last-Event-ID",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{22}$"},
    "description": "Resume after this event id (the last `id:` the stream sent: 22 opaque "
    "characters): missed events are replayed, or `reset` is sent when they are no longer "
    "kept.",
}

TICKET: dict[str, Any] = {
    "name": "ticket",
    "in": "query",
    "required": False,
    "schema": {"type": "string"},
    "description": "A stream ticket for this stream (POST /ticket/sse/ticket), in place of the "
    "authorization, x-tenantid and realmname headers (an authorization header with it is "
    "refused); it opens the stream once, within 60 seconds.",
}

# The headers of every call, which a stream opened with a ticket goes without.
STREAM_HEADERS: list[dict[str, Any]] = [
    {**header, "required": False, "description": f"{header['description']} Not with `ticket`."}
    for header in TICKETING_HEADERS
]

SNAPSHOT: dict[str, Any] = {
    "name": "snapshot",
    "in": "query",
    "required": False,
    "schema": {"type": "string", "enum": ["true", "false"]},
    "description": "Send the first page of the default list first (`snapshot` event).",
}


def stream_response(*events: str) -> dict[int | str, dict[str, Any]]:
    """The responses of an event stream that sends `events` (each one: `id:`, `event:`, and
    one `data:` line of JSON)."""
    event_schema = {
        "type": "object",
        "properties": {
            "id": {"type": "string", "pattern": "^[A-Za-z0-9_-]{22}$"},
            "event": {"type": "string", "enum": list(events)},
            "data": {"type": "string", "contentMediaType": "application/json"},
        },
        "required": ["id", "event", "data"],
    }
    return {
        200: {
            "description": f"Server-Sent Events: {', '.join(events)}.",
            "content": {"text/event-stream": {"schema": event_schema}},
        },
        **ERROR_RESPONSES,
    }


LIST_UPDATES_RESPONSES = stream_response(
    "connected", "snapshot", "created", "updated", "deleted", "reset", "heartbeat", "error"
)

LIST_UPDATES_OPENAPI: dict[str, Any] = {
    "parameters": [*STREAM_HEADERS, *CATALOG_QUERY, TICKET, SNAPSHOT, LAST_EVENT_ID]
}
