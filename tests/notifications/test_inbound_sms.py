"""Texts from patients through ``POST /webhooks/sms/<provider>/``, as Twilio or a signed gateway
sends them: confirm, opt out, opt back in, ask for help; anything else goes to the front desk."""

from __future__ import annotations

import hashlib
import hmac
import html
import itertools
import json
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from twilio.request_validator import RequestValidator

from booking.models import Appointment, AppointmentStatus, Patient
from booking.services import appointment_book
from notifications import sms
from notifications.delivery import message_deliver_due, message_send
from notifications.inbound import inbound_sms_handle, reply_words
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


# --- Opt-out as people write it (FCC 47 CFR 64.1200(a)(10), CTIA) --------------------------

OPT_OUT, CLARIFY, CONFIRM, HELP, NOTHING = "opt-out", "clarify", "confirm", "help", "nothing"


def full_width(ascii_text: str) -> str:
    """``ascii_text`` in the full-width forms some phone keyboards send (U+FF01…, U+3000)."""
    return "".join("\u3000" if c == " " else chr(ord(c) + 0xFEE0) for c in ascii_text)


# Real-world replies, each with what must come of it. OPT_OUT: out at once, one confirmation.
# CLARIFY: out at once too (the FCC counts the word itself), and one text asks whether all texts
# were meant. NOTHING: no action, the front desk reads it.
REPLIES: list[tuple[str, str]] = [
    # The keywords, however they are typed.
    ("STOP.", OPT_OUT),
    ("Stop!!!", OPT_OUT),
    ("stop please", OPT_OUT),
    ("Please stop", OPT_OUT),
    ("PLEASE STOP TEXTING ME", OPT_OUT),
    ("STOP texting me", OPT_OUT),
    ("Stop sending me these messages", OPT_OUT),
    ("STOP 🛑", OPT_OUT),
    ("🛑🛑 stop 🛑🛑", OPT_OUT),
    (full_width("STOP"), OPT_OUT),  # full-width, as some phone keyboards send it
    (full_width("Stop please"), OPT_OUT),  # with an ideographic space
    ("s t o p", OPT_OUT),
    ("S.T.O.P.", OPT_OUT),
    ("stop all", OPT_OUT),
    ("unsubscribe me", OPT_OUT),
    ("I want to unsubscribe from these texts", OPT_OUT),
    ("Please unsubscribe me, I moved to Boston", OPT_OUT),
    ("Opt-out", OPT_OUT),
    ("opt out", OPT_OUT),
    ("Opt me out", OPT_OUT),
    ("I want to opt out", OPT_OUT),
    ("optout", OPT_OUT),
    ("cancel", OPT_OUT),
    ("Cancel please", OPT_OUT),
    ("END", OPT_OUT),
    ("quit!", OPT_OUT),
    ("Revoke", OPT_OUT),
    # Other words a reasonable person reads as "stop texting me".
    ("Please remove me", OPT_OUT),
    ("Remove me from your list", OPT_OUT),
    ("Take me off your list", OPT_OUT),
    ("no more texts", OPT_OUT),
    ("No more messages please", OPT_OUT),
    ("Don't text me anymore", OPT_OUT),
    ("Don\u2019t text me", OPT_OUT),  # a typographic apostrophe
    ("Do not text me", OPT_OUT),
    # Spanish.
    ("Parar", OPT_OUT),
    ("PARAR por favor", OPT_OUT),
    ("BAJA", OPT_OUT),
    ("baja por favor", OPT_OUT),
    ("Alto", OPT_OUT),
    ("Detener", OPT_OUT),
    ("cancelar", OPT_OUT),
    ("Fin", OPT_OUT),
    ("Salir", OPT_OUT),
    ("Terminar", OPT_OUT),
    ("Eliminar", OPT_OUT),
    ("No mas", OPT_OUT),
    ("NO MÁS", OPT_OUT),
    ("no más mensajes", OPT_OUT),
    ("No me envíen más mensajes", OPT_OUT),
    ("Darme de baja", OPT_OUT),
    ("Quiero darme de baja, gracias", OPT_OUT),
    ("Ya no quiero recibir mensajes, denme de baja", OPT_OUT),
    ("Desuscribir", OPT_OUT),
    # A keyword among other words: out, and asked once what was meant.
    ("I need to cancel my appointment", CLARIFY),
    ("stop by tomorrow?", CLARIFY),
    ("can I end early", CLARIFY),
    ("Cancel it", CLARIFY),
    ("Can I cancel and rebook for next week?", CLARIFY),
    ("Please don't cancel, I'm just running late", CLARIFY),
    ("Quiero cancelar mi cita", CLARIFY),
    ("¿Podemos parar a las 3?", CLARIFY),
    # Confirm and help keep their meaning.
    ("C", CONFIRM),
    (full_width("C"), CONFIRM),
    ("Yes!", CONFIRM),
    ("yes please 👍", CONFIRM),
    ("HELP", HELP),
    ("help?", HELP),
    # Everything else, including words that only look like a keyword, goes to the front desk.
    ("Running 10 min late", NOTHING),
    ("I stopped eating at 6 like you said", NOTHING),
    ("See you after the weekend", NOTHING),
    ("No", NOTHING),
    ("Mi presión está baja hoy", NOTHING),  # "baja" here is "low"
    ("¿Abren el fin de semana?", NOTHING),  # "fin de semana" is the weekend
    ("Voy a salir tarde del trabajo", NOTHING),  # "salir" here is "leave"
    ("Can you remove the old phone number?", NOTHING),
    ("👍", NOTHING),
]


def _outcome(answer: Answer, appointment: Appointment, location: Location) -> str:
    appointment.refresh_from_db()
    opted_out = PhoneOptOut.objects.filter(phone=PHONE).exists()
    confirmed = appointment.status == AppointmentStatus.CONFIRMED
    (inbound,) = InboundMessage.objects.all()
    attention = inbound.status == InboundStatus.NEEDS_ATTENTION
    seen = (opted_out, confirmed, attention)
    if seen == (True, False, True) and "KEEP" in answer.reply:
        assert location.public_name in answer.reply
        return CLARIFY
    if seen == (True, False, False) and "START" in answer.reply:
        return OPT_OUT
    if seen == (False, True, False) and "confirmed" in answer.reply:
        return CONFIRM
    if seen == (False, False, False) and "Appointment reminders" in answer.reply:
        return HELP
    if seen == (False, False, True) and answer.reply == "":
        return NOTHING
    return f"{opted_out=} {confirmed=} {attention=} reply={answer.reply!r}"


@pytest.mark.parametrize(("body", "expected"), REPLIES)
def test_a_reply_is_understood_as_people_write_it(
    text: Send, session_type, patient, location: Location, body: str, expected: str
) -> None:
    appointment = visit(session_type, patient, days=2)

    answer = text(body)

    assert answer.status == 200
    assert _outcome(answer, appointment, location) == expected


def test_the_reply_table_covers_english_and_spanish_and_every_outcome() -> None:
    outcomes = [expected for _, expected in REPLIES]
    assert len(REPLIES) >= 30
    assert len({body for body, _ in REPLIES}) == len(REPLIES)
    assert {OPT_OUT, CLARIFY, CONFIRM, HELP, NOTHING} <= set(outcomes)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (full_width("STOP"), ("stop",)),
        ("  Stop!!! ", ("stop",)),
        ("Opt-Out.", ("opt", "out")),
        ("NO MÁS", ("no", "mas")),
        (full_width("Cancel"), ("cancel",)),
        ("Cancelación", ("cancelacion",)),
        ("s t o p", ("stop",)),
        ("S.T.O.P.", ("stop",)),
        ("Don\u2019t text me", ("dont", "text", "me")),
        ("C", ("c",)),
        ("🛑", ()),
        ("", ()),
    ],
)
def test_one_function_normalises_a_reply_into_words(body: str, words: tuple[str, ...]) -> None:
    assert reply_words(body) == words


@pytest.mark.parametrize(
    "body",
    [
        "Please stop",
        full_width("STOP"),
        "opt out",
        "Parar",
        "no más mensajes",
        "cancel my appointment",
    ],
)
def test_after_any_opt_out_no_reminder_is_texted(
    text: Send, session_type, patient, time_machine, body: str
) -> None:
    appointment = visit(session_type, patient, days=3)
    text(body)
    assert PhoneOptOut.objects.filter(phone=PHONE).exists()

    sweep(appointment.start - timedelta(hours=24), time_machine)

    texts = OutboundMessage.objects.filter(appointment=appointment, channel=Channel.SMS)
    assert texts.exists()
    assert not texts.filter(status=MessageStatus.SENT).exists()
    assert texts.get(kind=MessageKind.CONFIRM_REQUEST).status == MessageStatus.SKIPPED
    assert sms.outbox == []


# --- The one clarifying text ----------------------------------------------------------------


def test_an_unclear_reply_opts_out_at_once_and_asks_only_once(
    text: Send, session_type, patient, location: Location, time_machine
) -> None:
    visit(session_type, patient, days=3)

    first = text("I need to cancel my appointment")
    time_machine.move_to(NOW + timedelta(minutes=5), tick=False)
    second = text("Can I cancel tomorrow instead?")
    third = text("stop by the desk?")
    clear = text("STOP")

    assert first.status == 200
    assert "KEEP" in first.reply
    assert location.public_name in first.reply
    assert (second, third, clear) == (Answer(200, ""), Answer(200, ""), Answer(200, ""))
    assert PhoneOptOut.objects.filter(phone=PHONE).count() == 1
    assert InboundMessage.objects.exclude(reply="").count() == 1
    # The front desk reads each unclear text: the patient may want the visit changed.
    assert InboundMessage.objects.filter(status=InboundStatus.NEEDS_ATTENTION).count() == 3


def test_a_retried_unclear_reply_gets_the_same_question_and_nothing_more(
    text: Send, patient, location
) -> None:
    first = text("Can I end early?", message_id="SM-unclear")

    assert "KEEP" in first.reply
    assert text("Can I end early?", message_id="SM-unclear") == first
    assert InboundMessage.objects.count() == 1


def test_after_a_clear_stop_an_unclear_reply_asks_nothing(text: Send, patient, location) -> None:
    assert "START" in text("STOP").reply

    assert text("I need to cancel my appointment") == Answer(200, "")
    assert PhoneOptOut.objects.filter(phone=PHONE).count() == 1
    # KEEP answers only our question, and none was asked.
    assert text("KEEP") == Answer(200, "")
    assert PhoneOptOut.objects.filter(phone=PHONE).exists()


@pytest.mark.parametrize(
    "answer_text", ["KEEP", "keep", "Keep texting me", full_width("KEEP") + " please"]
)
def test_keep_within_a_day_of_the_question_turns_texts_back_on(
    text: Send, session_type, patient, time_machine, answer_text: str
) -> None:
    appointment = visit(session_type, patient, days=3)
    text("I need to cancel my appointment")
    time_machine.move_to(NOW + timedelta(hours=23, minutes=59), tick=False)

    answer = text(answer_text)

    assert "back on" in answer.reply
    assert not PhoneOptOut.objects.exists()
    sweep(appointment.start - timedelta(hours=24), time_machine)
    assert (
        OutboundMessage.objects.get(
            appointment=appointment, kind=MessageKind.CONFIRM_REQUEST, channel=Channel.SMS
        ).status
        == MessageStatus.SENT
    )


def test_without_an_answer_the_opt_out_stands_and_a_late_keep_changes_nothing(
    text: Send, session_type, patient, time_machine
) -> None:
    appointment = visit(session_type, patient, days=3)
    text("stop by tomorrow?")
    time_machine.move_to(NOW + timedelta(hours=24, seconds=1), tick=False)

    late = text("KEEP")

    assert late == Answer(200, "")
    assert PhoneOptOut.objects.filter(phone=PHONE).exists()
    assert InboundMessage.objects.get(body="KEEP").status == InboundStatus.NEEDS_ATTENTION
    sweep(appointment.start - timedelta(hours=24), time_machine)
    assert not OutboundMessage.objects.filter(
        appointment=appointment, channel=Channel.SMS, status=MessageStatus.SENT
    ).exists()
    # START still works at any time.
    assert "back on" in text("START").reply
    assert not PhoneOptOut.objects.exists()


@pytest.mark.parametrize("answer_text", ["Yes", "C", "no", "NO!", "ok"])
def test_a_yes_or_no_to_the_question_is_left_to_the_front_desk(
    text: Send, session_type, patient, time_machine, answer_text: str
) -> None:
    appointment = visit(session_type, patient, days=2)
    text("I need to cancel my appointment")
    time_machine.move_to(NOW + timedelta(hours=1), tick=False)

    answer = text(answer_text)

    # "Yes" to "did you mean all texts?" could mean either; it neither confirms the visit the
    # patient asked to cancel nor turns texts back on.
    assert answer == Answer(200, "")
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.BOOKED
    assert PhoneOptOut.objects.filter(phone=PHONE).exists()
    assert InboundMessage.objects.get(body=answer_text).status == InboundStatus.NEEDS_ATTENTION


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_unclear_replies_arriving_at_once_get_one_question_between_them(patient, location) -> None:
    bodies = ["I need to cancel my appointment", "can I end early", "stop by at 3?", "Cancel it"]
    barrier = threading.Barrier(len(bodies), timeout=30)
    replies: list[str] = []
    errors: list[BaseException] = []

    def handle(n: int, body: str) -> None:
        try:
            barrier.wait()
            replies.append(
                inbound_sms_handle(
                    provider="generic", provider_message_id=f"g-{n}", from_phone=PHONE, body=body
                )
            )
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=handle, args=item) for item in enumerate(bodies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert not errors
    assert len(replies) == len(bodies)
    assert sorted(bool(reply) for reply in replies) == [False, False, False, True]
    assert PhoneOptOut.objects.filter(phone=PHONE).count() == 1
    assert InboundMessage.objects.count() == len(bodies)


def test_keep_out_of_the_blue_is_not_an_opt_in_or_an_opt_out(text: Send, patient) -> None:
    assert text("KEEP") == Answer(200, "")
    assert not PhoneOptOut.objects.exists()


# --- Provider message ids -------------------------------------------------------------------


def generic_payload(client: Client, payload: object) -> tuple[int, dict]:
    raw = json.dumps(payload).encode()
    signature = hmac.new(GENERIC_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    response = client.post(
        "/webhooks/sms/generic/",
        data=raw,
        content_type="application/json",
        headers={"X-Chairside-Signature": signature},
    )
    return response.status_code, response.json()


@pytest.mark.parametrize("message_id", [None, "", "   ", "\t\n", "x" * 129])
def test_a_gateway_text_without_a_usable_message_id_is_refused_naming_the_field(
    db: None, client: Client, message_id: str | None
) -> None:
    payload = {"from": PHONE, "body": "STOP"}
    if message_id is not None:
        payload["id"] = message_id

    status, answer = generic_payload(client, payload)

    assert status == 400
    assert "id" in answer["error"]["fields"]
    assert nothing_recorded()


@pytest.mark.parametrize("sender", ["", "  "])
def test_a_gateway_text_without_a_sender_is_refused_naming_the_field(
    db: None, client: Client, sender: str
) -> None:
    status, answer = generic_payload(client, {"id": "g-1", "from": sender, "body": "STOP"})

    assert status == 400
    assert "from" in answer["error"]["fields"]
    assert nothing_recorded()


def test_texts_without_ids_cannot_pass_for_a_retry_and_swallow_an_opt_out(
    db: None, client: Client, patient
) -> None:
    assert generic_post(client, "Running late", "", PHONE).status == 400
    assert generic_post(client, "STOP", "", PHONE).status == 400
    assert nothing_recorded()

    # The gateway sends it again with its id: the opt-out is taken.
    assert "START" in generic_post(client, "STOP", "g-2", PHONE).reply
    assert PhoneOptOut.objects.filter(phone=PHONE).exists()


def test_two_long_ids_alike_in_their_first_128_characters_are_not_one_message(
    db: None, client: Client, patient
) -> None:
    prefix = "g" * 128

    generic_post(client, "Running late", prefix + "-1", PHONE)
    generic_post(client, "STOP", prefix + "-2", PHONE)

    assert not InboundMessage.objects.filter(body="Running late").exists()
    assert not PhoneOptOut.objects.exists()


def test_a_twilio_text_with_a_blank_message_sid_is_refused(db: None, client: Client) -> None:
    assert twilio_post(client, "STOP", "   ", PHONE).status == 400
    assert nothing_recorded()
