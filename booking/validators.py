"""Checks shared by the forms of every audience and the API serializers, so all refuse the same
input."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, date, datetime

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.dateparse import parse_datetime
from phonenumbers import geocoder

# Dates outside this span are refused rather than searched: nothing is bookable there, and
# the bound keeps date arithmetic far from datetime's limits.
EARLIEST_DATE = date(2000, 1, 1)
LATEST_DATE = date(2100, 12, 31)
DATE_RANGE_MESSAGE = f"Must be between {EARLIEST_DATE.isoformat()} and {LATEST_DATE.isoformat()}."


def validate_date_in_range(value: date) -> None:
    """A form field's validator: a day from EARLIEST_DATE to LATEST_DATE. A page turns a day
    into local midnights and the days either side, which for 0001-01-01 or 9999-12-31 (or a
    zone east of UTC on the first) fall outside what datetime can hold."""
    if not EARLIEST_DATE <= value <= LATEST_DATE:
        raise ValidationError(DATE_RANGE_MESSAGE, code="date_range")


def parse_aware_instant(value: object) -> datetime:
    """An ISO 8601 date and time that carries its UTC offset, in UTC; ValidationError with code
    ``invalid`` (not such a text), ``naive`` (no offset: a visit's time is never guessed) or
    ``range`` (outside EARLIEST_DATE to LATEST_DATE). Each caller words the error its way."""
    parsed = None
    if isinstance(value, str) and len(value) <= 64:
        try:
            parsed = parse_datetime(value)
        except ValueError:
            parsed = None
    if parsed is None:
        raise ValidationError("Not an ISO 8601 date and time.", code="invalid")
    if parsed.utcoffset() is None:
        raise ValidationError("No UTC offset.", code="naive")
    try:
        instant = parsed.astimezone(UTC)
    except OverflowError:
        instant = None
    if instant is None or not EARLIEST_DATE <= instant.date() <= LATEST_DATE:
        raise ValidationError(DATE_RANGE_MESSAGE, code="range")
    return instant


def normalize_phone(value: str) -> str:
    """The number in E.164 (``+12125550123``), or ValidationError for anything not a mobile-
    capable, valid number."""
    try:
        number = phonenumbers.parse(value, settings.DEFAULT_PHONE_REGION)
    except phonenumbers.NumberParseException as exc:
        raise ValidationError("Enter a valid phone number, e.g. +1 212 555 0123.") from exc
    if not phonenumbers.is_valid_number(number):
        raise ValidationError("Enter a valid phone number, e.g. +1 212 555 0123.")
    if phonenumbers.number_type(number) not in (
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    ):
        raise ValidationError("Enter a mobile number: reminders are sent by text message.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _country_name(region: str) -> str:
    example = phonenumbers.example_number(region)
    name = geocoder.country_name_for_number(example, "en") if example else ""
    return name or region


def validate_text_region(phone: str, regions: Collection[str]) -> str:
    """``phone`` (E.164, as :func:`normalize_phone` gives it) if it belongs to one of
    ``regions`` (``phonenumbers`` region codes, e.g. ``{"US"}``), else ValidationError.

    A clinic texts only the countries it works in: a number elsewhere may be a premium range
    that a script books with to be paid for the texts (security issue #15).
    """
    region = phonenumbers.region_code_for_number(phonenumbers.parse(phone, None))
    if region not in regions:
        names = ", ".join(sorted(_country_name(code) for code in regions))
        raise ValidationError(
            f"We can only take mobile numbers of these countries: {names}. To book with "
            "another number, please call us."
        )
    return phone


def normalize_name(value: str) -> str:
    """A person's name as typed, its runs of whitespace collapsed to one space."""
    return " ".join(value.split())


def normalize_escort_phone(value: str, *, patient_phone: str, own_number_message: str) -> str:
    """The escort's mobile number in E.164 (:func:`normalize_phone`). The patient's own number
    is refused with ``own_number_message`` (each audience words it for its reader): the escort
    has to come in person, and the patient's own number would mean nobody does."""
    phone = normalize_phone(value)
    if patient_phone and phone == patient_phone:
        raise ValidationError(own_number_message)
    return phone


def validate_date_of_birth(value: date, *, today: date) -> date:
    """A plausible date of birth: in the past, and a person under 120."""
    if value >= today:
        raise ValidationError("The date of birth must be in the past.")
    if value.year < today.year - 120:
        raise ValidationError("Enter the date of birth as YYYY-MM-DD.")
    return value
