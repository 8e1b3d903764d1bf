"""Images from other sites in rich text and comments: dropped by default (rendering them
would tell a third party who read the ticket, and when), kept where the tenant allows them
(`rich_text: {remote_images: true}`); images at a path of this service stay either way."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from tests.support import F_RICHTEXT, Tenant, everything_body
from tests.ticket_api import call, created

PG_URL = os.environ.get("TICKETING_TEST_DATABASE_URL")

pytestmark = [
    pytest.mark.postgresql,
    pytest.mark.skipif(not PG_URL, reason="TICKETING_TEST_DATABASE_URL is not set"),
    pytest.mark.parametrize("database", ["postgresql"], indirect=True),
]

HTML = (
    '<p>See <img src="https://tracker.example/pixel.gif?u=1" alt="chart" width="10">'
    '<img src="//cdn.example/x.png" alt="b">'
    '<img src=" HTTP://upper.example/y.png" alt="c">'
    # What a browser reads as //host: backslashes, and tabs or newlines it removes.
    '<img src="\\\\slash.example/a" alt="d">'
    '<img src="/\\slash.example/b" alt="e">'
    '<img src="\\/slash.example/c" alt="f">'
    '<img src="/&#9;/slash.example/d" alt="g">'
    '<img src="/&#10;/slash.example/e" alt="h">'
    '<img src="/api/v2/ticketing/ticket/x/attachments/y" alt="inline"></p>'
)


def _create_and_comment(tenant: Tenant) -> tuple[str, str]:
    ticket = created(
        tenant.create(everything_body(**{F_RICHTEXT: HTML}), item_type="20000",
                      catalog_type="agent")
    )  # fmt: skip
    comment = call(tenant, "POST", f"/ticket/{ticket['object_id']}/comments", json={"body": HTML})
    assert comment.status_code in (200, 201), comment.text
    comments = call(tenant, "GET", f"/ticket/{ticket['object_id']}/comments").json()
    [stored_comment] = [c["body"] for c in comments["data"]["value"]]
    return ticket["data"][F_RICHTEXT], stored_comment


def test_remote_images_are_dropped_by_default(make_tenant: Callable[..., Tenant]) -> None:
    for html in _create_and_comment(make_tenant()):
        assert "tracker.example" not in html
        assert "cdn.example" not in html
        assert "upper.example" not in html
        assert "slash.example" not in html
        # The image element and its other attributes stay, without a source.
        assert '<img width="10" alt="chart">' in html
        assert '<img src="/api/v2/ticketing/ticket/x/attachments/y" alt="inline">' in html


def test_a_tenant_may_allow_remote_images(make_tenant: Callable[..., Tenant]) -> None:
    for html in _create_and_comment(make_tenant(rich_text={"remote_images": True})):
        assert 'src="https://tracker.example/pixel.gif?u=1"' in html
        assert 'src="//cdn.example/x.png"' in html
        assert '<img src="/api/v2/ticketing/ticket/x/attachments/y" alt="inline">' in html
