"""Texts from patients through ``POST /webhooks/sms/<provider>/``, as Twilio or a signed gateway
sends them: confirm, opt out, opt back in, ask for help; anything else goes to the front desk."""

from __future__ import annotations

import hashlib
import hmac
import html
import itertools
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.test import Client
from twilio.request_validator import RequestValidator

from booking.models import Appointment, AppointmentStatus, Patient
from booking.services import appointment_book
from notifications import sms
from notifications.delivery import message_deliver_due, message_send
from notifications.models import (
    Channel,
    InboundMessage,
    InboundStatus,
    MessageKind,
    MessageStatus,
    OutboundMessage,
    PhoneOptOut,
)
from scheduling.models import AppointmentType, Location, ResourceKind

NEW_YORK = ZoneInfo("America/New_York")
NOW = datetime(2026, 10, 5, 16, tzinfo=UTC)  # 12:00 EDT, outside quiet hours
PHONE = "+12125550123"
STRANGER = "+12125550199"
TWILIO_TOKEN = "twilio-test-auth-token"
GENERIC_SECRET = "generic-test-secret"
STOP_VARIANTS = [
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "REVOKE",
    "OPTOUT",
    "stop please",
    "stop",
    "Stop",
    " Quit ",
]

_ids = itertools.count(1)


@pytest.fixture
def make_patient(make_approved_patient: Callable[..., Patient]) -> Callable[..., Patient]:
    """Patients here hold an approval for every treatment: these tests are about other things."""
    return make_approved_patient


@dataclass(frozen=True)
class Answer:
    status: int
    reply: str


Send = Callable[..., Answer]


@pytest.fixture(autouse=True)
def configured(settings, time_machine) -> Iterator[None]:
    settings.TWILIO_AUTH_TOKEN = TWILIO_TOKEN
    settings.SMS_WEBHOOK_SECRET = GENERIC_SECRET
    settings.PUBLIC_BASE_URL = "https://clinic.example"
    settings.SMS_BACKEND = "notifications.sms.LocmemBackend"
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    time_machine.move_to(NOW, tick=False)
    sms.outbox.clear()
    yield
    sms.outbox.clear()


def twilio_post(
    client: Client, body: str, message_id: str, sender: str, *, token: str = TWILIO_TOKEN
) -> Answer:
    path = "/webhooks/sms/twilio/"
    params = {
        "MessageSid": message_id,
        "AccountSid": "AC00000000000000000000000000000000",
        "From": sender,
        "To": "+12125550100",
        "Body": body,
        "NumMedia": "0",
    }
    signature = RequestValidator(token).compute_signature(settings.PUBLIC_BASE_URL + path, params)
    response = client.post(
        path,
        data=urlencode(params),
        content_type="application/x-www-form-urlencoded",
        headers={"X-Twilio-Signature": signature},
    )
    if response.status_code != 200:
        return Answer(response.status_code, "")
    assert response["Content-Type"].startswith("text/xml")
    replies = re.findall(r"<Message>(.*?)</Message>", response.content.decode(), re.DOTALL)
    assert len(replies) <= 1
    return Answer(200, html.unescape(replies[0]) if replies else "")


def generic_post(
    client: Client, body: str, message_id: str, sender: str, *, secret: str = GENERIC_SECRET
) -> Answer:
    raw = json.dumps({"id": message_id, "from": sender, "body": body}).encode()
    signature = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    response = client.post(
        "/webhooks/sms/generic/",
        data=raw,
        content_type="application/json",
        headers={"X-Chairside-Signature": signature},
    )
    if response.status_code != 200:
        return Answer(response.status_code, "")
    return Answer(200, response.json()["reply"])


PROVIDERS: dict[str, Callable[..., Answer]] = {"twilio": twilio_post, "generic": generic_post}


@pytest.fixture(params=sorted(PROVIDERS))
def text(request, client: Client) -> Send:
    """Send a text as the provider's webhook would; each call a new provider message id
    unless one is given."""
    post = PROVIDERS[request.param]

    def send(body: str, *, message_id: str | None = None, sender: str = PHONE) -> Answer:
        return post(client, body, message_id or f"SM{next(_ids):032d}", sender)

    return send


@pytest.fixture
def session_type(location: Location, make_resource, make_type) -> AppointmentType:
    make_resource(location, ResourceKind.CHAIR, name="Chair A")
    make_resource(location, ResourceKind.CHAIR, name="Chair B")
    return make_type(
        location,
        duration=90,
        needs=({"resource_kind": ResourceKind.CHAIR},),
        fasting_solids_hours=6,
        fasting_clear_liquids_hours=2,
        escort_required=True,
    )


@pytest.fixture
def patient(make_patient) -> Patient:
    return make_patient(first_name="Robin", phone=PHONE, sms_consent=True)


def visit(appointment_type: AppointmentType, patient: Patient, days: int) -> Appointment:
    start = datetime.combine(
        NOW.astimezone(NEW_YORK).date() + timedelta(days=days), time(10), tzinfo=NEW_YORK
    ).astimezone(UTC)
    return appointment_book(
        appointment_type=appointment_type, patient=patient, start=start, now=NOW
    )


def sweep(now: datetime, time_machine) -> None:
    time_machine.move_to(now, tick=False)

    def send(ids: list[int]) -> None:
        for message_id in ids:
            message_send(message_id=message_id, now=now)

    message_deliver_due(now=now, enqueue=send)


def nothing_recorded() -> bool:
    return not InboundMessage.objects.exists() and not PhoneOptOut.objects.exists()


# --- Signatures ----------------------------------------------------------------------------


@pytest.mark.parametrize("sender", [PHONE, STRANGER])
def test_a_twilio_text_signed_with_another_token_is_refused_and_nothing_recorded(
    db: None, client: Client, sender: str
) -> None:
    answer = twilio_post(client, "STOP", "SM1", sender, token="not-the-token")

    assert answer.status == 403
    assert nothing_recorded()


def test_a_twilio_text_without_a_signature_is_refused_and_nothing_recorded(
    db: None,
    client: Client,
) -> None:
    response = client.post(
        "/webhooks/sms/twilio/",
        data=urlencode({"MessageSid": "SM1", "From": PHONE, "Body": "STOP"}),
        content_type="application/x-www-form-urlencoded",
    )

    assert response.status_code == 403
    assert nothing_recorded()


def test_a_twilio_text_changed_after_signing_is_refused(db: None, client: Client) -> None:
    path = "/webhooks/sms/twilio/"
    signed = {"MessageSid": "SM1", "From": PHONE, "Body": "HELP"}
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(
        settings.PUBLIC_BASE_URL + path, signed
    )

    response = client.post(
        path,
        data=urlencode({**signed, "Body": "STOP"}),
        content_type="application/x-www-form-urlencoded",
        headers={"X-Twilio-Signature": signature},
    )

    assert response.status_code == 403
    assert nothing_recorded()


def test_a_gateway_text_signed_with_another_secret_is_refused_and_nothing_recorded(
    db: None,
    client: Client,
) -> None:
    answer = generic_post(client, "STOP", "g-1", PHONE, secret="not-the-secret")

    assert answer.status == 403
    assert nothing_recorded()


def test_a_gateway_text_without_a_signature_is_refused_and_nothing_recorded(
    db: None,
    client: Client,
) -> None:
    response = client.post(
        "/webhooks/sms/generic/",
        data=json.dumps({"id": "g-1", "from": PHONE, "body": "STOP"}),
        content_type="application/json",
    )

    assert response.status_code == 403
    assert nothing_recorded()


def test_an_unconfigured_provider_accepts_nothing(db: None, settings, client: Client) -> None:
    settings.TWILIO_AUTH_TOKEN = ""
    settings.SMS_WEBHOOK_SECRET = ""

    assert twilio_post(client, "STOP", "SM1", PHONE, token="").status == 404
    assert generic_post(client, "STOP", "g-1", PHONE, secret="").status == 404
    assert client.post("/webhooks/sms/nobody/", data={}).status_code == 404
    assert nothing_recorded()


# --- Confirm -------------------------------------------------------------------------------


@pytest.mark.parametrize("word", ["C", "c", "YES", "yes", " Yes "])
def test_c_or_yes_confirms_the_patients_next_visit(
    text: Send, session_type, patient, word: str
) -> None:
    next_visit = visit(session_type, patient, days=2)
    later_visit = visit(session_type, patient, days=4)

    answer = text(word)

    assert answer.status == 200
    assert "confirmed" in answer.reply
    assert "10:00 AM EDT" in answer.reply
    next_visit.refresh_from_db()
    later_visit.refresh_from_db()
    assert next_visit.status == AppointmentStatus.CONFIRMED
    assert next_visit.confirmed_at == NOW
    assert later_visit.status == AppointmentStatus.BOOKED
    # No more "reply C" requests for the visit just confirmed.
    assert not OutboundMessage.objects.filter(
        appointment=next_visit, kind=MessageKind.CONFIRM_REQUEST, status=MessageStatus.PENDING
    ).exists()
    (inbound,) = InboundMessage.objects.all()
    assert (inbound.action, inbound.status, inbound.patient) == (
        "confirm",
        InboundStatus.HANDLED,
        patient,
    )


def test_c_from_a_number_with_no_visit_goes_to_the_front_desk(text: Send, location) -> None:
    answer = text("C", sender=STRANGER)

    assert answer == Answer(200, "")
    (inbound,) = InboundMessage.objects.all()
    assert inbound.status == InboundStatus.NEEDS_ATTENTION


# --- STOP, START, HELP ---------------------------------------------------------------------


@pytest.mark.parametrize("word", STOP_VARIANTS)
def test_every_stop_word_opts_out_at_once_with_exactly_one_confirmation(
    text: Send, patient, location, word: str
) -> None:
    first = text(word)
    again = text(word)
    once_more = text("STOP")

    assert first.status == 200
    assert "START" in first.reply
    assert PhoneOptOut.objects.filter(phone=PHONE).count() == 1
    assert again == Answer(200, "")
    assert once_more == Answer(200, "")
    assert set(InboundMessage.objects.values_list("action", flat=True)) == {"stop"}


def test_an_opted_out_number_gets_no_more_text_reminders(
    text: Send, session_type, patient, time_machine
) -> None:
    appointment = visit(session_type, patient, days=3)
    text("STOP")

    sweep(appointment.start - timedelta(hours=24), time_machine)

    texts = OutboundMessage.objects.filter(appointment=appointment, channel=Channel.SMS)
    assert not texts.filter(status=MessageStatus.SENT).exists()
    request = texts.get(kind=MessageKind.CONFIRM_REQUEST)
    assert (request.status, request.detail) == (MessageStatus.SKIPPED, "the number replied STOP")
    assert sms.outbox == []
    # E-mail is another matter: the patient asked only that texts stop.
    assert OutboundMessage.objects.filter(
        appointment=appointment,
        channel=Channel.EMAIL,
        kind=MessageKind.CONFIRM_REQUEST,
        status=MessageStatus.SENT,
    ).exists()


def test_start_turns_texts_back_on(text: Send, session_type, patient, time_machine) -> None:
    appointment = visit(session_type, patient, days=3)
    text("STOP")

    answer = text("START")

    assert answer.status == 200
    assert answer.reply
    assert not PhoneOptOut.objects.exists()
    sweep(appointment.start - timedelta(hours=24), time_machine)
    request = OutboundMessage.objects.get(
        appointment=appointment, kind=MessageKind.CONFIRM_REQUEST, channel=Channel.SMS
    )
    assert request.status == MessageStatus.SENT
    assert [m.to for m in sms.outbox] == [PHONE] * len(sms.outbox)
    assert any("Reply C" in m.body for m in sms.outbox)
    # Opting out again is a new opt-out, and is confirmed again.
    assert "START" in text("STOP").reply


@pytest.mark.parametrize("sender", [PHONE, STRANGER])
def test_help_answers_with_the_clinics_public_name_and_phone(
    text: Send, session_type, patient, location: Location, sender: str
) -> None:
    visit(session_type, patient, days=3)

    answer = text("HELP", sender=sender)

    assert answer.status == 200
    assert location.public_name in answer.reply
    assert location.phone in answer.reply
    assert location.name not in answer.reply
    assert re.search(r"ketamine|infusion", answer.reply, re.IGNORECASE) is None
    assert not PhoneOptOut.objects.exists()


# --- Idempotency and everything else -------------------------------------------------------


def test_the_same_provider_message_twice_is_handled_once_with_the_same_answer(
    text: Send, session_type, patient
) -> None:
    appointment = visit(session_type, patient, days=2)

    first = text("C", message_id="SM-retried")
    retry = text("C", message_id="SM-retried")

    assert first.reply
    assert retry == first
    assert InboundMessage.objects.count() == 1
    appointment.refresh_from_db()
    assert appointment.confirmed_at == NOW


def test_a_retried_stop_gets_its_confirmation_again_but_a_new_stop_does_not(
    text: Send, patient, location
) -> None:
    first = text("STOP", message_id="SM-stop")

    assert text("STOP", message_id="SM-stop") == first
    assert text("STOP").reply == ""
    assert InboundMessage.objects.count() == 2


@pytest.mark.parametrize(
    "body", ["Can my sister drive me instead?", "Running 10 min late", "CC", "yes but later"]
)
def test_anything_else_needs_attention_and_shows_on_the_message_log(
    text: Send, session_type, patient, admin_client: Client, body: str
) -> None:
    appointment = visit(session_type, patient, days=2)

    answer = text(body)

    assert answer == Answer(200, "")
    (inbound,) = InboundMessage.objects.all()
    assert inbound.status == InboundStatus.NEEDS_ATTENTION == "attention"
    assert inbound.patient == patient
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.BOOKED
    assert not PhoneOptOut.objects.exists()
    page = admin_client.get("/staff/messages/")
    assert page.status_code == 200
    section = page.content.decode().split('id="inbound"', 1)[1].split("</section>", 1)[0]
    assert html.escape(body) in section
    assert PHONE in section
