"""The portal's session: a signed cookie holding the bearer token and the CSRF token.

The cookie is signed with the portal secret, so it cannot be forged or altered; the token in
it is verified on every request by the same verifier as the API's bearer tokens, so a session
ends when its token expires (the cookie's Max-Age ends with it too). Every form carries the
CSRF token, and every POST must send back the one in the cookie.

A session started through the identity provider has a second cookie, sent to the sign-out
address only: the realm and the ID token, the `id_token_hint` of the provider's logout. It is
apart so that the session cookie, sent with every page, stays small and both stay under the
browsers' 4 KB a cookie.
"""

from __future__ import annotations

import hmac
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

SESSION_COOKIE = "ticketing_portal"
# The OIDC sign-in in flight: state and PKCE verifier, for ten minutes.
SIGN_IN_COOKIE = "ticketing_portal_oidc"
SIGN_IN_MAX_AGE = 600
COOKIE_PATH = "/portal"
# The realm and ID token of a session started at the identity provider, for its logout.
LOGOUT_COOKIE = "ticketing_portal_logout"
LOGOUT_COOKIE_PATH = "/portal/sign-out"
# What a cookie may hold (browsers keep 4096 bytes of name, value and attributes).
MAX_COOKIE_VALUE = 3800


@dataclass(frozen=True)
class PortalSession:
    """What the session cookie holds: the CSRF token, and once signed in the bearer token
    and when it expires (Unix time)."""

    csrf: str
    token: str | None = None
    expires: int | None = None

    @classmethod
    def anonymous(cls) -> PortalSession:
        return cls(csrf=secrets.token_urlsafe(32))

    @classmethod
    def signed_in(cls, token: str, expires: int) -> PortalSession:
        # A new CSRF token at sign-in: one planted before it is worth nothing after.
        return cls(csrf=secrets.token_urlsafe(32), token=token, expires=expires)

    def csrf_matches(self, sent: str | None) -> bool:
        return bool(sent) and hmac.compare_digest(self.csrf.encode(), (sent or "").encode())


class SessionCodec:
    """Signs and reads the portal's cookies."""

    def __init__(self, secret: str) -> None:
        self._session = URLSafeSerializer(secret, salt="ticketing.portal.session")
        self._sign_in = URLSafeTimedSerializer(secret, salt="ticketing.portal.oidc")
        self._logout = URLSafeSerializer(secret, salt="ticketing.portal.logout")

    def read(self, request: Request) -> PortalSession | None:
        raw = request.cookies.get(SESSION_COOKIE)
        if not raw:
            return None
        try:
            data = self._session.loads(raw)
        except BadSignature:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("c"), str):
            return None
        token, expires = data.get("t"), data.get("e")
        if not isinstance(token, str) or not isinstance(expires, int):
            return PortalSession(csrf=data["c"])
        return PortalSession(csrf=data["c"], token=token, expires=expires)

    def write(self, request: Request, response: Response, session: PortalSession) -> None:
        value: dict[str, Any] = {"c": session.csrf}
        max_age: int | None = None
        if session.token is not None and session.expires is not None:
            value.update(t=session.token, e=session.expires)
            max_age = max(0, session.expires - int(time.time()))
        response.set_cookie(
            SESSION_COOKIE,
            self._session.dumps(value),
            max_age=max_age,
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

    def write_logout(
        self,
        request: Request,
        response: Response,
        *,
        realm: str,
        id_token: str | None,
        expires: int,
    ) -> None:
        """Keeps what the provider's logout needs until the session ends. An ID token too
        large for a cookie is left out: the logout then names the client instead."""
        value = self._logout.dumps({"r": realm, "i": id_token or ""})
        if len(value) > MAX_COOKIE_VALUE:
            value = self._logout.dumps({"r": realm, "i": ""})
        response.set_cookie(
            LOGOUT_COOKIE,
            value,
            max_age=max(0, expires - int(time.time())),
            path=LOGOUT_COOKIE_PATH,
            httponly=True,
            samesite="lax",
            secure=is_https(request),
        )

    def read_logout(self, request: Request) -> tuple[str, str | None] | None:
        """The realm and ID token of the session's provider logout, if it has one."""
        raw = request.cookies.get(LOGOUT_COOKIE)
        if not raw:
            return None
        try:
            data = self._logout.loads(raw)
        except BadSignature:
            return None
        if not isinstance(data, dict):
            return None
        realm, id_token = data.get("r"), data.get("i")
        if not isinstance(realm, str) or not realm or not isinstance(id_token, str):
            return None
        return realm, id_token or None


COOKIE_PATHS = {
    SESSION_COOKIE: COOKIE_PATH,
    SIGN_IN_COOKIE: COOKIE_PATH,
    LOGOUT_COOKIE: LOGOUT_COOKIE_PATH,
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


def load_or_create_secret(path: Path) -> str:
    """Reads the portal secret at `path`, creating it (mode 0600) the first time."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48))
        # Processes racing here each write a secret; the first link wins for all of them.
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    secret = path.read_text().strip()
    if len(secret) < 32:
        raise ValueError(f"{path} holds no usable portal secret")
    return secret
