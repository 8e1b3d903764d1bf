"""Sign-in through the identity provider: OpenID Connect authorization code flow with PKCE.

The provider's endpoints come from the realm's discovery document. The code is exchanged
for tokens with the PKCE verifier (the portal is a public client: no client secret), and the
access token is then verified like any bearer token the API receives.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass
from urllib.parse import quote, urlencode

import httpx

from ticketing.auth.dev_issuer import issuer_for
from ticketing.kit.errors import AuthenticationFailure, ServiceUnavailable

DISCOVERY_TTL = 300.0


@dataclass(frozen=True)
class ProviderEndpoints:
    authorization_endpoint: str
    token_endpoint: str


@dataclass(frozen=True)
class SignInStart:
    """Where to send the browser, and what to remember until it comes back."""

    url: str
    state: str
    verifier: str


class OidcClient:
    """The portal as an OAuth public client of the realms under one provider base URL."""

    def __init__(self, *, base_url: str, client_id: str, timeout: float) -> None:
        self._base_url = base_url
        self._client_id = client_id
        self._timeout = timeout
        self._endpoints: dict[str, tuple[float, ProviderEndpoints]] = {}

    async def endpoints(self, realm: str) -> ProviderEndpoints:
        """The realm's authorization and token endpoints, from discovery (cached briefly)."""
        cached = self._endpoints.get(realm)
        if cached is not None and time.monotonic() - cached[0] < DISCOVERY_TTL:
            return cached[1]
        issuer = issuer_for(self._base_url, quote(realm, safe=""))
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as client:
                response = await client.get(f"{issuer}/.well-known/openid-configuration")
                response.raise_for_status()
                document = response.json()
            found = ProviderEndpoints(
                authorization_endpoint=str(document["authorization_endpoint"]),
                token_endpoint=str(document["token_endpoint"]),
            )
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            raise ServiceUnavailable("The identity provider cannot be reached") from exc
        self._endpoints[realm] = (time.monotonic(), found)
        return found

    async def start(self, realm: str, redirect_uri: str) -> SignInStart:
        """The authorization request for a new sign-in."""
        endpoints = await self.endpoints(realm)
        state = secrets.token_urlsafe(24)
        verifier = secrets.token_urlsafe(48)
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self._client_id,
                "redirect_uri": redirect_uri,
                "scope": "openid",
                "state": state,
                "code_challenge": pkce_challenge(verifier),
                "code_challenge_method": "S256",
            }
        )
        separator = "&" if "?" in endpoints.authorization_endpoint else "?"
        return SignInStart(f"{endpoints.authorization_endpoint}{separator}{query}", state, verifier)

    async def exchange(self, realm: str, *, code: str, verifier: str, redirect_uri: str) -> str:
        """Trades an authorization code for the access token (not yet verified)."""
        endpoints = await self.endpoints(realm)
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as client:
                response = await client.post(
                    endpoints.token_endpoint,
                    data={
                        "grant_type": "authorization_code",
                        "code": code,
                        "redirect_uri": redirect_uri,
                        "client_id": self._client_id,
                        "code_verifier": verifier,
                    },
                    headers={"accept": "application/json"},
                )
        except httpx.HTTPError as exc:
            raise ServiceUnavailable("The identity provider cannot be reached") from exc
        if response.status_code >= 500:
            raise ServiceUnavailable("The identity provider cannot be reached")
        try:
            token = response.json().get("access_token") if response.status_code == 200 else None
        except ValueError:
            token = None
        if not isinstance(token, str) or not token:
            raise AuthenticationFailure("The identity provider did not accept the sign-in")
        return token


def pkce_challenge(verifier: str) -> str:
    """The S256 code challenge of a PKCE verifier (RFC 7636)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
