"""The one error hierarchy; each error knows its HTTP status and renders the seed's envelope."""

from __future__ import annotations

import html
from typing import Any, ClassVar

VALIDATION_MESSAGE = "There occured an error during ticket data validation"


class TicketingError(Exception):
    """Base of every error the API answers with; renders as the seed's error envelope."""

    status: int = 500
    code: str | None = None
    default_message: ClassVar[str] = "Internal server error"

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        envelope: dict[str, Any] = {"error": True}
        if self.code is not None:
            envelope["code"] = self.code
        envelope["message"] = self.message
        envelope["status"] = self.status
        return envelope

    def headers(self) -> dict[str, str]:
        return {}


class AuthenticationFailure(TicketingError):
    """No token, or one that is not genuine, current and from a trusted issuer."""

    status = 401
    code = "AUTHENTICATION_FAILURE"
    default_message = "Authentication failed"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer error="invalid_token"'}


class PermissionFailure(TicketingError):
    """Authenticated, but the token lacks the scope or realm role for the action."""

    status = 401
    code = "USER_PERMISSION_FAILURE"
    default_message = "You do not have the required permissions to create ticket"


class TenantNotFound(TicketingError):
    """The x-tenantid header names no tenant, or one the token does not belong to."""

    status = 404
    code = "TENANT_NOT_FOUND"
    default_message = "Tenant not found"


class NotFound(TicketingError):
    """A resource addressed by the URL does not exist."""

    status = 404
    code = "NOT_FOUND"
    default_message = "Not found"


class HtmlNotFound(NotFound):
    """Unknown team or item type: the seed answers these with an HTML page."""

    def render_html(self) -> str:
        text = html.escape(self.message)
        return (
            "<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>"
            f"<body><h1>404 Not Found</h1><p>{text}</p></body></html>\n"
        )


class Forbidden(TicketingError):
    """The token's roles may not use the team or ticket type."""

    status = 403
    code = "FORBIDDEN"
    default_message = "Your roles do not allow this team or ticket type"


class EtagRequired(TicketingError):
    """A change without the etag of the version it was based on."""

    status = 428
    code = "ETAG_REQUIRED"
    default_message = "The current etag is required (body etag or If-Match header)"


class EtagMismatch(TicketingError):
    """The ticket changed since the caller read it (etag sent in the body)."""

    status = 409
    code = "ETAG_MISMATCH"
    default_message = "The ticket was changed by someone else; fetch it again and retry"


class PreconditionFailed(EtagMismatch):
    """The ticket changed since the caller read it (etag sent as If-Match)."""

    status = 412
    code = "PRECONDITION_FAILED"


class PayloadTooLarge(TicketingError):
    """A request body over the size limit."""

    status = 413
    code = "PAYLOAD_TOO_LARGE"
    default_message = "Request body is too large"


class RequestTimeout(TicketingError):
    """A request whose body did not arrive in time; its connection closes after the answer
    (the rest of the body, if it ever comes, is not read)."""

    status = 408
    code = "REQUEST_TIMEOUT"
    default_message = "The request body did not arrive in time"

    def headers(self) -> dict[str, str]:
        return {"Connection": "close"}


class ServiceUnavailable(TicketingError):
    """A dependency (database, identity provider) cannot be reached right now."""

    status = 503
    code = "SERVICE_UNAVAILABLE"
    default_message = "Service temporarily unavailable"

    def __init__(self, message: str | None = None, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        return {**super().body(), "retryAfter": self.retry_after}

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class InputValidationFailure(TicketingError):
    """Bad input; `reason` maps each offending field UUID or body key to its messages."""

    status = 400
    code = "INPUT_VALIDATION_FAILURE"
    default_message = VALIDATION_MESSAGE

    def __init__(self, reason: dict[str, list[str]], message: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason

    def body(self) -> dict[str, Any]:
        return {**super().body(), "validationResult": {"result": False, "reason": self.reason}}


class Reasons:
    """Collects validation messages per key, so every failure is reported at once."""

    def __init__(self) -> None:
        self.reason: dict[str, list[str]] = {}

    def add(self, key: str, message: str) -> None:
        self.reason.setdefault(key, []).append(message)

    def __bool__(self) -> bool:
        return bool(self.reason)

    def raise_if_any(self, message: str | None = None) -> None:
        if self.reason:
            raise InputValidationFailure(self.reason, message)


class IdempotencyKeyReused(TicketingError):
    """The Idempotency-Key was first used with a different request."""

    status = 422
    code = "IDEMPOTENCY_KEY_REUSED"
    default_message = "This Idempotency-Key was used with a different request"


class IdempotencyKeyInUse(TicketingError):
    """A request with the same Idempotency-Key is still being processed."""

    status = 409
    code = "IDEMPOTENCY_KEY_IN_USE"
    default_message = "A request with this Idempotency-Key is still in progress; retry shortly"
