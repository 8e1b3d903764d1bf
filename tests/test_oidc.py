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

    def publish(self, *keys: SigningKey) -> None:
        self.keys = list(keys)


class IdentityProvider:
    """A Keycloak-shaped discovery + JWKS server on 127.0.0.1, in a background thread."""

    def __init__(self) -> None:
        self.realms: dict[str, Realm] = {}
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
                return self.reply(request, 200, json.dumps(jwks).encode())
        self.reply(request, 404, b'{"error": "Realm does not exist"}')

    @staticmethod
    def reply(
        request: BaseHTTPRequestHandler,
        status: int,
        body: bytes,
        content_type: str = "application/json",
    ) -> None:
        request.send_response(status)
        request.send_header("Content-Type", content_type)
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
    database: Database, idp: IdentityProvider, data_dir: Path, interval: str
) -> Server:
    return start_server(
        database_url=database.url,
        data_dir=data_dir,
        env={"TICKETING_OIDC_BASE_URL": idp.base, "TICKETING_JWKS_REFRESH_INTERVAL": interval},
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


@pytest.fixture
def oidc_tenant(database: Database, idp: IdentityProvider, http: httpx.Client) -> OidcTenant:
    """A fresh tenant in a fresh realm that publishes nothing yet."""
    config = new_tenant_config()
    database.load({"tenants": [config]})
    realm = idp.realm(config["realm"])
    return OidcTenant(config["id"], realm, idp.issuer(realm.name), http)


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
