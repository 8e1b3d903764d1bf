"""Sign-in through the identity provider: OpenID Connect authorization code flow with PKCE,
and RP-initiated logout.

The provider's endpoints come from the realm's discovery document. The authorization request
asks for the scopes the portal needs (TICKETING_PORTAL_SCOPES): a provider that follows the
standards grants no more than is asked for (Keycloak adds its default client scopes, others do
not). The code is exchanged for tokens with the PKCE verifier (the portal is a public client:
no client secret), and the access token is then verified like any bearer token the API
receives. The ID token is kept only as the `id_token_hint` of the logout request.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from ticketing.auth.dev_issuer import issuer_for
from ticketing.kit.errors import AuthenticationFailure, ServiceUnavailable

DISCOVERY_TTL = 300.0
# How much of the provider's own error description a sign-in failure page repeats.
MAX_PROVIDER_TEXT = 200


@dataclass(frozen=True)
class ProviderEndpoints:
    authorization_endpoint: str
    token_endpoint: str
    # RP-initiated logout; None when the provider does not offer it.
    end_session_endpoint: str | None = None


@dataclass(frozen=True)
class SignInStart:
    """Where to send the browser, and what to remember until it comes back."""

    url: str
    state: str
    verifier: str


@dataclass(frozen=True)
class Tokens:
    """What the token endpoint answered: the access token (not yet verified), the ID token
    when there is one, and the scope the provider says it granted."""

    access_token: str
    id_token: str | None
    scope: str | None


class OidcClient:
    """The portal as an OAuth public client of the realms under one provider base URL."""

    def __init__(self, *, base_url: str, client_id: str, scopes: str, timeout: float) -> None:
        self._base_url = base_url
        self._timeout = timeout
        self.client_id = client_id
        self.scopes = " ".join(scopes.split())
        self._endpoints: dict[str, tuple[float, ProviderEndpoints]] = {}

    def issuer(self, realm: str) -> str:
        # Realm names take Keycloak's characters only (the tenant file checks them); escaped
        # all the same, so none can change the URL.
        return issuer_for(self._base_url, quote(realm, safe=""))

    async def endpoints(self, realm: str) -> ProviderEndpoints:
        """The realm's endpoints, from discovery (cached briefly)."""
        cached = self._endpoints.get(realm)
        if cached is not None and time.monotonic() - cached[0] < DISCOVERY_TTL:
            return cached[1]
        issuer = self.issuer(realm)
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as client:
                response = await client.get(f"{issuer}/.well-known/openid-configuration")
                response.raise_for_status()
                document = response.json()
            end_session = document.get("end_session_endpoint")
            found = ProviderEndpoints(
                authorization_endpoint=str(document["authorization_endpoint"]),
                token_endpoint=str(document["token_endpoint"]),
                end_session_endpoint=end_session if isinstance(end_session, str) else None,
            )
        except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ServiceUnavailable("The identity provider cannot be reached") from exc
        self._endpoints[realm] = (time.monotonic(), found)
        return found

    async def start(self, realm: str, redirect_uri: str) -> SignInStart:
        """The authorization request for a new sign-in."""
        endpoints = await self.endpoints(realm)
        state = secrets.token_urlsafe(24)
        verifier = secrets.token_urlsafe(48)
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": redirect_uri,
            "scope": self.scopes,
            "state": state,
            "code_challenge": pkce_challenge(verifier),
            "code_challenge_method": "S256",
        }
        return SignInStart(with_query(endpoints.authorization_endpoint, query), state, verifier)

    async def exchange(self, realm: str, *, code: str, verifier: str, redirect_uri: str) -> Tokens:
        """Trades an authorization code for the tokens (not yet verified)."""
        endpoints = await self.endpoints(realm)
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as client:
                response = await client.post(
                    endpoints.token_endpoint,
                    data={
                        "grant_type": "authorization_code",
                        "code": code,
                        "redirect_uri": redirect_uri,
                        "client_id": self.client_id,
                        "code_verifier": verifier,
                    },
                    headers={"accept": "application/json"},
                )
        except httpx.HTTPError as exc:
            raise ServiceUnavailable("The identity provider cannot be reached") from exc
        if response.status_code >= 500:
            raise ServiceUnavailable("The identity provider cannot be reached")
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = {}
        token = body.get("access_token") if response.status_code == 200 else None
        if not isinstance(token, str) or not token:
            raise AuthenticationFailure(
                "The identity provider refused the code exchange"
                + provider_error(body.get("error"), body.get("error_description"))
            )
        id_token = body.get("id_token")
        scope = body.get("scope")
        return Tokens(
            access_token=token,
            id_token=id_token if isinstance(id_token, str) and id_token else None,
            scope=scope if isinstance(scope, str) else None,
        )

    async def logout_url(
        self,
        realm: str,
        *,
        id_token: str | None,
        post_logout_redirect_uri: str,
        state: str | None = None,
    ) -> str | None:
        """The realm's RP-initiated logout request (OpenID Connect RP-Initiated Logout 1.0),
        or None when the provider offers none. The provider sends `state` back with the
        browser to `post_logout_redirect_uri`."""
        endpoints = await self.endpoints(realm)
        if endpoints.end_session_endpoint is None:
            return None
        query = {"client_id": self.client_id, "post_logout_redirect_uri": post_logout_redirect_uri}
        if id_token:
            query["id_token_hint"] = id_token
        if state:
            query["state"] = state
        return with_query(endpoints.end_session_endpoint, query)


def provider_error(error: Any, description: Any) -> str:
    """`: code (description)` from an OAuth error answer, shortened, or nothing."""
    if not isinstance(error, str) or not error:
        return ""
    text = f": {error[:MAX_PROVIDER_TEXT]}"
    if isinstance(description, str) and description:
        text += f" ({description[:MAX_PROVIDER_TEXT]})"
    return text


def with_query(url: str, query: dict[str, str]) -> str:
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}{urlencode(query)}"


def pkce_challenge(verifier: str) -> str:
    """The S256 code challenge of a PKCE verifier (RFC 7636)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
