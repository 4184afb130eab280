"""No secure-link token and no query value reaches a log (config.redaction): Django's own
request warnings and runserver's lines go through the filter LOGGING puts on its handlers.
(gunicorn's access log: tests/config/test_gunicorn.py.)"""

from __future__ import annotations

import io
import itertools
import logging
import re
import secrets
from collections.abc import Iterator

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from config.redaction import MASK, RedactingFilter, redact_query, redact_text

TOKEN = secrets.token_urlsafe(32)


def routes(
    patterns: list[URLPattern | URLResolver] | None = None, prefix: str = ""
) -> Iterator[str]:
    """Every route of the URLconf, as ``a/<str:token>/series/``."""
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from routes(entry.url_patterns, route)
        else:
            yield route


def test_every_address_with_a_token_in_it_is_masked():
    with_token = [route for route in routes() if "token>" in route]
    assert len(with_token) >= 10  # the secure link's pages and the waitlist offer's

    # A real token, and a short one that only the route's own rule can recognise.
    for token, route in itertools.product((TOKEN, "Tok3n"), with_token):
        path = "/" + re.sub(r"<(?:\w+:)?token>", token, route)
        path = re.sub(r"<(?:\w+:)?\w+>", "x1", path)

        assert token not in redact_text(path), path
        assert token not in redact_text(f'"GET {path}?q=1 HTTP/1.1" 404'), path
        assert token not in redact_text(f"https://book.clinic.example{path}"), path


@pytest.mark.parametrize(
    ("logged", "expected"),
    [
        (f"/a/{TOKEN}/", f"/a/{MASK}/"),
        (f"/w/{TOKEN}/accept/", f"/w/{MASK}/accept/"),
        (f"/book/confirm/{TOKEN}/release/", f"/book/confirm/{MASK}/release/"),
        (f"Not Found: /a/{TOKEN}/R-12/cancel/", f"Not Found: /a/{MASK}/R-12/cancel/"),
        # A mistyped or guessed token is still somebody's key, or nearly.
        ("/a/abc/", f"/a/{MASK}/"),
        # Fixed pages stay readable.
        ("/a/", "/a/"),
        ("/a/sent/", "/a/sent/"),
        ("/book/midtown/consultation/", "/book/midtown/consultation/"),
        ("/book/done/", "/book/done/"),
        ("/staff/board/", "/staff/board/"),
        # A long random segment anywhere else, as a token of a route added later would be.
        (f"/x/{TOKEN}/", f"/x/{MASK}/"),
    ],
)
def test_tokens_in_paths_are_masked(logged, expected):
    assert redact_text(logged) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("q=Ada+Lovelace", f"q={MASK}"),
        ("q=1985-12-10&location=midtown", f"q={MASK}&location={MASK}"),
        ("ada@example.org", MASK),  # a bare value is masked whole
        ("ada%40example.org=1", MASK),  # so is a name that is not a plain name
        ("", ""),
    ],
)
def test_query_strings_keep_their_names_and_lose_their_values(query, expected):
    assert redact_query(query) == expected


def test_a_request_line_keeps_its_shape():
    line = f'"GET /a/{TOKEN}/calendar.ics?download=1 HTTP/1.1" 200 512'

    assert redact_text(line) == f'"GET /a/{MASK}/calendar.ics?download={MASK} HTTP/1.1" 200 512'
    assert redact_text('"GET /api/v1/patients/?q=Ada HTTP/1.1" 200') == (
        f'"GET /api/v1/patients/?q={MASK} HTTP/1.1" 200'
    )


def test_the_filter_masks_a_record_s_arguments_too():
    record = logging.LogRecord(
        "django.server", logging.INFO, __file__, 1, '"%s" %s %s',
        (f"GET /a/{TOKEN}/?q=Ada HTTP/1.1", 200, 512), None,
    )  # fmt: skip

    assert RedactingFilter().filter(record)
    assert record.getMessage() == f'"GET /a/{MASK}/?q={MASK} HTTP/1.1" 200 512'


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """What the root logger's handlers (LOGGING's "console") write, in a buffer."""
    handlers = [
        handler
        for handler in logging.getLogger().handlers
        if any(isinstance(f, RedactingFilter) for f in handler.filters)
        and isinstance(handler, logging.StreamHandler)
    ]
    assert handlers, "LOGGING's console handler has no redacting filter"
    buffer = io.StringIO()
    saved = [handler.setStream(buffer) for handler in handlers]
    yield buffer
    for handler, stream in zip(handlers, saved, strict=True):
        handler.setStream(stream)


def test_django_s_not_found_warning_for_a_secure_link_is_masked(db, log_output):
    response = Client().get(f"/a/{TOKEN}/")

    assert response.status_code == 404
    logged = log_output.getvalue()
    assert f"Not Found: /a/{MASK}/" in logged
    assert TOKEN not in logged


def test_runserver_s_request_lines_are_masked():
    logger = logging.getLogger("django.server")
    # pytest adds its own capturing handlers beside the configured ones.
    configured = [h for h in logger.handlers if not type(h).__module__.startswith("_pytest")]

    assert not logger.propagate
    assert configured
    for handler in configured:
        assert any(isinstance(f, RedactingFilter) for f in handler.filters), handler


def test_django_logs_through_no_handler_of_its_own():
    # Django's defaults give "django" an unfiltered console handler (under DEBUG) and the admins'
    # mail; LOGGING sends its records to the root's filtered handler only.
    assert logging.getLogger("django").handlers == []
