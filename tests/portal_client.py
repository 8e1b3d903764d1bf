"""A browser-like HTTP client for the portal: cookies, CSRF tokens, and a small HTML reader."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt

from tests.support import Tenant
from ticketing.kit.db import create_sessionmaker, transaction
from ticketing.kit.time import utcnow
from ticketing.portal import sessions
from ticketing.portal.schemas import DEMO_USERS
from ticketing.portal.session import COOKIE_PATH, SESSION_COOKIE, SessionCodec, SessionCookie

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    text: str = ""


class _Collector(HTMLParser):
    """Collects every element with its attributes, and the text of labels, options,
    paragraphs and headings."""

    TEXT_TAGS = (
        "a",
        "label",
        "option",
        "p",
        "h1",
        "h2",
        "h3",
        "legend",
        "textarea",
        "li",
        "td",
        "dd",
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self._open: list[Element] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v if v is not None else "" for k, v in attrs})
        self.elements.append(element)
        if tag in self.TEXT_TAGS:
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i].tag == tag:
                del self._open[i]
                break

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element.text += data


def parse(html: str) -> list[Element]:
    collector = _Collector()
    collector.feed(html)
    return collector.elements


def find(elements: list[Element], tag: str, **attrs: str) -> list[Element]:
    return [
        e
        for e in elements
        if e.tag == tag and all(e.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())
    ]


@dataclass
class PortalClient:
    """One person's browser session against the portal; `data_dir` is the server's (its
    portal secret signs the session cookies `sign_in` makes)."""

    base_url: str
    data_dir: Path | None = None
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))
    last_html: str = ""

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        response = self.client.get(f"{self.base_url}{path}", **kwargs)
        self._remember(response)
        return response

    def post(
        self, path: str, data: dict[str, Any], *, csrf: bool = True, **kw: Any
    ) -> httpx.Response:
        form = dict(data)
        if csrf and "csrf_token" not in form:
            form["csrf_token"] = self.csrf()
        response = self.client.post(f"{self.base_url}{path}", data=form, **kw)
        self._remember(response)
        return response

    def _remember(self, response: httpx.Response) -> None:
        if response.headers.get("content-type", "").startswith("text/html"):
            self.last_html = response.text

    def csrf(self) -> str:
        match = CSRF.search(self.last_html)
        assert match, "no form on the last page"
        return match.group(1)

    def sign_in(self, tenant: Tenant, user: str = "requester") -> None:
        """Signs in as a demo user of any tenant: the session the portal's sign-in would
        record, with the token it would mint, and its cookie (the one-click sign-in itself
        signs in to the demo tenant only). Leaves the catalog page as the last page."""
        assert self.data_dir is not None, "PortalClient(data_dir=...) signs in"
        value = session_cookie(tenant, user, self.data_dir)
        host = urlsplit(self.base_url).hostname or ""
        self.client.cookies.set(SESSION_COOKIE, value, domain=host, path=COOKIE_PATH)
        page = self.get("/portal/catalog")
        assert page.status_code == 200, page.text

    def sign_in_with_one_click(self, user: str = "requester") -> httpx.Response:
        """The development sign-in (demo tenant) as one of its demo users."""
        page = self.get("/portal/sign-in")
        assert page.status_code == 200, page.text
        response = self.post("/portal/sign-in", {"user": user})
        assert response.status_code == 303, response.text
        assert response.headers["location"] == "/portal/"
        return response

    def close(self) -> None:
        self.client.close()


# The demo users of the development sign-in, as the tokens of the API calls in tests.
PERSONAS = {
    "requester": {
        "username": "user@example.com",
        "email": "user@example.com",
        "first_name": "Jane",
        "last_name": "Doe",
        "roles": ["ticket_user"],
    },
    "agent": {
        "username": "agent@example.com",
        "email": "agent@example.com",
        "first_name": "Alex",
        "last_name": "Agent",
        "roles": ["ticket_agent"],
    },
}


def persona_token(tenant: Tenant, who: str) -> str:
    return tenant.token(**PERSONAS[who])


def session_cookie(tenant: Tenant, who: str, data_dir: Path, ttl: int = 8 * 3600) -> str:
    """The value of a session cookie for a demo user (`requester`, `agent`, `admin`) of
    `tenant`: the session recorded in the database as the development sign-in records it,
    with the token it would mint, signed with the server's portal secret in `data_dir`."""
    user = next(u for u in DEMO_USERS if u.key == who)
    token = tenant.token(
        username=user.username,
        email=user.username,
        first_name=user.first_name,
        last_name=user.last_name,
        roles=list(user.roles),
        teams=list(user.teams),
        ttl=ttl,
    )
    claims = jwt.decode(token, options={"verify_signature": False})
    session_id = sessions.new_session_id()
    new = sessions.NewSession(
        tenant_id=uuid.UUID(tenant.id),
        subject=claims["sub"],
        username=user.username,
        email=user.username,
        realm=tenant.realm,
        token=token,
        id_token=None,
        expires_at=datetime.fromtimestamp(claims["exp"], UTC),
    )

    async def record(engine: Any) -> None:
        async with transaction(create_sessionmaker(engine)) as db:
            await sessions.start(db, session_id=session_id, new=new, now=utcnow())

    tenant.db.run(record)
    codec = SessionCodec((data_dir / "portal-secret").read_text().strip())
    return codec.dumps(SessionCookie.signed_in(session_id, uuid.UUID(tenant.id)))
