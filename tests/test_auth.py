"""Authentication and authorization with the development issuer (SPEC section 2).

Covers the create endpoint and the two discovery endpoints, the order of checks, the identity
claims echoed into the ticket, tokens minted by `ticketing token`, and tenant isolation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support import DEV_ISSUER, Tenant, seed_body
from ticketing.auth.dev_issuer import DevKey, issuer_for, mint_token
from ticketing.auth.tokens import TOKEN_SEGMENTS

PERMISSION_FAILURE = {
    "error": True,
    "code": "USER_PERMISSION_FAILURE",
    "message": "You do not have the required permissions to create ticket",
    "status": 401,
}

CATALOG = {"type": "template", "module": "ticketing"}


# --- helpers ---------------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims_for(tenant: Tenant, **overrides: Any) -> dict[str, Any]:
    """The claims the dev issuer would put in a token for this tenant."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer_for(DEV_ISSUER, tenant.realm),
        "sub": str(uuid.uuid4()),
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "scope": "openid tickets:read tickets:write",
        "realm_access": {"roles": ["ticket_agent"]},
        "tenant_id": tenant.id,
        "preferred_username": "user@example.com",
        "email": "user@example.com",
        "given_name": "Jane",
        "family_name": "Doe",
    }
    claims.update(overrides)
    return claims


def unsigned_token(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    head = b64url(json.dumps(header).encode())
    body = b64url(json.dumps(claims).encode())
    return f"{head}.{body}.{b64url(signature)}"


def hmac_token(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    head = b64url(json.dumps(header).encode())
    body = b64url(json.dumps(claims).encode())
    signature = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(signature)}"


def signed_by(tenant: Tenant, key: DevKey) -> str:
    """A token with the dev issuer's claims for this tenant, signed by `key`."""
    return mint_token(
        key,
        issuer_base=DEV_ISSUER,
        tenant_id=tenant.id,
        realm=tenant.realm,
        username="user@example.com",
        roles=["ticket_agent"],
    )


def dev_signed(tenant: Tenant, claims: dict[str, Any]) -> str:
    """Exactly these claims, signed by the dev issuer's key."""
    return jwt.encode(
        claims, tenant.key.private_key, algorithm="RS256", headers={"kid": tenant.key.kid}
    )


def public_pem(key: DevKey, fmt: serialization.PublicFormat) -> bytes:
    return key.private_key.public_key().public_bytes(serialization.Encoding.PEM, fmt)


def call(tenant: Tenant, endpoint: str, headers: dict[str, str]) -> httpx.Response:
    """Calls one of the three endpoints under test with exactly these headers."""
    if endpoint == "create":
        return tenant.create(headers=headers)
    path = {"ticket-type": "/ticket-type", "offers": "/tenant/sc/offers"}[endpoint]
    return tenant.client.get(
        f"{tenant.base_url}/api/v2/ticketing{path}", params=CATALOG, headers=headers
    )


def without(headers: dict[str, str], *names: str) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k not in names}


def assert_authentication_failure(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["error"] is True
    assert body["code"] == "AUTHENTICATION_FAILURE"
    assert body["status"] == 401
    assert response.headers.get("www-authenticate", "").startswith("Bearer"), response.headers


def assert_tenant_not_found(response: httpx.Response) -> None:
    assert response.status_code == 404, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["error"] is True
    assert body["message"] == "Tenant not found"
    assert body["status"] == 404


def assert_html_not_found(response: httpx.Response) -> None:
    assert response.status_code == 404, response.text
    assert response.headers["content-type"].startswith("text/html")


ENDPOINTS = ["create", "ticket-type", "offers"]


# --- check 1: the token ----------------------------------------------------------------------

# Each entry builds the Authorization header value (or None for no header) for a tenant.
BAD_AUTHORIZATION: dict[str, Callable[[Tenant], str | None]] = {
    "no-header": lambda t: None,
    "empty-header": lambda t: "",
    "basic-scheme": lambda t: "Basic " + base64.b64encode(b"user:password").decode(),
    "token-scheme": lambda t: "Token " + t.token(),
    "raw-jwt-no-scheme": lambda t: t.token(),
    "bearer-without-token": lambda t: "Bearer",
    "garbage": lambda t: "Bearer not-a-jwt",
    "garbage-three-parts": lambda t: "Bearer aaaa.bbbb.cccc",
    "other-key-same-kid": lambda t: (
        "Bearer "
        + signed_by(
            t,
            DevKey(
                private_key=rsa.generate_private_key(public_exponent=65537, key_size=2048),
                kid=t.key.kid,
            ),
        )
    ),
    "unknown-kid": lambda t: (
        "Bearer " + signed_by(t, DevKey(private_key=t.key.private_key, kid="some-other-kid"))
    ),
    "tampered-claims": lambda t: "Bearer " + _tampered(t),
    "alg-none": lambda t: (
        "Bearer " + unsigned_token({"alg": "none", "typ": "JWT", "kid": t.key.kid}, claims_for(t))
    ),
    "alg-None": lambda t: (
        "Bearer " + unsigned_token({"alg": "None", "typ": "JWT", "kid": t.key.kid}, claims_for(t))
    ),
    "alg-none-with-signature": lambda t: (
        "Bearer " + unsigned_token({"alg": "none", "kid": t.key.kid}, claims_for(t), b"x" * 32)
    ),
    "hs256-public-pem-spki": lambda t: (
        "Bearer "
        + hmac_token(
            {"alg": "HS256", "typ": "JWT", "kid": t.key.kid},
            claims_for(t),
            public_pem(t.key, serialization.PublicFormat.SubjectPublicKeyInfo),
        )
    ),
    "hs256-public-pem-pkcs1": lambda t: (
        "Bearer "
        + hmac_token(
            {"alg": "HS256", "typ": "JWT", "kid": t.key.kid},
            claims_for(t),
            public_pem(t.key, serialization.PublicFormat.PKCS1),
        )
    ),
    "expired": lambda t: "Bearer " + t.token(ttl=-120),
    "expired-long-ago": lambda t: (
        "Bearer " + t.token(extra={"iat": 1_000_000, "nbf": 1_000_000, "exp": 1_000_600})
    ),
    "nbf-in-future": lambda t: "Bearer " + t.token(extra={"nbf": int(time.time()) + 600}),
    "other-issuer-base": lambda t: "Bearer " + t.token(issuer_base="http://evil.example:8000"),
    "issuer-without-realms": lambda t: (
        "Bearer " + t.token(extra={"iss": f"{DEV_ISSUER}/{t.realm}"})
    ),
    "issuer-realm-subpath": lambda t: (
        "Bearer " + t.token(extra={"iss": f"{DEV_ISSUER}/realms/{t.realm}/extra"})
    ),
    "issuer-empty-realm": lambda t: "Bearer " + t.token(extra={"iss": f"{DEV_ISSUER}/realms/"}),
    "issuer-missing": lambda t: (
        "Bearer " + dev_signed(t, {k: v for k, v in claims_for(t).items() if k != "iss"})
    ),
}


def _respelled(token: str, segment: int, spelling: Callable[[str], str]) -> str:
    """The token with one of its three segments spelled differently."""
    parts = token.split(".")
    parts[segment] = spelling(parts[segment])
    return ".".join(parts)


def _padded(segment: str) -> str:
    """The segment with the `=` padding base64 would give it."""
    return segment + "=" * (-len(segment) % 4)


# A genuine token with characters outside base64url, or padding no encoder writes, in one of
# its segments: refused as a malformed token, never read leniently.
BAD_AUTHORIZATION.update(
    {
        f"{name}-in-{part}": (
            lambda t, segment=segment, spelling=spelling: (
                "Bearer " + _respelled(t.token(), segment, spelling)
            )
        )
        for segment, part in enumerate(("header", "payload", "signature"))
        for name, spelling in {
            "bang": lambda s: s[:8] + "!" + s[9:],
            "plus": lambda s: s[:8] + "+" + s[9:],
            "slash": lambda s: s[:8] + "/" + s[9:],
            "space": lambda s: s[:8] + " " + s[9:],
            "three-pads": lambda s: _padded(s) + "===" if len(s) % 4 == 0 else s + "===",
            "pad-in-middle": lambda s: s[:8] + "=" + s[8:],
            "one-extra-character": lambda s: s + "A" if len(s) % 4 == 0 else s + "AAAAA",
        }.items()
    }
)


def _tampered(tenant: Tenant) -> str:
    """A genuine token whose payload was swapped for one granting tenant_admin."""
    head, _, signature = tenant.token().split(".")
    claims = claims_for(tenant, realm_access={"roles": ["tenant_admin"]})
    body = b64url(json.dumps(claims).encode())
    return f"{head}.{body}.{signature}"


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("case", sorted(BAD_AUTHORIZATION))
def test_bad_token_is_authentication_failure(tenant: Tenant, endpoint: str, case: str) -> None:
    authorization = BAD_AUTHORIZATION[case](tenant)
    headers = without(tenant.headers(), "authorization")
    if authorization is not None:
        headers["authorization"] = authorization
    response = call(tenant, endpoint, headers)
    assert_authentication_failure(response)
    assert tenant.ticket_count() == 0


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_valid_dev_token_is_accepted(tenant: Tenant, endpoint: str) -> None:
    response = call(tenant, endpoint, tenant.headers())
    assert response.status_code == 200, response.text
    assert response.json()["success"] is True


def test_token_with_padded_segments_is_accepted(tenant: Tenant) -> None:
    # Some issuers keep base64's `=` padding on the signature (the signed header and payload
    # are signed as they are spelled); a segment padded to a multiple of four is read.
    token = tenant.token()
    padded = _respelled(token, 2, _padded)
    assert padded != token
    response = tenant.create(token=padded)
    assert response.status_code == 200, response.text


def test_token_segments_are_read_as_the_jwt_library_reads_them() -> None:
    # The verifier reads segments with its own faster check; it refuses and accepts exactly
    # what PyJWT's own reading does, with the same messages.
    def reading(read: Callable[[bytes, str], bytes], segment: bytes) -> tuple[str, Any]:
        try:
            return "read", read(segment, "payload")
        except jwt.DecodeError as exc:
            return "refused", str(exc)

    rng = random.Random(20261130)
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/!. \n\x00\xff"
    segments = [
        b"",
        b"=",
        b"==",
        b"A",
        b"AA",
        b"AA=",
        b"AA==",
        b"AA===",
        b"AAA=",
        b"AB==",
        b"AAAAA",
    ]
    for _ in range(20_000):
        if rng.random() < 0.5:
            raw = bytes(rng.randrange(256) for _ in range(rng.randint(0, 12)))
            segment = base64.urlsafe_b64encode(raw)
            if rng.random() < 0.5:
                segment = segment.rstrip(b"=")
        else:
            segment = bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        segments.append(segment)
    for segment in segments:
        assert reading(TOKEN_SEGMENTS, segment) == reading(
            jwt.PyJWS._decode_base64url_segment, segment
        ), segment


def test_expiry_within_default_leeway_is_accepted(tenant: Tenant) -> None:
    # exp 10 s ago and nbf 10 s ahead are inside the default 30 s clock skew.
    now = int(time.time())
    token = tenant.token(extra={"exp": now - 10, "nbf": now + 10})
    response = tenant.create(token=token)
    assert response.status_code == 200, response.text


# --- check 2: x-tenantid and realmname -------------------------------------------------------


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize(
    "change",
    [
        {"drop": "x-tenantid"},
        {"x-tenantid": ""},
        {"x-tenantid": "not-a-uuid"},
        {"x-tenantid": "820188ff-2036-4924-b80f"},
        {"drop": "realmname"},
        {"realmname": ""},
    ],
    ids=["no-tenant", "empty-tenant", "garbage-tenant", "short-uuid", "no-realm", "empty-realm"],
)
def test_missing_or_malformed_headers_are_400(
    tenant: Tenant, endpoint: str, change: dict[str, str]
) -> None:
    headers = tenant.headers()
    for name, value in change.items():
        if name == "drop":
            headers.pop(value)
        else:
            headers[name] = value
    response = call(tenant, endpoint, headers)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] is True
    assert body["status"] == 400
    assert body["code"] == "INPUT_VALIDATION_FAILURE"
    # Create answers every 400 with the seed's one message; the discovery calls name headers.
    assert body["message"] == (
        "There occured an error during ticket data validation"
        if endpoint == "create"
        else "Missing or malformed request headers"
    )
    assert set(body["validationResult"]["reason"]) == {
        "x-tenantid" if "x-tenantid" in str(change) else "realmname"
    }
    assert tenant.ticket_count() == 0


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_realmname_other_than_token_realm_is_401(tenant: Tenant, endpoint: str) -> None:
    response = call(tenant, endpoint, tenant.headers(realmname="some-other-realm"))
    assert response.status_code == 401, response.text
    assert response.json()["error"] is True
    assert tenant.ticket_count() == 0


def test_realmname_of_another_tenant_is_401(make_tenant: Callable[..., Tenant]) -> None:
    a, b = make_tenant(), make_tenant()
    response = a.create(headers=a.headers(realmname=b.realm))
    assert response.status_code == 401, response.text


# --- check 3: the tenant ---------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_unknown_tenant_is_404(tenant: Tenant, endpoint: str) -> None:
    unknown = str(uuid.uuid4())
    # The token claims the unknown tenant too, so only existence is in question.
    token = tenant.token(tenant_id=unknown)
    response = call(tenant, endpoint, tenant.headers(token, **{"x-tenantid": unknown}))
    assert_tenant_not_found(response)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_header_tenant_not_token_tenant_is_404(
    make_tenant: Callable[..., Tenant], endpoint: str
) -> None:
    a = make_tenant()
    b = make_tenant(realm=a.realm)  # same realm: only the tenant_id claim differs
    response = call(a, endpoint, a.headers(**{"x-tenantid": b.id}))
    assert_tenant_not_found(response)
    assert b.ticket_count() == 0


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_token_without_tenant_claim_is_404(tenant: Tenant, endpoint: str) -> None:
    token = tenant.token(extra={"tenant_id": None})
    response = call(tenant, endpoint, tenant.headers(token))
    assert_tenant_not_found(response)


def test_uppercase_tenant_header_names_the_same_tenant(tenant: Tenant) -> None:
    # The header is a UUID; its spelling does not change which tenant it names.
    response = tenant.create(headers=tenant.headers(**{"x-tenantid": tenant.id.upper()}))
    assert response.status_code == 200, response.text
    assert response.json()["ticket"]["tenant_id"] == tenant.id


# --- check 4: scope and role -----------------------------------------------------------------


@pytest.mark.parametrize(
    "claims",
    [
        {"scope": "tickets:read"},
        {"scope": "openid tickets:read"},
        {"scope": "openid"},
        {"scope": ""},
        {"scope": "tickets:admin"},
        {"scope": "tickets:writer"},
        {"roles": ["offline_access"]},
        {"roles": ["offline_access", "uma_authorization", "default-roles-realm"]},
        {"roles": []},
    ],
    ids=[
        "read-scope",
        "openid-read-scope",
        "openid-only",
        "empty-scope",
        "admin-scope",
        "lookalike-scope",
        "offline-access-role",
        "service-account-roles",
        "no-roles",
    ],
)
def test_missing_scope_or_role_is_permission_failure(
    tenant: Tenant, claims: dict[str, Any]
) -> None:
    response = tenant.create(token=tenant.token(**claims))
    assert response.status_code == 401, response.text
    assert response.json() == PERMISSION_FAILURE
    assert tenant.ticket_count() == 0


def test_service_account_with_write_scope_but_no_role_is_permission_failure(
    tenant: Tenant,
) -> None:
    # The seed's own example: the scope is there, the realm role is not.
    token = tenant.token(
        username="service-account-ticketing",
        roles=["offline_access", "uma_authorization"],
        scope="profile email tickets:write",
    )
    response = tenant.create(token=token)
    assert response.status_code == 401, response.text
    assert response.json() == PERMISSION_FAILURE


def test_scope_claim_missing_is_permission_failure(tenant: Tenant) -> None:
    response = tenant.create(token=tenant.token(extra={"scope": None}))
    assert response.status_code == 401, response.text
    assert response.json() == PERMISSION_FAILURE


def test_realm_access_missing_is_permission_failure(tenant: Tenant) -> None:
    response = tenant.create(token=tenant.token(extra={"realm_access": None}))
    assert response.status_code == 401, response.text
    assert response.json() == PERMISSION_FAILURE


@pytest.mark.parametrize("role", ["ticket_agent", "ticket_user", "tenant_admin"])
def test_each_write_role_may_create(tenant: Tenant, role: str) -> None:
    response = tenant.create(token=tenant.token(roles=["offline_access", role]))
    assert response.status_code == 200, response.text


def test_write_scope_alone_is_enough_scope(tenant: Tenant) -> None:
    response = tenant.create(token=tenant.token(scope="tickets:write"))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("endpoint", ["ticket-type", "offers"])
@pytest.mark.parametrize("scope", ["tickets:read", "tickets:write"])
def test_discovery_accepts_read_or_write_scope(tenant: Tenant, endpoint: str, scope: str) -> None:
    response = call(tenant, endpoint, tenant.headers(tenant.token(scope=scope)))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("endpoint", ["ticket-type", "offers"])
@pytest.mark.parametrize(
    "claims",
    [{"scope": "openid"}, {"roles": ["offline_access"]}],
    ids=["no-ticket-scope", "no-ticket-role"],
)
def test_discovery_without_scope_or_role_is_permission_failure(
    tenant: Tenant, endpoint: str, claims: dict[str, Any]
) -> None:
    response = call(tenant, endpoint, tenant.headers(tenant.token(**claims)))
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["error"] is True
    assert body["code"] == "USER_PERMISSION_FAILURE"
    assert body["status"] == 401


# --- checks 5 and 6: team, item type and their create_roles ----------------------------------


@pytest.mark.parametrize(
    ("team", "item_type"),
    [("no-such-team", "16910"), ("james", "99999"), ("no-such-team", "99999")],
)
def test_unknown_team_or_item_type_is_html_404(tenant: Tenant, team: str, item_type: str) -> None:
    response = tenant.create(team=team, item_type=item_type)
    assert_html_not_found(response)
    assert tenant.ticket_count() == 0


def test_team_create_roles_forbid_other_roles(tenant: Tenant) -> None:
    response = tenant.create(team="finance", token=tenant.token(roles=["ticket_user"]))
    assert response.status_code == 403, response.text
    assert tenant.ticket_count() == 0


def test_team_create_roles_allow_listed_role(tenant: Tenant) -> None:
    response = tenant.create(team="finance", token=tenant.token(roles=["ticket_agent"]))
    assert response.status_code == 200, response.text
    assert response.json()["ticket"]["lookup_props"] == {"teamId": "finance", "itemTypeId": "16910"}


def admin_only_body() -> dict[str, Any]:
    return seed_body(ticketBody={"offerId": "23632"}, summary="Admin thing")


@pytest.mark.parametrize("role", ["ticket_agent", "ticket_user"])
def test_item_type_create_roles_forbid_other_roles(tenant: Tenant, role: str) -> None:
    response = tenant.create(admin_only_body(), item_type="30000", token=tenant.token(roles=[role]))
    assert response.status_code == 403, response.text
    assert tenant.ticket_count() == 0


def test_item_type_create_roles_allow_tenant_admin(tenant: Tenant) -> None:
    response = tenant.create(
        admin_only_body(), item_type="30000", token=tenant.token(roles=["tenant_admin"])
    )
    assert response.status_code == 200, response.text
    ticket = response.json()["ticket"]
    assert ticket["lookup_props"] == {"teamId": "james", "itemTypeId": "30000"}
    assert ticket["data"]["offerId"] == "23632"
    assert tenant.ticket_count() == 1


def test_finance_and_admin_type_need_both_roles(tenant: Tenant) -> None:
    # finance wants ticket_agent, 30000 wants tenant_admin: each alone is not enough.
    for roles, expected in [
        (["ticket_agent"], 403),
        (["tenant_admin"], 403),
        (["ticket_agent", "tenant_admin"], 200),
    ]:
        response = tenant.create(
            admin_only_body(), team="finance", item_type="30000", token=tenant.token(roles=roles)
        )
        assert response.status_code == expected, (roles, response.text)


# --- the order of checks ---------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_bad_token_beats_unknown_tenant(tenant: Tenant, endpoint: str) -> None:
    headers = tenant.headers("garbage", **{"x-tenantid": str(uuid.uuid4())})
    assert_authentication_failure(call(tenant, endpoint, headers))


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_expired_token_beats_missing_headers(tenant: Tenant, endpoint: str) -> None:
    headers = without(tenant.headers(tenant.token(ttl=-3600)), "x-tenantid", "realmname")
    assert_authentication_failure(call(tenant, endpoint, headers))


def test_no_token_beats_everything(tenant: Tenant) -> None:
    response = tenant.create(
        team="no-such-team",
        headers={"content-type": "application/json", "x-tenantid": "nope"},
        catalog_type=None,
        module=None,
        content=b"{not json",
    )
    assert_authentication_failure(response)


def test_realm_mismatch_beats_unknown_tenant(tenant: Tenant) -> None:
    headers = tenant.headers(realmname="other-realm", **{"x-tenantid": str(uuid.uuid4())})
    response = tenant.create(headers=headers)
    assert response.status_code == 401, response.text


def test_malformed_tenant_header_beats_permission_failure(tenant: Tenant) -> None:
    token = tenant.token(scope="tickets:read", roles=["offline_access"])
    response = tenant.create(headers=tenant.headers(token, **{"x-tenantid": "not-a-uuid"}))
    assert response.status_code == 400, response.text


def test_unknown_tenant_beats_permission_failure(tenant: Tenant) -> None:
    unknown = str(uuid.uuid4())
    token = tenant.token(tenant_id=unknown, roles=["offline_access"])
    response = tenant.create(headers=tenant.headers(token, **{"x-tenantid": unknown}))
    assert_tenant_not_found(response)


def test_foreign_tenant_beats_unknown_team(make_tenant: Callable[..., Tenant]) -> None:
    a = make_tenant()
    b = make_tenant(realm=a.realm)
    response = a.create(team="no-such-team", headers=a.headers(**{"x-tenantid": b.id}))
    assert_tenant_not_found(response)


def test_permission_failure_beats_unknown_team(tenant: Tenant) -> None:
    response = tenant.create(team="no-such-team", token=tenant.token(scope="tickets:read"))
    assert response.status_code == 401, response.text
    assert response.json() == PERMISSION_FAILURE


def test_permission_failure_beats_invalid_body(tenant: Tenant) -> None:
    response = tenant.create(
        {"summary": 5}, token=tenant.token(roles=["offline_access"]), catalog_type="bogus"
    )
    assert response.status_code == 401, response.text
    assert response.json() == PERMISSION_FAILURE


@pytest.mark.parametrize(
    "bad", ["missing-keys", "malformed-json", "bad-query"], ids=lambda s: str(s)
)
def test_unknown_team_beats_invalid_body(tenant: Tenant, bad: str) -> None:
    kwargs: dict[str, Any] = {"team": "no-such-team"}
    if bad == "missing-keys":
        kwargs["body"] = {"summary": "only this"}
    elif bad == "malformed-json":
        kwargs["content"] = b"{not json"
    else:
        kwargs["catalog_type"] = "bogus"
        kwargs["module"] = None
    assert_html_not_found(tenant.create(**kwargs))


def test_unknown_item_type_beats_forbidden_team(tenant: Tenant) -> None:
    response = tenant.create(
        team="finance", item_type="99999", token=tenant.token(roles=["ticket_user"])
    )
    assert_html_not_found(response)


@pytest.mark.parametrize(
    ("team", "item_type", "roles"),
    [("finance", "16910", ["ticket_user"]), ("james", "30000", ["ticket_agent"])],
    ids=["team-roles", "item-type-roles"],
)
def test_forbidden_beats_invalid_body(
    tenant: Tenant, team: str, item_type: str, roles: list[str]
) -> None:
    response = tenant.create(
        {"source": 1, "ticketBody": {"offerId": 7}},
        team=team,
        item_type=item_type,
        token=tenant.token(roles=roles),
    )
    assert response.status_code == 403, response.text


def test_forbidden_beats_malformed_json(tenant: Tenant) -> None:
    response = tenant.create(
        team="finance", token=tenant.token(roles=["ticket_user"]), content=b"{not json"
    )
    assert response.status_code == 403, response.text


def test_allowed_caller_with_invalid_body_gets_validation_failure(tenant: Tenant) -> None:
    # The last check, once every earlier one passes.
    response = tenant.create({"summary": "only this"})
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "INPUT_VALIDATION_FAILURE"


# --- identity claims -------------------------------------------------------------------------


def test_identity_claims_are_echoed(tenant: Tenant) -> None:
    token = tenant.token(
        username="jdoe",
        email="jane.doe@example.org",
        first_name="Janet",
        last_name="Doerr",
    )
    response = tenant.create(token=token)
    assert response.status_code == 200, response.text
    data = response.json()["ticket"]["data"]
    assert data["submittedBy"] == "jane.doe@example.org"
    assert data["lastUpdatedBy"] == {"firstName": "Janet", "lastName": "Doerr", "username": "jdoe"}


def test_identity_claims_are_stored(tenant: Tenant) -> None:
    token = tenant.token(username="kim", email="kim@example.net", first_name="Kim", last_name="Lo")
    created = tenant.create(token=token)
    assert created.status_code == 200, created.text
    rows = tenant.db.fetch(
        "SELECT submitted_by FROM tickets WHERE tenant_id = :t", t=uuid.UUID(tenant.id)
    )
    assert rows == [("kim@example.net",)]


# --- tokens minted by the CLI ----------------------------------------------------------------


def cli_token(data_dir: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKETING_")}
    env.update({"TICKETING_DATA_DIR": str(data_dir), "TICKETING_DEV_ISSUER_URL": DEV_ISSUER})
    result = subprocess.run(
        [sys.executable, "-m", "ticketing", "token", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    token = result.stdout.strip()
    assert token.count(".") == 2, result.stdout
    return token


def test_cli_token_is_accepted(tenant: Tenant, data_dir: Path) -> None:
    token = cli_token(
        data_dir,
        *("--tenant", tenant.id, "--realm", tenant.realm, "--user", "cli-user"),
        *("--email", "cli@example.com", "--first-name", "Cli", "--last-name", "User"),
        *("--roles", "ticket_agent"),
    )
    response = tenant.create(token=token)
    assert response.status_code == 200, response.text
    data = response.json()["ticket"]["data"]
    assert data["submittedBy"] == "cli@example.com"
    assert data["lastUpdatedBy"] == {"firstName": "Cli", "lastName": "User", "username": "cli-user"}
    for path in ("/ticket-type", "/tenant/sc/offers"):
        assert tenant.get(path, token=token).status_code == 200


def test_cli_token_without_write_role_is_permission_failure(tenant: Tenant, data_dir: Path) -> None:
    token = cli_token(
        data_dir,
        *("--tenant", tenant.id, "--realm", tenant.realm, "--user", "svc"),
        *("--roles", "offline_access"),
    )
    response = tenant.create(token=token)
    assert response.status_code == 401, response.text
    assert response.json() == PERMISSION_FAILURE


def test_cli_token_from_another_data_dir_is_rejected(tenant: Tenant, tmp_path: Path) -> None:
    # Another data folder means another dev signing key: same kid scheme, different key.
    token = cli_token(
        tmp_path,
        *("--tenant", tenant.id, "--realm", tenant.realm, "--user", "u"),
        *("--roles", "ticket_agent"),
    )
    assert_authentication_failure(tenant.create(token=token))


# --- tenant isolation ------------------------------------------------------------------------


def test_cross_tenant_isolation(make_tenant: Callable[..., Tenant]) -> None:
    a = make_tenant()
    b_config_offers = [
        {"id": "23629", "name": "New laptop", "item_type": "16910"},
        {"id": "88888", "name": "Only in B", "item_type": "16910"},
    ]
    b_types = [
        {
            "id": "16910",
            "name": "B hardware",
            "fields": [
                {"id": str(uuid.uuid4()), "name": "x", "label": "X", "type": "text"},
            ],
        }
    ]
    b = make_tenant(offers=b_config_offers, ticket_types=b_types)

    # B files a ticket.
    created = b.create(seed_body(ticketBody={"offerId": "88888"}))
    assert created.status_code == 200, created.text
    assert b.ticket_count() == 1

    # A's token cannot create in B, whichever realm header it sends.
    response = a.create(headers=a.headers(**{"x-tenantid": b.id}))
    assert_tenant_not_found(response)
    response = a.create(headers=a.headers(**{"x-tenantid": b.id, "realmname": b.realm}))
    assert response.status_code == 401, response.text
    # A token claiming B's tenant but issued in A's realm is not B's either.
    token = a.token(tenant_id=b.id)
    response = a.create(headers=a.headers(token, **{"x-tenantid": b.id}))
    assert_tenant_not_found(response)
    assert b.ticket_count() == 1

    # A's discovery shows A's catalog only.
    types = a.get("/ticket-type").json()["data"]["value"]
    assert {t["name"] for t in types} == {"Hardware request", "Everything", "Admin only"}
    offers = a.get("/tenant/sc/offers").json()["data"]["offers"]
    assert "88888" not in {o["id"] for o in offers}
    b_offers = b.get("/tenant/sc/offers").json()["data"]["offers"]
    assert {o["id"] for o in b_offers} == {"23629", "88888"}

    # A's own numbering is untouched by B's ticket.
    assert a.ticket_count() == 0
    first = a.create()
    assert first.status_code == 200, first.text
    assert first.json()["objectId"] == "CTC-0001"
    assert first.json()["ticket"]["tenant_id"] == a.id
    assert b.ticket_count() == 1
