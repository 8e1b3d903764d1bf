"""Unexpected errors in a real server process: the seed's envelope with a request id, no
internals, a log line. The fault is a real one in the database the server reads: on SQLite
a ticket row whose `data` is not JSON, on PostgreSQL a grant the service's role lost.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from tests.support import Server, Tenant
from tests.ticket_api import created

APP_ROLE = "ticketing_app"  # TICKETING_DB_ROLE's default, which the test servers run as


@contextmanager
def _broken_read(tenant: Tenant, ticket: dict[str, str]) -> Iterator[None]:
    """Makes reading `ticket` fail inside the database layer until the block ends."""
    db = tenant.db
    if db.name == "sqlite":
        ticket_id = uuid.UUID(ticket["id"])
        original = db.fetch("SELECT data FROM tickets WHERE id = :i", i=ticket_id)[0][0]
        db.fetch("UPDATE tickets SET data = :d WHERE id = :i", d="{not json", i=ticket_id)
        try:
            yield
        finally:
            db.fetch("UPDATE tickets SET data = :d WHERE id = :i", d=original, i=ticket_id)
    else:
        db.fetch(f"REVOKE SELECT ON ticket_history FROM {APP_ROLE}")
        try:
            yield
        finally:
            db.fetch(f"GRANT SELECT ON ticket_history TO {APP_ROLE}")


def test_a_real_fault_is_a_500_envelope_with_the_request_id_and_no_internals(
    server: Server, tenant: Tenant
) -> None:
    ticket = created(tenant.create())
    # The read that breaks: the ticket itself on SQLite, its history on PostgreSQL.
    path = "" if tenant.db.name == "sqlite" else "/history"
    url = f"/ticket/{ticket['object_id']}{path}"
    request_id = f"req-{uuid.uuid4().hex}"
    with _broken_read(tenant, ticket):
        response = tenant.get(url, headers=tenant.headers(**{"X-Request-ID": request_id}))
    assert response.status_code == 500, response.text
    assert response.json() == {
        "error": True,
        "message": "Internal server error",
        "status": 500,
        "requestId": request_id,
    }
    assert response.headers["x-request-id"] == request_id
    assert response.headers["content-type"].startswith("application/json")
    for internal in ("not json", "Expecting", "permission", "ticket_history", "Traceback"):
        assert internal not in response.text, internal
    # The server process logged the error under the same request id.
    records = [json.loads(line) for line in server.log().splitlines() if request_id in line]
    assert any(r["level"] == "error" and request_id in r["message"] for r in records), records
    # The fault gone, the same request is answered again.
    assert tenant.get(url).status_code == 200


def test_request_id_is_made_when_absent(server: Server, http: httpx.Client) -> None:
    first = http.get(f"{server.base_url}/healthz").headers["x-request-id"]
    second = http.get(f"{server.base_url}/healthz").headers["x-request-id"]
    assert first and second and first != second
