"""The patient's secure-link pages, /a/<token>/ and /a/ (request a new link)."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from threading import Barrier

import icalendar
import pytest
import time_machine
from django.core import mail
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from booking.links import patient_link_issue, patient_link_request, patient_link_resolve
from booking.models import Allocation, Appointment, AppointmentStatus, Patient, PatientLink
from booking.portal.link import LINK_REQUEST_LIMIT, LINK_REQUEST_WINDOW
from booking.services import (
    IntakeAnswers,
    PatientDetails,
    appointment_book,
    consultation_book_online,
)
from booking.tasks import answer_link_request
from config.celery import app as celery_app
from scheduling.models import Location
from tests.notifications.conftest import celery_broker

NOW = datetime.fromisoformat("2026-10-05T12:00:00+00:00")  # Monday 08:00 in New York
EARLY = datetime.fromisoformat("2026-10-07T08:30:00-04:00")  # Wednesday 08:30 EDT
LATER = datetime.fromisoformat("2026-10-08T14:00:00-04:00")  # Thursday 14:00 EDT
ADDRESS = "12 Park Row, New York, NY 10038"


@pytest.fixture
def make_patient(make_approved_patient: Callable[..., Patient]) -> Callable[..., Patient]:
    """Patients here hold an approval for every treatment: these tests are about other things."""
    return make_approved_patient


@pytest.fixture(autouse=True)
def fresh_rate_limits():
    # The rate limiter's windows live in the shared cache (Redis in CI), across tests and runs.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def eager_celery():
    saved = celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    yield
    celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates = saved


@pytest.fixture
def memory_broker() -> Iterator[None]:
    """Requests that commit queue their answer: in this process, for no worker to take."""
    with celery_broker("memory://localhost/"):
        yield


@pytest.fixture
def addressed(clinic: Location) -> Location:
    Location.objects.filter(pk=clinic.pk).update(address=ADDRESS)
    clinic.refresh_from_db()
    return clinic


@pytest.fixture
def alice(make_patient) -> Patient:
    return make_patient(
        first_name="Alice", email="alice@example.com", date_of_birth=date(1985, 3, 2)
    )


@pytest.fixture
def bob(make_patient) -> Patient:
    return make_patient(first_name="Bobby", email="bob@example.com")


@pytest.fixture
def visit(addressed, infusion, alice) -> Appointment:
    with time_machine.travel(NOW, tick=False):
        return appointment_book(appointment_type=infusion, patient=alice, start=EARLY)


@pytest.fixture
def token(visit: Appointment) -> str:
    with time_machine.travel(NOW, tick=False):
        return patient_link_issue(patient=visit.patient)


def url(name: str, token: str, visit: Appointment | None = None) -> str:
    return reverse(name, args=[token, visit.reference] if visit else [token])


def text(response) -> str:
    return response.content.decode()


def snapshot() -> tuple[list, list, list, list]:
    return (
        list(Appointment.objects.order_by("pk").values()),
        list(Allocation.objects.order_by("pk").values()),
        list(PatientLink.objects.order_by("pk").values()),
        list(Patient.objects.order_by("pk").values()),
    )


# --- What the page shows ----------------------------------------------------------------------


@time_machine.travel(NOW, tick=False)
def test_the_page_shows_the_visit_in_clinic_time_with_its_preparation(client, visit, token):
    response = client.get(url("patient-link", token))

    assert response.status_code == 200
    page = text(response)
    assert "Hello Alice" in page
    assert "Treatment session" in page
    assert "Wednesday 7 October 2026 at 8:30 AM EDT" in page
    assert "Midtown Health" in page
    assert ADDRESS in page
    assert "+12125550100" in page
    assert "arrive by <strong>8:15 AM EDT</strong>" in page
    assert "Nothing to eat after <strong>2:30 AM EDT</strong>" in page
    assert (
        "clear liquids (water, clear juice, black tea or coffee) until <strong>6:30 AM EDT" in page
    )
    assert "Do not drive for 24 hours" in page
    assert "Who is taking you home?" in page
    assert visit.reference in page


@time_machine.travel(NOW, tick=False)
def test_the_page_never_shows_internal_names_or_intake_answers(client, consultation):
    appointment = consultation_book_online(
        appointment_type=consultation,
        start=LATER,
        details=PatientDetails(
            first_name="Cleo",
            last_name="Quill",
            email="cleo@example.com",
            phone="+19175550123",
            date_of_birth=date(1979, 8, 1),
        ),
        intake=IntakeAnswers(
            conditions=["Treatment-resistant depression"],
            medications="Sertraline 100 mg",
            prior_treatments="Two SSRIs",
            screening=[{"question": "Any history of psychosis?", "answer": False}],
        ),
        sms_consent=False,
    )
    link = patient_link_issue(patient=appointment.patient)

    page = text(client.get(url("patient-link", link)))

    assert "New patient consultation" in page
    for secret in ("depression", "Sertraline", "SSRI", "psychosis", "Ketamine", "Comprehensive"):
        assert secret.lower() not in page.lower()


@time_machine.travel(NOW, tick=False)
def test_a_token_lists_its_own_visits_and_nobody_elses(client, visit, token, infusion, bob):
    theirs = appointment_book(appointment_type=infusion, patient=bob, start=LATER)

    page = text(client.get(url("patient-link", token)))

    assert visit.reference in page
    assert theirs.reference not in page
    assert "Bobby" not in page
    assert "Thursday 8 October 2026 at 2:00 PM" not in page


@pytest.mark.parametrize(
    ("now", "start", "solids", "liquids"),
    [
        # Six elapsed hours before 08:30 EST on the morning clocks fall back: the hour repeated
        # at 01:00 lies before 02:30, so the answer is 02:30 EST.
        ("2026-10-28T12:00:00+00:00", "2026-11-01T08:30:00-05:00", "2:30 AM EST", "6:30 AM EST"),
        # On the morning clocks spring forward there is no 02:30: six hours before 08:30 EDT is
        # 01:30 EST, and two hours before is 06:30 EDT.
        ("2026-03-04T12:00:00+00:00", "2026-03-08T08:30:00-04:00", "1:30 AM EST", "6:30 AM EDT"),
    ],
)
def test_fasting_times_count_real_hours_across_a_clock_change(
    client, addressed, infusion, alice, now, start, solids, liquids
):
    with time_machine.travel(datetime.fromisoformat(now), tick=False):
        appointment_book(
            appointment_type=infusion, patient=alice, start=datetime.fromisoformat(start)
        )
        link = patient_link_issue(patient=alice)

        page = text(client.get(url("patient-link", link)))

    assert f"Nothing to eat after <strong>{solids}</strong>" in page
    assert f"until <strong>{liquids}</strong>" in page


@time_machine.travel(NOW, tick=False)
def test_a_cutoff_on_the_day_before_says_which_day(client, addressed, alice, make_type):
    overnight = make_type(
        addressed,
        duration=60,
        needs=[{"resource_kind": "chair"}],
        fasting_solids_hours=12,
        fasting_clear_liquids_hours=2,
    )
    appointment_book(appointment_type=overnight, patient=alice, start=EARLY)

    page = text(client.get(url("patient-link", patient_link_issue(patient=alice))))

    assert (
        "Nothing to eat after <strong>8:30 PM EDT</strong> on Tuesday 6 October 2026, clear "
        "liquids (water, clear juice, black tea or coffee) until <strong>6:30 AM EDT</strong>,"
    ) in page


@time_machine.travel(NOW, tick=False)
def test_the_page_reads_a_fixed_number_of_queries_however_many_visits(
    client, visit, token, infusion, alice
):
    with CaptureQueriesContext(connection) as one:
        client.get(url("patient-link", token))
    # A free day between mood infusions.
    for days in (3, 5, 7):
        appointment_book(
            appointment_type=infusion, patient=alice, start=EARLY + timedelta(days=days)
        )

    with CaptureQueriesContext(connection) as four:
        page = text(client.get(url("patient-link", token)))

    assert page.count("Treatment session</h2>") == 4
    assert len(four.captured_queries) == len(one.captured_queries)


@time_machine.travel(NOW, tick=False)
def test_link_pages_are_private_to_caches_referrers_and_search_engines(client, visit, token):
    pages = [
        url("patient-link", token),
        url("patient-link-reschedule", token, visit),
        url("patient-link-cancel", token, visit),
        url("patient-link-ics", token, visit),
        reverse("patient-link-request"),
        reverse("patient-link-requested"),
        reverse("patient-link", args=["forged"]),
    ]
    for address in pages:
        response = client.get(address)

        assert response.status_code in (200, 404), address
        # The token never reaches another site. (Not no-referrer: browsers then send
        # "Origin: null" with the page's own form POSTs, which CSRF protection refuses.)
        assert response["Referrer-Policy"] == "same-origin"
        assert "no-store" in response["Cache-Control"]
        assert "noindex" in response["X-Robots-Tag"]
        if response["Content-Type"].startswith("text/html"):
            page = text(response)
            assert '<meta name="robots" content="noindex, nofollow">' in page
            assert re.findall(r'<meta name="referrer" content="([^"]*)">', page) in (
                [],
                ["same-origin"],
            )


@time_machine.travel(NOW, tick=False)
def test_a_browser_post_from_the_page_passes_csrf_protection(visit, token):
    browser = Client(enforce_csrf_checks=True)
    page = browser.get(url("patient-link", token))
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', text(page))
    assert csrf is not None

    response = browser.post(
        url("patient-link-confirm", token, visit),
        {"csrfmiddlewaretoken": csrf.group(1)},
        headers={"Origin": "http://testserver"},
    )

    assert response.status_code == 303
    visit.refresh_from_db()
    assert visit.status == AppointmentStatus.CONFIRMED


@time_machine.travel(NOW, tick=False)
def test_the_calendar_file_is_the_visit_in_the_clinics_zone(client, visit, token):
    response = client.get(url("patient-link-ics", token, visit))

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/calendar")
    assert "attachment" in response["Content-Disposition"]
    calendar = icalendar.Calendar.from_ical(response.content)
    (event,) = calendar.walk("VEVENT")
    assert event.decoded("dtstart") == EARLY
    assert event["dtstart"].params["TZID"] == "America/New_York"
    assert str(event["uid"]) == f"{visit.reference}@chairside"
    assert str(calendar["method"]) == "REQUEST"


# --- Who may see and do what --------------------------------------------------------------------

ACTIONS = [
    ("get", "patient-link-reschedule", {}),
    ("get", "patient-link-cancel", {}),
    ("get", "patient-link-ics", {}),
    ("post", "patient-link-confirm", {}),
    ("post", "patient-link-escort", {"escort_name": "Eve", "escort_phone": "+19175550123"}),
    ("post", "patient-link-reschedule", {"start": LATER.isoformat()}),
    ("post", "patient-link-cancel", {"reason": "time"}),
]


def prefixed(visit: Appointment, data: dict[str, str]) -> dict[str, str]:
    # Each visit's escort form on the page carries the visit's reference as its prefix.
    return {f"{visit.reference}-{k}" if k.startswith("escort") else k: v for k, v in data.items()}


@time_machine.travel(NOW, tick=False)
@pytest.mark.parametrize(("method", "name", "data"), ACTIONS)
def test_a_token_can_neither_see_nor_touch_another_patients_visit(
    client, token, infusion, bob, method, name, data
):
    theirs = appointment_book(
        appointment_type=infusion, patient=bob, start=EARLY + timedelta(days=3)
    )
    before = snapshot()

    response = getattr(client, method)(url(name, token, theirs), prefixed(theirs, data))

    assert response.status_code == 404
    assert "Bobby" not in text(response)
    assert snapshot() == before


@time_machine.travel(NOW, tick=False)
def test_every_unusable_token_gets_the_same_404_page(client, visit, token, alice):
    patient_link_request(email="alice@example.com", date_of_birth=date(1985, 3, 2))
    revoked = token  # replaced by the link request above
    expired = patient_link_issue(patient=alice)
    PatientLink.objects.filter(pk=PatientLink.objects.latest("pk").pk).update(expires_at=NOW)
    forged = secrets.token_urlsafe(32)

    pages = [client.get(url("patient-link", t)) for t in (expired, revoked, forged)]

    assert [p.status_code for p in pages] == [404, 404, 404]
    assert len({p.content for p in pages}) == 1
    assert reverse("patient-link-request") in text(pages[0])
    assert "Alice" not in text(pages[0])


@time_machine.travel(NOW, tick=False)
@pytest.mark.parametrize(("method", "name", "data"), ACTIONS)
def test_a_revoked_token_can_no_longer_act(client, visit, token, method, name, data):
    patient_link_request(email="alice@example.com", date_of_birth=date(1985, 3, 2))
    before = snapshot()

    response = getattr(client, method)(url(name, token, visit), prefixed(visit, data))

    assert response.status_code == 404
    assert snapshot() == before


def test_an_expired_token_can_no_longer_act(client, visit, token):
    expires = PatientLink.objects.get().expires_at

    with time_machine.travel(expires, tick=False):
        response = client.post(url("patient-link-confirm", token, visit))

    assert response.status_code == 404
    visit.refresh_from_db()
    assert visit.status == AppointmentStatus.BOOKED


@time_machine.travel(NOW, tick=False)
def test_actions_without_the_csrf_token_are_refused(visit, token):
    client = Client(enforce_csrf_checks=True)

    response = client.post(url("patient-link-confirm", token, visit))

    assert response.status_code == 403
    visit.refresh_from_db()
    assert visit.status == AppointmentStatus.BOOKED


@time_machine.travel(NOW, tick=False)
def test_get_never_changes_anything(client, visit, token):
    before = snapshot()

    for address in (
        url("patient-link", token),
        url("patient-link-reschedule", token, visit),
        url("patient-link-reschedule", token, visit) + "?day=2026-10-08",
        url("patient-link-cancel", token, visit),
        url("patient-link-ics", token, visit),
    ):
        assert client.get(address).status_code == 200
    for address in (
        url("patient-link-confirm", token, visit),
        url("patient-link-escort", token, visit),
    ):
        assert client.get(address).status_code == 405

    assert snapshot() == before


# --- Acting on a visit ----------------------------------------------------------------------------


@time_machine.travel(NOW, tick=False)
def test_the_patient_confirms_attendance(client, visit, token):
    response = client.post(url("patient-link-confirm", token, visit), follow=True)

    visit.refresh_from_db()
    assert (visit.status, visit.confirmed_at) == (AppointmentStatus.CONFIRMED, NOW)
    assert response.redirect_chain[0][1] == 303
    page = text(response)
    assert "your visit is confirmed" in page
    assert "Confirm I will attend" not in page


@time_machine.travel(NOW, tick=False)
def test_the_escort_form_saves_a_normalised_mobile(client, visit, token):
    prefix = visit.reference

    response = client.post(
        url("patient-link-escort", token, visit),
        {f"{prefix}-escort_name": "  Eve   Example ", f"{prefix}-escort_phone": "(917) 555-0123"},
        follow=True,
    )

    visit.refresh_from_db()
    assert (visit.escort_name, visit.escort_phone, visit.escort_updated_at) == (
        "Eve Example",
        "+19175550123",
        NOW,
    )
    assert "we have your escort" in text(response)


@time_machine.travel(NOW, tick=False)
@pytest.mark.parametrize(
    ("name", "phone", "error"),
    [
        ("Eve", "12345", "Enter a valid phone number"),
        ("Eve", "", "This field is required"),
        ("", "+19175550123", "This field is required"),
        ("Me", "OWN", "not your own"),
    ],
)
def test_the_escort_form_refuses_bad_input_and_saves_nothing(
    client, visit, token, name, phone, error
):
    prefix = visit.reference
    phone = visit.patient.phone if phone == "OWN" else phone

    response = client.post(
        url("patient-link-escort", token, visit),
        {f"{prefix}-escort_name": name, f"{prefix}-escort_phone": phone},
    )

    assert response.status_code == 200
    assert error in text(response)
    visit.refresh_from_db()
    assert (visit.escort_name, visit.escort_phone) == ("", "")


@time_machine.travel(NOW, tick=False)
def test_the_reschedule_page_offers_the_engines_open_times(client, visit, token):
    response = client.get(url("patient-link-reschedule", token, visit) + "?day=2026-10-08")

    page = text(response)
    assert "Open times on Thursday 8 October" in page
    assert 'value="2026-10-08T18:00:00+00:00"' in page
    assert ">2:00 PM EDT</button>" in page


@time_machine.travel(NOW, tick=False)
def test_the_patient_moves_the_visit_to_an_open_time(client, visit, token):
    response = client.post(
        url("patient-link-reschedule", token, visit), {"start": LATER.isoformat()}, follow=True
    )

    visit.refresh_from_db()
    assert (visit.start, visit.version) == (LATER, 1)
    assert set(
        Allocation.objects.filter(appointment=visit, active=True).values_list("start", flat=True)
    ) == {LATER}
    assert "Your visit has moved to Thursday 8 October 2026 at 2:00 PM EDT" in text(response)


@time_machine.travel(NOW, tick=False)
def test_a_time_taken_meanwhile_gives_a_message_and_leaves_the_visit(
    client, visit, token, infusion, make_patient
):
    assert 'value="2026-10-08T18:00:00+00:00"' in text(
        client.get(url("patient-link-reschedule", token, visit) + "?day=2026-10-08")
    )
    for _ in range(2):  # both chairs
        appointment_book(appointment_type=infusion, patient=make_patient(), start=LATER)

    response = client.post(
        url("patient-link-reschedule", token, visit), {"start": LATER.isoformat()}, follow=True
    )

    assert response.status_code == 200
    assert response.redirect_chain[-1][0].endswith("?day=2026-10-08")
    assert "Please choose another" in text(response)
    visit.refresh_from_db()
    assert (visit.start, visit.version) == (EARLY, 0)


@time_machine.travel(NOW, tick=False)
@pytest.mark.parametrize(
    "start",
    [
        "tomorrow",
        "2026-10-08T14:00:00",
        "2026-10-08T14:07:00-04:00",
        # Beyond what the move's arithmetic holds: refused as a time never shown, not a 500.
        "9999-12-31T23:00:00-05:00",
        "0001-01-01T00:00:00+05:00",
    ],
)
def test_a_malformed_or_off_grid_time_is_refused_with_a_message(client, visit, token, start):
    client.raise_request_exception = False
    response = client.post(
        url("patient-link-reschedule", token, visit), {"start": start}, follow=True
    )

    assert response.status_code == 200
    assert 'class="message error"' in text(response)
    visit.refresh_from_db()
    assert (visit.start, visit.version) == (EARLY, 0)


@time_machine.travel(NOW, tick=False)
def test_the_patient_cancels_with_a_reason(client, visit, token):
    response = client.post(
        url("patient-link-cancel", token, visit),
        {"reason": "time", "details": "  work  trip "},
        follow=True,
    )

    visit.refresh_from_db()
    assert visit.status == AppointmentStatus.CANCELLED
    assert visit.cancel_reason == "I can't make this time: work trip"
    assert not Allocation.objects.filter(appointment=visit, active=True).exists()
    page = text(response)
    assert "Your visit on Wednesday 7 October 2026 at 8:30 AM EDT is cancelled." in page
    assert "You have no upcoming appointments." in page


@time_machine.travel(NOW, tick=False)
def test_a_cancel_without_a_reason_asks_for_one(client, visit, token):
    response = client.post(url("patient-link-cancel", token, visit), {"details": "x"})

    assert response.status_code == 200
    assert "This field is required" in text(response)
    visit.refresh_from_db()
    assert visit.status == AppointmentStatus.BOOKED


def test_changes_stay_open_until_the_cutoff_itself(client, visit, token):
    with time_machine.travel(EARLY - timedelta(hours=24), tick=False):
        page = text(client.get(url("patient-link", token)))

    assert "Change time" in page
    assert "please call us" not in page


def test_after_the_cutoff_the_page_offers_the_phone_and_refuses_changes(client, visit, token):
    with time_machine.travel(EARLY - timedelta(hours=23, minutes=59), tick=False):
        page = text(client.get(url("patient-link", token)))
        reschedule_page = text(client.get(url("patient-link-reschedule", token, visit)))
        moved = client.post(
            url("patient-link-reschedule", token, visit), {"start": LATER.isoformat()}, follow=True
        )
        cancelled = client.post(
            url("patient-link-cancel", token, visit), {"reason": "time"}, follow=True
        )
        confirmed = client.post(url("patient-link-confirm", token, visit), follow=True)

    assert 'please call us on <a href="tel:+12125550100">+12125550100</a>' in page
    assert "Change time" not in page
    assert url("patient-link-cancel", token, visit) not in page
    assert "please call us on" in reschedule_page
    assert "2:00 PM EDT</button>" not in reschedule_page
    for response in (moved, cancelled):
        assert response.status_code == 200
        assert "Online changes close 24 hours before the visit" in text(response)
    # Confirming attendance is not a change of plan: it stays open until the visit.
    assert "your visit is confirmed" in text(confirmed)
    visit.refresh_from_db()
    assert (visit.start, visit.status, visit.version) == (EARLY, AppointmentStatus.CONFIRMED, 0)


# --- Asking for a new link ------------------------------------------------------------------------


def ask(client: Client, email: str, born: str = "1985-03-02", **extra):
    return client.post(
        reverse("patient-link-request"), {"email": email, "date_of_birth": born}, **extra
    )


@time_machine.travel(NOW, tick=False)
def test_the_link_request_answers_identically_whether_or_not_the_patient_exists(
    client, visit, eager_celery, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        known = ask(client, "alice@example.com")
    sent = len(mail.outbox)
    with django_capture_on_commit_callbacks(execute=True):
        unknown = ask(client, "nobody@example.com")

    assert sent == 1
    assert len(mail.outbox) == 1
    assert (known.status_code, known["Location"], known.content) == (
        unknown.status_code,
        unknown["Location"],
        unknown.content,
    )
    assert dict(known.headers) == dict(unknown.headers)
    assert known.status_code == 303
    assert client.get(known["Location"]).content == client.get(unknown["Location"]).content


@time_machine.travel(NOW, tick=False)
def test_a_link_request_does_the_same_work_for_a_patient_as_for_a_stranger(
    client, visit, token, eager_celery, django_capture_on_commit_callbacks, monkeypatch
):
    # The request only queues; what it queued is run afterwards, as a worker would.
    queued: list[tuple[object, ...]] = []
    monkeypatch.setattr(answer_link_request, "delay", lambda *args: queued.append(args))
    answers, statements = {}, {}
    for who, email in [("patient", "Alice@Example.com"), ("stranger", "nobody@example.com")]:
        with (
            CaptureQueriesContext(connection) as queries,
            django_capture_on_commit_callbacks(execute=True),
        ):
            response = ask(client, email)
        answers[who] = (response.status_code, response["Location"], response.content)
        statements[who] = [query["sql"] for query in queries.captured_queries]

    assert answers["patient"] == answers["stranger"]
    assert len(statements["patient"]) == len(statements["stranger"])
    assert not [sql for sql in statements["patient"] if "booking_patient" in sql]
    assert queued == [("alice@example.com", "1985-03-02"), ("nobody@example.com", "1985-03-02")]
    assert mail.outbox == []
    assert patient_link_resolve(token=token) is not None

    with django_capture_on_commit_callbacks(execute=True):
        for args in queued:
            answer_link_request.apply(args)

    (message,) = mail.outbox
    assert message.to == ["alice@example.com"]
    (sent,) = set(re.findall(r"/a/([\w-]+)/", str(message.body)))
    assert patient_link_resolve(token=sent) == visit.patient
    assert patient_link_resolve(token=token) is None  # the earlier link is revoked


@time_machine.travel(NOW, tick=False)
def test_a_filled_honeypot_gets_the_same_answer_and_no_email(
    client, visit, eager_celery, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("patient-link-request"),
            {"email": "alice@example.com", "date_of_birth": "1985-03-02", "website": "x"},
        )

    assert (response.status_code, response["Location"]) == (303, reverse("patient-link-requested"))
    assert mail.outbox == []


@time_machine.travel(NOW, tick=False)
@pytest.mark.parametrize(
    ("email", "born", "error"),
    [
        ("not-an-email", "1985-03-02", "Enter a valid email address"),
        ("a@example.com", "02/03/1985", "Enter a valid date"),
        ("a@example.com", "2030-01-01", "must be in the past"),
    ],
)
def test_the_link_request_form_explains_bad_input(client, email, born, error):
    response = ask(client, email, born)

    assert response.status_code == 200
    assert error in text(response)


@time_machine.travel(NOW, tick=False)
def test_link_requests_are_limited_per_client_address(client, db):
    answers = [ask(client, f"person{n}@example.com").status_code for n in range(LINK_REQUEST_LIMIT)]
    refused = ask(client, "one-more@example.com")
    elsewhere = ask(client, "one-more@example.com", REMOTE_ADDR="198.51.100.7")

    assert answers == [303] * LINK_REQUEST_LIMIT
    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= LINK_REQUEST_WINDOW
    assert "Too many requests" in text(refused)
    assert elsewhere.status_code == 303


@time_machine.travel(NOW, tick=False)
def test_link_requests_are_limited_per_email_whatever_the_address(client, db):
    answers = [
        ask(
            client,
            "Target@Example.com" if n % 2 else "target@example.com",
            REMOTE_ADDR=f"192.0.2.{n}",
        ).status_code
        for n in range(LINK_REQUEST_LIMIT)
    ]
    refused = ask(client, "TARGET@example.com", REMOTE_ADDR="192.0.2.200")

    assert answers == [303] * LINK_REQUEST_LIMIT
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 0


@time_machine.travel(NOW, tick=False)
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("shared", ["address", "email"])
def test_the_link_request_limit_holds_under_parallel_requests(shared, memory_broker):
    attempts = 4 * LINK_REQUEST_LIMIT
    start_together = Barrier(attempts)

    def request(n: int) -> tuple[int, str | None]:
        client = Client(REMOTE_ADDR="203.0.113.9" if shared == "address" else f"198.51.100.{n}")
        email = "same@example.com" if shared == "email" else f"p{n}@example.com"
        try:
            start_together.wait(timeout=30)
            response = ask(client, email)
            return response.status_code, response.headers.get("Retry-After")
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=attempts) as pool:
        answers = list(pool.map(request, range(attempts)))

    statuses = sorted(status for status, _ in answers)
    assert statuses == [303] * LINK_REQUEST_LIMIT + [429] * (attempts - LINK_REQUEST_LIMIT)
    assert all(int(wait) > 0 for status, wait in answers if status == 429 and wait is not None)
    assert all(wait is not None for status, wait in answers if status == 429)
