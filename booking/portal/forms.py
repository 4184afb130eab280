"""Forms of the patient's pages: the public booking form (who the patient is, what they tell the
prescriber, and the time) and the secure-link pages' forms. They validate input only; services
do the work.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.http import QueryDict
from django.utils import timezone

from booking.forms import PatientDetailsCleaning
from booking.models import SMS_CONSENT_VERSION, SMS_CONSENT_WORDINGS, IntakeOption, IntakeOptionKind
from booking.pow import MAX_PAYLOAD_LENGTH
from booking.services import IntakeAnswers
from booking.validators import (
    EARLIEST_DATE,
    LATEST_DATE,
    normalize_escort_phone,
    normalize_name,
    validate_date_of_birth,
    validate_text_region,
)
from scheduling.models import Location

HONEYPOT = "website"
SCREENING_PREFIX = "screening_"
YES_NO = [("yes", "Yes"), ("no", "No")]


def parse_start(value: str | None) -> datetime | None:
    """An ISO 8601 time with its offset, or None: a time without an offset is ambiguous and
    must not be guessed."""
    if not value or len(value) > 40:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None or moment.utcoffset() is None:
        return None
    if not EARLIEST_DATE <= moment.date() <= LATEST_DATE:
        return None  # no time is offered there, and year 1 or 9999 overflows the arithmetic
    return moment


class BookingDetailsForm(PatientDetailsCleaning, forms.Form):
    """Everything the booking service needs, shown as the details step and carried (as hidden
    fields) through review to confirmation, where it is validated again."""

    start = forms.CharField(widget=forms.HiddenInput, max_length=40)
    first_name = forms.CharField(
        max_length=100, widget=forms.TextInput(attrs={"autocomplete": "given-name"})
    )
    last_name = forms.CharField(
        max_length=100, widget=forms.TextInput(attrs={"autocomplete": "family-name"})
    )
    date_of_birth = forms.DateField(
        input_formats=["%Y-%m-%d", "%m/%d/%Y"],
        widget=forms.DateInput(attrs={"type": "date", "autocomplete": "bday"}, format="%Y-%m-%d"),
        help_text="For example 1984-03-14.",
        error_messages={"invalid": "Enter the date of birth as YYYY-MM-DD."},
    )
    email = forms.EmailField(
        max_length=254,
        label="Email",
        help_text="We send your confirmation and your personal link here.",
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    phone = forms.CharField(
        max_length=32,
        label="Mobile phone",
        help_text="For appointment reminders, e.g. +1 212 555 0123.",
        widget=forms.TextInput(attrs={"type": "tel", "autocomplete": "tel"}),
    )
    conditions = forms.MultipleChoiceField(
        label="What would you like help with?",
        help_text="Choose all that apply.",
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one."},
    )
    medications = forms.CharField(
        label="Current medications",
        help_text="Names and doses if you know them. Leave empty if none.",
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    prior_treatments = forms.CharField(
        label="Treatments you have tried before",
        help_text="Leave empty if none.",
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    sms_consent = forms.BooleanField(
        label=SMS_CONSENT_WORDINGS[SMS_CONSENT_VERSION],
        required=False,
    )
    # The solved proof-of-work challenge (booking.pow), where it is asked for: the widget's own
    # hidden field on the details page, carried through review like the answers.
    altcha = forms.CharField(
        label="Check that you are not a robot",
        required=False,
        max_length=MAX_PAYLOAD_LENGTH,
        widget=forms.HiddenInput,
    )
    website = forms.CharField(
        label="Leave this field empty",
        required=False,
        max_length=200,
        widget=forms.TextInput(attrs={"autocomplete": "off", "tabindex": "-1"}),
    )

    def __init__(self, *args: Any, location: Location, today: date, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.today = today
        self.location = location
        options = list(IntakeOption.objects.filter(location=location, is_active=True))
        self.condition_options = {
            str(o.pk): o.text for o in options if o.kind == IntakeOptionKind.CONDITION
        }
        conditions = self.fields["conditions"]
        conditions.choices = list(self.condition_options.items())  # type: ignore[attr-defined]
        if not self.condition_options:
            conditions.required = False
        self.screening_questions: dict[str, str] = {}
        for option in options:
            if option.kind != IntakeOptionKind.SCREENING:
                continue
            name = f"{SCREENING_PREFIX}{option.pk}"
            self.screening_questions[name] = option.text
            self.fields[name] = forms.ChoiceField(
                label=option.text,
                choices=YES_NO,
                widget=forms.RadioSelect,
                error_messages={"required": "Answer yes or no."},
            )
        # Screening after the history, consent after that; the honeypot goes last, where a
        # person tabbing through the form never reaches it.
        self.order_fields(
            [
                *(n for n in self.fields if n not in ("sms_consent", HONEYPOT)),
                "sms_consent",
                HONEYPOT,
            ]
        )

    # --- Validation ---------------------------------------------------------------------------

    def clean_phone(self) -> str:
        # Only the countries the clinic texts (security issue #15): see Location.text_regions.
        return validate_text_region(super().clean_phone(), self.location.text_regions)

    def clean_start(self) -> datetime:
        start = parse_start(self.cleaned_data["start"])
        if start is None:
            raise ValidationError("Choose a time.")
        return start

    # --- What the services take -----------------------------------------------------------------

    @property
    def is_spam(self) -> bool:
        """A person never sees the honeypot; anything typed into it came from a robot."""
        return bool(self.cleaned_data.get(HONEYPOT, "").strip())

    @property
    def start_at(self) -> datetime:
        start: datetime = self.cleaned_data["start"]
        return start

    def intake_answers(self) -> IntakeAnswers:
        data = self.cleaned_data
        return IntakeAnswers(
            conditions=[self.condition_options[pk] for pk in data.get("conditions", [])],
            medications=data["medications"],
            prior_treatments=data["prior_treatments"],
            # The question is stored with its wording as shown, beside the answer.
            screening=[
                {"question": text, "answer": data[name] == "yes"}
                for name, text in self.screening_questions.items()
            ],
        )

    # --- Showing and carrying the answers ------------------------------------------------------

    def screening_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.screening_questions]

    def person_fields(self) -> list[forms.BoundField]:
        names = ("first_name", "last_name", "date_of_birth", "email", "phone")
        return [self[name] for name in names]

    def error_summary(self) -> list[tuple[str, str]]:
        """(anchor, text naming the field) per error, in the order the fields appear."""
        summary: list[tuple[str, str]] = []
        for name, field in self.fields.items():
            if name not in self.errors or name == "start":
                continue
            bound = self[name]
            anchor = bound.auto_id
            if isinstance(field.widget, forms.CheckboxSelectMultiple | forms.RadioSelect):
                anchor = f"{anchor}_0"  # the first box of the group takes the focus
            label = str(bound.label)
            # "Date of birth: ...", but "Are you pregnant? Answer yes or no."
            lead = f"{label} " if label.endswith("?") else f"{label}: "
            summary.extend((anchor, lead + str(message)) for message in self.errors[name])
        return summary

    def carried(self) -> Iterator[tuple[str, str]]:
        """The cleaned answers as (name, value) pairs for hidden fields."""
        data = self.cleaned_data
        for name in self.fields:
            value = data.get(name)
            if name == "start":
                yield name, self.start_at.isoformat()
            elif isinstance(value, date):
                yield name, value.isoformat()
            elif name == "sms_consent":
                if value:
                    yield name, "on"
            elif isinstance(value, list):
                for item in value:
                    yield name, item
            elif value:
                yield name, str(value)

    @classmethod
    def initial_from(cls, data: QueryDict) -> dict[str, Any]:
        """Answers posted back from the review page, as the initial values of a fresh form (so
        "Change" shows them without flagging anything as an error)."""
        initial: dict[str, Any] = {}
        for name in data:
            if name in ("csrfmiddlewaretoken", HONEYPOT):
                continue
            if name == "conditions":
                initial[name] = data.getlist(name)
            elif name == "sms_consent":
                initial[name] = data.get(name) == "on"
            else:
                initial[name] = data.get(name, "")
        return initial

    @property
    def sms_consent_version(self) -> str:
        return SMS_CONSENT_VERSION


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
        name = normalize_name(self.cleaned_data["escort_name"])
        if not name:
            raise ValidationError("Enter their name.")
        return name

    def clean_escort_phone(self) -> str:
        return normalize_escort_phone(
            self.cleaned_data["escort_phone"],
            patient_phone=self.patient_phone,
            own_number_message="Enter the number of the person taking you home, not your own.",
        )


class RescheduleForm(forms.Form):
    start = forms.CharField(max_length=40)

    def clean_start(self) -> datetime:
        raw = self.cleaned_data["start"]
        try:
            start = datetime.fromisoformat(raw)
        except ValueError as exc:
            raise ValidationError("Choose one of the times shown.") from exc
        # A year-1 or year-9999 time would overflow the move's arithmetic: no time shown is there.
        if timezone.is_naive(start) or not EARLIEST_DATE <= start.date() <= LATEST_DATE:
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
