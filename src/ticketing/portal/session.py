"""The portal's cookies: the session cookie (a session id and the CSRF token) and the sign-in
in flight at the identity provider.

The session cookie holds the id of a session recorded server-side (ticketing.portal.sessions)
and the tenant it belongs to, plus the CSRF token; never a token of the identity provider:
a cookie saved before sign-out is worth nothing after it. Its value is lowercase hex and an
HMAC-SHA256 of it keyed by the service secret, so it cannot be forged or altered. Every form
carries the CSRF token, and every POST must send back the one in the cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

from ticketing.kit.secrets import derive_key

SESSION_COOKIE = "ticketing_portal"
# The OIDC sign-in in flight: state and PKCE verifier, for ten minutes.
SIGN_IN_COOKIE = "ticketing_portal_oidc"
SIGN_IN_MAX_AGE = 600
COOKIE_PATH = "/portal"
# Before sessions were recorded server-side, the provider's logout took the ID token from a
# cookie of its own; one a browser still holds is deleted with the others.
OLD_LOGOUT_COOKIE = "ticketing_portal_logout"
OLD_LOGOUT_COOKIE_PATH = "/portal/sign-out"

_HEX = re.compile(r"[0-9a-f]+")


@dataclass(frozen=True)
class SessionCookie:
    """What the session cookie holds: the CSRF token, and once signed in the session's id
    and its tenant."""

    csrf: str
    session_id: str | None = None
    tenant_id: uuid.UUID | None = None

    @classmethod
    def anonymous(cls) -> SessionCookie:
        return cls(csrf=secrets.token_hex(32))

    @classmethod
    def signed_in(cls, session_id: str, tenant_id: uuid.UUID) -> SessionCookie:
        # A new CSRF token at sign-in: one planted before it is worth nothing after.
        return cls(csrf=secrets.token_hex(32), session_id=session_id, tenant_id=tenant_id)

    def csrf_matches(self, sent: str | None) -> bool:
        return bool(sent) and hmac.compare_digest(self.csrf.encode(), (sent or "").encode())


class SessionCodec:
    """Signs and reads the portal's cookies."""

    def __init__(self, secret: str) -> None:
        self._key = derive_key(secret, "ticketing.portal.session-cookie")
        self._sign_in = URLSafeTimedSerializer(secret, salt="ticketing.portal.oidc")

    def _mac(self, value: str) -> str:
        return hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()

    def dumps(self, cookie: SessionCookie) -> str:
        """The cookie's value: `csrf[.tenant.session].mac`, all hex."""
        parts = [cookie.csrf]
        if cookie.session_id is not None and cookie.tenant_id is not None:
            parts += [cookie.tenant_id.hex, cookie.session_id]
        value = ".".join(parts)
        return f"{value}.{self._mac(value)}"

    def loads(self, raw: str) -> SessionCookie | None:
        value, _, mac = raw.rpartition(".")
        if not value or not hmac.compare_digest(mac.encode(), self._mac(value).encode()):
            return None
        parts = value.split(".")
        if not all(_HEX.fullmatch(part) for part in parts):
            return None
        if len(parts) == 1:
            return SessionCookie(csrf=parts[0])
        if len(parts) == 3:
            return SessionCookie(
                csrf=parts[0], session_id=parts[2], tenant_id=uuid.UUID(hex=parts[1])
            )
        return None

    def read(self, request: Request) -> SessionCookie | None:
        raw = request.cookies.get(SESSION_COOKIE)
        if not raw or len(raw) > 400:
            return None
        try:
            return self.loads(raw)
        except ValueError:
            return None

    def write(
        self,
        request: Request,
        response: Response,
        cookie: SessionCookie,
        *,
        max_age: int | None = None,
    ) -> None:
        """Sets the cookie; `max_age` (seconds) for a signed-in session, which the browser
        then forgets when its token expires."""
        response.set_cookie(
            SESSION_COOKIE,
            self.dumps(cookie),
            max_age=None if max_age is None else max(0, max_age),
            path=COOKIE_PATH,
            httponly=True,
            samesite="lax",
            secure=is_https(request),
        )

    def write_sign_in(self, request: Request, response: Response, flow: dict[str, str]) -> None:
        response.set_cookie(
            SIGN_IN_COOKIE,
            self._sign_in.dumps(flow),
            max_age=SIGN_IN_MAX_AGE,
            path=COOKIE_PATH,
            httponly=True,
            # Lax: the identity provider's redirect back is a top-level GET, which carries it.
            samesite="lax",
            secure=is_https(request),
        )

    def read_sign_in(self, request: Request) -> dict[str, str] | None:
        raw = request.cookies.get(SIGN_IN_COOKIE)
        if not raw:
            return None
        try:
            data = self._sign_in.loads(raw, max_age=SIGN_IN_MAX_AGE)
        except BadSignature:
            return None
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            return None
        return data


COOKIE_PATHS = {
    SESSION_COOKIE: COOKIE_PATH,
    SIGN_IN_COOKIE: COOKIE_PATH,
    OLD_LOGOUT_COOKIE: OLD_LOGOUT_COOKIE_PATH,
}


def clear_cookies(request: Request, response: Response) -> None:
    for name, path in COOKIE_PATHS.items():
        if name in request.cookies:
            response.delete_cookie(
                name, path=path, httponly=True, samesite="lax", secure=is_https(request)
            )


def is_https(request: Request) -> bool:
    """Whether the browser reached us over https, directly or through a proxy that says so."""
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"
