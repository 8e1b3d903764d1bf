"""The create endpoint is served as a direct route (ticketing.kit.direct): its request headers
are read as the framework reads them everywhere else."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.support import Tenant, seed_body
from tests.ticket_api import assert_error
from ticketing.kit.direct import IndexedHeaders


def test_indexed_headers_find_what_the_framework_finds() -> None:
    raw = [
        (b"x-tenantid", b"first"),
        (b"content-type", b"application/json"),
        (b"x-tenantid", b"second"),
        (b"x-caf\xe9", b"caf\xe9"),
    ]
    headers = IndexedHeaders({"type": "http", "headers": raw})
    # The first of repeated headers, looked up whatever the case of the name asked for.
    assert headers["X-TenantID"] == "first" and headers.get("x-tenantid") == "first"
    assert headers.getlist("x-tenantid") == ["first", "second"]
    assert headers["x-caf\xe9"] == "caf\xe9"  # names and values are latin-1
    assert headers.get("authorization") is None and headers.get("authorization", "") == ""
    assert "Content-Type" in headers and "authorization" not in headers and 1 not in headers
    with pytest.raises(KeyError):
        headers["authorization"]


def test_the_first_of_repeated_tenant_headers_is_the_one_a_create_uses(tenant: Tenant) -> None:
    url = f"{tenant.base_url}/api/v2/ticketing/ticket/create/james/16910"
    params = {"type": "template", "module": "ticketing"}
    own = [(name, value) for name, value in tenant.headers().items() if name != "x-tenantid"]
    stranger = str(uuid.uuid4())

    def create(tenant_ids: list[str]) -> httpx.Response:
        headers = [*own, *(("X-TenantId", tenant_id) for tenant_id in tenant_ids)]
        return tenant.client.post(url, params=params, headers=headers, json=seed_body())

    before = tenant.ticket_count()
    response = create([tenant.id, stranger])
    assert response.status_code == 200, response.text
    assert response.json()["ticket"]["tenant_id"] == tenant.id
    # The stranger's id first: that tenant is the one asked for, and there is none.
    assert_error(create([stranger, tenant.id]), 404, "TENANT_NOT_FOUND")
    assert tenant.ticket_count() == before + 1
