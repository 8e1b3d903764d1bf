"""Field types as data: one validator per type in one registry.

A validator takes the field and the value sent for it and returns the value to store, or
raises FieldError with the message the client sees. Adding a type is adding one entry.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from email_validator import EmailNotValidError, validate_email

from ticketing.kit.html import sanitize
from ticketing.kit.numbers import parse_digits


class FieldError(ValueError):
    """A value that is not valid for its field; the message names the field by label."""


@dataclass(frozen=True)
class FieldSpec:
    """One field of a ticket type, as validation needs it."""

    id: str
    name: str
    label: str
    type: str
    required: bool
    default_value: Any
    options: tuple[dict[str, Any], ...] = ()
    limits: dict[str, Any] = field(default_factory=dict)
    # Whether rich text keeps images from other sites (the tenant's `rich_text` setting).
    remote_images: bool = False

    @property
    def option_values(self) -> tuple[str, ...]:
        return tuple(str(o["value"]) for o in self.options)


Cleaner = Callable[[FieldSpec, Any], Any]


@dataclass(frozen=True)
class FieldType:
    """A field type: its validator, and whether an empty string means "no value" for it."""

    name: str
    clean: Cleaner
    blank_is_empty: bool
    has_options: bool = False
    # False for files: their values are the create's `attachments`, never in ticketBody.
    in_ticket_body: bool = True


FIELD_TYPES: dict[str, FieldType] = {}


def field_type(
    *names: str, blank_is_empty: bool = True, has_options: bool = False, in_ticket_body: bool = True
) -> Callable[[Cleaner], Cleaner]:
    """Registers a validator under one or more type names."""

    def register(clean: Cleaner) -> Cleaner:
        for name in names:
            FIELD_TYPES[name] = FieldType(name, clean, blank_is_empty, has_options, in_ticket_body)
        return clean

    return register


def _check_length(spec: FieldSpec, value: str) -> None:
    max_length = spec.limits.get("maxLength")
    if max_length is not None and len(value) > max_length:
        raise FieldError(f"{spec.label} must be at most {max_length} characters long")
    min_length = spec.limits.get("minLength")
    if min_length is not None and value and len(value) < min_length:
        raise FieldError(f"{spec.label} must be at least {min_length} characters long")


def _expect_string(spec: FieldSpec, value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise FieldError(
            f"You have entered an invalid {what} value for {spec.label}, expects a string"
        )
    return value


@field_type("text", "textarea")
def _clean_text(spec: FieldSpec, value: Any) -> str:
    text = _expect_string(spec, value, "text")
    _check_length(spec, text)
    return text


@field_type("richtext")
def _clean_richtext(spec: FieldSpec, value: Any) -> str:
    html = _expect_string(spec, value, "rich text")
    _check_length(spec, html)
    return sanitize(html, remote_images=spec.remote_images)


@field_type("number", blank_is_empty=False)
def _clean_number(spec: FieldSpec, value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise FieldError(
            f"You have entered an invalid number value for {spec.label}, expects a number"
        )
    low, high = spec.limits.get("min"), spec.limits.get("max")
    if low is not None and value < low:
        raise FieldError(f"{spec.label} must be at least {_shown(low)}")
    if high is not None and value > high:
        raise FieldError(f"{spec.label} must be at most {_shown(high)}")
    return value


def _shown(limit: int | float) -> int | float:
    """A limit as a message shows it: 10, not 10.0 (limits loaded before they were kept as
    whole numbers are floats)."""
    return int(limit) if isinstance(limit, float) and limit.is_integer() else limit


def is_iso_date(value: str) -> bool:
    """ISO-8601 calendar date or date-time (`2025-07-10`, `2025-07-10T12:34:56.789Z`)."""
    if not 8 <= len(value) <= 40 or parse_digits(value[:4]) is None:
        return False
    try:
        if len(value) <= 10:
            date.fromisoformat(value)
        else:
            datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def invalid_date_message(label: str) -> str:
    """The seed's wording for a value that is not a date."""
    return f"You have entered an invalid date value for {label}, expects a proper date string"


@field_type("date", "datetime", blank_is_empty=False)
def _clean_date(spec: FieldSpec, value: Any) -> str:
    if not isinstance(value, str) or not is_iso_date(value):
        raise FieldError(invalid_date_message(spec.label))
    return value


def _option_error(spec: FieldSpec) -> FieldError:
    allowed = ", ".join(spec.option_values)
    return FieldError(
        f"You have entered an invalid option for {spec.label}, expects one of: {allowed}"
    )


@field_type("dropdown", "radio", has_options=True)
def _clean_choice(spec: FieldSpec, value: Any) -> str:
    if not isinstance(value, str) or value not in spec.option_values:
        raise _option_error(spec)
    return value


@field_type("multiselect", has_options=True)
def _clean_multiselect(spec: FieldSpec, value: Any) -> list[str]:
    if not isinstance(value, list):
        raise FieldError(
            f"You have entered an invalid value for {spec.label}, expects a list of options"
        )
    allowed = spec.option_values
    if any(not isinstance(v, str) or v not in allowed for v in value):
        raise _option_error(spec)
    if len(set(value)) != len(value):
        raise FieldError(f"{spec.label} lists an option more than once")
    return list(value)


@field_type("checkbox", blank_is_empty=False)
def _clean_checkbox(spec: FieldSpec, value: Any) -> bool:
    if not isinstance(value, bool):
        raise FieldError(
            f"You have entered an invalid value for {spec.label}, expects true or false"
        )
    return value


@field_type("email")
def _clean_email(spec: FieldSpec, value: Any) -> str:
    text = _expect_string(spec, value, "email")
    if text == "":
        return text
    try:
        validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise FieldError(f"You have entered an invalid email address for {spec.label}") from exc
    return text


@field_type("user")
def _clean_user(spec: FieldSpec, value: Any) -> str:
    text = _expect_string(spec, value, "user")
    if len(text) > 320 or any(c.isspace() or not c.isprintable() for c in text):
        raise FieldError(
            f"You have entered an invalid user for {spec.label}, expects a username or email"
        )
    return text


# The default number of files an attachment field takes (`maxFiles`).
DEFAULT_MAX_FILES = 5


@field_type("attachment", blank_is_empty=False, in_ticket_body=False)
def _clean_attachment(spec: FieldSpec, value: Any) -> Any:
    raise FieldError(
        f"Field {spec.label} takes uploaded files: send their ids in attachments, not in ticketBody"
    )


def is_empty(value: Any) -> bool:
    """Null, a blank string and an empty list all count as "no value"."""
    return value is None or (isinstance(value, str) and not value.strip()) or value == []


def clean_value(spec: FieldSpec, value: Any) -> Any:
    """Validates one sent value; the result is what is stored. Raises FieldError."""
    kind = FIELD_TYPES[spec.type]
    if not kind.in_ticket_body:
        return kind.clean(spec, value)
    if value is None or (kind.blank_is_empty and is_empty(value)):
        if spec.required:
            raise FieldError(f"Field {spec.label} is required")
        return value
    cleaned = kind.clean(spec, value)
    if spec.required and is_empty(cleaned):
        raise FieldError(f"Field {spec.label} is required")
    return cleaned


def default_for(spec: FieldSpec) -> tuple[bool, Any]:
    """The field's defaultValue, cleaned, when it is a valid non-empty value of the field."""
    if is_empty(spec.default_value):
        # A blank text default is still a value the form shows; dates reject "" (seed).
        kind = FIELD_TYPES[spec.type]
        if spec.default_value == "" and kind.blank_is_empty and not spec.required:
            return True, ""
        return False, None
    try:
        return True, clean_value(spec, spec.default_value)
    except FieldError:
        return False, None
