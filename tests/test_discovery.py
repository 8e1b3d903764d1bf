"""Discovery: GET /ticket-type, GET /tenant/sc/offers, /openapi.json and /healthz."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support import (
    DESCRIPTION,
    F_DROPDOWN,
    F_NUMBER,
    F_TEXT,
    NEEDED_WITHIN,
    TITLE,
    Server,
    Tenant,
)

TEMPLATE = {"type": "template", "module": "ticketing"}
BASE = "/api/v2/ticketing"
CREATE_PATH = f"{BASE}/ticket/create/{{teamId}}/{{itemTypeId}}"
TYPES_PATH = f"{BASE}/ticket-type"
OFFERS_PATH = f"{BASE}/tenant/sc/offers"


def assert_validation_failure(response: httpx.Response, *keys: str) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] is True
    assert body["code"] == "INPUT_VALIDATION_FAILURE"
    assert body["status"] == 400
    assert body["validationResult"]["result"] is False
    for key in keys:
        assert key in body["validationResult"]["reason"], body
    return body


def limit(field: dict[str, Any], name: str) -> Any:
    """A field limit, whether shown at the field's top level or under `limits`."""
    if name in field:
        return field[name]
    return (field.get("limits") or {}).get(name)


# --- GET /ticket-type -------------------------------------------------------------------


def test_ticket_types_list_everything(tenant: Tenant) -> None:
    response = tenant.get("/ticket-type", TEMPLATE)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    assert isinstance(body["message"], str) and body["message"]
    assert body["data"]["count"] == 3
    types = {t["id"]: t for t in body["data"]["value"]}
    assert list(types) == ["16910", "20000", "30000"]
    assert types["16910"]["name"] == "Hardware request"
    assert types["16910"]["properties"]["prefix"] == "CTC"
    assert types["20000"]["properties"]["prefix"] == "ALL"
    assert types["30000"]["properties"]["prefix"] == "CTC"
    for ticket_type in types.values():
        assert {"id", "name", "properties", "fields", "workflow"} <= set(ticket_type)


def test_ticket_type_fields_carry_what_create_needs(tenant: Tenant) -> None:
    types = {t["id"]: t for t in tenant.get("/ticket-type", TEMPLATE).json()["data"]["value"]}

    hardware = types["16910"]["fields"]
    assert [f["id"] for f in hardware] == [TITLE, DESCRIPTION, NEEDED_WITHIN]
    for field in hardware:
        assert {"id", "name", "label", "type", "required", "defaultValue", "options"} <= set(field)
    title = hardware[0]
    assert (title["name"], title["label"], title["type"]) == ("title", "Title", "text")
    assert title["required"] is True
    assert title["defaultValue"] == ""
    assert title["options"] == []
    assert limit(title, "maxLength") == 200
    description = hardware[1]
    assert description["type"] == "richtext"
    assert description["required"] is False
    needed = hardware[2]
    assert needed["type"] == "dropdown"
    assert needed["defaultValue"] == "<1month"
    assert [o["value"] for o in needed["options"]] == ["<1week", "<2week", "<1month"]

    everything = {f["id"]: f for f in types["20000"]["fields"]}
    assert len(everything) == 12
    assert limit(everything[F_TEXT], "maxLength") == 20
    assert limit(everything[F_NUMBER], "min") == 0
    assert limit(everything[F_NUMBER], "max") == 100
    dropdown = everything[F_DROPDOWN]
    assert dropdown["options"][0] == {"value": "low", "label": "Low"}
    assert [o["value"] for o in dropdown["options"]] == ["low", "medium", "high"]
    assert dropdown["defaultValue"] == "medium"
    assert types["30000"]["fields"] == []


def test_ticket_type_workflow(tenant: Tenant) -> None:
    types = {t["id"]: t for t in tenant.get("/ticket-type", TEMPLATE).json()["data"]["value"]}

    default = types["16910"]["workflow"]["statuses"]
    assert [(s["name"], s["category"]) for s in default] == [
        ("Open", "To-do Category"),
        ("In Progress", "In-Progress Category"),
        ("Resolved", "Done Category"),
        ("Closed", "Done Category"),
    ]
    assert [s["name"] for s in default if s.get("initial")] == ["Open"]
    custom = types["20000"]["workflow"]["statuses"]
    assert [s["name"] for s in custom] == ["New", "Triaged"]
    assert [s["name"] for s in custom if s.get("initial")] == ["Triaged"]


def test_ticket_type_select(tenant: Tenant) -> None:
    response = tenant.get("/ticket-type", {**TEMPLATE, "$select": "id,name"})

    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["count"] == 3
    assert data["value"] == [
        {"id": "16910", "name": "Hardware request"},
        {"id": "20000", "name": "Everything"},
        {"id": "30000", "name": "Admin only"},
    ]


@pytest.mark.parametrize(
    ("top", "skip", "ids"),
    [
        ("1", None, ["16910"]),
        ("2", None, ["16910", "20000"]),
        ("1", "1", ["20000"]),
        ("5", "2", ["30000"]),
        (None, "1", ["20000", "30000"]),
        ("2", "3", []),
        ("1000", "0", ["16910", "20000", "30000"]),
    ],
)
def test_ticket_type_paging(
    tenant: Tenant, top: str | None, skip: str | None, ids: list[str]
) -> None:
    params = dict(TEMPLATE)
    if top is not None:
        params["$top"] = top
    if skip is not None:
        params["$skip"] = skip

    response = tenant.get("/ticket-type", params)

    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert [t["id"] for t in data["value"]] == ids
    assert data["count"] == 3


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("$top", "0"),
        ("$top", "-1"),
        ("$top", "x"),
        ("$top", "5000"),
        ("$skip", "-1"),
        ("$skip", "x"),
        ("$select", "id,colour"),
        ("$select", ""),
    ],
)
def test_ticket_type_bad_query(tenant: Tenant, name: str, value: str) -> None:
    response = tenant.get("/ticket-type", {**TEMPLATE, name: value})

    assert_validation_failure(response, name)


@pytest.mark.parametrize("path", ["/ticket-type", "/tenant/sc/offers"])
@pytest.mark.parametrize(
    ("params", "missing"),
    [
        ({"module": "ticketing"}, ["type"]),
        ({"type": "template"}, ["module"]),
        ({}, ["type", "module"]),
        ({"type": "bogus", "module": "ticketing"}, ["type"]),
    ],
)
def test_discovery_needs_type_and_module(
    tenant: Tenant, path: str, params: dict[str, str], missing: list[str]
) -> None:
    response = tenant.get(path, params)

    assert_validation_failure(response, *missing)


# --- GET /tenant/sc/offers --------------------------------------------------------------


def test_template_offers(tenant: Tenant) -> None:
    response = tenant.get("/tenant/sc/offers", TEMPLATE)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    offers = {o["id"]: o for o in body["data"]["offers"]}
    assert set(offers) == {"23629", "23632"}
    for offer in offers.values():
        assert {"id", "name", "description", "category", "item_type"} <= set(offer)
    assert offers["23629"]["name"] == "New laptop"
    assert offers["23629"]["item_type"] == "16910"
    assert offers["23629"]["description"] == ""
    assert offers["23629"]["category"] is None
    assert offers["23632"]["item_type"] == "30000"


@pytest.mark.parametrize(
    ("catalog_type", "ids"),
    [
        ("agent", {"23629", "23630", "23632"}),
        ("user", {"23629", "23632"}),
    ],
)
def test_offers_by_catalog_type(tenant: Tenant, catalog_type: str, ids: set[str]) -> None:
    response = tenant.get("/tenant/sc/offers", {"type": catalog_type, "module": "ticketing"})

    assert response.status_code == 200, response.text
    offers = {o["id"]: o for o in response.json()["data"]["offers"]}
    assert set(offers) == ids
    assert "23631" not in offers  # inactive
    if "23630" in offers:
        assert offers["23630"]["item_type"] == "20000"


def test_offer_description_and_category_are_shown(make_tenant: Any) -> None:
    tenant = make_tenant(
        offers=[
            {
                "id": "23629",
                "name": "New laptop",
                "description": "Request a new or replacement laptop",
                "category": "Hardware",
                "item_type": "16910",
            }
        ]
    )

    offers = tenant.get("/tenant/sc/offers", TEMPLATE).json()["data"]["offers"]

    assert len(offers) == 1
    assert offers[0]["description"] == "Request a new or replacement laptop"
    assert offers[0]["category"] == "Hardware"


# --- access -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/ticket-type", "/tenant/sc/offers"])
@pytest.mark.parametrize(
    ("scope", "roles"),
    [
        ("tickets:read", ["ticket_agent"]),
        ("tickets:write", ["ticket_agent"]),
        ("openid tickets:read", ["ticket_user"]),
        ("tickets:read", ["tenant_admin"]),
    ],
)
def test_discovery_readable_with_read_or_write_scope(
    tenant: Tenant, path: str, scope: str, roles: list[str]
) -> None:
    response = tenant.get(path, TEMPLATE, token=tenant.token(scope=scope, roles=roles))

    assert response.status_code == 200, response.text
    assert response.json()["success"] is True


@pytest.mark.parametrize("path", ["/ticket-type", "/tenant/sc/offers"])
@pytest.mark.parametrize(
    ("scope", "roles"),
    [
        ("openid profile", ["ticket_agent"]),
        ("tickets:admin", ["ticket_agent"]),
        ("tickets:read tickets:write", ["offline_access"]),
    ],
)
def test_discovery_without_scope_or_role_is_refused(
    tenant: Tenant, path: str, scope: str, roles: list[str]
) -> None:
    response = tenant.get(path, TEMPLATE, token=tenant.token(scope=scope, roles=roles))

    assert response.status_code == 401, response.text
    body = response.json()
    assert body["error"] is True
    assert body["code"] == "USER_PERMISSION_FAILURE"
    assert body["status"] == 401
    assert "permission" in body["message"].lower()


@pytest.mark.parametrize("path", ["/ticket-type", "/tenant/sc/offers"])
def test_discovery_without_token_is_unauthenticated(tenant: Tenant, path: str) -> None:
    headers = tenant.headers()
    del headers["authorization"]

    response = tenant.get(path, TEMPLATE, headers=headers)

    assert response.status_code == 401, response.text
    assert response.json()["code"] == "AUTHENTICATION_FAILURE"
    assert response.headers["www-authenticate"].lower().startswith("bearer")


@pytest.mark.parametrize("path", ["/ticket-type", "/tenant/sc/offers"])
def test_discovery_of_another_tenant_is_not_found(
    tenant: Tenant, make_tenant: Any, path: str
) -> None:
    other = make_tenant()

    response = tenant.get(path, TEMPLATE, headers=tenant.headers(**{"x-tenantid": other.id}))

    assert response.status_code == 404, response.text
    assert response.json()["message"] == "Tenant not found"


# --- /openapi.json and /healthz --------------------------------------------------------


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Follows local $refs (also through a single-entry allOf/anyOf wrapper)."""
    while True:
        if "$ref" in schema:
            node: Any = document
            for part in schema["$ref"].removeprefix("#/").split("/"):
                node = node[part]
            schema = node
        elif len(schema.get("allOf", [])) == 1:
            schema = schema["allOf"][0]
        else:
            return schema


def parameter_places(operation: dict[str, Any]) -> dict[str, str]:
    return {p["name"].lower(): p["in"] for p in operation.get("parameters", [])}


@pytest.fixture
def openapi(server: Server, http: httpx.Client) -> dict[str, Any]:
    response = http.get(f"{server.base_url}/openapi.json")
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


def test_openapi_lists_the_three_endpoints_with_parameters(openapi: dict[str, Any]) -> None:
    paths = openapi["paths"]
    operations = [
        paths[CREATE_PATH]["post"],
        paths[TYPES_PATH]["get"],
        paths[OFFERS_PATH]["get"],
    ]
    for operation in operations:
        places = parameter_places(operation)
        assert places.get("x-tenantid") == "header", places
        assert places.get("realmname") == "header", places
        assert places.get("type") == "query", places
        assert places.get("module") == "query", places
    create_places = parameter_places(operations[0])
    assert create_places.get("teamid") == "path"
    assert create_places.get("itemtypeid") == "path"
    type_places = parameter_places(operations[1])
    assert {"$select", "$top", "$skip"} <= set(type_places)


def test_openapi_create_request_body_schema(openapi: dict[str, Any]) -> None:
    operation = openapi["paths"][CREATE_PATH]["post"]
    content = operation["requestBody"]["content"]["application/json"]
    schema = resolve(openapi, content["schema"])

    properties = schema["properties"]
    assert {"source", "summary", "ticketBody", "attachments", "ticketRelation"} <= set(properties)
    assert set(schema.get("required", [])) >= {
        "source",
        "summary",
        "ticketBody",
        "attachments",
        "ticketRelation",
    }
    assert resolve(openapi, properties["ticketBody"]).get("type") == "object"
    assert resolve(openapi, properties["attachments"]).get("type") == "object"


def test_openapi_ticket_body_declares_offer_id(openapi: dict[str, Any]) -> None:
    """The seed's body table lists ticketBody.offerId as a required string."""
    operation = openapi["paths"][CREATE_PATH]["post"]
    content = operation["requestBody"]["content"]["application/json"]
    schema = resolve(openapi, content["schema"])
    ticket_body = resolve(openapi, schema["properties"]["ticketBody"])

    assert ticket_body.get("additionalProperties") not in (False, None), ticket_body
    offer_id = resolve(openapi, ticket_body.get("properties", {}).get("offerId", {}))
    assert offer_id.get("type") == "string", ticket_body
    assert "offerId" in ticket_body.get("required", []), ticket_body


def test_openapi_create_success_response_schema(openapi: dict[str, Any]) -> None:
    operation = openapi["paths"][CREATE_PATH]["post"]
    content = operation["responses"]["200"]["content"]["application/json"]
    schema = resolve(openapi, content["schema"])

    assert {"success", "message", "status", "objectId", "ticket"} <= set(schema["properties"])
    ticket = resolve(openapi, schema["properties"]["ticket"])
    assert {"id", "object_id", "etag", "data", "status_type", "lookup_props"} <= set(
        ticket["properties"]
    )
    for status in ("400", "401", "404"):
        assert status in operation["responses"], operation["responses"].keys()


def test_openapi_discovery_response_schemas(openapi: dict[str, Any]) -> None:
    types = resolve(
        openapi,
        openapi["paths"][TYPES_PATH]["get"]["responses"]["200"]["content"]["application/json"][
            "schema"
        ],
    )
    data = resolve(openapi, types["properties"]["data"])
    assert {"value", "count"} <= set(data["properties"])
    offers = resolve(
        openapi,
        openapi["paths"][OFFERS_PATH]["get"]["responses"]["200"]["content"]["application/json"][
            "schema"
        ],
    )
    offers_data = resolve(openapi, offers["properties"]["data"])
    assert "offers" in offers_data["properties"]


def test_healthz(server: Server, http: httpx.Client) -> None:
    response = http.get(f"{server.base_url}/healthz")

    assert response.status_code == 200, response.text


def test_head_healthz_answers_as_get_without_a_body(server: Server, http: httpx.Client) -> None:
    url = f"{server.base_url}/healthz"
    get = http.get(url)
    head = http.head(url)

    assert head.status_code == get.status_code == 200, head.text
    assert head.headers["content-type"] == get.headers["content-type"] == "application/json"
    assert head.headers["content-length"] == str(len(get.content))
    assert head.content == b""
    # No body bytes followed the head on the connection: the next answer on it parses.
    assert http.get(url).json()["status"] == "ok"
