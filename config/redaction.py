"""What never reaches a log: secure-link tokens and the values of query strings.

A secure link's address is its only key: whoever reads ``/a/<token>/``, ``/w/<token>/`` or
``/book/confirm/<token>/`` in a log can open that patient's visits, waiting-list offer or booking.
A query string holds what was asked for, and on the staff pages that is a patient
(``/api/v1/patients/?q=<name, phone, date of birth>``). So every address a log line carries is
masked first: gunicorn's request line and Referer (``config.gunicorn``), and every record of
Django's logging (``RedactingFilter``, which ``LOGGING`` puts on its handlers: "Not Found:
/a/<token>/", runserver's request lines).

Plain functions of text, no Django: gunicorn's master process uses them before any settings load.
"""

from __future__ import annotations

import logging
import re

MASK = "[redacted]"

# The first segment after these path prefixes is a credential (booking.portal.urls): the secure
# link, a waitlist offer, the e-mailed confirmation of an online booking, a staff calendar feed
# (booking.api.feeds); "sent" is the one fixed page among them. tests/config/test_redaction.py
# checks every URL pattern with a token in it.
_TOKEN_SEGMENT = re.compile(
    r"(?P<prefix>/(?:a|w|book/confirm|api/v1/feeds)/)(?!sent(?:[/?#\s\"'<>]|$))"
    r"(?P<token>[^/?#\s\"'<>]+)"
)
# A staff invitation's set-password link: the account's id and the token after it
# (booking.desk.setup.accounts); "set-password" is the page the token is swapped for.
_INVITATION = re.compile(
    r"(?P<prefix>/staff/welcome/)(?P<uid>[^/?#\s\"'<>]+)/"
    r"(?!set-password(?:[/?#\s\"'<>]|$))(?P<token>[^/?#\s\"'<>]+)"
)
# Anything that looks like a random token (ours are 43 characters of URL-safe base64) in any
# other path segment: a route added later with a token in it is masked before anyone remembers.
_LONG_SEGMENT = re.compile(r"(?<=/)[A-Za-z0-9_-]{32,}(?=[/?#\s\"'<>]|$)")
_QUERY = re.compile(r"\?(?P<query>[^\s\"'<>#]*)")
# A parameter name is kept when it looks like one; a name that could be data is masked too.
_PARAMETER_NAME = re.compile(r"[A-Za-z0-9_.\[\]-]{1,40}")


def redact_query(query: str) -> str:
    """``q=Ada+Lovelace&page=2`` -> ``q=[redacted]&page=[redacted]``: the names, never a value."""
    if not query:
        return query
    pairs = []
    for pair in query.split("&"):
        name, equals, _value = pair.partition("=")
        if equals and _PARAMETER_NAME.fullmatch(name):
            pairs.append(f"{name}={MASK}")
        elif pair:
            pairs.append(MASK)
    return "&".join(pairs)


def redact_text(text: str) -> str:
    """Mask the tokens and query values of every path or URL in ``text`` (a request line, a
    Referer, a log message): ``GET /a/<token>/?q=Ada HTTP/1.1`` ->
    ``GET /a/[redacted]/?q=[redacted] HTTP/1.1``."""
    if "/" not in text and "?" not in text:
        return text
    text = _TOKEN_SEGMENT.sub(rf"\g<prefix>{MASK}", text)
    text = _INVITATION.sub(rf"\g<prefix>\g<uid>/{MASK}", text)
    text = _LONG_SEGMENT.sub(MASK, text)
    return _QUERY.sub(lambda match: "?" + redact_query(match["query"]), text)


class RedactingFilter(logging.Filter):
    """A logging filter that masks tokens and query values in every record it passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed record: let logging report it as usual
            return True
        redacted = redact_text(message)
        if redacted != message:
            # The message is formatted once here, so no argument can put the secret back.
            record.msg, record.args = redacted, ()
        return True
