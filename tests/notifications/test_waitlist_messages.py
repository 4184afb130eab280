"""A waiting patient is told about a slot kept for them: an e-mail, and a text with consent, sent
once the offer commits, in the same neutral words as every other message (DESIGN §2)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta

import pytest
import time_machine
from django.core import mail
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string

from booking.access.roles import Role
from booking.models import Patient, WaitlistEntry, WaitlistOffer
from booking.services import appointment_book
from booking.waitlist import offer_freed_slot
from notifications.delivery import message_deliver_due, message_send
from notifications.models import Channel, MessageKind, MessageStatus, OutboundMessage, PhoneOptOut
from notifications.waitlist import offer_context, offer_link, offer_messages_send
from scheduling.defaults import appointment_types_install_defaults
from scheduling.models import AppointmentType, Location
from tests.booking.test_waitlist import offer_tokens, wait_for
from tests.notifications.test_templates import (
    DIAGNOSES,
    DRUGS,
    FASTING_WORDS,
    TREATMENT_WORDS,
    clock,
    words_pattern,
)
from tests.staff_helpers import client_for, staff_user

NOW = datetime.fromisoformat("2026-06-01T12:00:00+00:00")  # 08:00 in New York
TEN = datetime.fromisoformat("2026-06-03T10:00:00-04:00")
TEMPLATES = ("_subject.txt", ".txt", ".html", ".sms.txt")


@pytest.fixture(autouse=True)
def public_url(settings) -> None:
    settings.PUBLIC_BASE_URL = "https://clinic.example"


@pytest.fixture(autouse=True)
def clock_at_now() -> Iterator[None]:
    # The sender judges quiet hours on the clock at sending time.
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def tokens() -> Iterator[dict[int, str]]:
    with offer_tokens() as heard:
        yield heard


@pytest.fixture
def offer_to(
    consultation: AppointmentType,
    texts,
    tokens: dict[int, str],
    django_capture_on_commit_callbacks,
) -> Callable[..., tuple[WaitlistOffer, str]]:
    """Put a patient on the waitlist and free a slot for them; the offer and its link."""

    def make(
        patient: Patient, *, now: datetime = NOW, start: datetime = TEN
    ) -> tuple[WaitlistOffer, str]:
        wait_for(consultation, patient, first=date(2026, 6, 1), now=now)
        with django_capture_on_commit_callbacks(execute=True):
            offer = offer_freed_slot(appointment_type=consultation, start=start, now=now)
            # Inside the offer's transaction nothing has gone out yet.
            assert mail.outbox == []
            assert texts == []
        assert offer is not None
        return offer, offer_link(tokens[offer.pk])

    return make


def test_the_offer_goes_by_e_mail_and_text_with_the_time_the_expiry_and_the_link(
    make_patient, offer_to, texts
):
    patient = make_patient(first_name="Robin", sms_consent=True)

    offer, link = offer_to(patient)

    assert link.startswith("https://clinic.example/w/")
    [email] = mail.outbox
    assert isinstance(email, EmailMultiAlternatives)
    assert email.to == [patient.email]
    assert "10:00 AM EDT" in email.subject
    html = str(email.alternatives[0][0])
    for body in (email.body, html):
        assert link in body
        assert "Wednesday 3 June 2026 at 10:00 AM EDT" in body
        assert "Monday 1 June 2026 at 10:00 AM EDT" in body  # kept for two hours
        assert "Consultation" in body or "consultation" in body.lower()
    [text] = texts
    assert text.to == patient.phone
    assert text.body.startswith("Hi Robin,")
    assert clock(offer.start, "America/New_York") in text.body
    assert clock(offer.expires_at, "America/New_York") in text.body
    assert link in text.body
    assert len(text.body) <= 320  # two segments at most
    offer.refresh_from_db()
    assert (offer.emailed_at, offer.texted_at) == (NOW, NOW)


def test_without_sms_consent_only_the_e_mail_goes(make_patient, offer_to, texts):
    offer, _link = offer_to(make_patient(sms_consent=False))

    assert len(mail.outbox) == 1
    assert texts == []
    offer.refresh_from_db()
    assert (offer.emailed_at, offer.texted_at) == (NOW, None)


def _offer_row(page: str, offer: WaitlistOffer) -> str | None:
    offers = page.split('id="offers"', 1)[1]
    found = re.search(rf'<tr data-offer="{offer.pk}">(.*?)</tr>', offers, re.DOTALL)
    return found.group(1) if found else None


def test_the_desk_s_message_log_shows_the_offer_and_when_it_went_out_on_each_channel(
    make_patient, make_location, offer_to, consultation, texts
):
    texted, _ = offer_to(make_patient(first_name="Robin", last_name="Texted", sms_consent=True))
    mail.outbox.clear()
    texts.clear()
    emailed, _ = offer_to(
        make_patient(first_name="Sam", last_name="Emailed", sms_consent=False),
        now=NOW + timedelta(minutes=1),
        start=TEN + timedelta(days=1),
    )
    desk = client_for(staff_user(Role.FRONT_DESK, consultation.location, username="desk"))
    elsewhere = client_for(staff_user(Role.FRONT_DESK, make_location(), username="away"))

    page = desk.get("/staff/messages/").content.decode()

    texted_row, emailed_row = _offer_row(page, texted), _offer_row(page, emailed)
    assert texted_row is not None
    assert emailed_row is not None
    assert page.index(f'data-offer="{emailed.pk}"') < page.index(f'data-offer="{texted.pk}"')
    assert "Robin Texted" in texted_row
    assert "Wednesday 3 June 2026 at 10:00 AM EDT" in texted_row
    assert texted_row.count("Sent 8:00 AM EDT") == 2  # e-mail and text
    assert "Sam Emailed" in emailed_row
    assert emailed_row.count("Sent 8:00 AM EDT") == 1  # no text: no consent
    assert 'data-offer="' not in elsewhere.get("/staff/messages/").content.decode()


def _sweep(now: datetime) -> None:
    def send(ids: list[int]) -> None:
        for message_id in ids:
            message_send(message_id=message_id, now=now)

    message_deliver_due(now=now, enqueue=send)


def test_a_number_at_its_daily_text_limit_gets_the_offer_by_e_mail_only(
    settings, consultation, make_patient, offer_to, texts
):
    settings.SMS_DAILY_CAP_PER_PHONE = 1
    patient = make_patient(sms_consent=True)
    # Just booked for another day: its confirmation was that number's text for today.
    appointment_book(
        appointment_type=consultation, patient=patient, start=TEN.replace(day=5), now=NOW
    )
    _sweep(NOW)
    assert len(texts) == 1
    texts.clear()
    mail.outbox.clear()

    offer, _link = offer_to(patient)

    assert texts == []
    assert len(mail.outbox) == 1
    offer.refresh_from_db()
    assert (offer.emailed_at, offer.texted_at) == (NOW, None)


def test_an_offers_text_counts_towards_the_numbers_daily_limit(
    settings, consultation, make_patient, offer_to, texts
):
    settings.SMS_DAILY_CAP_PER_PHONE = 1
    patient = make_patient(sms_consent=True)
    offer_to(patient)
    assert len(texts) == 1

    booked = appointment_book(
        appointment_type=consultation, patient=patient, start=TEN.replace(day=5), now=NOW
    )
    _sweep(NOW)

    assert len(texts) == 1
    confirmation = OutboundMessage.objects.get(
        appointment=booked, kind=MessageKind.CONFIRMATION, channel=Channel.SMS
    )
    assert confirmation.status == MessageStatus.SKIPPED
    assert confirmation.detail == "daily text limit for this number reached"


def test_a_number_that_replied_stop_gets_no_text(make_patient, offer_to, texts):
    patient = make_patient(sms_consent=True)
    PhoneOptOut.objects.create(phone=patient.phone, opted_out_at=NOW)

    offer_to(patient)

    assert len(mail.outbox) == 1
    assert texts == []


def test_no_text_in_quiet_hours(make_patient, offer_to, texts):
    late_evening = datetime(2026, 6, 2, 3, tzinfo=UTC)  # 23:00 in New York

    with time_machine.travel(late_evening, tick=False):
        offer, _link = offer_to(make_patient(sms_consent=True), now=late_evening)

    assert len(mail.outbox) == 1
    assert texts == []
    # The e-mail tells the patient until when, and the hold lasts into the morning.
    assert "10:00" in mail.outbox[0].body
    assert offer.expires_at == datetime(2026, 6, 2, 14, tzinfo=UTC)


def test_an_offer_no_longer_open_is_not_announced(make_patient, offer_to, texts, tokens):
    offer, _link = offer_to(make_patient(sms_consent=True))
    mail.outbox.clear()
    texts.clear()
    WaitlistOffer.objects.filter(pk=offer.pk).update(status="withdrawn")

    assert offer_messages_send(offer_id=offer.pk, token=tokens[offer.pk]) == []
    assert mail.outbox == []
    assert texts == []


# --- Every template, every default type, two clinics: nothing it must not say ------------------


@pytest.fixture
def offers(location: Location, make_location, make_patient) -> list[WaitlistOffer]:
    """An offer of every default type at a New York and a Berlin clinic, in summer and winter
    time. Written as rows: rendering needs no lanes."""
    berlin = make_location(
        timezone="Europe/Berlin",
        name="Berlin Esketamine Infusion Centre",
        public_name="Mitte Health",
        address="Friedrichstrasse 1, 10117 Berlin",
    )
    patient = make_patient(first_name="Robin", sms_consent=True)
    made = []
    for site in (location, berlin):
        appointment_types_install_defaults(location=site)
        for n, appointment_type in enumerate(AppointmentType.objects.filter(location=site)):
            for day in (date(2026, 7, 6), date(2026, 12, 7)):
                start = datetime.combine(day, time(10), tzinfo=site.zone).astimezone(UTC)
                entry = WaitlistEntry.objects.create(
                    patient=patient,
                    location=site,
                    appointment_type=appointment_type,
                    earliest_date=day,
                    latest_date=day,
                    created_at=NOW,
                )
                made.append(
                    WaitlistOffer.objects.create(
                        entry=entry,
                        start=start,
                        end=start + timedelta(minutes=appointment_type.duration_minutes),
                        expires_at=start - timedelta(hours=14),
                        token_hash=f"{site.pk}-{n}-{day}",
                        created_at=NOW,
                    )
                )
    return list(
        WaitlistOffer.objects.filter(pk__in=[o.pk for o in made]).select_related(
            "entry__patient", "entry__location", "entry__appointment_type"
        )
    )


def render(offer: WaitlistOffer, part: str, link: str) -> str:
    text = render_to_string(f"notifications/waitlist/offer{part}", offer_context(offer, link=link))
    if part in ("_subject.txt", ".sms.txt"):
        return " ".join(text.split())
    return text


def test_no_offer_message_names_the_treatment_a_diagnosis_a_drug_or_an_internal_name(offers):
    link = offer_link("x" * 43)
    internal = [
        *AppointmentType.objects.values_list("name", flat=True),
        *Location.objects.values_list("name", flat=True),
    ]
    pattern = words_pattern((*TREATMENT_WORDS, *DIAGNOSES, *DRUGS, *internal))
    gaps = re.compile(r"\bNone\b|\{\{|\{%|\}\}")

    found = [
        f"{o.entry.appointment_type.slug} {o.entry.location.slug} {part}: {m.group(0)!r}"
        for o in offers
        for part in TEMPLATES
        for m in pattern.finditer(render(o, part, link))
    ]
    blanks = [
        f"{o.entry.appointment_type.slug} {part}"
        for o in offers
        for part in TEMPLATES
        if gaps.search(render(o, part, link)) or not render(o, part, link).strip()
    ]

    assert found == []
    assert blanks == []


def test_every_offer_text_shows_the_local_times_with_their_zone_and_the_link(offers):
    link = offer_link("x" * 43)
    fasting = words_pattern(FASTING_WORDS)
    missing = []
    for offer in offers:
        body = render(offer, ".sms.txt", link)
        zone = offer.entry.location.timezone
        wanted = {
            "first name": body.startswith("Hi Robin,"),
            "start": clock(offer.start, zone) in body,
            "expiry": clock(offer.expires_at, zone) in body,
            "link": link in body,
            "no fasting words": fasting.search(body) is None,
        }
        missing += [what for what, ok in wanted.items() if not ok]

    assert sorted(set(missing)) == []
    assert any("CET" in render(o, ".sms.txt", link) for o in offers)
    assert any("EDT" in render(o, ".sms.txt", link) for o in offers)
