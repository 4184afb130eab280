"""Forms of the staff pages that complete a patient's record: the escort taken by phone, the
allergies, a contraindication flagged after the decision, and a new patient registered at the
desk. They validate input only, with the checks every audience shares (``booking.validators``);
the services do the work.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from django import forms

from booking.forms import PatientDetailsCleaning
from booking.models import Contraindication
from booking.patients import ALLERGIES_MAX_LENGTH
from booking.validators import (
    normalize_escort_phone,
    normalize_name,
)


class DeskForm(forms.Form):
    """A staff form that can list its errors, each naming its field, for the error summary."""

    def error_summary(self) -> list[tuple[str, str]]:
        """(anchor, "Label: message") per error, in the order the fields appear."""
        summary: list[tuple[str, str]] = []
        for name in self.fields:
            bound = self[name]
            summary.extend(
                (bound.auto_id, f"{bound.label}: {e}") for e in self.errors.get(name, [])
            )
        summary.extend(("", str(e)) for e in self.non_field_errors())
        return summary


class EscortByPhoneForm(DeskForm):
    """The escort's details as the patient gives them on the phone; checked as the patient's own
    escort form checks them."""

    escort_name = forms.CharField(
        label="Escort's name",
        max_length=120,
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    escort_phone = forms.CharField(
        label="Escort's mobile number",
        max_length=32,
        help_text="For example +1 212 555 0123.",
        widget=forms.TextInput(attrs={"type": "tel", "autocomplete": "off"}),
    )

    def __init__(self, *args: Any, patient_phone: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.patient_phone = patient_phone

    def clean_escort_name(self) -> str:
        return normalize_name(self.cleaned_data["escort_name"])

    def clean_escort_phone(self) -> str:
        return normalize_escort_phone(
            self.cleaned_data["escort_phone"],
            patient_phone=self.patient_phone,
            own_number_message="Enter the escort's number, not the patient's own.",
        )


class AllergiesForm(DeskForm):
    """The patient's known allergies, or that they have none: an answer either way, so a record
    nobody has asked about stays "not asked yet"."""

    allergies = forms.CharField(
        label="Known allergies",
        required=False,
        max_length=ALLERGIES_MAX_LENGTH,
        help_text="What the patient is allergic to, and how they react.",
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    none_known = forms.BooleanField(label="No known allergies", required=False)

    # Registering may leave the question for later; the visit page records an answer.
    answer_required = True

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        listed = data.get("allergies", "").strip()
        if listed and data.get("none_known"):
            self.add_error(
                "none_known", "List the allergies or tick “No known allergies”, not both."
            )
        elif not listed and not data.get("none_known") and self.answer_required:
            self.add_error("allergies", "List the allergies, or tick “No known allergies”.")
        return data

    def allergies_answer(self) -> str | None:
        """What the patient said ("" for none known), or ``None`` when nobody asked."""
        listed: str = self.cleaned_data.get("allergies", "").strip()
        if listed:
            return listed
        return "" if self.cleaned_data.get("none_known") else None


class ContraindicationFlagForm(DeskForm):
    contraindication = forms.ModelChoiceField(
        queryset=Contraindication.objects.none(),
        label="Contraindication now present",
        empty_label="Choose one…",
    )
    note = forms.CharField(
        label="Note",
        required=False,
        max_length=500,
        help_text="What was noticed, and when.",
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["contraindication"]
        assert isinstance(field, forms.ModelChoiceField)  # noqa: S101 - narrows the type
        field.queryset = Contraindication.objects.filter(is_active=True).order_by("position", "id")


class PatientRegisterForm(PatientDetailsCleaning, AllergiesForm):
    """A new patient at the desk. "This is a different person" is asked only once likely
    duplicates have been shown."""

    first_name = forms.CharField(
        label="First name",
        max_length=100,
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    last_name = forms.CharField(
        label="Last name",
        max_length=100,
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    date_of_birth = forms.DateField(
        label="Date of birth",
        input_formats=["%Y-%m-%d"],
        help_text="For example 1984-03-14.",
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        error_messages={"invalid": "Enter the date of birth as YYYY-MM-DD."},
    )
    email = forms.EmailField(
        label="E-mail",
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "off"}),
    )
    phone = forms.CharField(
        label="Mobile phone",
        max_length=32,
        help_text="For reminders by text message, e.g. +1 212 555 0123.",
        widget=forms.TextInput(attrs={"type": "tel", "autocomplete": "off"}),
    )
    different_person = forms.BooleanField(label="This is a different person", required=False)

    answer_required = False

    def __init__(self, *args: Any, today: date, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.today = today
        self.order_fields(
            [
                "first_name",
                "last_name",
                "date_of_birth",
                "email",
                "phone",
                "allergies",
                "none_known",
                "different_person",
            ]
        )

    def person_fields(self) -> list[forms.BoundField]:
        return [self[n] for n in ("first_name", "last_name", "date_of_birth", "email", "phone")]
