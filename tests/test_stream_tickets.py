"""Stream tickets over real HTTP: `POST /ticket/sse/ticket` answers a ticket that opens the
list-updates or notification stream once, as its user, with no headers (what a browser's
EventSource can send); used twice, expired, on the other stream, made up, or on any other
route it is refused; single use holds across server processes."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import jwt
import pytest

from tests.sse_client import SseReader
from tests.support import Database, Server, Tenant, start_server, stop_server
from tests.ticket_api import QUERY, assert_error, call, created, reason_of, user_token

API = "/api/v2/ticketing"
STREAMS = {
    "list": f"{API}/ticket/sse/list/updates",
    "notifications": f"{API}/ticket/sse/notifications",
}
NO_HEADERS = {"accept": "text/event-stream"}


def issue(tenant: Tenant, stream: str, token: str | None = None) -> str:
    """A ticket for `stream` asked with the normal headers; checks the answer's shape."""
    response = call(tenant, "POST", "/ticket/sse/ticket", token=token, json={"stream": stream})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"ticket", "expiresIn"}, body
    assert body["expiresIn"] == 60
    assert re.fullmatch(r"[A-Za-z0-9_-]{64}", body["ticket"]), body
    return body["ticket"]  # type: ignore[no-any-return]


def open_with(tenant: Tenant, stream: str, ticket: str, base_url: str | None = None) -> SseReader:
    """Opens `stream` with `ticket` and no authorization, x-tenantid or realmname header."""
    return SseReader(
        f"{base_url or tenant.base_url}{STREAMS[stream]}", NO_HEADERS, {**QUERY, "ticket": ticket}
    )


def use(tenant: Tenant, stream: str, ticket: str, base_url: str | None = None) -> httpx.Response:
    """Tries `ticket` on `stream`, reading only the start of the answer (a refusal whole)."""
    with tenant.client.stream(
        "GET",
        f"{base_url or tenant.base_url}{STREAMS[stream]}",
        params={**QUERY, "ticket": ticket},
        headers=NO_HEADERS,
    ) as response:
        if response.status_code != 200:
            response.read()
        return response


def comment(tenant: Tenant, object_id: str, text: str) -> None:
    response = call(tenant, "POST", f"/ticket/{object_id}/comments", json={"body": text})
    assert response.status_code == 200, response.text


def test_a_ticket_opens_the_list_stream_once_as_its_user_with_no_headers(
    tenant: Tenant, streams: list[SseReader]
) -> None:
    alice = user_token(tenant, "alice")
    ticket = issue(tenant, "list", alice)
    # Only a hash of the ticket is stored.
    stored = tenant.db.fetch(
        "SELECT token_hash, stream, subject FROM stream_tickets WHERE tenant_id = :t",
        t=uuid.UUID(tenant.id),
    )
    subject = jwt.decode(alice, options={"verify_signature": False})["sub"]
    assert [row[1:] for row in stored] == [("list", subject)]
    assert stored[0][0] == hashlib.sha256(ticket.encode()).hexdigest()
    assert ticket not in str(tenant.db.fetch("SELECT * FROM stream_tickets"))
    reader = open_with(tenant, "list", ticket)
    streams.append(reader)
    assert reader.status == 200, reader.error_body
    [connected] = reader.wait_for(lambda events: len(events) >= 1)
    assert connected.event == "connected" and connected.data["tenantId"] == tenant.id
    # As alice, a ticket_user: her own new ticket, not another user's.
    created(tenant.create(token=user_token(tenant, "bob")))
    mine = created(tenant.create(token=alice))
    events = reader.wait_for(lambda events: any(e.event == "created" for e in events))
    time.sleep(0.5)  # a created event of bob's ticket would have come first
    assert [e.data["objectId"] for e in reader.of("created")] == [mine["object_id"]]
    assert [e.event for e in events[:1]] == ["connected"]
    second = use(tenant, "list", ticket)
    body = assert_error(second, 401, "AUTHENTICATION_FAILURE")
    assert body["message"] == "The stream ticket is unknown or was used already"
    assert tenant.db.fetch(
        "SELECT count(*) FROM stream_tickets WHERE tenant_id = :t", t=uuid.UUID(tenant.id)
    ) == [(0,)]


def test_a_ticket_opens_the_notification_stream_as_its_user(
    tenant: Tenant, streams: list[SseReader]
) -> None:
    alice = user_token(tenant, "alice")
    reader = open_with(tenant, "notifications", issue(tenant, "notifications", alice))
    streams.append(reader)
    assert reader.status == 200, reader.error_body
    reader.wait_for(lambda events: [e.event for e in events] == ["connected"])
    ticket = created(tenant.create(token=alice))
    comment(tenant, ticket["object_id"], "<p>For alice</p>")
    events = reader.wait_for(lambda events: any(e.event == "notification" for e in events))
    [notice] = [e for e in events if e.event == "notification"]
    assert notice.data["objectId"] == ticket["object_id"]
    assert notice.data["type"] == "comment"


def test_a_ticket_is_refused_on_the_other_stream_and_is_spent_by_it(tenant: Tenant) -> None:
    ticket = issue(tenant, "list")
    body = assert_error(use(tenant, "notifications", ticket), 401, "AUTHENTICATION_FAILURE")
    assert body["message"] == "The stream ticket is for another stream"
    assert_error(use(tenant, "list", ticket), 401, "AUTHENTICATION_FAILURE")
    ticket = issue(tenant, "notifications")
    assert_error(use(tenant, "list", ticket), 401, "AUTHENTICATION_FAILURE")


def test_a_ticket_expires_60_seconds_after_it_is_issued(tenant: Tenant) -> None:
    before = time.time()
    ticket = issue(tenant, "list")
    [(expires_at,)] = tenant.db.fetch(
        "SELECT expires_at FROM stream_tickets WHERE tenant_id = :t", t=uuid.UUID(tenant.id)
    )
    if isinstance(expires_at, str):  # SQLite: text, in UTC
        expires_at = datetime.fromisoformat(expires_at).replace(tzinfo=UTC)
    assert before + 60 - 1 <= expires_at.timestamp() <= time.time() + 60
    # As if the 60 seconds had passed.
    past = datetime(2000, 1, 1, tzinfo=UTC)
    tenant.db.fetch(
        "UPDATE stream_tickets SET expires_at = :at WHERE tenant_id = :t",
        t=uuid.UUID(tenant.id),
        at=past if tenant.db.name == "postgresql" else past.strftime("%Y-%m-%d %H:%M:%S.%f"),
    )
    body = assert_error(use(tenant, "list", ticket), 401, "AUTHENTICATION_FAILURE")
    assert body["message"] == "The stream ticket has expired"


def test_a_stream_opened_with_a_ticket_ends_when_the_token_it_was_issued_with_expires(
    tenant: Tenant, streams: list[SseReader]
) -> None:
    for stream in STREAMS:
        reader = open_with(tenant, stream, issue(tenant, stream, tenant.token(ttl=2)))
        streams.append(reader)
        assert reader.ended.wait(15), "the stream outlived its token"
        events = reader.snapshot()
        assert events[0].event == "connected"
        assert events[-1].event == "error" and events[-1].data["code"] == "TOKEN_EXPIRED"


def test_a_ticket_is_accepted_by_no_other_route(tenant: Tenant, streams: list[SseReader]) -> None:
    ticket = issue(tenant, "list")
    number = created(tenant.create())["object_id"]
    for method, path, body in (
        ("GET", "/ticket/notification/count", None),
        ("POST", "/ticket/list", {}),
        ("GET", f"/ticket/{number}", None),
        ("POST", "/ticket/sse/ticket", {"stream": "list"}),
        ("POST", "/ticket/create/james/16910", None),
    ):
        response = tenant.client.request(
            method,
            f"{tenant.base_url}{API}{path}",
            params={**QUERY, "ticket": ticket},
            headers={"accept": "application/json", "content-type": "application/json"},
            json=body,
        )
        body = assert_error(response, 401, "AUTHENTICATION_FAILURE")
        assert body["message"] == "Missing bearer token", (path, body)
    # Not spent by any of them.
    reader = open_with(tenant, "list", ticket)
    streams.append(reader)
    assert reader.status == 200, reader.error_body


def test_a_made_up_or_malformed_ticket_is_refused(tenant: Tenant) -> None:
    made_up = base64.urlsafe_b64encode(uuid.UUID(tenant.id).bytes + secrets.token_bytes(32))
    other_tenant = base64.urlsafe_b64encode(uuid.uuid4().bytes + secrets.token_bytes(32))
    for ticket, message in (
        (made_up.decode(), "The stream ticket is unknown or was used already"),
        (other_tenant.decode(), "The stream ticket is unknown or was used already"),
        ("", "Malformed stream ticket"),
        ("abc", "Malformed stream ticket"),
        (issue(tenant, "list") + "A", "Malformed stream ticket"),
        ("%" * 64, "Malformed stream ticket"),
    ):
        body = assert_error(use(tenant, "list", ticket), 401, "AUTHENTICATION_FAILURE")
        assert body["message"] == message, ticket


def test_a_ticket_with_an_authorization_header_is_refused(tenant: Tenant) -> None:
    ticket = issue(tenant, "list")
    response = tenant.client.get(
        f"{tenant.base_url}{STREAMS['list']}",
        params={**QUERY, "ticket": ticket},
        headers=tenant.headers(accept="text/event-stream"),
    )
    assert reason_of(response) == {
        "ticket": ["Send a stream ticket or an authorization header, not both"]
    }


def test_the_ticket_request_is_validated_every_fault_at_once(tenant: Tenant) -> None:
    response = call(
        tenant,
        "POST",
        "/ticket/sse/ticket",
        params={"type": "template"},
        json={"stream": "everything", "extra": 1},
    )
    assert reason_of(response) == {
        "module": ["Query parameter module is required"],
        "stream": ["Input should be 'list' or 'notifications'"],
        "extra": ["Extra inputs are not permitted"],
    }
    assert reason_of(call(tenant, "POST", "/ticket/sse/ticket", json={})) == {
        "stream": ["Field required"]
    }
    assert reason_of(call(tenant, "POST", "/ticket/sse/ticket", json=["list"])) == {
        "body": ["Request body must be a JSON object"]
    }
    text = call(
        tenant,
        "POST",
        "/ticket/sse/ticket",
        headers={"content-type": "text/plain"},
        json={"stream": "list"},
    )
    assert reason_of(text) == {"content-type": ["Header content-type must be application/json"]}
    assert tenant.db.fetch(
        "SELECT count(*) FROM stream_tickets WHERE tenant_id = :t", t=uuid.UUID(tenant.id)
    ) == [(0,)]


def test_a_ticket_needs_what_the_stream_needs(
    tenant: Tenant, make_tenant: Callable[..., Tenant]
) -> None:
    def ask(headers: dict[str, str]) -> httpx.Response:
        return tenant.client.post(
            f"{tenant.base_url}{API}/ticket/sse/ticket",
            params=QUERY,
            headers=headers,
            json={"stream": "notifications"},
        )

    no_token = tenant.headers()
    del no_token["authorization"]
    assert_error(ask(no_token), 401, "AUTHENTICATION_FAILURE")
    no_scope = tenant.headers(tenant.token(scope="openid"))
    assert_error(ask(no_scope), 401, "USER_PERMISSION_FAILURE")
    no_role = tenant.headers(tenant.token(roles=["something_else"]))
    assert_error(ask(no_role), 401, "USER_PERMISSION_FAILURE")
    other = make_tenant()
    assert_error(ask({**tenant.headers(), "x-tenantid": other.id}), 404, "TENANT_NOT_FOUND")
    no_tenant = tenant.headers()
    del no_tenant["x-tenantid"]
    assert reason_of(ask(no_tenant)) == {"x-tenantid": ["Header x-tenantid is required"]}


@pytest.fixture
def second_server(database: Database, data_dir: Path) -> Iterator[Server]:
    """Another `ticketing serve` process on the same database."""
    server = start_server(database_url=database.url, data_dir=data_dir)
    yield server
    stop_server(server)


def test_a_ticket_opens_one_stream_once_across_server_processes(
    tenant: Tenant, second_server: Server
) -> None:
    for _round in range(5):
        ticket = issue(tenant, "list")
        statuses: list[int] = []
        start = threading.Barrier(2)

        def race(base_url: str, ticket: str = ticket) -> None:
            start.wait()
            statuses.append(use(tenant, "list", ticket, base_url).status_code)

        threads = [
            threading.Thread(target=race, args=(base_url,))
            for base_url in (tenant.base_url, second_server.base_url)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(statuses) == [200, 401]
        for base_url in (tenant.base_url, second_server.base_url):
            assert use(tenant, "list", ticket, base_url).status_code == 401


def test_a_ticket_is_asked_for_with_the_headers_alone(tenant: Tenant) -> None:
    """`type` and `module` name no catalog for a ticket: without them it is issued; sent,
    they are checked."""
    bare = tenant.client.post(
        f"{tenant.base_url}{API}/ticket/sse/ticket",
        headers=tenant.headers(),
        json={"stream": "list"},
    )
    assert bare.status_code == 200, bare.text
    assert set(bare.json()) == {"ticket", "expiresIn"}
    wrong = tenant.client.post(
        f"{tenant.base_url}{API}/ticket/sse/ticket",
        headers=tenant.headers(),
        params={"type": "nope", "module": "ticketing"},
        json={"stream": "list"},
    )
    assert "type" in reason_of(wrong)


def test_a_stream_url_that_is_refused_does_not_spend_the_ticket(tenant: Tenant) -> None:
    ticket = issue(tenant, "list")
    refused = tenant.client.get(
        f"{tenant.base_url}{STREAMS['list']}", params={"ticket": ticket}, headers=NO_HEADERS
    )
    assert refused.status_code == 400, refused.text
    # The ticket still opens the stream, with the query the stream needs.
    assert use(tenant, "list", ticket).status_code == 200
