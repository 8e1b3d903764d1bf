"""Unexpected errors: the seed's envelope with a request id, no internals, a log line."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ticketing.app import create_app
from ticketing.config import Settings


def test_unhandled_error_is_500_envelope_with_request_id(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(Settings(data_dir=tmp_path, json_logs=False))

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internal detail")

    with TestClient(app, raise_server_exceptions=False) as client, caplog.at_level(logging.ERROR):
        response = client.get("/boom", headers={"X-Request-ID": "req-123"})
    assert response.status_code == 500
    body = response.json()
    assert body == {
        "error": True,
        "message": "Internal server error",
        "status": 500,
        "requestId": "req-123",
    }
    assert "secret" not in response.text
    assert response.headers["x-request-id"] == "req-123"
    assert any("req-123" in record.getMessage() for record in caplog.records)


def test_request_id_is_made_when_absent(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path, json_logs=False))
    with TestClient(app) as client:
        first = client.get("/healthz").headers["x-request-id"]
        second = client.get("/healthz").headers["x-request-id"]
    assert first and second and first != second
