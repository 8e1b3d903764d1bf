"""Portal sessions are recorded server-side, over real HTTP against real servers: the cookie
holds a session id, never a token; sign-out, a tenant admin (`DELETE /sessions/{user}`) and
the session's expiry end it, and a cookie saved before that gets the sign-in page."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx

from tests.desk_support import desk_overrides
from tests.portal_client import PortalClient
from tests.support import Database, Tenant, start_server, stop_server
from ticketing.auth.dev_issuer import load_or_create_dev_key
from ticketing.demo import DEMO_TENANT


def _replay(base_url: str, cookie: str, path: str = "/portal/catalog") -> httpx.Response:
    """A page requested with a saved session cookie, as a copy of it would be sent."""
    return httpx.get(f"{base_url}{path}", headers={"cookie": f"ticketing_portal={cookie}"})


def _signed_out(answer: httpx.Response) -> None:
    """The answer of a page to a browser whose session is over: the sign-in."""
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/portal/sign-in"


def _end_sessions(tenant: Tenant, user: str, token: str) -> httpx.Response:
    return tenant.client.delete(
        f"{tenant.base_url}/api/v2/ticketing/sessions/{user}",
        params={"type": "template", "module": "ticketing"},
        headers=tenant.headers(token),
    )


def _admin(tenant: Tenant) -> str:
    return tenant.token(
        username="admin@example.com", email="admin@example.com", roles=["tenant_admin"]
    )


def test_a_cookie_saved_before_sign_out_gets_the_sign_in_page_after_it(
    portal: Callable[[], PortalClient], demo_tenant: Tenant
) -> None:
    browser = portal()
    browser.sign_in_with_one_click("agent")
    assert browser.get("/portal/queue").status_code == 200
    # The browser holds a session id: no token, in any cookie.
    cookies = dict(browser.client.cookies.items())
    assert set(cookies) == {"ticketing_portal"}, cookies
    saved = cookies["ticketing_portal"]
    # (A JWT starts with the base64 of `{"`, and a signed one is longer than this cookie.)
    assert "eyJ" not in saved and len(saved) < 300, saved
    # A copy of it works like the browser's own, while the session lasts.
    assert _replay(browser.base_url, saved).status_code == 200

    out = browser.post("/portal/sign-out", {})
    assert out.status_code == 303
    assert out.headers["location"] == f"/portal/signed-out?tenant={DEMO_TENANT}"
    _signed_out(_replay(browser.base_url, saved))
    _signed_out(_replay(browser.base_url, saved, "/portal/queue"))
    start = _replay(browser.base_url, saved, "/portal/")
    assert start.status_code == 303 and start.headers["location"] == "/portal/sign-in"


def test_a_tenant_admin_ends_a_users_sessions_in_their_tenant_only(
    portal: Callable[[], PortalClient], make_tenant: Callable[..., Tenant]
) -> None:
    tenant, other = make_tenant(**desk_overrides()), make_tenant(**desk_overrides())
    laptop, phone, elsewhere, requester = portal(), portal(), portal(), portal()
    laptop.sign_in(tenant, "agent")
    phone.sign_in(tenant, "agent")
    requester.sign_in(tenant, "requester")
    elsewhere.sign_in(other, "agent")

    # Requesters and agents may not end sessions: 401 USER_PERMISSION_FAILURE.
    for who in ("requester", "agent"):
        roles = ["ticket_user"] if who == "requester" else ["ticket_agent"]
        refused = _end_sessions(tenant, "agent@example.com", tenant.token(roles=roles))
        assert refused.status_code == 401, refused.text
        assert refused.json()["code"] == "USER_PERMISSION_FAILURE"
    assert laptop.get("/portal/queue").status_code == 200

    ended = _end_sessions(tenant, "agent@example.com", _admin(tenant))
    assert ended.status_code == 200, ended.text
    assert ended.json() == {"success": True, "status": 200, "ended": 2}
    # Both of the agent's browsers are signed out at their next page.
    _signed_out(laptop.get("/portal/queue"))
    _signed_out(phone.get("/portal/catalog"))
    # The same person in another tenant, and another person here, are still signed in.
    assert elsewhere.get("/portal/queue").status_code == 200
    assert requester.get("/portal/catalog").status_code == 200
    # Nothing is left to end; a session ends by email as well.
    again = _end_sessions(tenant, "agent@example.com", _admin(tenant))
    assert again.json() == {"success": True, "status": 200, "ended": 0}
    by_email = _end_sessions(tenant, "user@example.com", _admin(tenant))
    assert by_email.json()["ended"] == 1
    _signed_out(requester.get("/portal/catalog"))
    # A user no token could name is refused in the API's envelope.
    for bad in ("agent%00x", "a" * 321):
        refused = _end_sessions(tenant, bad, _admin(tenant))
        assert refused.status_code == 400, refused.text
        assert refused.json()["code"] == "INPUT_VALIDATION_FAILURE"
        assert "user" in refused.json()["validationResult"]["reason"]
    # Without a token: the API's 401.
    anonymous = tenant.client.delete(
        f"{tenant.base_url}/api/v2/ticketing/sessions/agent@example.com",
        params={"type": "template", "module": "ticketing"},
        headers={"x-tenantid": tenant.id, "realmname": tenant.realm},
    )
    assert anonymous.status_code == 401
    assert anonymous.json()["code"] == "AUTHENTICATION_FAILURE"


def test_an_expired_session_is_signed_out_even_with_a_valid_token(
    portal: Callable[[], PortalClient], tenant: Tenant, database: Database
) -> None:
    browser = portal()
    browser.sign_in(tenant, "requester")
    assert browser.get("/portal/catalog").status_code == 200
    # The session's recorded end is what counts, not only its token's.
    past = datetime(2000, 1, 1, tzinfo=UTC)
    database.fetch(
        "UPDATE portal_sessions SET expires_at = :past WHERE tenant_id = :t",
        # SQLite keeps the text SQLAlchemy writes for a moment.
        past=past if database.name == "postgresql" else "2000-01-01 00:00:00.000000",
        t=uuid.UUID(tenant.id),
    )
    _signed_out(browser.get("/portal/catalog"))


def test_an_open_queue_stream_ends_with_its_session(
    database: Database, make_tenant: Callable[..., Tenant], tmp_path: Path
) -> None:
    server = start_server(
        database_url=database.url,
        data_dir=tmp_path,
        env={"TICKETING_DEV_SIGN_IN": "true", "TICKETING_SSE_HEARTBEAT": "0.5"},
    )
    try:
        tenant = make_tenant(**desk_overrides())
        # This server's tokens are signed with its data folder's key.
        tenant.key = load_or_create_dev_key(tmp_path / "dev-signing-key.pem")
        tenant.base_url = server.base_url
        agent = PortalClient(server.base_url, tmp_path)
        agent.sign_in(tenant, "agent")
        url = f"{server.base_url}/portal/queue/updates"
        with agent.client.stream("GET", url) as stream:
            assert stream.status_code == 200
            lines = stream.iter_lines()
            assert next(lines).startswith("id: ")
            assert next(lines) == "event: connected"
            ended = _end_sessions(tenant, "agent@example.com", _admin(tenant))
            assert ended.json()["ended"] == 1
            # Heartbeats go out every half second; the stream ends within a few of them.
            deadline = time.monotonic() + 5
            for _ in lines:
                assert time.monotonic() < deadline, "the stream outlived its session"
        _signed_out(agent.get("/portal/queue/updates"))
        agent.close()
    finally:
        stop_server(server)
