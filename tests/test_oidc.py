"""Tokens from an external OIDC provider (TICKETING_OIDC_BASE_URL), served by the test itself.

A small identity provider runs in a background thread: per realm it serves
`{base}/realms/{realm}/.well-known/openid-configuration` whose `jwks_uri` points at a JWKS on a
deliberately non-Keycloak path, so the service has to follow discovery. Each test uses its own
realm (and tenant), so the service's per-issuer key cache starts cold for every test.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tests.support import (
    DEV_ISSUER,
    Database,
    Server,
    free_port,
    new_tenant_config,
    seed_body,
    start_server,
    stop_server,
)
from ticketing.auth.dev_issuer import load_or_create_dev_key, mint_token
from ticketing.auth.tokens import cache_lifetime

# --- the identity provider -------------------------------------------------------------------


@dataclass
class SigningKey:
    """A private key the test signs with; published or not, as the test decides."""

    private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    kid: str
    alg: str

    @classmethod
    def rsa(cls, kid: str | None = None) -> SigningKey:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return cls(key, kid or f"rsa-{uuid.uuid4().hex[:12]}", "RS256")

    @classmethod
    def p256(cls, kid: str | None = None) -> SigningKey:
        key = ec.generate_private_key(ec.SECP256R1())
        return cls(key, kid or f"ec-{uuid.uuid4().hex[:12]}", "ES256")

    def public_jwk(self) -> dict[str, Any]:
        public = self.private_key.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(public))
        else:
            jwk = json.loads(ECAlgorithm.to_jwk(public))
        return {**jwk, "kid": self.kid, "use": "sig", "alg": self.alg}

    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, claims: dict[str, Any], kid: str | None = None) -> str:
        return jwt.encode(
            claims, self.private_key, algorithm=self.alg, headers={"kid": kid or self.kid}
        )


@dataclass
class Realm:
    """What the identity provider publishes for one realm, and how often it was asked."""

    name: str
    keys: list[SigningKey] = field(default_factory=list)
    discovery_hits: int = 0
    jwks_hits: int = 0
    # "ok", "jwks-500", "discovery-503", "jwks-garbage", "jwks-refused"
    mode: str = "ok"
    # Sent with the JWKS when set.
    cache_control: str | None = None

    def publish(self, *keys: SigningKey) -> None:
        self.keys = list(keys)

    def drop(self, key: SigningKey) -> None:
        """Stops publishing `key`, as a provider does with a compromised one."""
        self.keys = [k for k in self.keys if k.kid != key.kid]


class IdentityProvider:
    """A Keycloak-shaped discovery + JWKS server on 127.0.0.1, in a background thread."""

    def __init__(self) -> None:
        self.realms: dict[str, Realm] = {}
        # Every path asked for, in order.
        self.requests: list[str] = []
        self.lock = threading.Lock()
        self.closed_port = free_port()  # nothing listens here
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                provider.handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def realm(self, name: str) -> Realm:
        with self.lock:
            return self.realms.setdefault(name, Realm(name))

    def issuer(self, realm: str) -> str:
        return f"{self.base}/realms/{realm}"

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        parts = request.path.split("?")[0].strip("/").split("/")
        with self.lock:
            self.requests.append(request.path)
            if (
                len(parts) == 4
                and parts[0] == "realms"
                and parts[2:] == [".well-known", "openid-configuration"]
                and parts[1] in self.realms
            ):
                realm = self.realms[parts[1]]
                realm.discovery_hits += 1
                if realm.mode == "discovery-503":
                    return self.reply(request, 503, b"unavailable", "text/plain")
                jwks_uri = f"{self.base}/jwks/{realm.name}/keys.json"
                if realm.mode == "jwks-refused":
                    jwks_uri = f"http://127.0.0.1:{self.closed_port}/jwks/{realm.name}"
                document = {
                    "issuer": self.issuer(realm.name),
                    "jwks_uri": jwks_uri,
                    "id_token_signing_alg_values_supported": ["RS256", "ES256"],
                }
                return self.reply(request, 200, json.dumps(document).encode())
            if len(parts) == 3 and parts[0] == "jwks" and parts[1] in self.realms:
                realm = self.realms[parts[1]]
                realm.jwks_hits += 1
                if realm.mode == "jwks-500":
                    return self.reply(request, 500, b"boom", "text/plain")
                if realm.mode == "jwks-garbage":
                    return self.reply(request, 200, b"<html>maintenance</html>", "text/html")
                jwks = {"keys": [k.public_jwk() for k in realm.keys]}
                headers = {"Cache-Control": realm.cache_control} if realm.cache_control else {}
                return self.reply(request, 200, json.dumps(jwks).encode(), headers=headers)
        self.reply(request, 404, b'{"error": "Realm does not exist"}')

    @staticmethod
    def reply(
        request: BaseHTTPRequestHandler,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        request.send_response(status)
        request.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            request.send_header(name, value)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def idp() -> Iterator[IdentityProvider]:
    provider = IdentityProvider()
    yield provider
    provider.close()


def _oidc_server(
    database: Database,
    idp: IdentityProvider,
    data_dir: Path,
    interval: str,
    env: dict[str, str] | None = None,
) -> Server:
    return start_server(
        database_url=database.url,
        data_dir=data_dir,
        env={
            "TICKETING_OIDC_BASE_URL": idp.base,
            "TICKETING_JWKS_REFRESH_INTERVAL": interval,
            **(env or {}),
        },
    )


@pytest.fixture(scope="module")
def oidc_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("oidc-data")


@pytest.fixture(scope="module")
def oidc_server(database: Database, idp: IdentityProvider, oidc_data_dir: Path) -> Iterator[Server]:
    """A server trusting the test's identity provider, refetching on every unknown kid."""
    server = _oidc_server(database, idp, oidc_data_dir, "0")
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def rate_limited_server(
    database: Database, idp: IdentityProvider, oidc_data_dir: Path
) -> Iterator[Server]:
    """A server trusting the test's identity provider, refetching at most once a minute."""
    server = _oidc_server(database, idp, oidc_data_dir, "60")
    yield server
    stop_server(server)


# The expiring server's key cache: keys live MAX_AGE seconds, a failing provider's last good
# keys GRACE seconds more, and a realm's JWKS is fetched at most once per INTERVAL seconds.
MAX_AGE, GRACE, INTERVAL = 2.0, 2.0, 1.0


@pytest.fixture(scope="module")
def expiring_server(
    database: Database, idp: IdentityProvider, oidc_data_dir: Path
) -> Iterator[Server]:
    """A server whose cached keys expire within seconds."""
    env = {"TICKETING_JWKS_MAX_AGE": str(MAX_AGE), "TICKETING_JWKS_STALE_GRACE": str(GRACE)}
    server = _oidc_server(database, idp, oidc_data_dir, str(INTERVAL), env)
    yield server
    stop_server(server)


@dataclass
class OidcTenant:
    """A tenant whose users log in through a realm of the test's identity provider."""

    id: str
    realm: Realm
    issuer: str
    client: httpx.Client

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": str(uuid.uuid4()),
            "aud": "account",
            "iat": now,
            "nbf": now,
            "exp": now + 600,
            "typ": "Bearer",
            "scope": "openid tickets:read tickets:write",
            "realm_access": {"roles": ["ticket_agent"]},
            "tenant_id": self.id,
            "preferred_username": "oidc-user",
            "email": "oidc-user@example.com",
            "given_name": "Olive",
            "family_name": "Idp",
        }
        claims.update(overrides)
        return claims

    def token(self, key: SigningKey, **overrides: Any) -> str:
        return key.sign(self.claims(**overrides))

    def headers(self, token: str) -> dict[str, str]:
        return {
            "accept": "application/json",
            "authorization": f"Bearer {token}",
            "content-type": "application/json",
            "x-tenantid": self.id,
            "realmname": self.realm.name,
        }

    def create(self, server: Server, token: str) -> httpx.Response:
        return self.client.post(
            f"{server.base_url}/api/v2/ticketing/ticket/create/james/16910",
            params={"type": "template", "module": "ticketing"},
            headers=self.headers(token),
            json=seed_body(),
        )

    def offers(self, server: Server, token: str) -> httpx.Response:
        return self.client.get(
            f"{server.base_url}/api/v2/ticketing/tenant/sc/offers",
            params={"type": "template", "module": "ticketing"},
            headers=self.headers(token),
        )


def new_oidc_tenant(database: Database, idp: IdentityProvider, http: httpx.Client) -> OidcTenant:
    """A fresh tenant in a fresh realm that publishes nothing yet."""
    config = new_tenant_config()
    database.load({"tenants": [config]})
    realm = idp.realm(config["realm"])
    return OidcTenant(config["id"], realm, idp.issuer(realm.name), http)


@pytest.fixture
def oidc_tenant(database: Database, idp: IdentityProvider, http: httpx.Client) -> OidcTenant:
    """A fresh tenant in a fresh realm that publishes nothing yet."""
    return new_oidc_tenant(database, idp, http)


def assert_authentication_failure(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["error"] is True
    assert body["code"] == "AUTHENTICATION_FAILURE"
    assert response.headers.get("www-authenticate", "").startswith("Bearer"), response.headers


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# --- accepted tokens -------------------------------------------------------------------------


def test_rs256_token_is_accepted(oidc_server: Server, oidc_tenant: OidcTenant) -> None:
    key = SigningKey.rsa()
    oidc_tenant.realm.publish(key)
    response = oidc_tenant.create(oidc_server, oidc_tenant.token(key))
    assert response.status_code == 200, response.text
    data = response.json()["ticket"]["data"]
    assert data["submittedBy"] == "oidc-user@example.com"
    assert data["lastUpdatedBy"] == {
        "firstName": "Olive",
        "lastName": "Idp",
        "username": "oidc-user",
    }
    # The keys really came through discovery and the advertised jwks_uri.
    assert oidc_tenant.realm.discovery_hits == 1
    assert oidc_tenant.realm.jwks_hits == 1


def test_es256_token_is_accepted(oidc_server: Server, oidc_tenant: OidcTenant) -> None:
    key = SigningKey.p256()
    oidc_tenant.realm.publish(key)
    token = oidc_tenant.token(key)
    assert jwt.get_unverified_header(token)["alg"] == "ES256"
    response = oidc_tenant.create(oidc_server, token)
    assert response.status_code == 200, response.text
    assert oidc_tenant.offers(oidc_server, token).status_code == 200


def test_rs256_and_es256_keys_side_by_side(oidc_server: Server, oidc_tenant: OidcTenant) -> None:
    rsa_key, ec_key = SigningKey.rsa(), SigningKey.p256()
    oidc_tenant.realm.publish(rsa_key, ec_key)
    for key in (rsa_key, ec_key, rsa_key):
        response = oidc_tenant.create(oidc_server, oidc_tenant.token(key))
        assert response.status_code == 200, (key.alg, response.text)


def test_keys_are_cached(rate_limited_server: Server, oidc_tenant: OidcTenant) -> None:
    key = SigningKey.rsa()
    oidc_tenant.realm.publish(key)
    for _ in range(5):
        response = oidc_tenant.offers(rate_limited_server, oidc_tenant.token(key))
        assert response.status_code == 200, response.text
    assert oidc_tenant.realm.jwks_hits == 1


# --- rejected tokens -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "case", ["rsa-new-kid", "rsa-published-kid", "ec-published-kid", "rsa-as-ec-kid"]
)
def test_token_signed_by_unpublished_key_is_rejected(
    oidc_server: Server, oidc_tenant: OidcTenant, case: str
) -> None:
    published_rsa, published_ec = SigningKey.rsa(), SigningKey.p256()
    oidc_tenant.realm.publish(published_rsa, published_ec)
    # Warm the cache so the rejection is about the signature, not reachability.
    assert oidc_tenant.create(oidc_server, oidc_tenant.token(published_rsa)).status_code == 200
    claims = oidc_tenant.claims()
    if case == "rsa-new-kid":
        token = SigningKey.rsa().sign(claims)
    elif case == "rsa-published-kid":
        token = SigningKey.rsa().sign(claims, kid=published_rsa.kid)
    elif case == "ec-published-kid":
        token = SigningKey.p256().sign(claims, kid=published_ec.kid)
    else:
        token = SigningKey.rsa().sign(claims, kid=published_ec.kid)
    assert_authentication_failure(oidc_tenant.create(oidc_server, token))


def test_dev_issuer_tokens_are_not_accepted(
    oidc_server: Server, oidc_tenant: OidcTenant, oidc_data_dir: Path
) -> None:
    key = SigningKey.rsa()
    oidc_tenant.realm.publish(key)
    dev_key = load_or_create_dev_key(oidc_data_dir / "dev-signing-key.pem")
    common: dict[str, Any] = {
        "tenant_id": oidc_tenant.id,
        "realm": oidc_tenant.realm.name,
        "username": "dev",
        "roles": ["ticket_agent"],
    }
    # The dev issuer's own shape: iss under the dev issuer URL.
    token = mint_token(dev_key, issuer_base=DEV_ISSUER, **common)
    assert_authentication_failure(oidc_tenant.create(oidc_server, token))
    # The dev key, but claiming the identity provider as issuer.
    token = mint_token(dev_key, issuer_base=oidc_tenant.issuer.split("/realms/")[0], **common)
    assert_authentication_failure(oidc_tenant.create(oidc_server, token))
    # The provider's genuine token still works, so the rejections were about the issuer/key.
    assert oidc_tenant.create(oidc_server, oidc_tenant.token(key)).status_code == 200


def _forged(header: dict[str, Any], claims: dict[str, Any], secret: bytes | None) -> str:
    head = b64url(json.dumps(header).encode())
    body = b64url(json.dumps(claims).encode())
    if secret is None:
        return f"{head}.{body}."
    signature = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(signature)}"


@pytest.mark.parametrize("case", ["hs256-pem", "hs256-jwk-json", "hs256-n", "alg-none"])
def test_hmac_with_public_key_and_alg_none_are_rejected(
    oidc_server: Server, oidc_tenant: OidcTenant, case: str
) -> None:
    key = SigningKey.rsa()
    oidc_tenant.realm.publish(key)
    assert oidc_tenant.create(oidc_server, oidc_tenant.token(key)).status_code == 200
    claims = oidc_tenant.claims()
    if case == "alg-none":
        token = _forged({"alg": "none", "typ": "JWT", "kid": key.kid}, claims, None)
    else:
        secret = {
            "hs256-pem": key.public_pem(),
            "hs256-jwk-json": json.dumps(key.public_jwk()).encode(),
            "hs256-n": key.public_jwk()["n"].encode(),
        }[case]
        token = _forged({"alg": "HS256", "typ": "JWT", "kid": key.kid}, claims, secret)
    assert_authentication_failure(oidc_tenant.create(oidc_server, token))


def test_expired_provider_token_is_rejected(oidc_server: Server, oidc_tenant: OidcTenant) -> None:
    key = SigningKey.p256()
    oidc_tenant.realm.publish(key)
    now = int(time.time())
    token = oidc_tenant.token(key, iat=now - 7200, nbf=now - 7200, exp=now - 3600)
    assert_authentication_failure(oidc_tenant.create(oidc_server, token))


def test_token_of_other_realm_under_provider_is_not_this_tenants(
    oidc_server: Server, oidc_tenant: OidcTenant, idp: IdentityProvider
) -> None:
    # A genuine token from another realm of the same provider must not open this tenant.
    other = idp.realm(f"other-{uuid.uuid4().hex[:8]}")
    key = SigningKey.rsa()
    other.publish(key)
    oidc_tenant.realm.publish(SigningKey.rsa())
    token = oidc_tenant.token(key, iss=idp.issuer(other.name))
    response = oidc_tenant.create(oidc_server, token)  # realmname names this tenant's realm
    assert response.status_code == 401, response.text


# --- key rotation and refresh ----------------------------------------------------------------


def test_new_kid_is_accepted_without_restart(oidc_server: Server, oidc_tenant: OidcTenant) -> None:
    old = SigningKey.rsa()
    oidc_tenant.realm.publish(old)
    assert oidc_tenant.create(oidc_server, oidc_tenant.token(old)).status_code == 200
    new = SigningKey.rsa()
    oidc_tenant.realm.publish(old, new)
    response = oidc_tenant.create(oidc_server, oidc_tenant.token(new))
    assert response.status_code == 200, response.text
    assert oidc_tenant.realm.jwks_hits == 2  # one fetch per kid the cache did not know
    # Both keys are trusted while both are published.
    assert oidc_tenant.create(oidc_server, oidc_tenant.token(old)).status_code == 200


def test_rotation_to_other_algorithm(oidc_server: Server, oidc_tenant: OidcTenant) -> None:
    old = SigningKey.rsa()
    oidc_tenant.realm.publish(old)
    assert oidc_tenant.create(oidc_server, oidc_tenant.token(old)).status_code == 200
    new = SigningKey.p256()
    oidc_tenant.realm.publish(new)
    response = oidc_tenant.create(oidc_server, oidc_tenant.token(new))
    assert response.status_code == 200, response.text


def test_retired_key_is_rejected_after_refresh(
    oidc_server: Server, oidc_tenant: OidcTenant
) -> None:
    old = SigningKey.rsa()
    oidc_tenant.realm.publish(old)
    assert oidc_tenant.create(oidc_server, oidc_tenant.token(old)).status_code == 200
    new = SigningKey.rsa()
    oidc_tenant.realm.publish(new)  # old is withdrawn
    assert oidc_tenant.create(oidc_server, oidc_tenant.token(new)).status_code == 200
    # The refresh that found `new` also learned that `old` is gone.
    assert_authentication_failure(oidc_tenant.create(oidc_server, oidc_tenant.token(old)))


def test_unknown_kid_refetch_is_rate_limited(
    rate_limited_server: Server, oidc_tenant: OidcTenant
) -> None:
    key = SigningKey.rsa()
    oidc_tenant.realm.publish(key)
    assert oidc_tenant.offers(rate_limited_server, oidc_tenant.token(key)).status_code == 200
    assert oidc_tenant.realm.jwks_hits == 1
    for _ in range(10):
        token = SigningKey.rsa().sign(oidc_tenant.claims())
        assert_authentication_failure(oidc_tenant.offers(rate_limited_server, token))
    # The first fetch was just made: no unknown kid may refetch within the interval.
    assert oidc_tenant.realm.jwks_hits == 1, oidc_tenant.realm.jwks_hits
    # The cached key keeps working meanwhile.
    assert oidc_tenant.offers(rate_limited_server, oidc_tenant.token(key)).status_code == 200


def test_concurrent_unknown_kids_fetch_once(
    rate_limited_server: Server, oidc_tenant: OidcTenant
) -> None:
    key = SigningKey.rsa()
    oidc_tenant.realm.publish(key)
    tokens = [SigningKey.rsa().sign(oidc_tenant.claims()) for _ in range(3)] * 8
    tokens.append(oidc_tenant.token(key))

    def send(token: str) -> int:
        return oidc_tenant.offers(rate_limited_server, token).status_code

    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(send, tokens))
    assert statuses[-1] == 200
    assert set(statuses[:-1]) == {401}
    # The first request to find the cache empty fetches; the rest wait for it and then are
    # within the interval.
    assert oidc_tenant.realm.jwks_hits == 1, oidc_tenant.realm.jwks_hits


def test_unknown_kid_refetches_when_interval_is_zero(
    oidc_server: Server, oidc_tenant: OidcTenant
) -> None:
    # The counterpart of the rate limit: with interval 0 every unknown kid asks again.
    oidc_tenant.realm.publish(SigningKey.rsa())
    for _ in range(3):
        token = SigningKey.rsa().sign(oidc_tenant.claims())
        assert_authentication_failure(oidc_tenant.create(oidc_server, token))
    assert oidc_tenant.realm.jwks_hits == 3, oidc_tenant.realm.jwks_hits


# --- the provider unreachable ----------------------------------------------------------------

DOWN_MODES = ["jwks-500", "discovery-503", "jwks-garbage", "jwks-refused"]


@pytest.mark.parametrize("mode", DOWN_MODES)
def test_provider_down_cached_keys_work_new_kid_is_503(
    oidc_server: Server, oidc_tenant: OidcTenant, mode: str
) -> None:
    cached = SigningKey.rsa()
    oidc_tenant.realm.publish(cached)
    assert oidc_tenant.create(oidc_server, oidc_tenant.token(cached)).status_code == 200

    fresh = SigningKey.p256()
    oidc_tenant.realm.publish(cached, fresh)
    oidc_tenant.realm.mode = mode

    response = oidc_tenant.create(oidc_server, oidc_tenant.token(cached))
    assert response.status_code == 200, response.text
    response = oidc_tenant.create(oidc_server, oidc_tenant.token(fresh))
    assert response.status_code == 503, response.text
    assert response.json()["error"] is True
    # A failed refresh does not throw away the keys already known.
    response = oidc_tenant.create(oidc_server, oidc_tenant.token(cached))
    assert response.status_code == 200, response.text

    # Once the provider is back, the new key is picked up.
    oidc_tenant.realm.mode = "ok"
    response = oidc_tenant.create(oidc_server, oidc_tenant.token(fresh))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("mode", DOWN_MODES)
def test_provider_down_with_cold_cache_is_503(
    oidc_server: Server, oidc_tenant: OidcTenant, mode: str
) -> None:
    key = SigningKey.rsa()
    oidc_tenant.realm.publish(key)
    oidc_tenant.realm.mode = mode
    response = oidc_tenant.offers(oidc_server, oidc_tenant.token(key))
    assert response.status_code == 503, response.text


def test_provider_unknown_realm_is_authentication_failure(
    oidc_server: Server, oidc_tenant: OidcTenant, idp: IdentityProvider
) -> None:
    # The provider answers 404 for a realm it does not have: such a token cannot be genuine,
    # so the caller gets 401, not a retryable 503.
    key = SigningKey.rsa()
    oidc_tenant.realm.publish(key)
    bogus = f"no-such-realm-{uuid.uuid4().hex[:6]}"
    token = oidc_tenant.token(key, iss=idp.issuer(bogus))
    response = oidc_tenant.client.get(
        f"{oidc_server.base_url}/api/v2/ticketing/ticket-type",
        params={"type": "template", "module": "ticketing"},
        headers={**oidc_tenant.headers(token), "realmname": bogus},
    )
    assert_authentication_failure(response)


# --- cached keys expire ----------------------------------------------------------------------


def sleep_until(deadline: float) -> None:
    time.sleep(max(0.0, deadline - time.monotonic()))


def warnings_naming(server: Server, issuer: str) -> list[dict[str, Any]]:
    """The server's warnings about `issuer`'s keys, from its JSON log."""
    found = []
    for line in server.log().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if (
            isinstance(entry, dict)
            and entry.get("level") == "warning"
            and entry.get("issuer") == issuer
            and issuer in entry.get("message", "")
        ):
            found.append(entry)
    return found


@pytest.mark.parametrize(
    ("cache_control", "lifetime"),
    [
        (None, 600),
        ("", 600),
        ("max-age=1", 1),
        ("public, max-age=300, must-revalidate", 300),
        ("max-age=3600", 600),  # never longer than the setting
        ("Max-Age=5", 5),  # directive names are case-insensitive
        ('max-age="7"', 7),
        ("max-age=5, max-age=50", 5),  # the most restrictive wins
        ("max-age=abc", 0),  # invalid freshness is stale
        ("max-age=-5", 0),
        ("max-age=1.5", 0),
        ("max-age=", 0),
        ("no-store", 0),
        ("no-cache", 0),
        ("public, NO-CACHE, max-age=100", 0),
        ('no-cache="set-cookie"', 600),  # only about the named header fields
        ('private="x, max-age=1", max-age=100', 100),  # a comma inside quotes splits nothing
        ("s-maxage=1", 600),  # for shared caches
        ("max-age=1,,public", 1),
    ],
)
def test_cache_control_can_only_shorten_the_keys_lifetime(
    cache_control: str | None, lifetime: float
) -> None:
    assert cache_lifetime(cache_control, 600) == lifetime


def _dropped_key_is_refused_after(server: Server, tenant: OidcTenant, age: float) -> None:
    """Publishes two keys, uses both, drops one: it is trusted until `age` seconds after the
    fetch and refused after, while the other one keeps working."""
    dropped, kept = SigningKey.rsa(), SigningKey.p256()
    tenant.realm.publish(dropped, kept)
    assert tenant.offers(server, tenant.token(dropped)).status_code == 200
    fetched = time.monotonic()  # the fetch was made before this: the keys expire before
    assert tenant.offers(server, tenant.token(kept)).status_code == 200
    assert tenant.realm.jwks_hits == 1

    tenant.realm.drop(dropped)
    sleep_until(fetched + age + 0.1)
    assert_authentication_failure(tenant.offers(server, tenant.token(dropped)))
    response = tenant.offers(server, tenant.token(kept))
    assert response.status_code == 200, response.text
    assert tenant.realm.jwks_hits == 2, tenant.realm.jwks_hits


def test_a_key_the_provider_drops_is_refused_once_the_cache_expires(
    expiring_server: Server, oidc_tenant: OidcTenant
) -> None:
    # TICKETING_JWKS_MAX_AGE=2; the provider sends no Cache-Control.
    _dropped_key_is_refused_after(expiring_server, oidc_tenant, MAX_AGE)


def test_a_shorter_cache_control_max_age_is_honoured(
    oidc_server: Server, oidc_tenant: OidcTenant
) -> None:
    # TICKETING_JWKS_MAX_AGE is the default 600 s; the provider says 1 s.
    oidc_tenant.realm.cache_control = "public, max-age=1"
    _dropped_key_is_refused_after(oidc_server, oidc_tenant, 1.0)


def test_a_longer_cache_control_max_age_does_not_extend_the_setting(
    expiring_server: Server, oidc_tenant: OidcTenant
) -> None:
    # The provider says an hour; TICKETING_JWKS_MAX_AGE=2 wins.
    oidc_tenant.realm.cache_control = "max-age=3600"
    _dropped_key_is_refused_after(expiring_server, oidc_tenant, MAX_AGE)


def test_no_store_refetches_at_the_next_verification(
    oidc_server: Server, oidc_tenant: OidcTenant
) -> None:
    # `no-store` counts as max-age 0: keys are used a second (MIN_KEY_LIFETIME) at most.
    oidc_tenant.realm.cache_control = "no-store"
    dropped, kept = SigningKey.rsa(), SigningKey.rsa()
    oidc_tenant.realm.publish(dropped, kept)
    assert oidc_tenant.offers(oidc_server, oidc_tenant.token(dropped)).status_code == 200
    oidc_tenant.realm.drop(dropped)
    time.sleep(1.1)
    assert_authentication_failure(oidc_tenant.offers(oidc_server, oidc_tenant.token(dropped)))
    assert oidc_tenant.offers(oidc_server, oidc_tenant.token(kept)).status_code == 200


def test_no_store_still_fetches_at_most_once_per_refresh_interval(
    rate_limited_server: Server, oidc_tenant: OidcTenant
) -> None:
    oidc_tenant.realm.cache_control = "no-store, no-cache, max-age=0"
    key = SigningKey.rsa()
    oidc_tenant.realm.publish(key)
    for _ in range(5):
        response = oidc_tenant.offers(rate_limited_server, oidc_tenant.token(key))
        assert response.status_code == 200, response.text
    assert oidc_tenant.realm.jwks_hits == 1, oidc_tenant.realm.jwks_hits


def test_keys_are_fetched_once_per_max_age_not_per_request(
    expiring_server: Server, oidc_tenant: OidcTenant
) -> None:
    key = SigningKey.rsa()
    oidc_tenant.realm.publish(key)
    started = time.monotonic()
    for _ in range(10):
        response = oidc_tenant.offers(expiring_server, oidc_tenant.token(key))
        assert response.status_code == 200, response.text
    assert time.monotonic() - started < MAX_AGE, "the requests took longer than the max-age"
    assert oidc_tenant.realm.jwks_hits == 1, oidc_tenant.realm.jwks_hits

    # Once the keys expire, concurrent requests share one refresh.
    sleep_until(started + MAX_AGE + 0.1)

    def send(_: int) -> int:
        return oidc_tenant.offers(expiring_server, oidc_tenant.token(key)).status_code

    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(send, range(12)))
    assert statuses == [200] * 12
    assert oidc_tenant.realm.jwks_hits == 2, oidc_tenant.realm.jwks_hits


# What names the error in the warning, per way of failing.
ERROR_NAMES = {
    "jwks-500": "500 Internal Server Error",
    "discovery-503": "503 Service Unavailable",
    "jwks-garbage": "JSONDecodeError",
    "jwks-refused": "ConnectError",
}


def _failed_refresh_keeps_keys_for_the_grace_time(
    server: Server, tenant: OidcTenant, mode: str
) -> None:
    key = SigningKey.rsa()
    tenant.realm.publish(key)
    assert tenant.offers(server, tenant.token(key)).status_code == 200
    fetched = time.monotonic()  # the keys expire before fetched + MAX_AGE
    tenant.realm.mode = mode

    # Expired, the refresh fails: the last good keys still verify, within the grace time.
    sleep_until(fetched + MAX_AGE + 0.1)
    response = tenant.offers(server, tenant.token(key))
    assert response.status_code == 200, (mode, response.text)
    assert tenant.realm.discovery_hits == 2, (mode, tenant.realm.discovery_hits)
    # More requests within the refresh interval do not ask the failing provider again.
    for _ in range(5):
        assert tenant.offers(server, tenant.token(key)).status_code == 200, mode
    assert tenant.realm.discovery_hits == 2, (mode, tenant.realm.discovery_hits)
    # One warning for the one failed refresh, naming the issuer and the error.
    deadline = time.monotonic() + 5
    while not (warnings := warnings_naming(server, tenant.issuer)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(warnings) == 1, (mode, warnings)
    assert ERROR_NAMES[mode] in warnings[0]["error"], (mode, warnings[0])
    assert ERROR_NAMES[mode] in warnings[0]["message"], (mode, warnings[0])

    # Past the grace time, the next failed refresh leaves the issuer's tokens refused with 503.
    sleep_until(fetched + MAX_AGE + GRACE + 0.1)
    response = tenant.offers(server, tenant.token(key))
    assert response.status_code == 503, (mode, response.text)
    assert response.json()["error"] is True
    assert response.json()["code"] == "SERVICE_UNAVAILABLE"
    assert tenant.realm.discovery_hits == 3, (mode, tenant.realm.discovery_hits)

    # The provider back, the next refresh the interval allows brings the service back.
    tenant.realm.mode = "ok"
    time.sleep(INTERVAL + 0.1)
    response = tenant.offers(server, tenant.token(key))
    assert response.status_code == 200, (mode, response.text)


def test_a_failed_refresh_keeps_the_last_good_keys_for_the_grace_time(
    expiring_server: Server, database: Database, idp: IdentityProvider, http: httpx.Client
) -> None:
    # One realm per way of failing, run side by side so the waits overlap.
    tenants = {mode: new_oidc_tenant(database, idp, http) for mode in DOWN_MODES}
    with ThreadPoolExecutor(max_workers=len(tenants)) as pool:
        runs = [
            pool.submit(_failed_refresh_keeps_keys_for_the_grace_time, expiring_server, t, m)
            for m, t in tenants.items()
        ]
        for run in runs:
            run.result()


def test_only_the_configured_tenants_realms_are_ever_fetched(
    oidc_server: Server, oidc_tenant: OidcTenant, idp: IdentityProvider
) -> None:
    """A token can name any realm under the provider; only realms of tenants the database
    holds are fetched, and a realm name outside Keycloak's characters (`..`, `?`, `#`, `%`)
    never reaches a URL."""
    key = SigningKey.rsa()
    oidc_tenant.realm.publish(key)
    for _ in range(50):
        made_up = f"made-up-{uuid.uuid4().hex[:12]}"
        idp.realm(made_up).publish(key)  # the provider would answer for it
        token = key.sign(oidc_tenant.claims(iss=idp.issuer(made_up)))
        assert_authentication_failure(oidc_tenant.offers(oidc_server, token))
    for hostile in ("..", "../..", "a?b=c", "a#b", "%2e%2e", "a/../b", ".hidden", "a b", "é"):
        token = key.sign(oidc_tenant.claims(iss=f"{idp.base}/realms/{hostile}"))
        response = oidc_tenant.offers(oidc_server, token)
        assert_authentication_failure(response)
        assert response.json()["message"] == "Token issuer is not trusted"
    with idp.lock:
        asked = list(idp.requests)
    assert [path for path in asked if "made-up-" in path] == []
    assert not any(
        path.startswith("/.well-known") or ".." in path or "%2e" in path.lower() for path in asked
    ), asked
    # The configured tenant's realm is fetched and its tokens work.
    assert oidc_tenant.offers(oidc_server, oidc_tenant.token(key)).status_code == 200
    with idp.lock:
        assert any(p.startswith(f"/realms/{oidc_tenant.realm.name}/") for p in idp.requests)


@pytest.fixture(scope="module")
def default_interval_server(
    database: Database, idp: IdentityProvider, oidc_data_dir: Path
) -> Iterator[Server]:
    """A server with keys trusted 2 s and the default refresh interval (30 s)."""
    server = start_server(
        database_url=database.url,
        data_dir=oidc_data_dir,
        env={"TICKETING_OIDC_BASE_URL": idp.base, "TICKETING_JWKS_MAX_AGE": "2"},
    )
    yield server
    stop_server(server)


def test_max_age_bounds_a_keys_trust_whatever_the_refresh_interval(
    default_interval_server: Server, oidc_tenant: OidcTenant
) -> None:
    # TICKETING_JWKS_MAX_AGE=2 with the default 30 s refresh interval: the interval limits
    # refetches for unknown kids, not how long a key is trusted.
    _dropped_key_is_refused_after(default_interval_server, oidc_tenant, 2.0)


def test_a_shorter_cache_control_bounds_a_keys_trust_whatever_the_refresh_interval(
    rate_limited_server: Server, oidc_tenant: OidcTenant
) -> None:
    # Refresh interval 60 s, TICKETING_JWKS_MAX_AGE the default; the provider says 1 s.
    oidc_tenant.realm.cache_control = "max-age=1"
    _dropped_key_is_refused_after(rate_limited_server, oidc_tenant, 1.0)
