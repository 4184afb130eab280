"""Checks shared by the forms of every audience and the API serializers, so all refuse the same
input."""

from __future__ import annotations

from datetime import date

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError

# Dates outside this span are refused rather than searched: nothing is bookable there, and
# the bound keeps date arithmetic far from datetime's limits.
EARLIEST_DATE = date(2000, 1, 1)
LATEST_DATE = date(2100, 12, 31)


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
