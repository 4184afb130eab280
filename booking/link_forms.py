"""Forms of the patient's secure-link pages. They validate input only; services do the work."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone

from booking.validators import normalize_phone, validate_date_of_birth


class LinkRequestForm(forms.Form):
    email = forms.EmailField(
        label="Email address",
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    date_of_birth = forms.DateField(
        label="Date of birth",
        input_formats=["%Y-%m-%d"],
        widget=forms.DateInput(attrs={"type": "date", "autocomplete": "bday"}),
    )
    # Hidden from people by CSS; bots that fill every field give themselves away.
    website = forms.CharField(required=False, label="Leave this empty")

    def clean_date_of_birth(self) -> Any:
        value = self.cleaned_data["date_of_birth"]
        return validate_date_of_birth(value, today=timezone.now().date())

    @property
    def is_bot(self) -> bool:
        return bool(self.cleaned_data.get("website"))


class EscortForm(forms.Form):
    escort_name = forms.CharField(
        label="Name of the person taking you home",
        max_length=120,
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    escort_phone = forms.CharField(
        label="Their mobile number",
        max_length=32,
        widget=forms.TextInput(attrs={"type": "tel", "autocomplete": "off"}),
    )

    def __init__(self, *args: Any, patient_phone: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.patient_phone = patient_phone

    def clean_escort_name(self) -> str:
        name = " ".join(self.cleaned_data["escort_name"].split())
        if not name:
            raise ValidationError("Enter their name.")
        return name

    def clean_escort_phone(self) -> str:
        phone = normalize_phone(self.cleaned_data["escort_phone"])
        # The escort has to come in person; the patient's own number would mean nobody does.
        if self.patient_phone and phone == self.patient_phone:
            raise ValidationError("Enter the number of the person taking you home, not your own.")
        return phone


class RescheduleForm(forms.Form):
    start = forms.CharField(max_length=40)

    def clean_start(self) -> datetime:
        raw = self.cleaned_data["start"]
        try:
            start = datetime.fromisoformat(raw)
        except ValueError as exc:
            raise ValidationError("Choose one of the times shown.") from exc
        if timezone.is_naive(start):
            raise ValidationError("Choose one of the times shown.")
        return start


CANCEL_REASONS = [
    ("time", "I can't make this time"),
    ("unwell", "I'm unwell"),
    ("not-needed", "I no longer need this visit"),
    ("other", "Another reason"),
]


class CancelForm(forms.Form):
    reason = forms.ChoiceField(
        label="Why are you cancelling?", choices=CANCEL_REASONS, widget=forms.RadioSelect
    )
    details = forms.CharField(
        label="Anything you'd like us to know (optional)",
        required=False,
        max_length=400,
        widget=forms.Textarea(attrs={"rows": 3}),
    )

    def reason_text(self) -> str:
        label = dict(CANCEL_REASONS)[self.cleaned_data["reason"]]
        details = " ".join(self.cleaned_data["details"].split())
        return f"{label}: {details}" if details else label
