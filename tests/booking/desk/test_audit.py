"""The audit log at /staff/audit/ and its CSV export: administrators only, filtered, scoped to
their locations, safe to open in a spreadsheet, and append-only in the database."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib.auth.models import User
from django.db import DatabaseError, connection, transaction
from django.test import Client

from booking.access.roles import Role
from booking.desk.audit import csv_safe
from booking.models import AuditEvent, Patient
from scheduling.models import Location
from tests.staff_helpers import client_for, staff_user

NOW = datetime(2026, 12, 9, 14, 0, tzinfo=UTC)  # Wednesday 09:00 EST
URL = "/staff/audit/"
EXPORT = "/staff/audit/export.csv"


@pytest.fixture(autouse=True)
def clock() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def admin(location: Location) -> User:
    return staff_user(Role.ADMIN, location, username="boss")


@pytest.fixture
def admin_client(admin: User) -> Client:
    return client_for(admin)


@pytest.fixture
def record(location: Location) -> Callable[..., AuditEvent]:
    def make(
        username: str = "desk",
        *,
        at: datetime = NOW - timedelta(hours=1),
        patient: Patient | None = None,
        place: Location | None = location,
        **fields: object,
    ) -> AuditEvent:
        values: dict[str, object] = {
            "at": at,
            "username": username,
            "action": "view",
            "object_type": "appointment",
            "object_id": "1",
            "patient": patient,
            "location": place,
            "method": "GET",
            "path": "/staff/board/",
            "ip": "10.0.0.7",
        }
        values.update(fields)
        return AuditEvent.objects.create(**values)

    return make


def rows(content: str) -> list[str]:
    body = content.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [r for r in body.split("<tr>")[1:] if "No events." not in r]


def export(client: Client, **query: str) -> list[dict[str, str]]:
    response = client.get(EXPORT, query)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    assert response.streaming
    text = response.getvalue().decode()
    return list(csv.DictReader(io.StringIO(text)))


# --- Who may read it -----------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.FRONT_DESK, Role.NURSE, Role.PRESCRIBER])
def test_only_administrators_may_read_or_export_it(role: str, location: Location) -> None:
    client = client_for(staff_user(role, location))

    assert client.get(URL).status_code == 403
    assert client.get(EXPORT).status_code == 403
    assert not AuditEvent.objects.filter(object_type="audit_log").exists()


def test_anonymous_visitors_are_sent_to_sign_in(client: Client, db: None) -> None:
    for address in (URL, EXPORT):
        response = client.get(address)
        assert response.status_code == 302
        assert "login" in response["Location"]


# --- What it shows -------------------------------------------------------------------------


def test_it_lists_who_did_what_to_whom_where_and_from_where(
    admin_client: Client, record, make_patient, location: Location
) -> None:
    patient = make_patient(first_name="Ada", last_name="Lovelace")
    record("desk", patient=patient, action="update", object_id="42")

    content = admin_client.get(URL).content.decode()

    (event,) = [r for r in rows(content) if "desk" in r]
    for shown in (
        "Changed",
        "appointment 42",
        "Ada Lovelace",
        f"#{patient.pk}",
        location.name,
        "10.0.0.7",
        "GET /staff/board/",
        "Wednesday 9 December 2026 at 8:00 AM EST",
    ):
        assert shown in event, shown


def test_reading_the_log_is_itself_audited(admin_client: Client, admin: User) -> None:
    admin_client.get(URL, {"user": "desk"})

    event = AuditEvent.objects.get(object_type="audit_log")
    assert (event.user, event.action, event.detail) == (
        admin,
        "view",
        {"filters": {"user": "desk"}},
    )


def test_it_shows_only_events_of_the_administrators_locations(
    admin_client: Client, record, make_location, make_patient, infusion
) -> None:
    other = make_location(name="Far Away Clinic")
    record("here")
    record("there", place=other)
    record("nowhere", place=None)  # e.g. a sign-in, tied to no location or patient
    stranger = make_patient(first_name="Sally", last_name="Stranger")
    record("stranger", place=None, patient=stranger)

    content = admin_client.get(URL).content.decode()

    assert "here" in content
    assert "nowhere" in content
    assert "Far Away Clinic" not in content
    assert "Sally Stranger" not in content


def test_it_filters_by_user_patient_and_local_date_range(
    admin_client: Client, record, make_patient
) -> None:
    ada = make_patient(first_name="Ada", last_name="Lovelace")
    record("alice", patient=ada)
    record("bob", patient=ada)
    record("alice")
    # 23:30 EST on Monday 7 December is already Tuesday in UTC: dates are the clinic's days.
    record("carol", at=datetime(2026, 12, 8, 4, 30, tzinfo=UTC))
    record("dave", at=datetime(2026, 12, 8, 5, 30, tzinfo=UTC))

    def shown(**query: str) -> list[str]:
        found = rows(admin_client.get(URL, query).content.decode())
        return sorted(
            name for r in found for name in ("alice", "bob", "carol", "dave") if f">{name}<" in r
        )

    assert shown(user="alice") == ["alice", "alice"]
    assert shown(user="ALICE", patient=str(ada.pk)) == ["alice"]
    assert shown(patient=str(ada.pk)) == ["alice", "bob"]
    assert shown(start="2026-12-07", end="2026-12-07") == ["carol"]
    assert shown(start="2026-12-08", end="2026-12-08") == ["dave"]
    assert shown(start="2026-12-09") == ["alice", "alice", "bob"]


@pytest.mark.parametrize(
    "query",
    [
        {"patient": "abc"},
        {"patient": "-1"},
        {"start": "09/12/2026"},
        {"start": "2026-12-09", "end": "2026-12-01"},
    ],
)
def test_bad_filters_are_a_400_with_the_field_named(admin_client: Client, query) -> None:
    response = admin_client.get(URL, query)

    assert response.status_code == 400
    assert "Check the filters" in response.content.decode()
    assert admin_client.get(EXPORT, query).status_code == 400
    assert not AuditEvent.objects.filter(action="export").exists()


@pytest.mark.parametrize(
    "apart",
    [
        timedelta(minutes=1),
        # Wider than the month and the year a page is first looked for in: each page is found
        # by widening, and is the same.
        timedelta(days=30),
    ],
)
def test_it_pages_through_many_events_and_back(
    admin_client: Client, record, apart: timedelta
) -> None:
    # Three events to an instant, so that a page's edge falls among events of the same instant.
    AuditEvent.objects.bulk_create(
        AuditEvent(
            at=NOW - apart * (n // 3),
            username=f"user{n:03d}",
            action="view",
            object_type="day_board",
        )
        for n in range(60)
    )
    everyone = [
        e.username
        for e in AuditEvent.objects.filter(object_type="day_board").order_by("-at", "-id")
    ]

    def link(page: str, name: str) -> str | None:
        found = re.search(rf'href="\?user=&amp;((?:before|after)=[\d.]+)">{name}<', page)
        return found.group(1) if found else None

    def users(page: str) -> list[str]:
        return re.findall(r"<td>(user\d{3})</td>", page)

    first = admin_client.get(URL, {"user": ""}).content.decode()
    older = link(first, "Older")
    assert older is not None
    assert link(first, "Newer") is None
    second = admin_client.get(f"{URL}?user=&{older}").content.decode()

    assert len(rows(first)) == 50
    # Every event once, newest first, across the two pages.
    assert users(first) + users(second) == everyone
    assert link(second, "Older") is None
    newer = link(second, "Newer")
    assert newer is not None
    assert users(admin_client.get(f"{URL}?user=&{newer}").content.decode()) == users(first)


@pytest.mark.parametrize("query", ["before=abc", "after=-1", "before=1.2.3", "page=2", "before=9"])
def test_a_page_link_that_makes_no_sense_shows_the_newest(
    admin_client: Client, record, query: str
) -> None:
    record("alice")

    response = admin_client.get(f"{URL}?{query}")

    assert response.status_code == 200
    assert "alice" in response.content.decode()


# --- The CSV export ------------------------------------------------------------------------------


def test_the_export_holds_the_filtered_events(
    admin_client: Client, admin: User, record, make_patient
) -> None:
    ada = make_patient(first_name="Ada", last_name="Lovelace")
    record("alice", patient=ada, detail={"step": "fasting"})
    record("bob")

    exported = export(admin_client, user="alice")

    (row,) = exported
    assert row["user"] == "alice"
    assert row["patient"] == "Ada Lovelace"
    assert row["patient_id"] == str(ada.pk)
    assert row["ip"] == "10.0.0.7"
    assert row["detail"] == '{"step": "fasting"}'
    assert row["at"] == "2026-12-09T13:00:00+00:00"
    event = AuditEvent.objects.get(action="export")
    assert (event.user, event.object_type, event.detail) == (
        admin,
        "audit_log",
        {"filters": {"user": "alice"}},
    )


def test_the_export_neutralises_cells_a_spreadsheet_would_run(
    admin_client: Client, record, make_patient
) -> None:
    evil = make_patient(first_name='=HYPERLINK("http://x")', last_name="Smith")
    record("+1 desk", patient=evil, object_id="@SUM(A1)", path='-2+3,"quoted"')

    (row,) = export(admin_client, patient=str(evil.pk))

    assert row["user"] == "'+1 desk"
    assert row["patient"] == '\'=HYPERLINK("http://x") Smith'
    assert row["object_id"] == "'@SUM(A1)"
    assert row["path"] == '\'-2+3,"quoted"'


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@cmd", "'@cmd"),
        ("\t=1", "'\t=1"),
        ("plain", "plain"),
        ("a=b", "a=b"),
        (None, ""),
    ],
)
def test_csv_safe_prefixes_formula_starts_only(value, written) -> None:
    assert csv_safe(value) == written


# --- Append-only -----------------------------------------------------------------------------


def test_the_model_refuses_to_save_an_existing_event(record) -> None:
    event = record()
    event.username = "someone else"

    with pytest.raises(ValueError, match="append-only"):
        event.save()


@pytest.mark.postgres
def test_postgresql_refuses_to_update_or_delete_an_event(record) -> None:
    event = record()

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(username="someone else")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()

    event.refresh_from_db()
    assert event.username == "desk"


@pytest.mark.postgres
def test_postgresql_refuses_to_empty_the_log_even_to_its_owner(record) -> None:
    record()
    with connection.cursor() as cursor:
        # The event's foreign keys are checked at commit; TRUNCATE waits for no pending check.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")

    for statement in ("TRUNCATE booking_auditevent", "TRUNCATE booking_auditevent CASCADE"):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(statement)

    assert AuditEvent.objects.count() == 1


def test_the_admin_shows_the_log_read_only(record, admin_client: Client) -> None:
    event = record()
    superuser = User.objects.create_superuser("root", "root@example.com", "unused-password")
    client = client_for(superuser)

    assert client.get("/admin/booking/auditevent/").status_code == 200
    assert client.get(f"/admin/booking/auditevent/{event.pk}/change/").status_code == 200
    assert client.get("/admin/booking/auditevent/add/").status_code == 403
    assert client.post(f"/admin/booking/auditevent/{event.pk}/delete/").status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk).exists()
