"""Every header, query parameter and form value read as a whole number, fuzzed with what
`str.isdigit()` or `int()` would take and a number is not: superscripts, circled and
full-width digits, digits of other scripts, underscores, signs and spaces. Each is the
caller's error (4xx) or ignored as the HTTP rule for that input says, never a 500; a plain
ASCII number keeps working."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.attachment_api import F_SCREENSHOTS, create_incident, download, upload, uploaded
from tests.portal_client import PortalClient
from tests.support import Tenant
from tests.ticket_api import API, QUERY, call, created, get_ticket

PG_URL = os.environ.get("TICKETING_TEST_DATABASE_URL")

pytestmark = [
    pytest.mark.postgresql,
    pytest.mark.skipif(not PG_URL, reason="TICKETING_TEST_DATABASE_URL is not set"),
    pytest.mark.parametrize("database", ["postgresql"], indirect=True),
]

# Text that is not a plain ASCII number, weighted to what fooled the parsers: characters
# `isdigit()` accepts (No: ², ①), decimal digits of other scripts and full-width ones (Nd:
# ٣, full-width five), and what `int()` forgives (_ + - and spaces) around ASCII digits.
NOT_A_NUMBER = (
    st.text(
        alphabet=st.one_of(
            st.characters(categories=("Nd", "No", "Nl")),
            st.sampled_from("0123456789_+- \t.e"),
        ),
        min_size=1,
        max_size=8,
    )
    .map(str.strip)
    .filter(lambda text: not (text.isascii() and text.isdigit()))
)
FUZZ = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
QUERY_TEXT = "type=template&module=ticketing"
TRICKY = ("²", "²-", "①", "٣", "\uff15", "1_0", "+5", "-1", " 7", "1e3", "")


def _raw_get(base_url: str, path: str, headers: dict[str, str]) -> int:
    """Sends a GET with header values as raw bytes and returns the status code."""
    url = urlsplit(base_url)
    lines = [f"GET {path} HTTP/1.1", f"Host: {url.netloc}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    text = "\r\n".join(lines) + "\r\n\r\n"
    # Latin-1 where it can be (a server reads header bytes as Latin-1: b"\xb2" is "²"),
    # UTF-8 otherwise.
    try:
        request = text.encode("latin-1")
    except UnicodeEncodeError:
        request = text.encode()
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(request)
        head = sock.recv(4096)
    return int(head.split(b" ", 2)[1])


@pytest.fixture
def attachment(files_tenant: Tenant) -> tuple[str, str]:
    content = b"0123456789" * 10
    attachment = uploaded(upload(files_tenant, "digits.txt", content))
    ticket = created(create_incident(files_tenant, {F_SCREENSHOTS: [attachment["id"]]}))
    return ticket["object_id"], attachment["id"]


@FUZZ
@given(value=NOT_A_NUMBER)
@example(value="²-")
@example(value="0-²")
@example(value="-٣")
@example(value="\uff15-")
def test_a_range_that_is_not_ascii_digits_is_ignored(
    files_tenant: Tenant, attachment: tuple[str, str], value: str
) -> None:
    object_id, attachment_id = attachment
    whole = download(files_tenant, object_id, attachment_id)
    assert whole.status_code == 200
    spec = f"bytes={value}"
    if spec.isascii():
        response = download(files_tenant, object_id, attachment_id, headers={"Range": spec})
        # RFC 9110: a Range the server cannot read is ignored; the whole file is sent.
        assert response.status_code == 200, (spec, response.text)
        assert response.content == whole.content
    else:
        path = (
            f"{API}/ticket/{object_id}/attachments/{attachment_id}?type=template&module=ticketing"
        )
        status = _raw_get(files_tenant.base_url, path, {**files_tenant.headers(), "Range": spec})
        assert status in (200, 400), (spec, status)
    # ASCII digits still select bytes.
    part = download(files_tenant, object_id, attachment_id, headers={"Range": "bytes=2-4"})
    assert (part.status_code, part.content) == (206, b"234")


def test_range_tricky_values_are_never_a_server_error(
    files_tenant: Tenant, attachment: tuple[str, str]
) -> None:
    object_id, attachment_id = attachment
    path = f"{API}/ticket/{object_id}/attachments/{attachment_id}?{QUERY_TEXT}"
    for value in TRICKY:
        for spec in (f"bytes={value}-", f"bytes=0-{value}", f"bytes=-{value}"):
            status = _raw_get(
                files_tenant.base_url, path, {**files_tenant.headers(), "Range": spec}
            )
            assert status in (200, 206, 400, 416), (spec, status)


@pytest.mark.parametrize("stream", ["/ticket/sse/list/updates", "/ticket/sse/notifications"])
def test_a_last_event_id_that_is_not_ascii_digits_is_400(tenant: Tenant, stream: str) -> None:
    @FUZZ
    @given(value=NOT_A_NUMBER.filter(lambda v: v != ""))
    @example(value="²")
    @example(value="٣")
    @example(value="1_0")
    def check(value: str) -> None:
        headers = {**tenant.headers(), "Last-Event-ID": value, "accept": "text/event-stream"}
        path = f"{API}{stream}?type=template&module=ticketing"
        status = _raw_get(tenant.base_url, path, headers)
        assert status == 400, (value, status)

    check()


def _deliveries(tenant: Tenant, admin: str, params: dict[str, str]) -> httpx.Response:
    return call(
        tenant, "GET", "/tenant/webhooks/hook/deliveries", token=admin, params={**QUERY, **params}
    )


@pytest.fixture
def hook_tenant(make_tenant: Callable[..., Tenant]) -> tuple[Tenant, str]:
    tenant = make_tenant(
        webhooks=[
            {
                "id": "hook",
                "url": "http://127.0.0.1:9/hook",
                "events": ["ticket.created"],
                "secret": "s" * 32,
            }
        ]
    )
    admin = tenant.token(roles=["tenant_admin"])
    return tenant, admin


@pytest.mark.parametrize("name", ["top", "offset"])
def test_webhook_delivery_paging_that_is_not_ascii_digits_is_400(
    hook_tenant: tuple[Tenant, str], name: str
) -> None:
    tenant, admin = hook_tenant
    assert _deliveries(tenant, admin, {name: "5"}).status_code == 200

    @FUZZ
    @given(value=NOT_A_NUMBER)
    @example(value="²")
    @example(value="٣")
    def check(value: str) -> None:
        response = _deliveries(tenant, admin, {name: value})
        assert response.status_code == 400, (value, response.text)
        assert name in response.json()["validationResult"]["reason"]

    check()


@pytest.mark.parametrize("name", ["$top", "$skip"])
def test_ticket_type_paging_that_is_not_ascii_digits_is_400(tenant: Tenant, name: str) -> None:
    assert call(tenant, "GET", "/ticket-type", params={**QUERY, name: "1"}).status_code == 200

    @FUZZ
    @given(value=NOT_A_NUMBER)
    @example(value="²")
    @example(value="\uff11")
    @example(value="1_0")
    def check(value: str) -> None:
        response = call(tenant, "GET", "/ticket-type", params={**QUERY, name: value})
        assert response.status_code == 400, (value, response.text)

    check()


def test_a_content_length_that_is_not_ascii_digits_is_refused(tenant: Tenant) -> None:
    url = urlsplit(tenant.base_url)
    for value in ("²", "٣", "1_0", "+5", "\uff15"):
        head = (
            f"POST {API}/ticket/list?type=template&module=ticketing HTTP/1.1\r\n"
            f"Host: {url.netloc}\r\nContent-Length: {value}\r\nConnection: close\r\n\r\n"
        ).encode()
        with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
            sock.sendall(head + b"{}")
            answer = sock.recv(4096)
        status = int(answer.split(b" ", 2)[1])
        assert 400 <= status < 500, (value, answer[:200])


def test_portal_page_and_version_that_are_not_ascii_digits_are_ignored_or_refused(
    tenant: Tenant, portal: Callable[[], PortalClient]
) -> None:
    agent = portal()
    agent.sign_in(tenant, "agent")
    ticket = created(tenant.create())
    object_id = ticket["object_id"]
    agent.get(f"/portal/tickets/{object_id}")

    @FUZZ
    @given(value=NOT_A_NUMBER)
    @example(value="²")
    @example(value="٣")
    def check(value: str) -> None:
        for path in ("/portal/queue", "/portal/my-tickets"):
            response = agent.get(path, params={"page": value})
            # Not a page number: the first page.
            assert response.status_code == 200, (path, value, response.text[:200])
        agent.get(f"/portal/tickets/{object_id}")
        response = agent.post(
            f"/portal/tickets/{object_id}/update",
            {"etag": ticket["etag"], "version": value, "status": ""},
        )
        assert response.status_code < 500, (value, response.text[:200])
        # Nothing changed.
        assert get_ticket(tenant, object_id)["etag"] == ticket["etag"]

    check()
