"""Verifies bearer tokens against the trusted issuer's keys and reads their claims."""

from __future__ import annotations

import asyncio
import binascii
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol

import httpx
import jwt
from jwt.utils import base64url_decode, base64url_encode

from ticketing.auth.dev_issuer import DevKey, issuer_for
from ticketing.kit.errors import AuthenticationFailure, ServiceUnavailable

# Asymmetric algorithms only: `none` and HMAC (which would accept a public key as a
# shared secret) are never accepted.
ALLOWED_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384")

_SEGMENT = re.compile(rb"[A-Za-z0-9_-]*")


class _JWS(jwt.PyJWS):
    """PyJWS with its reading of a token's segments done in C: the library checks that a
    segment holds only base64url characters with a Python generator, one step per
    character, which was about 50 us of every reading of a 1 KB token (two readings and the
    signature check made a fresh token 180 us; the RSA check itself is about 25 us). The
    rules are the library's: at most two `=` of padding and only where the length is a
    multiple of four, no other character outside the alphabet, no impossible length, and
    the canonical encoding of what was decoded."""

    @staticmethod
    def _decode_base64url_segment(segment: bytes, name: str) -> bytes:
        stripped = segment.rstrip(b"=")
        padding = len(segment) - len(stripped)
        if (
            padding > 2
            or (padding and len(segment) % 4)
            or len(stripped) % 4 == 1
            or _SEGMENT.fullmatch(stripped) is None
        ):
            raise jwt.DecodeError(f"Invalid {name} padding")
        try:
            decoded = base64url_decode(stripped)
        except (TypeError, binascii.Error) as err:
            raise jwt.DecodeError(f"Invalid {name} padding") from err
        if base64url_encode(decoded) != stripped:
            raise jwt.DecodeError(f"Invalid {name} padding")
        return decoded


class _JWT(jwt.PyJWT):
    """PyJWT reading tokens through `_JWS`."""

    def __init__(self) -> None:
        super().__init__()
        self._jws = _JWS(options=self._get_sig_options())


_TOKENS = _JWT()
# How a token's segment is read: for tests, which compare it with the library's own.
TOKEN_SEGMENTS = _JWS._decode_base64url_segment


@dataclass(frozen=True)
class Principal:
    """Who is calling, as the verified token says."""

    realm: str
    subject: str
    tenant_id: str | None
    roles: frozenset[str]
    scopes: frozenset[str]
    teams: tuple[str, ...]
    username: str
    email: str | None
    first_name: str
    last_name: str

    @cached_property
    def tenant_uuid(self) -> uuid.UUID | None:
        """The `tenant_id` claim as a UUID (None when it is absent or not a UUID)."""
        try:
            return uuid.UUID(self.tenant_id) if self.tenant_id else None
        except ValueError:
            return None

    @property
    def submitter(self) -> str:
        """What `submittedBy` records: the email when the token has one."""
        return self.email or self.username

    @classmethod
    def from_claims(cls, realm: str, claims: dict[str, Any]) -> Principal:
        realm_access = claims.get("realm_access")
        roles = realm_access.get("roles") if isinstance(realm_access, dict) else None
        scope = claims.get("scope")
        teams = claims.get("teams")
        email = claims.get("email") if isinstance(claims.get("email"), str) else None
        username = claims.get("preferred_username")
        if not isinstance(username, str) or not username:
            username = email or str(claims.get("sub", ""))
        tenant_id = claims.get("tenant_id")
        return cls(
            realm=realm,
            subject=str(claims.get("sub", "")),
            tenant_id=tenant_id if isinstance(tenant_id, str) else None,
            roles=frozenset(r for r in roles or () if isinstance(r, str)),
            scopes=frozenset(scope.split()) if isinstance(scope, str) else frozenset(),
            teams=tuple(t for t in teams or () if isinstance(t, str))
            if isinstance(teams, list)
            else (),
            username=username,
            email=email or None,
            first_name=_str(claims.get("given_name")),
            last_name=_str(claims.get("family_name")),
        )


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


class KeySource(Protocol):
    """Finds the public key for a realm's issuer and a key id."""

    async def key_for(self, issuer: str, kid: str | None) -> jwt.PyJWK | None: ...


class DevKeySource:
    """The development issuer's own key, trusted for every realm under its base URL."""

    def __init__(self, key: DevKey) -> None:
        self._jwk = jwt.PyJWK(key.public_jwk)
        self._kid = key.kid

    async def key_for(self, issuer: str, kid: str | None) -> jwt.PyJWK | None:
        return self._jwk if kid == self._kid else None


MAX_ISSUERS = 1000

log = logging.getLogger("ticketing.auth")


def cache_lifetime(cache_control: str | None, max_age: float) -> float:
    """Seconds a JWKS answered with this `Cache-Control` may be used: `max_age`, or less.

    The most restrictive directive wins (RFC 9111 4.2.1): each `max-age` that is shorter,
    and 0 for `no-store`, an unqualified `no-cache` and a `max-age` that is not a number of
    seconds (a cache is to treat invalid freshness as stale). A provider can only shorten
    the time a key is trusted, never lengthen it. `s-maxage` is for shared caches and is
    not ours; directives are compared case-insensitively and quoted values may hold commas.
    """
    lifetime = max_age
    for directive in _DIRECTIVE.findall(cache_control or ""):
        name, has_value, value = directive.partition("=")
        name, value = name.strip().lower(), value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if name == "no-store" or (name == "no-cache" and not has_value):
            lifetime = 0.0
        elif name == "max-age":
            lifetime = min(lifetime, float(value) if value.isascii() and value.isdigit() else 0.0)
    return lifetime


# One element of an HTTP list: anything up to a comma that is not inside a quoted string.
_DIRECTIVE = re.compile(r'(?:[^,"]|"(?:[^"\\]|\\.)*")+')


# Seconds fetched keys are used at least, whatever the provider's Cache-Control says.
MIN_KEY_LIFETIME = 1.0


class _ProviderFailure(Exception):
    """The provider did not answer with a usable JWKS."""


@dataclass
class _IssuerKeys:
    keys: dict[str, jwt.PyJWK] = field(default_factory=dict)
    # The keys above came from a successful fetch and are fresh until then.
    expires_at: float = float("-inf")
    # When the last fetch, successful or not, ended.
    attempted_at: float = float("-inf")
    # The last fetch's error, when it failed: the keys above are older than it.
    failure: str | None = None
    fetches: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class OidcKeySource:
    """Keys published by an OIDC provider: discovery -> jwks_uri, cached per issuer.

    An issuer's keys are fresh for `max_age` seconds (less when the JWKS's Cache-Control
    says so); the first verification after that refetches them, so a key the provider has
    withdrawn is refused from then on. An unknown kid refetches too, so that rotation needs
    no restart, at most once per `refresh_interval` seconds, so bogus kids cannot hammer the
    provider; keys stay fresh at least a second (MIN_KEY_LIFETIME), so load cannot either;
    requests that arrive during a fetch wait for it and share its answer.

    When a refresh fails (the provider unreachable, an error status, not a JWKS) the last
    good keys keep verifying until `stale_grace` seconds after they expired, and a warning
    names the issuer and the error; after that the issuer's tokens are 503, as with no keys.
    """

    def __init__(
        self,
        *,
        refresh_interval: float,
        timeout: float,
        max_age: float,
        stale_grace: float,
    ) -> None:
        self._refresh_interval = refresh_interval
        self._timeout = timeout
        self._max_age = max_age
        self._stale_grace = stale_grace
        self._issuers: dict[str, _IssuerKeys] = {}

    async def key_for(self, issuer: str, kid: str | None) -> jwt.PyJWK | None:
        entry = self._issuers.get(issuer)
        if entry is None:
            if len(self._issuers) >= MAX_ISSUERS:
                # Made-up realms must not grow the cache without bound: forget the oldest.
                del self._issuers[next(iter(self._issuers))]
            entry = self._issuers[issuer] = _IssuerKeys()
        now = time.monotonic()
        if now < entry.expires_at or (entry.lock.locked() and self._in_grace(entry, now)):
            # Fresh keys; or a refresh of a failing provider's keys is under way, and this
            # request need not wait for it while their grace time lasts.
            key = _pick(entry.keys, kid)
            if key is not None:
                return key
        fetches = entry.fetches
        async with entry.lock:
            # A fetch that ended while this request waited answers for it too.
            now = time.monotonic()
            # Expired keys are fetched again as soon as they expire: a key is never trusted
            # past `max_age`. An unknown kid, or another try at a provider that failed, waits
            # for the refresh interval since the last fetch.
            if entry.fetches == fetches and (
                (entry.failure is None and now >= entry.expires_at)
                or now - entry.attempted_at >= self._refresh_interval
            ):
                await self._refresh(issuer, entry)
            if entry.failure is None:
                return _pick(entry.keys, kid)
            # The provider failed the last time it was asked.
            key = _pick(entry.keys, kid) if self._in_grace(entry, time.monotonic()) else None
            if key is None:
                raise ServiceUnavailable("The identity provider cannot be reached")
            return key

    def _in_grace(self, entry: _IssuerKeys, now: float) -> bool:
        return entry.failure is not None and now < entry.expires_at + self._stale_grace

    async def _refresh(self, issuer: str, entry: _IssuerKeys) -> None:
        try:
            keys, lifetime = await self._fetch(issuer)
        except _ProviderFailure as exc:
            entry.attempted_at = now = time.monotonic()
            entry.failure = str(exc)
            if entry.expires_at == float("-inf"):
                outcome = "none of its keys are known: its tokens are refused (503)"
            elif self._in_grace(entry, now):
                left = entry.expires_at + self._stale_grace - now
                outcome = f"its last good keys are kept for another {left:.0f} s"
            else:
                outcome = "its last good keys are past their grace time: its tokens are refused"
            log.warning(
                "JWKS refresh for %s failed (%s); %s",
                issuer,
                entry.failure,
                outcome,
                extra={"issuer": issuer, "error": entry.failure},
            )
        else:
            entry.attempted_at = now = time.monotonic()
            entry.keys, entry.failure = keys, None
            # At least a second, so that a provider that says `no-store` is not asked on
            # every request.
            entry.expires_at = now + max(lifetime, MIN_KEY_LIFETIME)
        finally:
            entry.fetches += 1

    async def _fetch(self, issuer: str) -> tuple[dict[str, jwt.PyJWK], float]:
        """The issuer's keys and how many seconds they may be used."""
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as client:
                discovery = await client.get(f"{issuer}/.well-known/openid-configuration")
                if discovery.status_code in (400, 404, 410):
                    # The provider has no such realm: the token's issuer is unknown.
                    return {}, self._max_age
                discovery.raise_for_status()
                jwks_uri = discovery.json()["jwks_uri"]
                response = await client.get(jwks_uri)
                response.raise_for_status()
                jwks = response.json()
                if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
                    raise ValueError("the answer is not a JWKS")
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            raise _ProviderFailure(f"{type(exc).__name__}: {exc}") from exc
        keys: dict[str, jwt.PyJWK] = {}
        for data in jwks["keys"]:
            if not isinstance(data, dict) or data.get("use", "sig") != "sig":
                continue
            try:
                jwk = jwt.PyJWK(data)
            except jwt.PyJWTError:
                continue  # a key type or algorithm this service does not verify with
            keys[str(data.get("kid", ""))] = jwk
        return keys, cache_lifetime(response.headers.get("cache-control"), self._max_age)


def _pick(keys: dict[str, jwt.PyJWK], kid: str | None) -> jwt.PyJWK | None:
    if kid is not None:
        return keys.get(kid)
    # A provider with a single key may omit kid.
    return next(iter(keys.values())) if len(keys) == 1 else None


@dataclass(frozen=True)
class _Verified:
    principal: Principal
    issuer: str
    kid: str | None
    key: jwt.PyJWK
    not_before: float
    expires: float


# A realm name as Keycloak allows it: letters, digits, `.`, `_` and `-`, not starting with a
# dot. Anything else in a token's issuer is refused before it can reach a URL.
REALM_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}", re.ASCII)


class RealmDirectory:
    """The realms of the configured tenants, read from the database and cached.

    Only their issuers' keys are ever fetched from the identity provider: a token naming any
    other realm is refused without a request leaving the service. The list is read again
    when a realm it lacks shows up, so a tenant loaded a moment ago is known at once; one
    read at a time, and requests that arrive during a read wait for the next one that starts
    after them, so made-up realms cost one small query at a time, never a query each.
    """

    def __init__(self, load: Callable[[], Awaitable[set[str]]]) -> None:
        self._load = load
        self._realms: frozenset[str] = frozenset()
        self._started = 0  # reads started
        self._lock = asyncio.Lock()

    async def knows(self, realm: str) -> bool:
        if realm in self._realms:
            return True
        # A read that starts after this point answers for this request.
        wanted = self._started + 1
        async with self._lock:
            if self._started < wanted:
                self._started += 1
                self._realms = frozenset(await self._load())
        return realm in self._realms


class TokenVerifier:
    """Checks signature, algorithm, issuer, exp and nbf; returns the caller's Principal.

    A token verified once is remembered (bounded) until it expires, as long as its issuer
    still publishes the same key: integrations send the same token many times, and the
    signature check is the most expensive part of a request.
    """

    CACHE_SIZE = 4096

    def __init__(
        self,
        *,
        issuer_base: str,
        keys: KeySource,
        leeway: int = 30,
        audience: str | None = None,
        realms: RealmDirectory | None = None,
    ) -> None:
        self._realms_prefix = issuer_for(issuer_base, "")
        # None: every realm under the base is trusted (the development issuer: no fetches).
        self._realms = realms
        self._keys = keys
        self._leeway = leeway
        self._audience = audience
        self._verified: dict[str, _Verified] = {}

    async def verify(self, authorization: str | None) -> Principal:
        token = _bearer(authorization)
        hit = self._verified.get(token)
        if hit is not None:
            now = time.time()
            current_key = await self._keys.key_for(hit.issuer, hit.kid)
            if hit.not_before <= now <= hit.expires and current_key is hit.key:
                return hit.principal
            del self._verified[token]
        verified = await self._verify(token)
        if len(self._verified) >= self.CACHE_SIZE:
            del self._verified[next(iter(self._verified))]
        self._verified[token] = verified
        return verified.principal

    async def _verify(self, token: str) -> _Verified:
        try:
            # Header and claims from one reading of the token, to find its issuer's key.
            parts = _TOKENS.decode_complete(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise AuthenticationFailure("Malformed bearer token") from exc
        header: dict[str, Any] = parts["header"]
        unverified: dict[str, Any] = parts["payload"]
        alg = header.get("alg")
        if alg not in ALLOWED_ALGORITHMS:
            raise AuthenticationFailure("Token signing algorithm is not accepted")
        issuer = unverified.get("iss")
        realm = self._realm_of(issuer)
        if (
            realm is None
            or not isinstance(issuer, str)
            or (self._realms is not None and not await self._realms.knows(realm))
        ):
            raise AuthenticationFailure("Token issuer is not trusted")
        kid = header.get("kid")
        key = await self._keys.key_for(issuer, kid if isinstance(kid, str) else None)
        if key is None:
            raise AuthenticationFailure("Token signing key is unknown")
        options: dict[str, Any] = {"require": ["exp", "iss"], "verify_aud": bool(self._audience)}
        try:
            claims: dict[str, Any] = _TOKENS.decode(
                token,
                key=key.key,
                algorithms=[alg],
                issuer=issuer,
                audience=self._audience,
                leeway=self._leeway,
                options=options,  # type: ignore[arg-type]
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthenticationFailure("Token has expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise AuthenticationFailure("Token is not valid yet") from exc
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise AuthenticationFailure("Token signature or claims are invalid") from exc
        nbf = claims.get("nbf")
        return _Verified(
            principal=Principal.from_claims(realm, claims),
            issuer=issuer,
            kid=kid if isinstance(kid, str) else None,
            key=key,
            not_before=(float(nbf) if isinstance(nbf, int | float) else 0.0) - self._leeway,
            expires=float(claims["exp"]) + self._leeway,
        )

    def _realm_of(self, issuer: Any) -> str | None:
        if not isinstance(issuer, str) or not issuer.startswith(self._realms_prefix):
            return None
        realm = issuer[len(self._realms_prefix) :]
        return realm if REALM_NAME.fullmatch(realm) else None


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise AuthenticationFailure("Missing bearer token")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationFailure("Authorization header must be 'Bearer <token>'")
    return token
