"""Who may use the portal's one-click development sign-in, over real HTTP against real
`ticketing serve` processes: it mints a token for whoever clicks, so it exists only when asked
for (`ticketing demo`, or TICKETING_DEV_SIGN_IN=true), never beside an identity provider, and
signs in to the demo tenant only. A server with neither serves the API only."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.portal_client import CSRF, PortalClient
from tests.support import Database, Server, Tenant, free_port, start_server, stop_server
from tests.test_cli import cli_env
from ticketing.auth.dev_issuer import load_or_create_dev_key
from ticketing.demo import DEMO_TENANT

API_ONLY = (
    "ticketing: serving the API only: the portal's sign-in is off (set "
    "TICKETING_OIDC_BASE_URL, or TICKETING_DEV_SIGN_IN=true for the development sign-in)"
)


def _sessions(database: Database) -> int:
    """How many portal sessions the database records."""
    return int(database.fetch("SELECT count(*) FROM portal_sessions")[0][0])


def _no_session(client: PortalClient) -> None:
    """The client holds no portal session: a signed-in page sends it to the sign-in."""
    page = client.get("/portal/queue")
    assert page.status_code == 303 and page.headers["location"] == "/portal/sign-in"


def test_serve_without_an_identity_provider_or_the_flag_serves_the_api_only(
    database: Database, demo_tenant: Tenant, tmp_path: Path
) -> None:
    server = start_server(database_url=database.url, data_dir=tmp_path)
    try:
        assert API_ONLY in server.log()
        assert "development sign-in is on" not in server.log()
        sessions_before = _sessions(database)
        client = PortalClient(server.base_url)
        # No sign-in page to take a CSRF token from, and none to post to: not for the demo
        # tenant, not as its admin.
        page = client.get(f"/portal/sign-in?tenant={DEMO_TENANT}")
        assert page.status_code == 404, page.text
        assert "The portal&#39;s sign-in is not configured on this server" in page.text
        csrf = CSRF.search(page.text)
        posted = client.post(
            "/portal/sign-in",
            {"tenant": DEMO_TENANT, "user": "admin", "csrf_token": csrf.group(1) if csrf else ""},
            csrf=False,
        )
        assert posted.status_code == 404
        assert _sessions(database) == sessions_before
        # Every other page says the same, signed in or not.
        for path in ("/portal/", "/portal/queue", "/portal/catalog"):
            answer = client.get(path)
            assert answer.status_code == 404, path
            assert "not configured" in answer.text
        # The API works, with the tokens `ticketing token` signs with this data folder's key.
        key = load_or_create_dev_key(tmp_path / "dev-signing-key.pem")
        tenant = Tenant(
            id=demo_tenant.id,
            realm=demo_tenant.realm,
            config=demo_tenant.config,
            key=key,
            base_url=server.base_url,
            db=database,
            client=demo_tenant.client,
        )
        answer = tenant.get("/ticket-type")
        assert answer.status_code == 200, answer.text
        client.close()
    finally:
        stop_server(server)


def test_the_development_sign_in_signs_in_to_the_demo_tenant_only(
    server: Server,
    demo_tenant: Tenant,
    tenant: Tenant,
    portal: Callable[[], PortalClient],
) -> None:
    # The shared test server runs with TICKETING_DEV_SIGN_IN=true, and says what it does.
    assert (
        "ticketing: WARNING: the development sign-in is on (TICKETING_DEV_SIGN_IN): "
        f"{server.base_url}/portal/sign-in mints tokens of the demo tenant's users, its admin "
        "too, for anyone who can reach this port; never expose it"
    ) in server.log()
    intruder = portal()
    page = intruder.get(f"/portal/sign-in?tenant={tenant.id}")
    assert page.status_code == 403, page.text
    assert "The development sign-in signs in to the demo tenant only" in page.text
    # A CSRF token from the demo tenant's page does not make the other tenant's admin.
    assert intruder.get("/portal/sign-in").status_code == 200
    refused = intruder.post("/portal/sign-in", {"tenant": tenant.id, "user": "admin"})
    assert refused.status_code == 403, refused.text
    assert "demo tenant only" in refused.text
    _no_session(intruder)
    # The demo tenant's one-click sign-in works.
    demo = portal()
    demo.sign_in_with_one_click("admin")
    queue = demo.get("/portal/queue")
    assert queue.status_code == 200
    assert "Ada Admin" in queue.text


def test_the_development_sign_in_is_refused_beside_an_identity_provider(
    database: Database, tmp_path: Path
) -> None:
    env = cli_env(
        tmp_path,
        TICKETING_DATABASE_URL=database.url,
        TICKETING_DEV_SIGN_IN="true",
        TICKETING_OIDC_BASE_URL="http://127.0.0.1:9",
    )
    for command in ("serve", "demo"):
        done = subprocess.run(
            [sys.executable, "-m", "ticketing", command, "--port", str(free_port())],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
        assert done.returncode == 2, (command, done.stdout, done.stderr)
        assert done.stderr.splitlines() == [
            "ticketing: TICKETING_DEV_SIGN_IN=true cannot be used with TICKETING_OIDC_BASE_URL: "
            "the development sign-in mints tokens the identity provider never issued; unset "
            "one of them"
        ], done.stderr
        assert done.stdout == ""
