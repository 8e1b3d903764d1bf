"""JSON responses serialised with orjson, and the renderer for every TicketingError."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.responses import HTMLResponse, Response

from ticketing.kit.errors import HtmlNotFound, TicketingError

log = logging.getLogger("ticketing")


class JsonResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_response(exc: TicketingError, *, request_id: str | None = None) -> Response:
    """Renders an error as the seed's envelope (or as HTML where the seed answers HTML)."""
    headers = exc.headers()
    if request_id:
        headers["X-Request-ID"] = request_id
    if isinstance(exc, HtmlNotFound):
        return HTMLResponse(exc.render_html(), status_code=exc.status, headers=headers)
    body = exc.body()
    if request_id and exc.status >= 500:
        body["requestId"] = request_id
    return JsonResponse(body, status_code=exc.status, headers=headers)


def unexpected_error_response(exc: BaseException, *, request_id: str | None) -> Response:
    """Logs an error no handler expected, with its request id, and renders the 500 envelope
    (no internals in it: they are in the log line)."""
    log.error("unhandled error (request %s)", request_id, exc_info=exc)
    return error_response(TicketingError(), request_id=request_id)
