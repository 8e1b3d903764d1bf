"""Unit tests of ticketing.catalog.fields: the field-type registry and its validators."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from ticketing.catalog.config_file import FieldConfig
from ticketing.catalog.fields import (
    FIELD_TYPES,
    FieldError,
    FieldSpec,
    clean_value,
    default_for,
    is_iso_date,
)

SPEC_TYPES = {
    "text",
    "textarea",
    "richtext",
    "number",
    "date",
    "datetime",
    "dropdown",
    "radio",
    "multiselect",
    "checkbox",
    "email",
    "user",
}
OPTIONS = ({"value": "low", "label": "Low"}, {"value": "medium"}, {"value": "high"})
CHOICE_TYPES = {"dropdown", "radio", "multiselect"}


def spec(
    type_: str,
    *,
    label: str = "Label",
    required: bool = False,
    default: Any = None,
    **limits: Any,
) -> FieldSpec:
    return FieldSpec(
        id="00000000-0000-4000-8000-0000000000ff",
        name="f",
        label=label,
        type=type_,
        required=required,
        default_value=default,
        options=OPTIONS if type_ in CHOICE_TYPES else (),
        limits=limits,
    )


def rejects(field: FieldSpec, value: Any) -> str:
    with pytest.raises(FieldError) as info:
        clean_value(field, value)
    message = str(info.value)
    assert message.strip()
    return message


# --------------------------------------------------------------------------- registry


def test_registry_has_every_spec_type() -> None:
    assert set(FIELD_TYPES) == SPEC_TYPES | FILE_FIELD_TYPES


# Field types whose values are uploaded files, sent in `attachments` (never in ticketBody).
FILE_FIELD_TYPES = {"attachment"}


@pytest.mark.parametrize("value", [None, "", "x", ["id"], {}])
@pytest.mark.parametrize("required", [True, False])
def test_a_file_field_takes_no_ticket_body_value(value: Any, required: bool) -> None:
    assert {n for n, k in FIELD_TYPES.items() if not k.in_ticket_body} == FILE_FIELD_TYPES
    message = rejects(spec("attachment", label="Shots", required=required), value)
    assert message == (
        "Field Shots takes uploaded files: send their ids in attachments, not in ticketBody"
    )


def test_registry_entries_are_named_and_callable() -> None:
    for name, kind in FIELD_TYPES.items():
        assert kind.name == name
        assert callable(kind.clean)
    assert {n for n, k in FIELD_TYPES.items() if k.has_options} == CHOICE_TYPES


def test_unknown_type_is_not_silently_accepted() -> None:
    with pytest.raises(KeyError):
        clean_value(spec("colour"), "red")


# --------------------------------------------------------------------------- required / empty


@pytest.mark.parametrize("type_", sorted(SPEC_TYPES))
@pytest.mark.parametrize("value", [None, "", "   "])
def test_required_blank_or_null_is_required_error(type_: str, value: Any) -> None:
    field = spec(type_, label="Title", required=True)
    message = rejects(field, value)
    if value is None or type_ not in {"number", "date", "datetime", "checkbox"}:
        assert message == "Field Title is required"


@pytest.mark.parametrize("type_", sorted(SPEC_TYPES))
def test_optional_null_is_no_value(type_: str) -> None:
    assert clean_value(spec(type_), None) is None


@pytest.mark.parametrize("type_", ["date", "datetime"])
@pytest.mark.parametrize("required", [True, False])
def test_empty_string_is_an_invalid_date(type_: str, required: bool) -> None:
    message = rejects(spec(type_, label="Due", required=required), "")
    assert message == "You have entered an invalid date value for Due, expects a proper date string"


def test_required_multiselect_empty_list() -> None:
    assert rejects(spec("multiselect", label="Tags", required=True), []) == (
        "Field Tags is required"
    )


# --------------------------------------------------------------------------- text types


@pytest.mark.parametrize("type_", ["text", "textarea"])
def test_text_max_length(type_: str) -> None:
    field = spec(type_, maxLength=5)
    assert clean_value(field, "abcde") == "abcde"
    rejects(field, "abcdef")


def test_text_min_length() -> None:
    field = spec("text", minLength=3)
    assert clean_value(field, "abc") == "abc"
    rejects(field, "ab")


@pytest.mark.parametrize("type_", ["text", "textarea", "richtext", "email", "user"])
@pytest.mark.parametrize("value", [1, 1.5, True, ["a"], {"a": 1}])
def test_string_types_reject_non_strings(type_: str, value: Any) -> None:
    rejects(spec(type_), value)


def test_text_kept_verbatim() -> None:
    assert clean_value(spec("text"), "  a <b>b</b>  ") == "  a <b>b</b>  "


@pytest.mark.parametrize(
    "dirty",
    [
        "<p>hi</p><script>alert(1)</script>",
        '<p>hi</p><img src="x" onerror="alert(1)">',
        '<p>hi</p><a href="javascript:alert(1)">x</a>',
        '<p onmouseover="x()">hi</p>',
        '<p>hi</p><a href="JaVaScRiPt:alert(1)">x</a>',
    ],
)
def test_richtext_sanitized(dirty: str) -> None:
    cleaned = clean_value(spec("richtext"), dirty)
    lowered = cleaned.lower()
    assert "<script" not in lowered
    assert "onerror" not in lowered
    assert "onmouseover" not in lowered
    assert "javascript:" not in lowered
    assert "hi" in cleaned


def test_richtext_harmless_kept() -> None:
    html = "<p>Current laptop battery no longer holds charge.</p>"
    assert clean_value(spec("richtext"), html) == html


# --------------------------------------------------------------------------- number


def test_number_accepts_ints_and_floats() -> None:
    field = spec("number", min=0, max=100)
    assert clean_value(field, 0) == 0
    assert clean_value(field, 100) == 100
    assert clean_value(field, 12.5) == 12.5


@pytest.mark.parametrize(
    "value", ["5", "", True, False, [1], float("nan"), float("inf"), -float("inf")]
)
def test_number_rejects_non_numbers(value: Any) -> None:
    rejects(spec("number"), value)


@pytest.mark.parametrize("value", [-1, -0.001, 100.001, 101])
def test_number_limits(value: float) -> None:
    rejects(spec("number", min=0, max=100), value)


@pytest.mark.parametrize(
    ("limits", "value", "message"),
    [
        ({"min": 0, "max": 10}, -1, "Qty must be at least 0"),
        ({"min": 0.0, "max": 10.0}, 11, "Qty must be at most 10"),  # loaded as floats earlier
        ({"min": 0.5, "max": 2.25}, 3, "Qty must be at most 2.25"),
        ({"min": -1e21}, -1e22, "Qty must be at least -1000000000000000000000"),
    ],
)
def test_number_limits_read_as_written(limits: dict[str, Any], value: float, message: str) -> None:
    assert rejects(spec("number", label="Qty", **limits), value) == message


def test_whole_number_limits_stay_whole_numbers_in_the_configuration() -> None:
    field = FieldConfig.model_validate(
        {"id": str(uuid.uuid4()), "name": "Qty", "type": "number", "min": 0, "max": 10.5}
    )
    assert field.limits == {"min": 0, "max": 10.5}
    assert isinstance(field.limits["min"], int)


# --------------------------------------------------------------------------- dates


@pytest.mark.parametrize("type_", ["date", "datetime"])
@pytest.mark.parametrize(
    "value", ["2025-07-10T12:34:56.789Z", "2025-07-10", "2025-07-10T12:34:56+02:00"]
)
def test_dates_accept_iso_strings(type_: str, value: str) -> None:
    assert clean_value(spec(type_), value) == value


@pytest.mark.parametrize("type_", ["date", "datetime"])
@pytest.mark.parametrize("value", ["garbage", "2025-02-30", 20250710, True, ["2025-07-10"]])
def test_dates_reject_non_iso(type_: str, value: Any) -> None:
    message = rejects(spec(type_, label="Updated At"), value)
    assert message == (
        "You have entered an invalid date value for Updated At, expects a proper date string"
    )


@pytest.mark.parametrize(
    "value",
    [
        "2025-07-10",
        "2025-07-10T12:34:56.789Z",
        "2025-07-10T12:34:56Z",
        "2025-07-10T12:34:56",
        "2025-07-10T12:34:56.789+00:00",
        "2025-07-10T12:34:56-05:30",
        "2024-02-29",
        "2025-12-31T23:59:59.999Z",
    ],
)
def test_is_iso_date_accepts(value: str) -> None:
    assert is_iso_date(value) is True


@pytest.mark.parametrize(
    "value",
    [
        "",
        " ",
        "garbage",
        "2025",
        "2025-07",
        "2025-7-1",
        "2025-13-01",
        "2025-00-10",
        "2025-02-29",
        "2025-04-31",
        "2025-07-10T25:00:00Z",
        "2025-07-10T12:60:00Z",
        "10/07/2025",
        "07/10/2025",
        "July 10, 2025",
        " 2025-07-10",
        "2025-07-10T12:34:56.789Z" + "0" * 40,
        "0000-01-01",
        "2025-07-10Tnoon",
    ],
)
def test_is_iso_date_rejects(value: str) -> None:
    assert is_iso_date(value) is False


# --------------------------------------------------------------------------- choices


@pytest.mark.parametrize("type_", ["dropdown", "radio"])
def test_choice_values(type_: str) -> None:
    field = spec(type_)
    assert clean_value(field, "low") == "low"
    assert clean_value(field, "high") == "high"
    for bad in ["Low", "urgent", 1, ["low"], True]:
        rejects(field, bad)


def test_multiselect() -> None:
    field = spec("multiselect")
    sent = ["high", "low"]
    cleaned = clean_value(field, sent)
    assert cleaned == ["high", "low"]
    for bad in ["low", ["low", "nope"], ["low", "low"], [1], {"low": True}, [["low"]]]:
        rejects(field, bad)


# --------------------------------------------------------------------------- checkbox, email, user


def test_checkbox() -> None:
    field = spec("checkbox")
    assert clean_value(field, True) is True
    assert clean_value(field, False) is False
    for bad in ["true", "false", 1, 0, "", []]:
        rejects(field, bad)


def test_required_checkbox_false_is_a_value() -> None:
    assert clean_value(spec("checkbox", required=True), False) is False


def test_email() -> None:
    field = spec("email")
    assert clean_value(field, "jane.doe@example.com") == "jane.doe@example.com"
    for bad in ["jane", "a@", "@example.com", "a b@example.com"]:
        rejects(field, bad)


def test_user() -> None:
    field = spec("user")
    assert clean_value(field, "jdoe") == "jdoe"
    assert clean_value(field, "jane.doe@example.com") == "jane.doe@example.com"
    for bad in ["two words", "tab\tname", "x" * 321, "new\nline"]:
        rejects(field, bad)


# --------------------------------------------------------------------------- default_for


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        (spec("dropdown", default="medium"), (True, "medium")),
        (spec("radio", default="nonsense"), (False, None)),
        (spec("date", default=""), (False, None)),
        (spec("datetime", default=""), (False, None)),
        (spec("date", default="2025-07-10"), (True, "2025-07-10")),
        (spec("checkbox", default=False), (True, False)),
        (spec("checkbox", default=True), (True, True)),
        (spec("checkbox", default="false"), (False, None)),
        (spec("number", default=5, min=0, max=10), (True, 5)),
        (spec("number", default=50, min=0, max=10), (False, None)),
        (spec("number", default="5"), (False, None)),
        (spec("text", default="hello"), (True, "hello")),
        (spec("text", default="too long", maxLength=3), (False, None)),
        (spec("multiselect", default=["low"]), (True, ["low"])),
        (spec("multiselect", default=["bogus"]), (False, None)),
        (spec("email", default="not-an-email"), (False, None)),
        (spec("text"), (False, None)),
        (spec("dropdown"), (False, None)),
    ],
    ids=lambda v: v.type if isinstance(v, FieldSpec) else None,
)
def test_default_for(field: FieldSpec, expected: tuple[bool, Any]) -> None:
    assert default_for(field) == expected


def test_default_for_sanitizes_richtext() -> None:
    found, value = default_for(spec("richtext", default="<p>x</p><script>alert(1)</script>"))
    assert found is True
    assert "<p>x</p>" in value
    assert "<script" not in value


def test_default_for_required_blank_is_not_a_default() -> None:
    assert default_for(spec("text", required=True, default="")) == (False, None)


@pytest.mark.parametrize(
    ("type_", "default", "expected"),
    [
        ("text", "x", (True, "x")),
        ("text", 5, (False, None)),
        ("dropdown", "low", (True, "low")),
        ("dropdown", "LOW", (False, None)),
        ("radio", "high", (True, "high")),
        ("radio", "nonsense", (False, None)),
        ("date", "2025-07-10T12:34:56.789Z", (True, "2025-07-10T12:34:56.789Z")),
        ("date", "yesterday", (False, None)),
        ("number", 3, (True, 3)),
        ("number", True, (False, None)),
        ("checkbox", False, (True, False)),
        ("checkbox", 0, (False, None)),
        ("multiselect", ["low", "high"], (True, ["low", "high"])),
        ("multiselect", ["low", "low"], (False, None)),
        ("email", "a@example.com", (True, "a@example.com")),
        ("user", "jdoe", (True, "jdoe")),
        ("user", "j doe", (False, None)),
    ],
)
def test_default_applied_iff_it_is_a_valid_value(
    type_: str, default: Any, expected: tuple[bool, Any]
) -> None:
    assert default_for(spec(type_, default=default)) == expected
