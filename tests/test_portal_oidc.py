"""Portal sign-in through an identity provider: OpenID Connect authorization code flow with
PKCE, against a small real provider run by the test (the discovery and JWKS server of
tests/test_oidc.py, plus authorization and token endpoints). The access token it hands out
is verified by the same path as the API's bearer tokens."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from tests.support import UNSET, Database, Server, new_tenant_config, start_server, stop_server
from tests.test_oidc import IdentityProvider, SigningKey

CLIENT_ID = "portal-test-client"


def s256(verifier: str) -> str:
    """RFC 7636 S256, computed here independently of the service's own."""
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class AuthorizingProvider(IdentityProvider):
    """The discovery + JWKS provider, with the code flow's two endpoints. The authorization
    endpoint signs in whoever the test says (no login form) and redirects back with a code;
    the token endpoint checks client, redirect URI and PKCE verifier before answering."""

    def __init__(self) -> None:
        super().__init__()
        self.codes: dict[str, dict[str, str]] = {}
        self.token_requests: list[dict[str, str]] = []
        # realm -> the access token its sign-ins hand out
        self.tokens: dict[str, str] = {}
        self.post_lock = threading.Lock()
        provider = self

        def do_post(request: BaseHTTPRequestHandler) -> None:
            provider.handle_post(request)

        self.httpd.RequestHandlerClass.do_POST = do_post  # type: ignore[attr-defined]

    def endpoint(self, realm: str, name: str) -> str:
        return f"{self.base}/realms/{realm}/protocol/openid-connect/{name}"

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        url = urlsplit(request.path)
        parts = url.path.strip("/").split("/")
        if (
            len(parts) == 4
            and parts[0] == "realms"
            and parts[2:]
            == [
                ".well-known",
                "openid-configuration",
            ]
        ):
            realm = parts[1]
            document = {
                "issuer": self.issuer(realm),
                "jwks_uri": f"{self.base}/jwks/{realm}/keys.json",
                "authorization_endpoint": self.endpoint(realm, "auth"),
                "token_endpoint": self.endpoint(realm, "token"),
            }
            return self.reply(request, 200, json.dumps(document).encode())
        if len(parts) == 5 and parts[0] == "realms" and parts[4] == "auth":
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            ok = (
                query.get("response_type") == "code"
                and query.get("client_id") == CLIENT_ID
                and query.get("code_challenge_method") == "S256"
                and len(query.get("code_challenge", "")) == 43
                and parts[1] in self.tokens
            )
            if not ok:
                return self.reply(request, 400, b'{"error": "invalid_request"}')
            code = secrets.token_urlsafe(16)
            self.codes[code] = {
                "realm": parts[1],
                "challenge": query["code_challenge"],
                "redirect_uri": query["redirect_uri"],
            }
            location = (
                f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state']})}"
            )
            request.send_response(302)
            request.send_header("Location", location)
            request.send_header("Content-Length", "0")
            request.end_headers()
            return None
        return super().handle(request)

    def handle_post(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length", "0"))
        form = {k: v[0] for k, v in parse_qs(request.rfile.read(length).decode()).items()}
        with self.post_lock:
            self.token_requests.append(form)
            issued = self.codes.pop(form.get("code", ""), None)
        valid = (
            issued is not None
            and request.path.endswith("/protocol/openid-connect/token")
            and form.get("grant_type") == "authorization_code"
            and form.get("client_id") == CLIENT_ID
            and form.get("redirect_uri") == issued["redirect_uri"]
            and s256(form.get("code_verifier", "")) == issued["challenge"]
        )
        if not valid or issued is None:
            return self.reply(request, 400, b'{"error": "invalid_grant"}')
        body = {"access_token": self.tokens[issued["realm"]], "token_type": "Bearer"}
        self.reply(request, 200, json.dumps(body).encode())


@pytest.fixture(scope="module")
def provider() -> Iterator[AuthorizingProvider]:
    idp = AuthorizingProvider()
    yield idp
    idp.close()


@pytest.fixture(scope="module")
def oidc_portal(
    database: Database, provider: AuthorizingProvider, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    data_dir: Path = tmp_path_factory.mktemp("portal-oidc")
    server = start_server(
        database_url=database.url,
        data_dir=data_dir,
        env={
            "TICKETING_OIDC_BASE_URL": provider.base,
            "TICKETING_PORTAL_CLIENT_ID": CLIENT_ID,
            "TICKETING_JWKS_REFRESH_INTERVAL": "0",
        },
    )
    yield server
    stop_server(server)


def _tenant(
    database: Database,
    provider: AuthorizingProvider,
    signer: SigningKey | None = None,
    **claims: Any,
) -> dict[str, Any]:
    """A tenant in a fresh realm whose sign-ins hand out a token with these claims, signed
    with the realm's published key unless `signer` says otherwise."""
    config = new_tenant_config()
    database.load({"tenants": [config]})
    realm = provider.realm(config["realm"])
    key = SigningKey.rsa()
    realm.publish(key)
    now = int(time.time())
    token_claims = {
        "iss": provider.issuer(realm.name),
        "sub": str(uuid.uuid4()),
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "scope": "openid tickets:read tickets:write",
        "realm_access": {"roles": ["ticket_user"]},
        "tenant_id": config["id"],
        "preferred_username": "olive",
        "email": "olive@example.com",
        "given_name": "Olive",
        "family_name": "Idp",
        **claims,
    }
    provider.tokens[realm.name] = (signer or key).sign(token_claims)
    return config


def _start(client: httpx.Client, server: Server, tenant_id: str) -> httpx.Response:
    started = client.get(f"{server.base_url}/portal/oidc/start", params={"tenant": tenant_id})
    assert started.status_code == 303, started.text
    return started


def test_sign_in_runs_the_code_flow_with_pkce_and_starts_a_session(
    oidc_portal: Server, provider: AuthorizingProvider, database: Database
) -> None:
    tenant = _tenant(database, provider)
    with httpx.Client(timeout=30) as browser:
        started = _start(browser, oidc_portal, tenant["id"])
        authorize = urlsplit(started.headers["location"])
        assert f"{authorize.scheme}://{authorize.netloc}{authorize.path}" == provider.endpoint(
            tenant["realm"], "auth"
        )
        query = {k: v[0] for k, v in parse_qs(authorize.query).items()}
        assert query["client_id"] == CLIENT_ID and query["code_challenge_method"] == "S256"
        # The scopes the portal needs are asked for (TICKETING_PORTAL_SCOPES' default).
        assert query["scope"] == "openid tickets:read tickets:write"
        assert query["redirect_uri"] == f"{oidc_portal.base_url}/portal/oidc/callback"
        back = browser.get(started.headers["location"])
        assert back.status_code == 302
        done = browser.get(back.headers["location"])
        assert done.status_code == 303 and done.headers["location"] == "/portal/"
        cookie = done.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie
        catalog = browser.get(f"{oidc_portal.base_url}/portal/catalog")
        assert catalog.status_code == 200
        assert "Olive Idp" in catalog.text
        # The sign-out form's redirect goes on to the provider: form-action names it.
        csp = catalog.headers["content-security-policy"]
        assert f"form-action 'self' {provider.base};" in csp
        # The verifier went to the token endpoint only, and matched the challenge.
        exchange = provider.token_requests[-1]
        assert s256(exchange["code_verifier"]) == query["code_challenge"]
        assert exchange["code_verifier"] not in started.headers["location"]
        assert "client_secret" not in exchange
        # The one-click development sign-in does not exist beside a real provider.
        csrf = catalog.text.split('name="csrf_token" value="')[1].split('"')[0]
        assert browser.get(f"{oidc_portal.base_url}/portal/sign-in").status_code == 404
        posted = browser.post(
            f"{oidc_portal.base_url}/portal/sign-in",
            data={"csrf_token": csrf, "user": "admin", "tenant": tenant["id"]},
        )
        assert posted.status_code == 404
        # Unsigned-in visitors are sent to the provider, not to a user list.
        with httpx.Client(timeout=30) as stranger:
            home = stranger.get(f"{oidc_portal.base_url}/portal/")
            assert home.headers["location"] == "/portal/oidc/start"


def test_a_callback_whose_state_does_not_match_is_refused(
    oidc_portal: Server, provider: AuthorizingProvider, database: Database
) -> None:
    tenant = _tenant(database, provider)
    with httpx.Client(timeout=30) as browser:
        started = _start(browser, oidc_portal, tenant["id"])
        back = browser.get(started.headers["location"])
        forged = back.headers["location"].replace("state=", "state=forged")
        exchanges = len(provider.token_requests)
        refused = browser.get(forged)
        assert refused.status_code == 403
        assert len(provider.token_requests) == exchanges
        assert browser.get(f"{oidc_portal.base_url}/portal/catalog").status_code == 303
    # A callback without the sign-in cookie (another browser) is refused the same way.
    with httpx.Client(timeout=30) as other:
        assert other.get(back.headers["location"]).status_code == 403


def test_a_token_the_api_would_refuse_starts_no_session(
    oidc_portal: Server, provider: AuthorizingProvider, database: Database
) -> None:
    unpublished = SigningKey.rsa()
    tenant = _tenant(database, provider, signer=unpublished)
    with httpx.Client(timeout=30) as browser:
        started = _start(browser, oidc_portal, tenant["id"])
        back = browser.get(started.headers["location"])
        refused = browser.get(back.headers["location"])
        # A page saying why, not a redirect back to the provider (which would loop).
        assert refused.status_code == 403
        assert "Sign-in failed" in refused.text
        assert "Token signing key is unknown" in refused.text
        assert f'href="/portal/oidc/start?tenant={tenant["id"]}">Try again' in refused.text
        assert "ticketing_portal=" not in refused.headers.get("set-cookie", "").replace(
            'ticketing_portal=""', ""
        )
        assert browser.get(f"{oidc_portal.base_url}/portal/catalog").status_code == 303


def test_a_refused_code_exchange_shows_the_providers_error(
    oidc_portal: Server, provider: AuthorizingProvider, database: Database
) -> None:
    tenant = _tenant(database, provider)
    with httpx.Client(timeout=30) as browser:
        started = _start(browser, oidc_portal, tenant["id"])
        back = browser.get(started.headers["location"])
        callback = urlsplit(back.headers["location"])
        state = parse_qs(callback.query)["state"][0]
        exchanges = len(provider.token_requests)
        refused = browser.get(
            f"{oidc_portal.base_url}{callback.path}",
            params={"code": "not-a-code-it-issued", "state": state},
        )
        assert refused.status_code == 403
        assert "The identity provider refused the code exchange: invalid_grant" in refused.text
        assert len(provider.token_requests) == exchanges + 1
        assert browser.get(f"{oidc_portal.base_url}/portal/catalog").status_code == 303


def test_an_error_from_the_provider_is_shown_without_a_code_exchange(
    oidc_portal: Server, provider: AuthorizingProvider, database: Database
) -> None:
    tenant = _tenant(database, provider)
    with httpx.Client(timeout=30) as browser:
        started = _start(browser, oidc_portal, tenant["id"])
        state = parse_qs(urlsplit(started.headers["location"]).query)["state"][0]
        exchanges = len(provider.token_requests)
        refused = browser.get(
            f"{oidc_portal.base_url}/portal/oidc/callback",
            params={
                "error": "access_denied",
                "error_description": "End-User aborted interaction",
                "state": state,
            },
        )
        assert refused.status_code == 403
        assert (
            "The identity provider did not sign you in: access_denied "
            "(End-User aborted interaction)" in refused.text
        )
        assert len(provider.token_requests) == exchanges


def test_sign_out_without_a_provider_logout_lands_on_the_signed_out_page(
    oidc_portal: Server, provider: AuthorizingProvider, database: Database
) -> None:
    """This provider's discovery names no end_session_endpoint: the portal's session ends
    and the browser goes to the signed-out page."""
    tenant = _tenant(database, provider)
    with httpx.Client(timeout=30) as browser:
        started = _start(browser, oidc_portal, tenant["id"])
        back = browser.get(started.headers["location"])
        done = browser.get(back.headers["location"])
        assert done.status_code == 303
        catalog = browser.get(f"{oidc_portal.base_url}/portal/catalog")
        csrf = catalog.text.split('name="csrf_token" value="')[1].split('"')[0]
        out = browser.post(f"{oidc_portal.base_url}/portal/sign-out", data={"csrf_token": csrf})
        assert out.status_code == 303
        assert out.headers["location"] == f"/portal/signed-out?tenant={tenant['id']}"
        page = browser.get(f"{oidc_portal.base_url}{out.headers['location']}")
        assert page.status_code == 200 and "You have signed out" in page.text
        assert f'href="/portal/oidc/start?tenant={tenant["id"]}">Sign in again' in page.text
        assert browser.get(f"{oidc_portal.base_url}/portal/catalog").status_code == 303


def test_a_token_without_a_ticketing_role_starts_no_session_and_says_so(
    oidc_portal: Server, provider: AuthorizingProvider, database: Database
) -> None:
    tenant = _tenant(database, provider, realm_access={"roles": ["offline_access"]})
    with httpx.Client(timeout=30) as browser:
        started = _start(browser, oidc_portal, tenant["id"])
        back = browser.get(started.headers["location"])
        refused = browser.get(back.headers["location"])
        assert refused.status_code == 403
        assert "You cannot use the service desk yet" in refused.text
        assert "A role of the service desk" in refused.text
        assert "<code>ticket_user</code>" in refused.text
        # The scopes were granted: only the role is missing.
        assert "The permission (scope)" not in refused.text
        assert "ticketing_portal_logout" not in refused.headers.get("set-cookie", "")
        assert browser.get(f"{oidc_portal.base_url}/portal/catalog").status_code == 303


def test_the_redirect_uri_is_the_configured_base_urls_and_another_host_is_refused(
    database: Database, provider: AuthorizingProvider, tmp_path: Path
) -> None:
    """With TICKETING_PORTAL_BASE_URL, the addresses given to the identity provider are the
    base URL's, and a portal request whose Host header names another host is refused: a
    forged Host cannot make the provider send a sign-in's code elsewhere."""
    server = start_server(
        database_url=database.url,
        data_dir=tmp_path,
        env={
            "TICKETING_OIDC_BASE_URL": provider.base,
            "TICKETING_PORTAL_CLIENT_ID": CLIENT_ID,
            "TICKETING_PORTAL_BASE_URL": "https://desk.example.test",
        },
    )
    try:
        tenant = _tenant(database, provider)
        with httpx.Client(timeout=30) as browser:
            start = f"{server.base_url}/portal/oidc/start"
            forged = browser.get(
                start, params={"tenant": tenant["id"]}, headers={"host": "evil.example:8443"}
            )
            assert forged.status_code == 400, forged.text
            assert "This address is not the portal&#39;s" in forged.text
            assert "The portal is served at https://desk.example.test/portal/" in forged.text
            assert "ticketing_portal_oidc" not in forged.headers.get("set-cookie", "")
            for host in ("127.0.0.1", "desk.example.test:8443", "desk.example.test.evil"):
                page = browser.get(f"{server.base_url}/portal/", headers={"host": host})
                assert page.status_code == 400, host
            # The configured host, as a proxy in front passes it on (any case, its port or
            # none): the provider is given the base URL's callback.
            for host in ("desk.example.test", "DESK.example.test:443"):
                started = browser.get(
                    start, params={"tenant": tenant["id"]}, headers={"host": host}
                )
                assert started.status_code == 303, started.text
                query = parse_qs(urlsplit(started.headers["location"]).query)
                assert query["redirect_uri"] == ["https://desk.example.test/portal/oidc/callback"]
    finally:
        stop_server(server)


def test_the_scopes_asked_for_are_the_setting_and_must_include_openid(
    database: Database, provider: AuthorizingProvider, tmp_path: Path
) -> None:
    env = {
        "TICKETING_OIDC_BASE_URL": provider.base,
        "TICKETING_PORTAL_CLIENT_ID": CLIENT_ID,
        "TICKETING_PORTAL_SCOPES": "openid  tickets:read tickets:write   profile",
        "TICKETING_DEV_SIGN_IN": UNSET,
    }
    server = start_server(database_url=database.url, data_dir=tmp_path, env=env)
    try:
        tenant = _tenant(database, provider)
        with httpx.Client(timeout=30) as browser:
            started = _start(browser, server, tenant["id"])
            query = {
                k: v[0] for k, v in parse_qs(urlsplit(started.headers["location"]).query).items()
            }
            assert query["scope"] == "openid tickets:read tickets:write profile"
    finally:
        stop_server(server)
    refused = subprocess.run(
        [sys.executable, "-m", "ticketing", "serve", "--port", "1"],
        env={
            **os.environ,
            "TICKETING_DATABASE_URL": database.url,
            "TICKETING_DATA_DIR": str(tmp_path),
            "TICKETING_OIDC_BASE_URL": provider.base,
            "TICKETING_PORTAL_SCOPES": "tickets:read tickets:write",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2, refused.stderr
    assert "TICKETING_PORTAL_SCOPES must include openid" in refused.stderr
