"""Envelope schemas shared by every endpoint, for the OpenAPI document."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field


class ErrorEnvelope(BaseModel):
    """The seed's error envelope."""

    error: bool = True
    code: str | None = Field(default=None, examples=["USER_PERMISSION_FAILURE"])
    message: str
    status: int
    requestId: str | None = Field(default=None, description="Present on 5xx answers.")


class ValidationResult(BaseModel):
    result: bool = False
    reason: dict[str, list[str]] = Field(
        description="Each failing field UUID or body key with its messages."
    )


class ValidationErrorEnvelope(ErrorEnvelope):
    validationResult: ValidationResult


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ValidationErrorEnvelope, "description": "INPUT_VALIDATION_FAILURE"},
    401: {
        "model": ErrorEnvelope,
        "description": "AUTHENTICATION_FAILURE (bad or missing token) or "
        "USER_PERMISSION_FAILURE (scope or role missing)",
    },
    404: {"model": ErrorEnvelope, "description": "Tenant not found"},
    503: {"model": ErrorEnvelope, "description": "A dependency is unavailable; retry later"},
}

UUID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"

# Headers every ticketing call takes; declared for the OpenAPI document.
TICKETING_HEADERS: list[dict[str, Any]] = [
    {
        "name": "x-tenantid",
        "in": "header",
        "required": True,
        # A UUID, written as a pattern rather than `format: uuid`: generated clients type a
        # uuid header as their language's UUID and some send it unconverted (a string is
        # what a header is).
        "schema": {
            "type": "string",
            "pattern": UUID_PATTERN,
        },
        "description": "The tenant's UUID; must equal the token's tenant_id claim.",
    },
    {
        "name": "realmname",
        "in": "header",
        "required": True,
        "schema": {"type": "string"},
        "description": "The identity-provider realm that issued the token.",
    },
]


def query_parameter(
    name: str, description: str, *, enum: list[str] | None = None
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if enum:
        schema["enum"] = enum
    return {
        "name": name,
        "in": "query",
        "required": True,
        "schema": schema,
        "description": description,
    }


CATALOG_QUERY = [
    query_parameter("type", "Catalog type.", enum=["template", "agent", "user"]),
    query_parameter("module", "The module context.", enum=["ticketing"]),
]


REF_TEMPLATE = "#/components/schemas/{model}"
# Request bodies that endpoints read themselves (to keep the order of checks), registered
# here so that the OpenAPI document still describes them as components.
_BODY_MODELS: dict[str, type[BaseModel]] = {}


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """An OpenAPI requestBody referring to `model`, which install_openapi adds to components."""
    _BODY_MODELS[model.__name__] = model
    return {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": REF_TEMPLATE.format(model=model.__name__)}}
        },
    }


def install_openapi(app: Any) -> None:
    """Adds the registered request-body models (and the models they use) to the document."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema  # type: ignore[no-any-return]
        document: dict[str, Any] = build()
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        for name, model in _BODY_MODELS.items():
            schema = model.model_json_schema(ref_template=REF_TEMPLATE)
            for def_name, definition in schema.pop("$defs", {}).items():
                schemas.setdefault(def_name, definition)
            schemas[name] = schema
        schemas.setdefault("ErrorEnvelope", ErrorEnvelope.model_json_schema())
        for path, operations in document.get("paths", {}).items():
            for method, operation in operations.items():
                _describe_common_answers(path, method, operation)
        _drop_unused_framework_schemas(document)
        app.openapi_schema = document
        return document

    app.openapi = openapi


def _drop_unused_framework_schemas(document: dict[str, Any]) -> None:
    """The framework's 422 body models, which no answer refers to once the 422s are replaced
    (client generators would still make classes of them)."""
    schemas = document.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        definition = schemas.pop(name, None)
        if definition is not None and f'"{REF_TEMPLATE.format(model=name)}"' in json.dumps(
            document
        ):
            schemas[name] = definition


_ERROR_REF = {"application/json": {"schema": {"$ref": REF_TEMPLATE.format(model="ErrorEnvelope")}}}
_IDEMPOTENT = {("post", "/create/"), ("patch", "/update/")}
IDEMPOTENCY_HEADER: dict[str, Any] = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    "description": "Retries with the same key and request replay the first answer (24 h).",
}


def _describe_common_answers(path: str, method: str, operation: dict[str, Any]) -> None:
    """Answers every operation can give that no endpoint declares: the framework's 422 is
    replaced (validation failures are 400 here), 408/413/431 are the transport's, and 500
    is what an unexpected error answers (the seed documents it)."""
    responses = operation.setdefault("responses", {})
    responses.pop("422", None)
    responses.setdefault(
        "500",
        {"description": "Unexpected error: the envelope with a requestId", "content": _ERROR_REF},
    )
    if "requestBody" in operation:
        responses.setdefault(
            "408",
            {
                "description": "REQUEST_TIMEOUT: the body did not arrive within "
                "TICKETING_BODY_TIMEOUT (per MiB); the connection closes",
                "content": _ERROR_REF,
            },
        )
        responses.setdefault(
            "413", {"description": "Request body over 1 MiB", "content": _ERROR_REF}
        )
    responses.setdefault(
        "431", {"description": "Request headers over 32 KiB", "content": _ERROR_REF}
    )
    if any(method == m and fragment in path for m, fragment in _IDEMPOTENT):
        operation.setdefault("parameters", []).append(IDEMPOTENCY_HEADER)
        responses["409"] = responses.get(
            "409", {"description": "A request with this Idempotency-Key is in progress"}
        )
        responses["409"].setdefault("content", _ERROR_REF)
        responses["422"] = {
            "description": "IDEMPOTENCY_KEY_REUSED: the key was used with another request",
            "content": _ERROR_REF,
        }
