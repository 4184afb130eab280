"""``POST /webhooks/sms/<provider>/``: inbound text messages, accepted only when signed.

- ``twilio``: Twilio's ``X-Twilio-Signature`` (HMAC-SHA1 of the public URL and the form
  parameters, keyed with ``TWILIO_AUTH_TOKEN``); we answer with TwiML.
- ``generic``: a JSON body ``{"id", "from", "body"}`` signed with HMAC-SHA256 of the raw body,
  keyed with ``SMS_WEBHOOK_SECRET``, hex in ``X-Chairside-Signature``; we answer
  ``{"reply": …}``. For gateways without their own scheme, and for tests.

Either way the provider's message id is required, not blank and at most 128 characters (a 400
naming the field otherwise): it is what tells a retry from a new text.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from booking.validators import normalize_phone
from notifications.inbound import inbound_sms_handle


def _phone(raw: str) -> str:
    try:
        return normalize_phone(raw)
    except ValidationError:
        return raw[:32]


# The longest provider message id we store. A longer one is refused rather than cut: two ids
# alike in their first characters would pass for one message, the second for a retry.
MESSAGE_ID_MAX_LENGTH = 128


def _refuse(status: int, message: str, fields: dict[str, list[str]] | None = None) -> JsonResponse:
    return JsonResponse(
        {"error": {"code": "refused", "message": message, "fields": fields or {}}}, status=status
    )


def _bad_input(fields: dict[str, list[str]]) -> JsonResponse:
    return _refuse(400, " ".join(f"{name}: {msgs[0]}" for name, msgs in fields.items()), fields)


def _message_errors(
    *, id_field: str, message_id: str, from_field: str, sender: str
) -> dict[str, list[str]]:
    """What is wrong with a text's provider id and sender, by field.

    Each provider message is handled once, by its id: a text without one (or with a blank one)
    could not be told from a retry, and the second such text would be dropped as one, an opt-out
    with it."""
    errors: dict[str, list[str]] = {}
    if not message_id.strip():
        errors[id_field] = ["This field is required."]
    elif len(message_id) > MESSAGE_ID_MAX_LENGTH:
        errors[id_field] = [f"At most {MESSAGE_ID_MAX_LENGTH} characters."]
    if not sender.strip():
        errors[from_field] = ["This field is required."]
    return errors


@csrf_exempt  # signed by the provider instead: there is no browser session here
@require_POST
def sms_webhook(request: HttpRequest, provider: str) -> HttpResponse:
    if provider == "twilio":
        return _twilio(request)
    if provider == "generic":
        return _generic(request)
    return _refuse(404, "Unknown provider.")


def _twilio(request: HttpRequest) -> HttpResponse:
    from twilio.request_validator import RequestValidator
    from twilio.twiml.messaging_response import MessagingResponse

    if not settings.TWILIO_AUTH_TOKEN:
        return _refuse(404, "Twilio is not configured.")
    params = request.POST.dict()
    url = settings.PUBLIC_BASE_URL + request.get_full_path()
    signature = request.headers.get("X-Twilio-Signature", "")
    if not RequestValidator(settings.TWILIO_AUTH_TOKEN).validate(url, params, signature):
        return _refuse(403, "Bad signature.")
    message_id, sender = params.get("MessageSid", ""), params.get("From", "")
    errors = _message_errors(
        id_field="MessageSid", message_id=message_id, from_field="From", sender=sender
    )
    if errors:
        return _bad_input(errors)
    reply = inbound_sms_handle(
        provider="twilio",
        provider_message_id=message_id,
        from_phone=_phone(sender),
        body=params.get("Body", ""),
    )
    response = MessagingResponse()
    if reply:
        response.message(reply)
    return HttpResponse(str(response), content_type="text/xml")


def _generic(request: HttpRequest) -> HttpResponse:
    secret = settings.SMS_WEBHOOK_SECRET
    if not secret:
        return _refuse(404, "The generic SMS webhook is not configured.")
    expected = hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, request.headers.get("X-Chairside-Signature", "")):
        return _refuse(403, "Bad signature.")
    try:
        payload = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        return _refuse(400, "The body must be JSON.")
    if not isinstance(payload, dict):
        return _refuse(400, "The body must be a JSON object.")
    message_id, sender = payload.get("id", ""), payload.get("from", "")
    body = payload.get("body", "")
    if not isinstance(message_id, str) or not isinstance(sender, str) or not isinstance(body, str):
        given = {"id": message_id, "from": sender, "body": body}
        return _bad_input(
            {name: ["Must be a string."] for name, v in given.items() if not isinstance(v, str)}
        )
    errors = _message_errors(id_field="id", message_id=message_id, from_field="from", sender=sender)
    if errors:
        return _bad_input(errors)
    reply = inbound_sms_handle(
        provider="generic",
        provider_message_id=message_id,
        from_phone=_phone(sender),
        body=body,
    )
    return JsonResponse({"reply": reply})
