"""A reminder as a patient would get it, for the setup page's preview: a made-up patient's visit
of the type, rendered by the outbox's own rendering code, and checked for words a message must
never carry (DESIGN §2).

Nothing here is saved: the sample visit and its patient are unsaved rows, and the link in the
messages leads nowhere.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta

from django.utils import timezone

from booking.models import Appointment, AppointmentStatus, Patient
from notifications.models import MessageKind
from notifications.planning import Timing, before_quiet_hours, reminder_due
from notifications.rendering import (
    email_subject,
    email_text,
    link_url,
    message_context,
    message_template,
    sms_text,
)
from scheduling.models import AppointmentType
from scheduling.wording import (  # noqa: F401 - the tests' word lists are these
    DIAGNOSES,
    DRUGS,
    FASTING_WORDS,
    NEVER_SAID,
    TREATMENT_WORDS,
    words_found,
)

SAMPLE_FIRST_NAME = "Alex"
SAMPLE_LAST_NAME = "Sample"
SAMPLE_TIME = time(10, 0)
# As long as a real secure link's token (256 bits, URL-safe base 64), so a text's length is
# what a patient's would be.
SAMPLE_TOKEN = "sample-link-for-preview-only-" + "x" * 14


@dataclass(frozen=True)
class WordingVerdict:
    """The forbidden-word check of one message: the words found, per part of the message."""

    found: dict[str, list[str]] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not any(self.found.values())


def wording_check(
    *, subject: str, email_body: str, sms: str, internal_names: Iterable[str] = ()
) -> WordingVerdict:
    """Check a message's parts for the treatment, a diagnosis, a drug, or an internal name (a
    clinic's or a type's, which may reveal the treatment); a text message for fasting details
    as well."""
    never = (*NEVER_SAID, *internal_names)
    found = {
        "E-mail subject": words_found(subject, never),
        "E-mail text": words_found(email_body, never),
        "Text message": words_found(sms, (*never, *FASTING_WORDS)),
    }
    return WordingVerdict({part: words for part, words in found.items() if words})


def sample_start(appointment_type: AppointmentType, *, now: datetime) -> datetime:
    """The sample visit's start: the next weekday after today, at 10:00 clinic time."""
    zone = appointment_type.location.zone
    day = now.astimezone(zone).date() + timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    # A wall-clock time on a local day, converted to UTC at once (10:00 exists every day).
    return datetime.combine(day, SAMPLE_TIME, tzinfo=zone).astimezone(UTC)


def sample_visit(appointment_type: AppointmentType, *, now: datetime) -> Appointment:
    """An unsaved visit of ``appointment_type`` by a made-up patient, Alex Sample."""
    start = sample_start(appointment_type, now=now)
    patient = Patient(
        first_name=SAMPLE_FIRST_NAME,
        last_name=SAMPLE_LAST_NAME,
        email="alex.sample@example.com",
        phone="",
    )
    return Appointment(
        reference="SAMPLE",
        location=appointment_type.location,
        appointment_type=appointment_type,
        patient=patient,
        start=start,
        end=start + timedelta(minutes=appointment_type.duration_minutes),
        status=AppointmentStatus.BOOKED,
    )


def _revealing_names(appointment_type: AppointmentType) -> list[str]:
    # Staff-only names, which may name the treatment, unless the patient sees them anyway as
    # (part of) the public name: then the word list judges them.
    location = appointment_type.location
    return [
        internal
        for internal, public in (
            (location.name, location.public_name),
            (appointment_type.name, appointment_type.public_name),
        )
        if internal.strip().lower() not in public.lower()
    ]


def clinic_moment(moment: datetime, appointment_type: AppointmentType) -> str:
    """``Mon 14 Dec at 19:00 EST``: a moment as the clinic's clock shows it, with its zone."""
    local = moment.astimezone(appointment_type.location.zone)
    return f"{local:%a} {local.day} {local:%b} at {local:%H:%M} {local.tzname()}"


@dataclass(frozen=True)
class MessagePreview:
    kind: str
    visit: Appointment
    subject: str
    email_body: str
    sms: str
    verdict: WordingVerdict
    # When the sample visit's reminder would go out by e-mail and by text (a text moves out of
    # quiet hours); None without a valid timing.
    email_due: datetime | None
    sms_due: datetime | None
    # A reminder due at or after the start (other than the follow-up) is never sent.
    never_sent: bool

    @property
    def kind_label(self) -> str:
        return str(MessageKind(self.kind).label)

    @property
    def start_label(self) -> str:
        return clinic_moment(self.visit.start, self.visit.appointment_type)

    @property
    def email_due_label(self) -> str:
        return clinic_moment(self.email_due, self.visit.appointment_type) if self.email_due else ""

    @property
    def sms_due_label(self) -> str:
        return clinic_moment(self.sms_due, self.visit.appointment_type) if self.sms_due else ""


def message_preview(
    *,
    appointment_type: AppointmentType,
    kind: str,
    timing: Timing | None,
    now: datetime | None = None,
) -> MessagePreview:
    """The e-mail and text message of ``kind`` for a sample visit of ``appointment_type``, when
    ``timing`` would send them, and the forbidden-word check of both."""
    now = now or timezone.now()
    visit = sample_visit(appointment_type, now=now)
    context = message_context(visit, link=link_url(SAMPLE_TOKEN))
    template = message_template(kind)
    subject = email_subject(template, context)
    body = email_text(template, context)
    sms = sms_text(template, context)
    location = appointment_type.location
    email_due = sms_due = None
    never_sent = False
    if timing is not None:
        email_due = reminder_due(
            start=visit.start,
            zone=location.zone,
            timing=timing,
            fasting_solids_hours=appointment_type.fasting_solids_hours,
        )
        never_sent = kind != MessageKind.FOLLOW_UP and email_due >= visit.start
        sms_due = before_quiet_hours(
            email_due, location.zone, location.quiet_hours_start, location.quiet_hours_end
        )
    return MessagePreview(
        kind=kind,
        visit=visit,
        subject=subject,
        email_body=body,
        sms=sms,
        verdict=wording_check(
            subject=subject,
            email_body=body,
            sms=sms,
            internal_names=_revealing_names(appointment_type),
        ),
        email_due=email_due,
        sms_due=sms_due,
        never_sent=never_sent,
    )
