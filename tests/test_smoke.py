"""The seed's own example, end to end."""

from __future__ import annotations

from tests.support import DESCRIPTION, NEEDED_WITHIN, TITLE, Tenant


def test_seed_example_creates_ticket(tenant: Tenant) -> None:
    response = tenant.create()
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    assert body["objectId"] == "CTC-0001"
    ticket = body["ticket"]
    assert ticket["data"][TITLE] == "Need a replacement laptop"
    assert ticket["data"][DESCRIPTION] == "<p>Current laptop battery no longer holds charge.</p>"
    assert ticket["data"][NEEDED_WITHIN] == "<2week"
    assert response.headers["etag"] == f'"{ticket["etag"]}"'
