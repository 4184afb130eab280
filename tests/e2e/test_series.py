"""An approved patient books their treatment series through their secure link, in a browser."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from playwright.sync_api import Page, expect

from booking.defaults import protocols_install_defaults
from booking.eligibility import contraindications_none, eligibility_decide
from booking.links import patient_link_issue
from booking.models import AppointmentStatus, DecisionOutcome, Series
from scheduling.models import Location

pytestmark = pytest.mark.django_db(transaction=True)

# The clock stands at Tuesday 1 December 2026, 09:00 EST (tests/e2e/conftest.py).
NOW = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
MONDAY = date(2026, 12, 7)


def test_an_approved_patient_picks_preferences_sees_the_proposal_and_books_the_series(
    page: Page, snapshot, live_server, clinic: Location, make_patient
):
    mood = next(
        p for p in protocols_install_defaults(location=clinic) if p.slug == "mood-induction"
    )
    prescriber = User.objects.create_user("dr.e2e", password="unused-in-tests")
    prescriber.user_permissions.add(
        Permission.objects.get(
            content_type__app_label="booking", codename="add_eligibilitydecision"
        )
    )
    patient = make_patient(first_name="Rosalind")
    eligibility_decide(
        patient=patient,
        outcome=DecisionOutcome.APPROVED,
        contraindications=contraindications_none(),
        protocol=mood,
        sessions_authorised=6,
        valid_until=date(2027, 1, 31),
        decided_by=User.objects.get(pk=prescriber.pk),
        now=NOW - timedelta(days=1),
    )
    token = patient_link_issue(patient=patient, now=NOW)

    page.goto(live_server.url + reverse("patient-link-series", args=[token]))
    expect(page.get_by_role("heading", level=1)).to_have_text("Book your treatment sessions")
    page.get_by_label("First day you could come").fill(MONDAY.isoformat())
    for day in ("Tuesday", "Thursday", "Saturday"):
        page.get_by_label(day, exact=True).uncheck()
    page.get_by_label("Morning (around 9 AM)").check()
    snapshot(page, "preferences")
    page.get_by_role("button", name="Show proposed dates").click()

    sessions = page.get_by_role("list", name="Your sessions").get_by_role("listitem")
    expect(sessions).to_have_count(6)
    expected = [
        "Monday 7 December 2026 at 9:00 AM EST",
        "Wednesday 9 December 2026 at 9:00 AM EST",
        "Friday 11 December 2026 at 9:00 AM EST",
        "Monday 14 December 2026 at 9:00 AM EST",
        "Wednesday 16 December 2026 at 9:00 AM EST",
        "Friday 18 December 2026 at 9:00 AM EST",
    ]
    for n, when in enumerate(expected):
        expect(sessions.nth(n)).to_contain_text(f"Session {n + 1}: {when}")
    # Looking at a proposal books nothing.
    assert not Series.objects.exists()
    snapshot(page, "proposal")

    page.get_by_role("button", name="Book these 6 sessions").click()

    expect(page.get_by_text(re.compile("Your 6 sessions are booked"))).to_be_visible()
    expect(page).to_have_url(live_server.url + reverse("patient-link", args=[token]))
    series = Series.objects.get(plan__patient=patient)
    booked = list(series.sessions.order_by("series_index"))
    assert [s.status for s in booked] == [AppointmentStatus.BOOKED] * 6
    assert {s.source for s in booked} == {"link"}
    for appointment in booked:
        expect(page.locator(f"#visit-{appointment.reference}")).to_be_visible()
    expect(page.locator(f"#visit-{booked[0].reference}")).to_contain_text(expected[0])
