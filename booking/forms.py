"""What every form that takes a patient's details shares: the booking page's and the desk's
registration clean the name, date of birth and phone one way, and hand the services one
``PatientDetails``."""

from __future__ import annotations

from datetime import date
from typing import Any

from booking.services import PatientDetails
from booking.validators import normalize_name, normalize_phone, validate_date_of_birth


class PatientDetailsCleaning:
    """Mixed into a ``forms.Form`` with ``first_name``, ``last_name``, ``date_of_birth``,
    ``email`` and ``phone`` fields, whose ``today`` is the clinic's date."""

    cleaned_data: dict[str, Any]
    today: date

    def clean_first_name(self) -> str:
        return normalize_name(self.cleaned_data["first_name"])

    def clean_last_name(self) -> str:
        return normalize_name(self.cleaned_data["last_name"])

    def clean_date_of_birth(self) -> date:
        return validate_date_of_birth(self.cleaned_data["date_of_birth"], today=self.today)

    def clean_phone(self) -> str:
        return normalize_phone(self.cleaned_data["phone"])

    def patient_details(self) -> PatientDetails:
        data = self.cleaned_data
        return PatientDetails(
            first_name=data["first_name"],
            last_name=data["last_name"],
            email=data["email"],
            phone=data["phone"],
            date_of_birth=data["date_of_birth"],
        )
