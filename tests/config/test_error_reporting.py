"""Error reports (config.errors, on only with SENTRY_DSN): nothing about a patient leaves."""

from __future__ import annotations

from typing import Any

from config.errors import scrub

TOKEN = "Zk3v9cQ0pXbR7mT2sW5yA8dF1gH4jK6lN0oP3qS"


def an_event() -> dict[str, Any]:
    """An event as the SDK's Django integration builds it for an error on a patient's page."""
    return {
        "message": f"failed on /a/{TOKEN}/",
        "transaction": f"/a/{TOKEN}/",
        "request": {
            "method": "POST",
            "url": f"https://clinic.example/a/{TOKEN}/?q=Ada+Lovelace",
            "query_string": "q=Ada+Lovelace",
            "data": {"first_name": "Ada", "phone": "+12125550100"},
            "cookies": {"sessionid": "s3cr3t"},
            "headers": {"Cookie": "sessionid=s3cr3t", "Referer": f"/a/{TOKEN}/"},
            "env": {"REMOTE_ADDR": "203.0.113.9"},
        },
        "user": {"id": 7, "username": "desk", "ip_address": "203.0.113.9"},
        "extra": {"patient": "Ada Lovelace"},
        "tags": {"patient": "Ada"},
        "exception": {
            "values": [
                {
                    "type": "ValueError",
                    "value": f"no visit for /a/{TOKEN}/?email=ada@example.com",
                    "stacktrace": {
                        "frames": [
                            {
                                "filename": "booking/services.py",
                                "function": "appointment_book",
                                "lineno": 120,
                                "vars": {"patient": "<Patient: Ada Lovelace>"},
                            }
                        ]
                    },
                }
            ]
        },
        "logentry": {
            "message": "could not text %s",
            "params": ["+12125550100"],
            "formatted": "could not text +12125550100",
        },
        "breadcrumbs": {
            "values": [
                {
                    "category": "query",
                    "message": 'SELECT … WHERE "last_name" = %s',
                    "data": {"params": ["Lovelace"]},
                }
            ]
        },
    }


def test_the_report_keeps_what_a_developer_needs_and_no_patient_data() -> None:
    event = scrub(an_event(), {})

    text = repr(event)
    for secret in (TOKEN, "Ada", "Lovelace", "+12125550100", "s3cr3t", "203.0.113.9", "desk"):
        assert secret not in text, secret
    assert event["request"] == {
        "method": "POST",
        "url": "https://clinic.example/a/[redacted]/?q=[redacted]",
    }
    frame = event["exception"]["values"][0]["stacktrace"]["frames"][0]
    assert frame == {
        "filename": "booking/services.py",
        "function": "appointment_book",
        "lineno": 120,
    }
    assert event["exception"]["values"][0]["type"] == "ValueError"
    assert event["logentry"] == {"message": "could not text %s"}
    assert event["transaction"] == "/a/[redacted]/"


def test_an_event_without_a_request_passes() -> None:
    assert scrub({"message": "beat is late"}, None) == {"message": "beat is late"}
