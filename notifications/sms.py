"""Text-message backends, chosen like Django's mail backends: ``SMS_BACKEND`` names a class.

- ``notifications.sms.ConsoleBackend``: prints each message (development).
- ``notifications.sms.LocmemBackend``: keeps messages in ``notifications.sms.outbox`` (tests).
- ``notifications.sms.FileBackend``: one file per message under ``SMS_FILE_PATH``.
- ``notifications.sms.TwilioBackend``: Twilio's REST API (``TWILIO_*`` settings).

A backend returns the provider's message id, or raises :class:`TransientSendError` (try again
later: timeouts, 5xx, rate limits) or :class:`PermanentSendError` (never retry: invalid number,
blocked, 4xx).
"""

from __future__ import annotations

import itertools
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.utils.module_loading import import_string


class SendError(Exception):
    pass


class TransientSendError(SendError):
    pass


class PermanentSendError(SendError):
    pass


@dataclass(frozen=True)
class SmsMessage:
    to: str
    body: str


outbox: list[SmsMessage] = []
_ids = itertools.count(1)


class BaseBackend:
    def send(self, to: str, body: str) -> str:
        raise NotImplementedError


class ConsoleBackend(BaseBackend):
    def send(self, to: str, body: str) -> str:
        sys.stdout.write(f"SMS to {to}:\n{body}\n{'-' * 40}\n")
        sys.stdout.flush()
        return f"console-{next(_ids)}"


class LocmemBackend(BaseBackend):
    def send(self, to: str, body: str) -> str:
        outbox.append(SmsMessage(to=to, body=body))
        return f"locmem-{next(_ids)}"


class FileBackend(BaseBackend):
    def send(self, to: str, body: str) -> str:
        folder = Path(settings.SMS_FILE_PATH)
        folder.mkdir(parents=True, exist_ok=True)
        message_id = f"file-{time.time_ns()}-{next(_ids)}"
        (folder / f"{message_id}.txt").write_text(f"To: {to}\n\n{body}\n", encoding="utf-8")
        return message_id


class TwilioBackend(BaseBackend):
    def __init__(self) -> None:
        from twilio.http.http_client import TwilioHttpClient
        from twilio.rest import Client

        # A bounded call: the sender holds the appointment's row lock while it waits.
        self.client = Client(
            settings.TWILIO_ACCOUNT_SID,
            settings.TWILIO_AUTH_TOKEN,
            http_client=TwilioHttpClient(timeout=10),
        )

    def send(self, to: str, body: str) -> str:
        from twilio.base.exceptions import TwilioException, TwilioRestException

        try:
            message = self.client.messages.create(
                to=to, from_=settings.TWILIO_FROM_NUMBER, body=body
            )
        except TwilioRestException as exc:
            if exc.status >= 500 or exc.status == 429:
                raise TransientSendError(f"Twilio {exc.status}: {exc.msg}") from exc
            raise PermanentSendError(f"Twilio {exc.status}: {exc.msg}") from exc
        except (TwilioException, OSError) as exc:
            raise TransientSendError(f"Twilio unreachable: {exc}") from exc
        return str(message.sid)


def get_backend() -> BaseBackend:
    backend: BaseBackend = import_string(settings.SMS_BACKEND)()
    return backend
