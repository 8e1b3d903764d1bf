"""A running server applies a tenant's changed configuration on the very next create."""

from __future__ import annotations

import copy

from tests.support import TITLE, Tenant, seed_body


def _reload(tenant: Tenant, change) -> None:  # type: ignore[no-untyped-def]
    config = copy.deepcopy(tenant.config)
    change(config)
    assert tenant.db.load({"tenants": [config]}) == [(tenant.id, "updated")]
    tenant.config = config


def test_create_revalidates_after_a_field_rule_changes(tenant: Tenant) -> None:
    assert tenant.create().json()["objectId"] == "CTC-0001"  # the catalog is now cached

    def shorten_title(config):  # type: ignore[no-untyped-def]
        config["ticket_types"][0]["fields"][0]["maxLength"] = 5

    _reload(tenant, shorten_title)
    response = tenant.create()
    assert response.status_code == 400, response.text
    assert TITLE in response.json()["validationResult"]["reason"]
    body = seed_body()
    body["ticketBody"][TITLE] = "Short"
    response = tenant.create(body)
    assert response.status_code == 200, response.text
    assert response.json()["objectId"] == "CTC-0002"


def test_create_uses_a_new_prefix_at_once(tenant: Tenant) -> None:
    assert tenant.create().json()["objectId"] == "CTC-0001"

    def new_prefix(config):  # type: ignore[no-untyped-def]
        config["ticket_types"][0]["prefix"] = "HW"

    _reload(tenant, new_prefix)
    assert tenant.create().json()["objectId"] == "HW-0001"


def test_create_sees_a_retired_offer_at_once(tenant: Tenant) -> None:
    assert tenant.create().status_code == 200

    def retire(config):  # type: ignore[no-untyped-def]
        config["offers"][0]["active"] = False

    _reload(tenant, retire)
    response = tenant.create()
    assert response.status_code == 400
    assert "offerId" in response.json()["validationResult"]["reason"]
    assert tenant.ticket_count() == 1
