"""OpenAPI descriptions of the event streams."""

from __future__ import annotations

from typing import Any

from ticketing.kit.schemas import CATALOG_QUERY, ERROR_RESPONSES, TICKETING_HEADERS

LAST_EVENT_ID: dict[str, Any] = {
    "name": "Last-Event-ID",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
    "description": "Resume after this event id: missed events are replayed, or `reset` is "
    "sent when they are no longer kept.",
}

SNAPSHOT: dict[str, Any] = {
    "name": "snapshot",
    "in": "query",
    "required": False,
    "schema": {"type": "string", "enum": ["true", "false"]},
    "description": "Send the first page of the default list first (`snapshot` event).",
}

STREAM_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A stream of Server-Sent Events, each with `id:`, `event:` and JSON "
        "`data:`.",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    },
    **ERROR_RESPONSES,
}

LIST_UPDATES_OPENAPI: dict[str, Any] = {
    "parameters": [*TICKETING_HEADERS, *CATALOG_QUERY, SNAPSHOT, LAST_EVENT_ID]
}
