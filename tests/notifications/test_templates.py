"""Every message template, rendered for every default appointment type, says nothing it must not.

DESIGN §2: never "ketamine", "Spravato", "infusion", a diagnosis, a drug or a clinic or visit
name that reveals the treatment. Text messages carry the first name, the local time with its
zone abbreviation and the secure link; fasting details sit behind the link.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.template.loader import render_to_string
from django.urls import reverse

from booking.links import patient_link_issue
from booking.models import Appointment, Patient
from booking.preparation import appointment_preparation
from notifications.models import MessageKind
from notifications.preview import DIAGNOSES, DRUGS, FASTING_WORDS, TREATMENT_WORDS
from notifications.rendering import message_context
from scheduling.defaults import DEFAULT_TYPES, appointment_types_install_defaults
from scheduling.models import AppointmentKind, AppointmentType, Location

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
# Visits in summer and in winter time, so both zone abbreviations are rendered.
SEASONS = (date(2026, 7, 6), date(2026, 12, 7))
FIRST_NAME = "Robin"

# The words no message may say are the production check's own (notifications.preview), so the
# setup page's verdict and these tests can never disagree.
PARTS = ("_subject.txt", ".txt", ".html", ".sms.txt")


@pytest.fixture
def make_patient(make_approved_patient: Callable[..., Patient]) -> Callable[..., Patient]:
    """Patients here hold an approval for every treatment: these tests are about other things."""
    return make_approved_patient


def words_pattern(words: Iterable[str]) -> re.Pattern[str]:
    """Any of ``words`` as a whole word or phrase, in any case."""
    alternatives = "|".join(re.escape(w) for w in sorted(set(words), key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


def clock(moment: datetime, zone_name: str) -> str:
    """``10:00 AM EDT``, worked out here rather than through the template filter."""
    seen = moment.astimezone(ZoneInfo(zone_name))
    hour = seen.hour % 12 or 12
    return f"{hour}:{seen.minute:02d} {'AM' if seen.hour < 12 else 'PM'} {seen.tzname()}"


@dataclass(frozen=True)
class Rendered:
    appointment: Appointment
    template: str
    text: str

    def where(self) -> str:
        a = self.appointment
        return (
            f"{self.template} for {a.appointment_type.slug} at {a.location.slug} {a.start:%Y-%m-%d}"
        )


@pytest.fixture(autouse=True)
def public_url(settings) -> None:
    settings.PUBLIC_BASE_URL = "https://clinic.example"


@pytest.fixture
def locations(location: Location, make_location) -> list[Location]:
    """The default types at two clinics: one with a phone and no address in New York, one
    with an address and no phone in Berlin; each also has a fasting visit without an escort."""
    berlin = make_location(
        timezone="Europe/Berlin",
        name="Berlin Esketamine Infusion Centre",
        public_name="Mitte Health",
        address="Friedrichstrasse 1, 10117 Berlin",
    )
    for site in (location, berlin):
        appointment_types_install_defaults(location=site)
        AppointmentType.objects.create(
            location=site,
            slug="fasting-no-escort",
            name="Ketamine-assisted psychotherapy prep",
            public_name="Short visit",
            kind=AppointmentKind.INFUSION,
            duration_minutes=45,
            fasting_solids_hours=8,
            escort_required=False,
        )
    return [location, berlin]


@pytest.fixture
def appointments(locations: list[Location], make_patient) -> list[Appointment]:
    """A visit of every type at both clinics, in summer and winter time. Written as rows:
    rendering needs no resource lanes, and skipping the booking engine keeps this quick."""
    patient: Patient = make_patient(first_name=FIRST_NAME, sms_consent=True)
    visits = []
    for site in locations:
        types = AppointmentType.objects.filter(location=site).order_by("slug")
        assert {t.slug for t in types} >= {d.slug for d in DEFAULT_TYPES}
        for season in SEASONS:
            for n, appointment_type in enumerate(types):
                # Morning visits on consecutive days: the patient is never double-booked.
                start = datetime.combine(
                    season + timedelta(days=n + 10 * locations.index(site)),
                    time(10),
                    tzinfo=site.zone,
                ).astimezone(UTC)
                visits.append(
                    Appointment.objects.create(
                        location=site,
                        appointment_type=appointment_type,
                        patient=patient,
                        start=start,
                        end=start + timedelta(minutes=appointment_type.duration_minutes),
                    )
                )
    return list(
        Appointment.objects.filter(pk__in=[v.pk for v in visits]).select_related(
            "location", "appointment_type", "patient"
        )
    )


@pytest.fixture
def link(appointments: list[Appointment]) -> str:
    token = patient_link_issue(patient=appointments[0].patient, now=NOW)
    return settings.PUBLIC_BASE_URL + reverse("patient-link", args=[token])


def render(appointment: Appointment, template: str, link: str) -> str:
    text = render_to_string(template, message_context(appointment, link=link))
    # As the sender does: a subject or a text message is one line.
    if template.endswith(("_subject.txt", ".sms.txt")):
        return " ".join(text.split())
    return text


def rendered(appointments: list[Appointment], kind: str, link: str) -> list[Rendered]:
    return [
        Rendered(a, template, render(a, template, link))
        for a in appointments
        for template in (f"notifications/messages/{kind}{part}" for part in PARTS)
    ]


def forbidden(appointments: list[Appointment]) -> re.Pattern[str]:
    internal_names = [
        *AppointmentType.objects.values_list("name", flat=True),
        *Location.objects.values_list("name", flat=True),
    ]
    return words_pattern((*TREATMENT_WORDS, *DIAGNOSES, *DRUGS, *internal_names))


KINDS = [pytest.param(kind, id=kind) for kind in MessageKind.values]


@pytest.mark.parametrize("kind", KINDS)
def test_no_message_names_the_treatment_a_diagnosis_a_drug_or_an_internal_name(
    appointments, link, kind: str
) -> None:
    pattern = forbidden(appointments)

    found = [
        f"{r.where()}: {match.group(0)!r}"
        for r in rendered(appointments, kind, link)
        for match in pattern.finditer(r.text)
    ]

    assert found == []


@pytest.mark.parametrize("kind", KINDS)
def test_every_message_renders_without_gaps(appointments, link, kind: str) -> None:
    gaps = re.compile(r"\bNone\b|\{\{|\{%|\}\}")

    found = [r.where() for r in rendered(appointments, kind, link) if gaps.search(r.text)]

    assert found == []
    assert all(r.text.strip() for r in rendered(appointments, kind, link))


@pytest.mark.parametrize("kind", KINDS)
def test_every_text_message_shows_the_first_name_the_local_time_with_its_zone_and_the_link(
    appointments, link, kind: str
) -> None:
    missing = []
    for appointment in appointments:
        body = render(appointment, f"notifications/messages/{kind}.sms.txt", link)
        wanted = {
            "first name": re.search(rf"\b{FIRST_NAME}\b", body),
            "local time": clock(appointment.start, appointment.location.timezone) in body,
            "link": link in body,
        }
        missing += [what for what, ok in wanted.items() if not ok]

    assert sorted(set(missing)) == [], f"{kind}.sms.txt lacks these in {len(missing)} renders"


@pytest.mark.parametrize("kind", KINDS)
def test_no_text_message_gives_fasting_details(appointments, link, kind: str) -> None:
    fasting = words_pattern(FASTING_WORDS)
    found = []
    for appointment in appointments:
        body = render(appointment, f"notifications/messages/{kind}.sms.txt", link)
        prep = appointment_preparation(appointment)
        zone = appointment.location.timezone
        cutoffs = [
            clock(moment, zone)
            for moment in (prep.solids_until, prep.clear_liquids_until)
            if moment is not None
        ]
        found += [
            f"{appointment.appointment_type.slug}: {m.group(0)!r}" for m in fasting.finditer(body)
        ]
        found += [f"{appointment.appointment_type.slug}: {c}" for c in cutoffs if c in body]

    assert found == []


def test_the_fasting_e_mail_does_give_the_details_the_text_leaves_out(appointments, link) -> None:
    # The counterpart of the test above: the details exist, and go by e-mail.
    fasting_visits = [a for a in appointments if a.appointment_type.fasting_solids_hours]
    assert fasting_visits

    for appointment in fasting_visits:
        prep = appointment_preparation(appointment)
        assert prep.solids_until is not None
        solids = clock(prep.solids_until, appointment.location.timezone)
        for part in (".txt", ".html"):
            body = render(appointment, f"notifications/messages/evening_before{part}", link)
            assert solids in body, (appointment.appointment_type.slug, part)


def test_the_link_e_mail_names_nothing_it_must_not(appointments, link) -> None:
    pattern = forbidden(appointments)
    patient = appointments[0].patient
    contexts = [
        {"patient": patient, "link": link, "location": site}
        for site in {a.location for a in appointments}
    ] + [{"patient": patient, "link": link, "location": None}]

    for context in contexts:
        for part in PARTS[:3]:
            text = render_to_string(f"notifications/email/link{part}", context)
            assert pattern.search(text) is None, (part, pattern.search(text))
            assert link in text or part == "_subject.txt"
