"""Browser clients from another origin (TICKETING_CORS_ORIGINS), over real HTTP: preflights
and CORS headers for listed origins only, on the create route too and on errors; and pages
in Chromium that call the API with `fetch` and open both event streams with `EventSource`
and a stream ticket, while a page of an origin not listed cannot call it."""

from __future__ import annotations

import functools
import http.server
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page

from tests.support import Database, Server, Tenant, free_port, seed_body, start_server, stop_server
from tests.test_cli import cli_env
from tests.ticket_api import QUERY, assert_error, call, created, reason_of, user_token

API = "/api/v2/ticketing"
CREATE = f"{API}/ticket/create/james/16910"
LISTED_TOO = "https://app.example.com"
# What the API reads from a request, which a listed origin's preflight must be allowed.
REQUEST_HEADERS = {
    "authorization",
    "content-type",
    "accept",
    "idempotency-key",
    "if-match",
    "x-tenantid",
    "realmname",
    "last-event-id",
}
# What a browser client needs to read of the API's answers.
RESPONSE_HEADERS = {"etag", "idempotent-replayed", "x-request-id", "retry-after"}


@dataclass
class Site:
    """A static page served from an origin of its own."""

    origin: str
    server: http.server.ThreadingHTTPServer


def serve_page(folder: Path) -> Site:
    port = free_port()
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return Site(f"http://127.0.0.1:{port}", server)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Site, Site]]:
    """The page's origin, which the server lists, and another origin it does not list."""
    folder = tmp_path_factory.mktemp("page")
    (folder / "index.html").write_text(
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Client</title>'
        "</head><body><h1>A client of the ticketing API</h1></body></html>\n"
    )
    listed, other = serve_page(folder), serve_page(folder)
    yield listed, other
    for site in (listed, other):
        site.server.shutdown()
        site.server.server_close()


@pytest.fixture(scope="module")
def cors_server(database: Database, data_dir: Path, sites: tuple[Site, Site]) -> Iterator[Server]:
    """A server that lists the page's origin (and one more) in TICKETING_CORS_ORIGINS."""
    listed, _ = sites
    server = start_server(
        database_url=database.url,
        data_dir=data_dir,
        env={"TICKETING_CORS_ORIGINS": f"{listed.origin}, {LISTED_TOO}"},
    )
    yield server
    stop_server(server)


@pytest.fixture
def cors_tenant(tenant: Tenant, cors_server: Server) -> Tenant:
    """The test's tenant, called through the CORS server."""
    tenant.base_url = cors_server.base_url
    return tenant


def preflight(
    base_url: str, path: str, origin: str, method: str = "POST", headers: str | None = None
) -> httpx.Response:
    request_headers = {"origin": origin, "access-control-request-method": method}
    if headers is not None:
        request_headers["access-control-request-headers"] = headers
    return httpx.options(f"{base_url}{path}", headers=request_headers, timeout=10)


def cors_headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.startswith("access-control-")}


def listed_names(value: str) -> set[str]:
    return {name.strip().lower() for name in value.split(",")}


PATHS = [
    CREATE,
    f"{API}/ticket/list",
    f"{API}/ticket/sse/ticket",
    f"{API}/ticket/sse/list/updates",
    f"{API}/ticket/sse/notifications",
    f"{API}/ticket/CTC-0001",
]


def test_a_preflight_from_a_listed_origin_is_answered_on_every_route(
    cors_server: Server, sites: tuple[Site, Site]
) -> None:
    listed, _ = sites
    asked = ", ".join(sorted(REQUEST_HEADERS))
    for origin in (listed.origin, LISTED_TOO):
        for path in PATHS:
            for method in ("POST", "GET", "PATCH", "DELETE"):
                response = preflight(cors_server.base_url, path, origin, method, asked)
                assert response.status_code == 204, (path, response.text)
                assert response.content == b""
                headers = response.headers
                assert headers["access-control-allow-origin"] == origin
                assert {"DELETE", "GET", "PATCH", "POST", "PUT"} <= set(
                    headers["access-control-allow-methods"].replace(" ", "").split(",")
                )
                assert listed_names(headers["access-control-allow-headers"]) >= REQUEST_HEADERS
                assert headers["access-control-max-age"] == "600"
                assert "origin" in listed_names(headers["vary"])
                assert "access-control-allow-credentials" not in headers
                assert "access-control-allow-private-network" not in headers
    # A public page's call into a private network (Chromium's Private Network Access).
    response = httpx.options(
        f"{cors_server.base_url}{CREATE}",
        headers={
            "origin": LISTED_TOO,
            "access-control-request-method": "POST",
            "access-control-request-private-network": "true",
        },
    )
    assert response.status_code == 204, response.text
    assert response.headers["access-control-allow-private-network"] == "true"


def test_a_preflight_from_an_origin_not_listed_is_answered_allowing_nothing(
    cors_server: Server, server: Server, sites: tuple[Site, Site]
) -> None:
    _, other = sites
    for origin in (
        other.origin,
        "null",
        "http://app.example.com",  # another scheme, another origin
        f"{LISTED_TOO}/",
    ):
        for path in [*PATHS, f"{API}/nothing/here"]:
            response = preflight(cors_server.base_url, path, origin, headers="authorization")
            assert response.status_code == 204, (origin, path, response.text)
            assert cors_headers(response) == {}, (origin, path)
            assert response.headers["vary"] == "Origin"
    # A request of such an origin is served, with no CORS header and `Vary: Origin`.
    health = httpx.get(f"{cors_server.base_url}/healthz", headers={"origin": other.origin})
    assert health.status_code == 200 and cors_headers(health) == {}
    assert "Origin" in health.headers["vary"]
    # No TICKETING_CORS_ORIGINS: no CORS at all, an OPTIONS request is one like any other.
    for path in PATHS:
        response = preflight(server.base_url, path, sites[0].origin, headers="authorization")
        assert_error(response, 405, "METHOD_NOT_ALLOWED")
        assert cors_headers(response) == {}, path
    unknown = preflight(server.base_url, f"{API}/nothing/here", sites[0].origin)
    assert_error(unknown, 404, "NOT_FOUND")
    assert cors_headers(unknown) == {}


def test_a_preflight_for_a_method_or_header_the_api_does_not_take_is_400(
    cors_server: Server, sites: tuple[Site, Site]
) -> None:
    listed, _ = sites
    response = preflight(
        cors_server.base_url, CREATE, listed.origin, "TRACE", "authorization, x-secret, cookie2"
    )
    assert reason_of(response) == {
        "Access-Control-Request-Method": [
            "Method TRACE is not allowed; allowed: DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT"
        ],
        "Access-Control-Request-Headers": [
            "Header x-secret is not allowed",
            "Header cookie2 is not allowed",
        ],
    }
    assert cors_headers(response) == {}


def test_answers_to_a_listed_origin_carry_cors_headers_also_on_the_create_route_and_errors(
    cors_tenant: Tenant, sites: tuple[Site, Site]
) -> None:
    listed, _ = sites
    origin = {"origin": listed.origin}
    first = cors_tenant.create(headers={**cors_tenant.headers(), **origin, "Idempotency-Key": "a"})
    again = cors_tenant.create(headers={**cors_tenant.headers(), **origin, "Idempotency-Key": "a"})
    ticket = created(first)
    assert again.headers["idempotent-replayed"] == "true"
    no_token = {**cors_tenant.headers(), **origin}
    del no_token["authorization"]
    answers = {
        "create": first,
        "replayed create": again,
        "read": call(cors_tenant, "GET", f"/ticket/{ticket['object_id']}", headers=origin),
        "list": call(cors_tenant, "POST", "/ticket/list", json={}, headers=origin),
        "401": cors_tenant.client.post(
            f"{cors_tenant.base_url}{API}/ticket/list", params=QUERY, headers=no_token, json={}
        ),
        "create 401": cors_tenant.create(headers=no_token),
        "400": cors_tenant.create({"summary": ""}, headers={**cors_tenant.headers(), **origin}),
        "404": httpx.get(f"{cors_tenant.base_url}{API}/no/such/route", headers=origin),
    }
    assert [r.status_code for r in answers.values()] == [200, 200, 200, 200, 401, 401, 400, 404]
    for name, response in answers.items():
        headers = response.headers
        assert headers["access-control-allow-origin"] == listed.origin, name
        assert listed_names(headers["access-control-expose-headers"]) >= RESPONSE_HEADERS, name
        assert "origin" in listed_names(headers["vary"]), name
        assert "access-control-allow-credentials" not in headers, name


def test_answers_to_other_origins_and_to_no_origin_carry_no_cors_headers(
    cors_tenant: Tenant, sites: tuple[Site, Site]
) -> None:
    _, other = sites
    for extra in ({"origin": other.origin}, {"origin": "null"}, {}):
        headers = {**cors_tenant.headers(), **extra}
        for response in (
            cors_tenant.create(headers=headers),
            call(cors_tenant, "POST", "/ticket/list", json={}, headers=extra),
            call(cors_tenant, "POST", "/ticket/list", json={}, headers={**extra, "x-tenantid": ""}),
        ):
            assert response.status_code in (200, 400), response.text
            assert cors_headers(response) == {}, (extra, response.request.url)


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ("*", "'*' is a wildcard: list each origin exactly"),
        ("https://a.example.com, https://*.example.com", "is a wildcard"),
        ("https://a.example.com/", "is not an origin"),
        ("HTTPS://A.example.com", "is not written as browsers send it: https://a.example.com"),
        ("https://a.example.com:443", "is not written as browsers send it: https://a.example.com"),
    ],
)
def test_the_server_refuses_to_start_with_a_wildcard_or_an_origin_browsers_never_send(
    tmp_path: Path, value: str, complaint: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ticketing", "serve", "--port", str(free_port())],
        env=cli_env(tmp_path, TICKETING_CORS_ORIGINS=value),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "TICKETING_CORS_ORIGINS: " in result.stderr and complaint in result.stderr


# -- in a browser -------------------------------------------------------------------------


def page_at(browser: Browser, origin: str) -> Page:
    page = browser.new_context().new_page()
    page.goto(f"{origin}/index.html")
    return page


CALL = """async ({url, method, headers, body}) => {
    const response = await fetch(url, {method, headers, body: body && JSON.stringify(body)});
    return {
        status: response.status,
        json: await response.json(),
        etag: response.headers.get("ETag"),
        requestId: response.headers.get("X-Request-ID"),
        replayed: response.headers.get("Idempotent-Replayed"),
        authenticate: response.headers.get("WWW-Authenticate"),
    };
}"""

OPEN_STREAM = """async ({base, query, headers, stream, path, names}) => {
    const response = await fetch(`${base}/api/v2/ticketing/ticket/sse/ticket?${query}`, {
        method: "POST", headers, body: JSON.stringify({stream})});
    const {ticket, expiresIn} = await response.json();
    const source = new EventSource(
        `${base}/api/v2/ticketing${path}?${query}&ticket=${encodeURIComponent(ticket)}`);
    window.received = window.received || {};
    const received = window.received[stream] = [];
    for (const name of names) {
        source.addEventListener(name, event => received.push({name, data: JSON.parse(event.data)}));
    }
    window.sources = [...(window.sources || []), source];
    await new Promise((resolve, reject) => {
        source.addEventListener("connected", resolve, {once: true});
        source.onerror = () => reject(new Error(`the ${stream} stream did not open`));
    });
    return {status: response.status, expiresIn};
}"""


def wait_for_event(page: Page, stream: str, name: str, object_id: str) -> dict[str, Any]:
    """The first `name` event about `object_id` the page's `stream` received."""
    found = page.wait_for_function(
        """([stream, name, objectId]) => window.received[stream].find(
            e => e.name === name && e.data.objectId === objectId)""",
        arg=[stream, name, object_id],
        timeout=20_000,
    )
    return found.json_value()  # type: ignore[no-any-return]


def test_a_page_of_a_listed_origin_creates_with_fetch_and_follows_both_streams(
    browser: Browser, cors_tenant: Tenant, sites: tuple[Site, Site]
) -> None:
    listed, _ = sites
    tenant = cors_tenant
    base = tenant.base_url
    query = "type=template&module=ticketing"
    alice = user_token(tenant, "alice")
    page = page_at(browser, listed.origin)
    assert page.evaluate("() => window.location.origin") == listed.origin != base
    # A create with the headers an integration sends, Idempotency-Key included, twice.
    create = {
        "url": f"{base}{CREATE}?{query}",
        "method": "POST",
        "headers": {**tenant.headers(alice), "Idempotency-Key": "browser-1"},
        "body": seed_body(),
    }
    first = page.evaluate(CALL, create)
    assert first["status"] == 200, first
    ticket = first["json"]["ticket"]
    assert first["etag"] == f'"{ticket["etag"]}"'
    assert first["requestId"]
    again = page.evaluate(CALL, create)
    assert again["replayed"] == "true" and again["json"]["ticket"]["id"] == ticket["id"]
    # An error's envelope and headers are readable too.
    refused = page.evaluate(
        CALL,
        {
            "url": f"{base}{API}/ticket/list?{query}",
            "method": "POST",
            "headers": {"content-type": "application/json", "x-tenantid": tenant.id},
            "body": {},
        },
    )
    assert refused["status"] == 401 and refused["json"]["code"] == "AUTHENTICATION_FAILURE"
    assert refused["authenticate"].startswith("Bearer")
    # Both streams, opened by EventSource with a stream ticket: no headers.
    headers = {k: v for k, v in tenant.headers(alice).items() if k != "accept"}
    for stream, path, names in (
        ("list", "/ticket/sse/list/updates", ["connected", "created", "updated"]),
        ("notifications", "/ticket/sse/notifications", ["connected", "notification"]),
    ):
        opened = page.evaluate(
            OPEN_STREAM,
            {
                "base": base,
                "query": query,
                "headers": headers,
                "stream": stream,
                "path": path,
                "names": names,
            },
        )
        assert opened == {"status": 200, "expiresIn": 60}
    later = created(tenant.create(token=alice))
    event = wait_for_event(page, "list", "created", later["object_id"])
    assert event["data"]["ticket"]["id"] == later["id"]
    response = call(
        tenant, "POST", f"/ticket/{later['object_id']}/comments", json={"body": "<p>Hi</p>"}
    )
    assert response.status_code == 200, response.text
    notice = wait_for_event(page, "notifications", "notification", later["object_id"])
    assert notice["data"]["type"] == "comment"
    page.evaluate("() => window.sources.forEach(source => source.close())")
    page.context.close()


FAILS = """async ({url, headers, body}) => {
    try {
        await fetch(url, {method: "POST", headers, body: JSON.stringify(body)});
        return "answered";
    } catch (error) {
        return `${error.name}: ${error.message}`;
    }
}"""

STREAM_FAILS = """async (url) => await new Promise(resolve => {
    const source = new EventSource(url);
    source.onopen = () => resolve("opened");
    source.onerror = () => resolve(
        source.readyState === EventSource.CLOSED ? "closed" : "retrying");
})"""


def test_a_page_of_an_origin_not_listed_can_neither_call_nor_stream(
    browser: Browser, cors_tenant: Tenant, sites: tuple[Site, Site]
) -> None:
    _, other = sites
    tenant = cors_tenant
    page = page_at(browser, other.origin)
    before = tenant.ticket_count()
    outcome = page.evaluate(
        FAILS,
        {
            "url": f"{tenant.base_url}{CREATE}?type=template&module=ticketing",
            "headers": {**tenant.headers(), "Idempotency-Key": "elsewhere"},
            "body": seed_body(),
        },
    )
    assert outcome == "TypeError: Failed to fetch"
    # The preflight was refused, so the create was never sent.
    assert tenant.ticket_count() == before
    ticket = call(tenant, "POST", "/ticket/sse/ticket", json={"stream": "list"}).json()["ticket"]
    url = f"{tenant.base_url}{API}/ticket/sse/list/updates?type=template&module=ticketing"
    assert page.evaluate(STREAM_FAILS, f"{url}&ticket={ticket}") == "closed"
    page.context.close()
