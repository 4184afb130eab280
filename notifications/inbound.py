"""Text messages patients send us: confirm, opt out, opt back in, ask for help.

Opting out follows the FCC's revocation rule (47 CFR 64.1200(a)(10) and (12)) and the carriers'
(CTIA) keywords, read the way people write them: every reply goes through one normalising
function (:func:`reply_words`: Unicode NFKC, case, accents, punctuation and emoji dropped), then
is matched against the keyword tables below, in English and Spanish.

- A reply that is only an opt-out keyword or phrase (beside words like "please" or "texts") opts
  the number out at once, with exactly one confirmation.
- A reply with an opt-out keyword among other words ("I need to cancel my appointment", "stop by
  tomorrow?") opts out at once too: the FCC counts the word itself as a revocation, and a
  revocation stands unless the patient says otherwise. The one reply it gets asks whether all
  texts were meant; the front desk reads it. The question is open for ``CLARIFY_WINDOW``: KEEP
  then turns texts back on, and nothing else sent in that time is acted on (a "yes" could answer
  either question, and must not confirm a visit the patient just asked to cancel). After that,
  as after any opt-out, START turns texts back on. The question is asked only by the reply that
  created the opt-out, so at most once per revocation, however many unclear replies follow or
  arrive at once (the opt-out's unique phone decides which).
- START opts back in, HELP answers with who we are, C confirms the next visit. Anything else
  goes to the front desk.

Each provider message id is handled once: a provider's retry gets the answer already given, and
nothing happens twice.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime, timedelta
from enum import StrEnum

from django.db import IntegrityError, transaction
from django.utils import timezone

from booking.errors import BookingError
from booking.models import Appointment, AppointmentStatus, Patient
from booking.services import appointment_confirm
from notifications.models import InboundMessage, InboundStatus, PhoneOptOut
from scheduling.clock import clinic_datetime
from scheduling.models import Location

# How far ahead "C" looks for the visit it confirms.
CONFIRM_WINDOW = timedelta(days=7)
# How long the question sent after an unclear opt-out stays open (see the module's docstring).
CLARIFY_WINDOW = timedelta(hours=24)

# The ASCII, typographic and modifier-letter apostrophes: "don't" → "dont".
_APOSTROPHES = re.compile(r"['\u2019\u02bc]")
_WORD = re.compile(r"[^\W_]+")  # letters and digits of any script


def reply_words(body: str) -> tuple[str, ...]:
    """The words of a text as the keyword tables compare them.

    NFKC first, so full-width letters (some phone keyboards send them) are plain ones; then case
    folded and accents dropped ("NO MÁS" → "no mas"); apostrophes joined ("don't" → "dont");
    anything that is not a letter or digit (punctuation, emoji, hyphens) separates words. A text
    made only of single letters is one spelled-out word: "s t o p", "S.T.O.P." → "stop".
    """
    text = unicodedata.normalize("NFKC", body).casefold()
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    words = tuple(_WORD.findall(_APOSTROPHES.sub("", text)))
    if len(words) > 1 and all(len(word) == 1 for word in words):
        return ("".join(words),)
    return words


Phrase = tuple[str, ...]


def _phrases(*texts: str) -> frozenset[Phrase]:
    # The tables are written as people write them and normalised like any reply.
    return frozenset(reply_words(text) for text in texts)


# --- The keyword tables ------------------------------------------------------------------------
# The FCC's seven words (47 CFR 64.1200(a)(10)), CTIA's STOPALL, and the Spanish for stop and
# cancel. Alone they opt out with a confirmation; among other words they still opt out, but the
# reply asks what was meant: to a clinic, "cancel" is as often about a visit as about texts.
OPT_OUT_KEYWORDS = _phrases(
    "stop",
    "stopall",
    "quit",
    "end",
    "revoke",
    "opt out",
    "optout",
    "cancel",
    "unsubscribe",
    "parar",
    "detener",
    "cancelar",
)
# Phrases nobody writes to a clinic meaning anything but texts: they opt out with a
# confirmation wherever they stand ("Please unsubscribe me, I moved to Boston").
OPT_OUT_ANYWHERE = _phrases(
    "unsubscribe",
    "opt out",
    "optout",
    "opt me out",
    "stopall",
    "stop texting",
    "stop messaging",
    "stop sending",
    "no more texts",
    "no more messages",
    "dont text me",
    "do not text me",
    "dont message me",
    "do not message me",
    "darme de baja",
    "dar de baja",
    "denme de baja",
    "desuscribir",
    "desuscribirme",
    "no mas mensajes",
    "no mas textos",
)
# Words that mean "stop texting me" only as the whole reply (beside FILLER): each is an everyday
# word too ("remove the old number", "mi presión está baja", "fin de semana", "voy a salir").
# The Spanish are those carriers' and gateways' Spanish opt-out lists commonly carry (ALTO,
# BAJA, FIN, NO MÁS, …); CTIA publishes no Spanish list of its own.
OPT_OUT_ALONE = _phrases(
    "remove",
    "take me off",
    "no more",
    "dont text",
    "do not text",
    "dont message",
    "do not message",
    "dont contact me",
    "do not contact me",
    "leave me alone",
    "alto",
    "baja",
    "fin",
    "salir",
    "terminar",
    "eliminar",
    "no mas",
    "no me envien",
    "no me manden",
)
OPT_OUT = OPT_OUT_KEYWORDS | OPT_OUT_ANYWHERE | OPT_OUT_ALONE
# Words that may stand beside an opt-out without making it unclear: politeness and words for our
# texts. Never a negation, a pronoun for a visit ("it", "this") or an "I want to": with those
# the reply is unclear, which still opts out.
FILLER = frozenset(
    reply_words(
        "please pls plz now thanks thank you thx ty all me my the your these those from off list"
        " anymore asap immediately ok okay text texts texting txt txts message messages messaging"
        " msg msgs sms reminder reminders send sending"
        " por favor porfa porfavor gracias ya me mi mis el la los las de estos estas esos esas"
        " mas mensaje mensajes texto textos recordatorios envien enviar manden mandar"
    )
)
START_WORDS = frozenset({"start", "unstop", "subscribe"})
HELP_WORDS = frozenset({"help", "info"})
CONFIRM_WORDS = frozenset({"c", "yes", "y", "confirm", "confirmed"})
# Words that may stand beside a confirmation without changing it: "Yes please", "C thanks".
POLITE = frozenset(
    {"please", "thanks", "thank", "you", "ok", "okay", "see", "there", "will", "be", "i"}
)
# The answer our question asks for: ours alone, so it means nothing unless we asked.
KEEP = _phrases("keep")
_LONGEST = max(len(phrase) for phrase in OPT_OUT | KEEP)


class Intent(StrEnum):
    """What a reply asks for; the value is what :class:`InboundMessage` records as its action."""

    STOP = "stop"
    STOP_UNCLEAR = "stop-unclear"
    START = "start"
    HELP = "help"
    KEEP = "keep"
    CONFIRM = "confirm"
    OTHER = ""


def _contains(words: Phrase, phrases: frozenset[Phrase]) -> bool:
    return any(
        words[i : i + n] in phrases for i in range(len(words)) for n in range(1, _LONGEST + 1)
    )


def _made_of(words: Phrase, phrases: frozenset[Phrase]) -> bool:
    """Whether ``words`` are one or more of ``phrases`` with only FILLER beside them."""
    found, i = False, 0
    while i < len(words):
        for n in range(min(_LONGEST, len(words) - i), 0, -1):
            if words[i : i + n] in phrases:
                found, i = True, i + n
                break
        else:
            if words[i] not in FILLER:
                return False
            i += 1
    return found


def reply_intent(body: str) -> Intent:
    """What the text ``body`` asks for, read with the keyword tables above."""
    words = reply_words(body)
    if _made_of(words, OPT_OUT) or _contains(words, OPT_OUT_ANYWHERE):
        return Intent.STOP
    if _contains(words, OPT_OUT_KEYWORDS):
        return Intent.STOP_UNCLEAR
    first = words[0] if words else ""
    if first in START_WORDS:
        return Intent.START
    if first in HELP_WORDS:
        return Intent.HELP
    if _made_of(words, KEEP):
        return Intent.KEEP
    if first in CONFIRM_WORDS and set(words[1:]) <= POLITE:
        return Intent.CONFIRM
    return Intent.OTHER


def _patients(phone: str) -> list[Patient]:
    return list(Patient.objects.filter(phone=phone).order_by("id"))


def _clinic(patients: list[Patient], now: datetime) -> Location | None:
    upcoming = (
        Appointment.objects.filter(patient__in=patients, start__gt=now - timedelta(days=30))
        .select_related("location")
        .order_by("start")
        .first()
    )
    if upcoming is not None:
        return upcoming.location
    return Location.objects.filter(is_active=True).order_by("id").first()


def _signature(location: Location | None) -> str:
    if location is None:
        return ""
    return f"{location.public_name}" + (f", {location.phone}" if location.phone else "")


def _question_open(phone: str, now: datetime) -> bool:
    """Whether the opt-out in force for ``phone`` came from an unclear reply that we asked about
    less than ``CLARIFY_WINDOW`` ago."""
    opted_out_at = (
        PhoneOptOut.objects.filter(phone=phone).values_list("opted_out_at", flat=True).first()
    )
    if opted_out_at is None:
        return False
    # Only the reply that created the opt-out was answered, at its own received_at.
    return (
        InboundMessage.objects.filter(
            from_phone=phone,
            action=Intent.STOP_UNCLEAR,
            received_at__gte=opted_out_at,
            received_at__gt=now - CLARIFY_WINDOW,
        )
        .exclude(reply="")
        .exists()
    )


def inbound_sms_handle(
    *,
    provider: str,
    provider_message_id: str,
    from_phone: str,
    body: str,
    now: datetime | None = None,
) -> str:
    """Act on one inbound text and return the reply to send ('' for none)."""
    now = now or timezone.now()
    existing = InboundMessage.objects.filter(
        provider=provider, provider_message_id=provider_message_id
    ).first()
    if existing is not None:
        return existing.reply
    patients = _patients(from_phone)
    location = _clinic(patients, now)
    intent = reply_intent(body)
    action, status, reply = intent, InboundStatus.HANDLED, ""
    try:
        with transaction.atomic():
            if intent in (Intent.STOP, Intent.STOP_UNCLEAR):
                _, created = PhoneOptOut.objects.get_or_create(
                    phone=from_phone, defaults={"opted_out_at": now}
                )
                if intent == Intent.STOP_UNCLEAR:
                    # The patient may have meant a visit: the front desk reads it.
                    status = InboundStatus.NEEDS_ATTENTION
                # Exactly one answer per opt-out, however often or unclearly they say it.
                if created and intent == Intent.STOP:
                    reply = (
                        f"{_signature(location)}: you will get no more texts from us. "
                        "Reply START to receive them again."
                    )
                elif created:
                    reply = (
                        f"{_signature(location)}: we have stopped all texts to this number. "
                        "If you meant only your appointment, reply KEEP within 24h to keep "
                        "getting texts, and call us about the visit."
                    )
            elif intent == Intent.START or (
                intent == Intent.KEEP and _question_open(from_phone, now)
            ):
                PhoneOptOut.objects.filter(phone=from_phone).delete()
                reply = (
                    f"{_signature(location)}: texts are back on. Reply STOP to stop, HELP for help."
                )
            elif intent == Intent.HELP:
                reply = f"{_signature(location)}. Appointment reminders. Reply STOP to stop texts."
            elif intent == Intent.CONFIRM and not _question_open(from_phone, now):
                reply = _confirm(patients, location, now)
                if not reply:
                    status = InboundStatus.NEEDS_ATTENTION
            else:
                action, status = Intent.OTHER, InboundStatus.NEEDS_ATTENTION
            InboundMessage.objects.create(
                provider=provider,
                provider_message_id=provider_message_id,
                from_phone=from_phone,
                body=body[:2000],
                received_at=now,
                patient=patients[0] if len(patients) == 1 else None,
                action=action,
                status=status,
                reply=reply[:320],
            )
    except IntegrityError:
        # The same provider message arrived twice at once; the other request answered it.
        return (
            InboundMessage.objects.filter(
                provider=provider, provider_message_id=provider_message_id
            )
            .values_list("reply", flat=True)
            .first()
            or ""
        )
    return reply


def _confirm(patients: list[Patient], location: Location | None, now: datetime) -> str:
    appointment = (
        Appointment.objects.filter(
            patient__in=patients,
            status__in=[AppointmentStatus.BOOKED, AppointmentStatus.CONFIRMED],
            start__gt=now,
            start__lt=now + CONFIRM_WINDOW,
        )
        .select_related("location")
        .order_by("start")
        .first()
    )
    if appointment is None:
        return ""
    try:
        appointment_confirm(appointment=appointment, now=now)
    except BookingError:
        return ""
    when = clinic_datetime(appointment.start, appointment.location.timezone)
    return (
        f"{_signature(appointment.location)}: thank you, your appointment on {when} is confirmed."
    )
