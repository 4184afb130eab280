"""Keys of log pages: what a link carries, read back exactly, and anything else read as none."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from booking.models import AuditEvent
from booking.paging import key_decode, key_encode

FIELDS = ("at", "id")


def test_a_key_reads_back_to_the_microsecond() -> None:
    event = AuditEvent(at=datetime(2026, 3, 8, 7, 0, 0, 123457, tzinfo=UTC), id=41)

    key = key_encode(event, FIELDS)

    assert key == "1772953200123457.41"
    assert key_decode(key, AuditEvent, FIELDS) == [event.at, 41]


def test_instants_are_counted_from_1970() -> None:
    # Microseconds since 1970, never negative: no log holds an older instant.
    assert key_decode("0.1", AuditEvent, FIELDS) == [datetime(1970, 1, 1, tzinfo=UTC), 1]


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "41",  # one part where two are read
        "1.2.3",
        "-5.41",
        "1772953200123457.-41",
        "abc.41",
        "²³.41",  # digits that are not decimal digits
        "9" * 18 + ".41",  # past the year 9999
        "1" * 19 + ".41",  # longer than any key written
        "1772953200123457.41 ",
    ],
)
def test_anything_else_is_no_key_and_shows_the_newest_page(text: str | None) -> None:
    assert key_decode(text, AuditEvent, FIELDS) is None
