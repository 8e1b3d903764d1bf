"""A browser-like HTTP client for the portal: cookies, CSRF tokens, and a small HTML reader."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

import httpx

from tests.support import Tenant

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
    """One person's browser session against the portal."""

    base_url: str
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
        page = self.get(f"/portal/sign-in?tenant={tenant.id}")
        assert page.status_code == 200, page.text
        response = self.post("/portal/sign-in", {"user": user, "tenant": tenant.id})
        assert response.status_code == 303, response.text
        assert response.headers["location"] == "/portal/"

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
