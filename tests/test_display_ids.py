"""Display IDs: per tenant and prefix, zero-padded, gap-free, unique under concurrency."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.support import Database, Tenant, everything_body, seed_body, start_server, stop_server


def test_numbers_count_up_from_one(tenant: Tenant) -> None:
    ids = [tenant.create().json()["objectId"] for _ in range(3)]
    assert ids == ["CTC-0001", "CTC-0002", "CTC-0003"]


def test_item_type_prefix_has_its_own_counter(tenant: Tenant) -> None:
    assert tenant.create().json()["objectId"] == "CTC-0001"
    other = tenant.create(everything_body(), item_type="20000", catalog_type="agent")
    assert other.status_code == 200, other.text
    assert other.json()["objectId"] == "ALL-0001"
    assert tenant.create().json()["objectId"] == "CTC-0002"


def test_each_tenant_counts_on_its_own(make_tenant: Callable[..., Tenant]) -> None:
    first, second = make_tenant(), make_tenant()
    assert first.create().json()["objectId"] == "CTC-0001"
    assert first.create().json()["objectId"] == "CTC-0002"
    assert second.create().json()["objectId"] == "CTC-0001"


def test_tenant_prefix_comes_from_configuration(make_tenant: Callable[..., Tenant]) -> None:
    tenant = make_tenant(prefix="REQ")
    assert tenant.create().json()["objectId"] == "REQ-0001"


def test_numbers_grow_past_four_digits(tenant: Tenant) -> None:
    tenant.create()
    tenant.db.fetch(
        "UPDATE display_id_counters SET last_value = 9998 WHERE tenant_id = :t AND prefix = 'CTC'",
        t=uuid.UUID(tenant.id),
    )
    assert tenant.create().json()["objectId"] == "CTC-9999"
    assert tenant.create().json()["objectId"] == "CTC-10000"
    assert tenant.create().json()["objectId"] == "CTC-10001"


def test_failed_create_consumes_no_number(tenant: Tenant) -> None:
    assert tenant.create().json()["objectId"] == "CTC-0001"
    bad = seed_body()
    del bad["ticketBody"]["offerId"]
    assert tenant.create(bad).status_code == 400
    assert tenant.create(team="nobody").status_code == 404
    assert tenant.create().json()["objectId"] == "CTC-0002"


def test_id_serial_increases_globally(make_tenant: Callable[..., Tenant]) -> None:
    first, second = make_tenant(), make_tenant()
    serials = [
        first.create().json()["ticket"]["id_serial"],
        second.create().json()["ticket"]["id_serial"],
        first.create().json()["ticket"]["id_serial"],
    ]
    assert serials == sorted(serials)
    assert len(set(serials)) == 3


async def _fire(tenant: Tenant, base_urls: list[str], count: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def one(i: int) -> httpx.Response:
            body = seed_body(summary=f"concurrent {i}")
            if i % 7 == 3:
                body["ticketBody"]["offerId"] = "no-such-offer"  # fails, must not leave a gap
            base = base_urls[i % len(base_urls)]
            return await client.post(
                f"{base}/api/v2/ticketing/ticket/create/james/16910",
                params={"type": "template", "module": "ticketing"},
                headers=tenant.headers(),
                json=body,
            )

        return list(await asyncio.gather(*(one(i) for i in range(count))))


def test_concurrent_creates_from_several_processes_never_collide(
    make_tenant: Callable[..., Tenant], database: Database, tmp_path: Path
) -> None:
    tenant = make_tenant()
    # Two more server processes (one of them with two workers) on the same database.
    extra = [
        start_server(database_url=database.url, data_dir=_data_dir_of(tenant, tmp_path)),
        start_server(database_url=database.url, data_dir=_data_dir_of(tenant, tmp_path), workers=2),
    ]
    try:
        count = 210
        responses = asyncio.run(
            _fire(tenant, [tenant.base_url, *(s.base_url for s in extra)], count)
        )
    finally:
        for server in extra:
            stop_server(server)
    statuses = [r.status_code for r in responses]
    failures = sum(1 for i in range(count) if i % 7 == 3)
    assert statuses.count(400) == failures
    assert statuses.count(200) == count - failures, [
        r.text for r in responses if r.status_code >= 500
    ]
    acknowledged = sorted(
        int(r.json()["objectId"].split("-")[1]) for r in responses if r.status_code == 200
    )
    assert acknowledged == list(range(1, count - failures + 1))
    stored = tenant.db.fetch(
        "SELECT object_id FROM tickets WHERE tenant_id = :t", t=uuid.UUID(tenant.id)
    )
    assert sorted(int(re.sub(r"^CTC-", "", row[0])) for row in stored) == acknowledged


def _data_dir_of(tenant: Tenant, tmp_path: Path) -> Path:
    # Servers must share the dev signing key to accept the same tokens.
    key_dir = tmp_path / "key"
    key_dir.mkdir(exist_ok=True)
    from cryptography.hazmat.primitives import serialization

    pem = tenant.key.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (key_dir / "dev-signing-key.pem").write_bytes(pem)
    return key_dir
