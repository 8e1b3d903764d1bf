"""GET /metrics in the Prometheus text format."""

from __future__ import annotations

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

router = APIRouter(tags=["operations"])


# HEAD is answered like GET (same status and headers; the server sends no body), as HTTP asks
# of every resource that serves GET; it is left out of the document (one operation per path).
@router.head("/metrics", include_in_schema=False)
@router.get(
    "/metrics",
    summary="Prometheus metrics of the answering process",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    """Requests by route and status, latency, creates, open streams, pending outbox events and
    database connections in use, for the process that answers."""
    body = generate_latest(request.app.state.metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
