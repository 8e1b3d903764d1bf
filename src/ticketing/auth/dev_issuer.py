"""The development issuer: a signing key kept in the data folder, and a token minter."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from ticketing.kit.secrets import write_once

WRITE_ROLES = ("ticket_agent", "ticket_user", "tenant_admin")
DEFAULT_SCOPE = "openid tickets:read tickets:write"


@dataclass(frozen=True)
class DevKey:
    """The development issuer's RSA key pair and its key id."""

    private_key: rsa.RSAPrivateKey
    kid: str

    @property
    def public_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(self.private_key.public_key()))
        return {**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}


def load_or_create_dev_key(path: Path) -> DevKey:
    """Reads the PEM key at `path`, creating it (mode 0600) the first time."""
    if not path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_once(path, pem)
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, rsa.RSAPrivateKey):
        raise ValueError(f"{path} does not hold an RSA private key")
    der = loaded.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return DevKey(private_key=loaded, kid="dev-" + hashlib.sha256(der).hexdigest()[:16])


def issuer_for(base_url: str, realm: str) -> str:
    """The Keycloak-style issuer of a realm."""
    return f"{base_url.rstrip('/')}/realms/{realm}"


def mint_token(
    key: DevKey,
    *,
    issuer_base: str,
    tenant_id: str,
    realm: str,
    username: str,
    email: str | None = None,
    first_name: str | None = None,
    last_name: str | None = None,
    roles: list[str] | None = None,
    scope: str = DEFAULT_SCOPE,
    teams: list[str] | None = None,
    ttl: int = 3600,
    extra: dict[str, Any] | None = None,
) -> str:
    """Signs a token with the claims the service reads."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer_for(issuer_base, realm),
        "sub": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{realm}/{username}")),
        "aud": "account",
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
        "jti": str(uuid.uuid4()),
        "typ": "Bearer",
        "azp": "ticketing-cli",
        "scope": scope,
        "realm_access": {"roles": list(roles if roles is not None else ["ticket_agent"])},
        "tenant_id": tenant_id,
        "teams": list(teams or []),
        "preferred_username": username,
        "email": email or username,
        "given_name": first_name or "",
        "family_name": last_name or "",
    }
    if extra:
        claims.update(extra)
    return jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.kid})
