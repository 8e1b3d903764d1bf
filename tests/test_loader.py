"""`ticketing load FILE`, run as a real subprocess against each database backend."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support import (
    TITLE,
    Database,
    Server,
    Tenant,
    new_tenant_config,
    standard_tenant,
)
from ticketing.auth.dev_issuer import load_or_create_dev_key

CATALOG_TABLES = ("tenants", "teams", "ticket_types", "ticket_fields", "offers")
NEW_FIELD = "11111111-2222-4333-8444-555555555555"


def run_load(database: Database, path: Path) -> subprocess.CompletedProcess[str]:
    """Runs `python -m ticketing load PATH` against the test database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKETING_")}
    env["TICKETING_DATABASE_URL"] = database.url
    env["TICKETING_DATA_DIR"] = str(path.parent)
    return subprocess.run(
        [sys.executable, "-m", "ticketing", "load", str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def write_yaml(tmp_path: Path, config: dict[str, Any], name: str = "tenants.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def write_json(tmp_path: Path, config: dict[str, Any], name: str = "tenants.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    return path


def tenant_exists(database: Database, tenant_id: str) -> bool:
    rows = database.fetch("SELECT count(*) FROM tenants WHERE id = :t", t=uuid.UUID(tenant_id))
    return int(rows[0][0]) == 1


def catalog_rows(database: Database, tenant_id: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every catalog row of one tenant, table by table, in a stable order."""
    tid = uuid.UUID(tenant_id)
    out = {
        "tenants": database.fetch("SELECT * FROM tenants WHERE id = :t", t=tid),
    }
    for table in CATALOG_TABLES[1:]:
        rows = database.fetch(f"SELECT * FROM {table} WHERE tenant_id = :t", t=tid)
        out[table] = sorted(rows, key=repr)
    return out


def config_version(database: Database, tenant_id: str) -> int:
    rows = database.fetch(
        "SELECT config_version FROM tenants WHERE id = :t", t=uuid.UUID(tenant_id)
    )
    return int(rows[0][0])


def as_list(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


@pytest.fixture
def api_tenant(
    server: Server, data_dir: Path, database: Database
) -> Any:  # returns a factory: config -> Tenant
    key = load_or_create_dev_key(data_dir / "dev-signing-key.pem")
    clients: list[httpx.Client] = []

    def make(config: dict[str, Any]) -> Tenant:
        client = httpx.Client(timeout=30)
        clients.append(client)
        return Tenant(
            id=str(config["id"]),
            realm=config["realm"],
            config=config,
            key=key,
            base_url=server.base_url,
            db=database,
            client=client,
        )

    yield make
    for client in clients:
        client.close()


# --- good files ---------------------------------------------------------------------------


def test_yaml_file_loads_and_names_each_tenant(
    database: Database, tmp_path: Path, api_tenant: Any
) -> None:
    first, second = new_tenant_config(), new_tenant_config()
    path = write_yaml(tmp_path, {"tenants": [first, second]})

    result = run_load(database, path)

    assert result.returncode == 0, result.stderr
    assert f"tenant {first['id']}: created" in result.stdout
    assert f"tenant {second['id']}: created" in result.stdout
    assert tenant_exists(database, first["id"])
    assert tenant_exists(database, second["id"])
    response = api_tenant(first).get("/ticket-type")
    assert response.status_code == 200, response.text
    assert response.json()["data"]["count"] == 3


def test_json_file_loads(database: Database, tmp_path: Path, api_tenant: Any) -> None:
    config = new_tenant_config()
    path = write_json(tmp_path, {"tenants": [config]})

    result = run_load(database, path)

    assert result.returncode == 0, result.stderr
    assert f"tenant {config['id']}: created" in result.stdout
    offers = api_tenant(config).get("/tenant/sc/offers").json()["data"]["offers"]
    assert {o["id"] for o in offers} == {"23629", "23632"}


def test_loading_same_file_twice_is_unchanged_and_writes_nothing(
    database: Database, tmp_path: Path
) -> None:
    config = new_tenant_config()
    path = write_yaml(tmp_path, {"tenants": [config]})
    first = run_load(database, path)
    assert first.returncode == 0, first.stderr
    assert f"tenant {config['id']}: created" in first.stdout
    before = catalog_rows(database, config["id"])
    version_before = config_version(database, config["id"])
    assert before["teams"] and before["ticket_types"] and before["ticket_fields"]

    second = run_load(database, path)

    assert second.returncode == 0, second.stderr
    assert f"tenant {config['id']}: unchanged" in second.stdout
    assert "created" not in second.stdout and "updated" not in second.stdout
    assert catalog_rows(database, config["id"]) == before
    assert config_version(database, config["id"]) == version_before


def test_changed_file_updates_and_running_service_sees_it(
    database: Database, tmp_path: Path, api_tenant: Any
) -> None:
    config = new_tenant_config()
    path = write_yaml(tmp_path, {"tenants": [config]})
    assert run_load(database, path).returncode == 0
    tenant = api_tenant(config)
    # The running service has seen (and cached) the first version.
    types = tenant.get("/ticket-type").json()["data"]["value"]
    assert [f["id"] for f in types[0]["fields"]] == [
        f["id"] for f in config["ticket_types"][0]["fields"]
    ]
    offers = tenant.get("/tenant/sc/offers").json()["data"]["offers"]
    assert {o["id"]: o["name"] for o in offers}["23629"] == "New laptop"
    version_before = config_version(database, config["id"])

    changed = copy.deepcopy(config)
    changed["ticket_types"][0]["fields"].append(
        {"id": NEW_FIELD, "name": "asset", "label": "Asset tag", "type": "text", "maxLength": 30}
    )
    changed["offers"][0]["name"] = "Replacement laptop"
    path = write_yaml(tmp_path, {"tenants": [changed]})
    result = run_load(database, path)

    assert result.returncode == 0, result.stderr
    assert f"tenant {config['id']}: updated" in result.stdout
    assert config_version(database, config["id"]) > version_before
    types = tenant.get("/ticket-type").json()["data"]["value"]
    hardware = next(t for t in types if t["id"] == "16910")
    new = [f for f in hardware["fields"] if f["id"] == NEW_FIELD]
    assert len(new) == 1
    assert new[0]["label"] == "Asset tag"
    assert new[0]["type"] == "text"
    offers = tenant.get("/tenant/sc/offers").json()["data"]["offers"]
    assert {o["id"]: o["name"] for o in offers}["23629"] == "Replacement laptop"
    # The new field is accepted on create straight away.
    body = {
        "source": "api",
        "summary": "with asset",
        "ticketBody": {"offerId": "23629", TITLE: "Laptop", NEW_FIELD: "A-123"},
        "attachments": {},
        "ticketRelation": None,
    }
    created = tenant.create(body)
    assert created.status_code == 200, created.text
    assert created.json()["ticket"]["data"][NEW_FIELD] == "A-123"


def test_defaults_applied_and_numeric_ids_become_strings(
    database: Database, tmp_path: Path, api_tenant: Any
) -> None:
    tenant_id = str(uuid.uuid4())
    realm = f"realm-{tenant_id[:8]}"
    path = tmp_path / "numeric.yaml"
    path.write_text(
        f"""
tenants:
  - id: {tenant_id}
    name: Numeric ids
    realm: {realm}
    prefix: NUM
    teams:
      - {{id: james, name: James}}
    ticket_types:
      - id: 16910
        name: Hardware request
        fields:
          - {{id: {TITLE}, name: title, label: Title, type: text, required: true}}
    offers:
      - {{id: 23629, name: New laptop, item_type: 16910}}
""",
        encoding="utf-8",
    )

    result = run_load(database, path)

    assert result.returncode == 0, result.stderr
    assert f"tenant {tenant_id}: created" in result.stdout
    tenant = api_tenant({"id": tenant_id, "realm": realm})
    types = tenant.get("/ticket-type").json()["data"]["value"]
    assert [t["id"] for t in types] == ["16910"]
    assert types[0]["properties"]["prefix"] == "NUM"
    statuses = types[0]["workflow"]["statuses"]
    initial = [s for s in statuses if s.get("initial")]
    assert len(initial) == 1
    assert initial[0]["name"] == "Open"
    assert initial[0]["category"] == "To-do Category"
    assert statuses[0]["name"] == "Open"
    assert sorted(types[0]["properties"]["create_roles"]) == [
        "tenant_admin",
        "ticket_agent",
        "ticket_user",
    ]
    offers = tenant.get("/tenant/sc/offers").json()["data"]["offers"]
    assert len(offers) == 1
    assert offers[0]["id"] == "23629"
    assert offers[0]["item_type"] == "16910"
    rows = database.fetch(
        "SELECT create_roles FROM teams WHERE tenant_id = :t AND id = 'james'",
        t=uuid.UUID(tenant_id),
    )
    assert sorted(as_list(rows[0][0])) == ["tenant_admin", "ticket_agent", "ticket_user"]
    # Default roles and workflow in action: a ticket_user may file, and the ticket starts Open.
    response = tenant.create(
        {
            "source": "api",
            "summary": "numeric",
            "ticketBody": {"offerId": "23629", TITLE: "x"},
            "attachments": {},
            "ticketRelation": None,
        },
        token=tenant.token(roles=["ticket_user"]),
    )
    assert response.status_code == 200, response.text
    ticket = response.json()["ticket"]
    assert ticket["object_id"] == "NUM-0001"
    assert ticket["lookup_props"] == {"teamId": "james", "itemTypeId": "16910"}
    assert ticket["status_type"] == "Open"
    assert ticket["status_category"] == "To-do Category"


# --- malformed files ----------------------------------------------------------------------


def _bad_type(t: dict[str, Any]) -> None:
    t["ticket_types"][0]["fields"][0]["type"] = "colour"


def _dropdown_without_options(t: dict[str, Any]) -> None:
    t["ticket_types"][0]["fields"][2].pop("options")


def _offer_unknown_item_type(t: dict[str, Any]) -> None:
    t["offers"][0]["item_type"] = "99999"


def _duplicate_field_ids(t: dict[str, Any]) -> None:
    fields = t["ticket_types"][0]["fields"]
    fields[1]["id"] = fields[0]["id"]


def _non_uuid_tenant(t: dict[str, Any]) -> None:
    t["id"] = "not-a-uuid"


def _unknown_key(t: dict[str, Any]) -> None:
    t["ticket_types"][0]["colour"] = "blue"


def _missing_required_key(t: dict[str, Any]) -> None:
    t.pop("realm")


def _unknown_file_type(t: dict[str, Any]) -> None:
    t["attachments"] = {"allowed_types": ["pdf", "exe"]}


def _no_upload_size(t: dict[str, Any]) -> None:
    t["attachments"] = {"max_size": 0}


BAD_SECOND_TENANT = [
    pytest.param(_bad_type, "tenants[1].ticket_types[0].fields[0]", ["colour"], id="field-type"),
    pytest.param(
        _dropdown_without_options,
        "tenants[1].ticket_types[0].fields[2]",
        ["dropdown", "options"],
        id="dropdown-without-options",
    ),
    pytest.param(_offer_unknown_item_type, "tenants[1]", ["23629", "99999"], id="offer-item-type"),
    pytest.param(
        _duplicate_field_ids, "tenants[1].ticket_types[0]", ["field ids"], id="duplicate-fields"
    ),
    pytest.param(_non_uuid_tenant, "tenants[1].id", ["uuid"], id="non-uuid-tenant"),
    pytest.param(_unknown_key, "tenants[1].ticket_types[0].colour", ["not permitted"], id="extra"),
    pytest.param(_missing_required_key, "tenants[1].realm", ["required"], id="missing-key"),
    pytest.param(
        _unknown_file_type, "tenants[1].attachments", ["unknown file types", "exe"], id="file-type"
    ),
    pytest.param(
        _no_upload_size, "tenants[1].attachments.max_size", ["greater than"], id="max-size"
    ),
]


@pytest.mark.parametrize("fmt", ["yaml", "json"])
@pytest.mark.parametrize(("breaker", "path_text", "reason_words"), BAD_SECOND_TENANT)
def test_malformed_file_is_rejected_as_a_whole(
    database: Database,
    tmp_path: Path,
    fmt: str,
    breaker: Any,
    path_text: str,
    reason_words: list[str],
) -> None:
    good = new_tenant_config()
    bad_id = str(uuid.uuid4())
    bad = standard_tenant(bad_id, f"realm-{bad_id[:8]}")
    breaker(bad)
    config = {"tenants": [good, bad]}
    path = write_yaml(tmp_path, config) if fmt == "yaml" else write_json(tmp_path, config)

    result = run_load(database, path)

    assert result.returncode != 0
    message = result.stderr
    assert str(path) in message, message
    assert path_text in message, message
    for word in reason_words:
        assert word.lower() in message.lower(), message
    assert "created" not in result.stdout
    assert not tenant_exists(database, good["id"])
    assert not tenant_exists(database, bad_id)


def test_bad_yaml_syntax_is_rejected(database: Database, tmp_path: Path) -> None:
    good = new_tenant_config()
    text = yaml.safe_dump({"tenants": [good]}, sort_keys=False)
    path = tmp_path / "broken.yaml"
    path.write_text(text + "  - id: [unclosed\n    name: : :\n", encoding="utf-8")

    result = run_load(database, path)

    assert result.returncode != 0
    assert str(path) in result.stderr
    assert "line" in result.stderr.lower()
    assert "yaml" in result.stderr.lower()
    assert not tenant_exists(database, good["id"])


def test_bad_json_syntax_is_rejected(database: Database, tmp_path: Path) -> None:
    good = new_tenant_config()
    path = tmp_path / "broken.json"
    path.write_text(json.dumps({"tenants": [good]})[:-2], encoding="utf-8")

    result = run_load(database, path)

    assert result.returncode != 0
    assert str(path) in result.stderr
    assert "json" in result.stderr.lower()
    assert not tenant_exists(database, good["id"])


def test_rejected_change_leaves_loaded_tenant_untouched(database: Database, tmp_path: Path) -> None:
    config = new_tenant_config()
    assert run_load(database, write_yaml(tmp_path, {"tenants": [config]})).returncode == 0
    before = catalog_rows(database, config["id"])

    changed = copy.deepcopy(config)
    changed["offers"][0]["name"] = "Renamed"
    changed["ticket_types"][0]["fields"][0]["type"] = "nope"
    result = run_load(database, write_yaml(tmp_path, {"tenants": [changed]}, "changed.yaml"))

    assert result.returncode != 0
    assert "nope" in result.stderr
    assert catalog_rows(database, config["id"]) == before
