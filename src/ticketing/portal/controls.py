"""Form controls as data: one entry per field type says how it renders and how it reads.

A control turns the strings a browser posts into the JSON value the create endpoint takes,
without judging it: a value the field rejects is sent as it is, so the service layer's
validator answers with the same message the API gives. Adding a field type is adding one
entry here and one macro in templates/_controls.html.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ticketing.catalog.fields import FieldSpec

FormData = Mapping[str, Sequence[str]]
# Returned by a reader when the form leaves an optional field blank: the key is not sent,
# so the field's valid default applies as it does for an API client that omits it.
OMIT = object()

Reader = Callable[[FieldSpec, Sequence[str]], Any]
Shower = Callable[[FieldSpec, Any], Any]


@dataclass(frozen=True)
class Control:
    """How one field type appears in a form and how its posted value is read."""

    macro: str
    read: Reader
    # The value the control shows for a stored or default value.
    show: Shower


CONTROLS: dict[str, Control] = {}


def input_name(spec: FieldSpec) -> str:
    """The form key of a field's control."""
    return f"f-{spec.id}"


def register(*types: str, macro: str, show: Shower | None = None) -> Callable[[Reader], Reader]:
    """Registers a reader (and its template macro) for one or more field types."""

    def decorate(read: Reader) -> Reader:
        for name in types:
            CONTROLS[name] = Control(macro, read, show or _show_text)
        return read

    return decorate


def _show_text(_spec: FieldSpec, value: Any) -> Any:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def _blank(spec: FieldSpec) -> Any:
    # A blank required field is sent as null: the validator answers "Field {label} is required".
    return None if spec.required else OMIT


def _single(posted: Sequence[str]) -> str:
    return posted[0] if posted else ""


@register("text", "email", "user", "date", macro="single_line")
def _read_text(spec: FieldSpec, posted: Sequence[str]) -> Any:
    value = _single(posted)
    return value if value.strip() else _blank(spec)


register("dropdown", macro="dropdown")(_read_text)
register("radio", macro="radio")(_read_text)


@register("textarea", "richtext", macro="multi_line")
def _read_multiline(spec: FieldSpec, posted: Sequence[str]) -> Any:
    # Browsers post line breaks as CRLF; stored text uses LF like the API's clients.
    value = _single(posted).replace("\r\n", "\n")
    return value if value.strip() else _blank(spec)


_INTEGER = re.compile(r"^[+-]?[0-9]{1,18}$")


@register("number", macro="single_line")
def _read_number(spec: FieldSpec, posted: Sequence[str]) -> Any:
    value = _single(posted).strip()
    if not value:
        return _blank(spec)
    if _INTEGER.match(value):
        return int(value)
    try:
        return float(value)
    except ValueError:
        return value  # the validator names it an invalid number


def _show_datetime(_spec: FieldSpec, value: Any) -> Any:
    # datetime-local takes minutes (or seconds) and no zone: 2025-07-10T12:34:56.789Z shows
    # as 2025-07-10T12:34:56.
    if not isinstance(value, str):
        return ""
    return value[:19] if len(value) >= 16 and value[10:11] == "T" else value


@register("datetime", macro="single_line", show=_show_datetime)
def _read_datetime(spec: FieldSpec, posted: Sequence[str]) -> Any:
    value = _single(posted)
    return value if value.strip() else _blank(spec)


def _show_list(_spec: FieldSpec, value: Any) -> Any:
    return [str(v) for v in value] if isinstance(value, list) else []


@register("multiselect", macro="multiselect", show=_show_list)
def _read_multiselect(spec: FieldSpec, posted: Sequence[str]) -> Any:
    values = [v for v in posted if v]
    return values if values else _blank(spec)


def _show_checkbox(_spec: FieldSpec, value: Any) -> Any:
    return value is True


@register("checkbox", macro="checkbox", show=_show_checkbox)
def _read_checkbox(_spec: FieldSpec, posted: Sequence[str]) -> Any:
    return "true" in posted


def _show_files(_spec: FieldSpec, value: Any) -> Any:
    # The uploads a form keeps (id and name); a field's default is no file.
    return value if isinstance(value, list) else []


@register("attachment", macro="file_upload", show=_show_files)
def _read_files(_spec: FieldSpec, _posted: Sequence[str]) -> Any:
    # Files are not ticketBody values: the form's files go in the create's `attachments`
    # (portal.service.receive_form_with_files).
    return OMIT


def control_for(spec: FieldSpec) -> Control:
    """The control of a field's type."""
    return CONTROLS[spec.type]


def html_input_type(field_type: str) -> str:
    """The `type` of the <input> of a single-line control."""
    return {
        "number": "number",
        "email": "email",
        "date": "date",
        "datetime": "datetime-local",
    }.get(field_type, "text")
