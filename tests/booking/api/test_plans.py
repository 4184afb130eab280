"""Staff API for eligibility decisions and plans, and the approval gate over HTTP (issue 5).

``test_the_public_booking_api_refuses_an_infusion_without_an_approval`` needs the booking
service to ask ``booking.eligibility.plan_in_force`` for every type that needs approval.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import Permission, User
from django.core import mail
from django.core.cache import cache
from django.test import Client

from booking.defaults import DEFAULT_CONTRAINDICATIONS, protocols_install_defaults
from booking.eligibility import eligibility_decide, plan_in_force
from booking.errors import NotEligible
from booking.models import (
    Appointment,
    AuditEvent,
    Contraindication,
    DecisionOutcome,
    EligibilityDecision,
    Patient,
    Protocol,
    StaffProfile,
    TreatmentPlan,
)
from booking.services import appointment_book
from config.celery import app as celery_app
from notifications.delivery import message_deliver_due, message_send
from scheduling.models import AppointmentType, Location
from tests.booking.api.helpers import assert_error
from tests.staff_helpers import client_for

DECISIONS = "/api/v1/plans/decisions/"
PLANS = "/api/v1/plans/"
NOW = datetime.fromisoformat("2026-06-01T12:00:00+00:00")  # Monday, 08:00 in New York
ASKED = tuple(slug for slug, _ in DEFAULT_CONTRAINDICATIONS)
NONE_PRESENT = dict.fromkeys(ASKED, False)


@pytest.fixture(autouse=True)
def clock() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def protocols(clinic: Location) -> dict[str, Protocol]:
    return {p.slug: p for p in protocols_install_defaults(location=clinic)}


def staff(username: str, *codenames: str) -> User:
    """A staff member with these permissions, working at every location that exists now."""
    user = User.objects.create_user(username, password="unused-in-tests")
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="booking", codename__in=codenames)
    )
    StaffProfile.objects.create(user=user).locations.set(Location.objects.all())
    return user


@pytest.fixture
def prescriber(clinic: Location) -> User:
    return staff("dr.one", "add_eligibilitydecision", "view_treatmentplan")


@pytest.fixture
def desk(clinic: Location) -> User:
    """Front desk: may read plans, may not decide."""
    return staff("desk", "view_treatmentplan")


def as_user(user: User | None) -> Client:
    return client_for(user) if user is not None else Client()


def approval(patient: Patient, protocol: Protocol, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "patient": patient.pk,
        "outcome": "approved",
        "contraindications": dict(NONE_PRESENT),
        "protocol": protocol.pk,
        "sessions_authorised": 6,
        "valid_until": "2026-06-30",
    }
    body.update(changes)
    return body


def post(client: Client, path: str, body: Any = None):
    return client.post(path, data=json.dumps(body or {}), content_type="application/json")


# --- POST /api/v1/plans/decisions/ ---------------------------------------------------------------


def test_a_prescriber_records_an_approval_and_gets_its_plan(prescriber, make_patient, protocols):
    patient = make_patient()
    mood = protocols["mood-induction"]

    response = post(as_user(prescriber), DECISIONS, approval(patient, mood))

    assert response.status_code == 201, response.content
    body = response.json()
    decision = EligibilityDecision.objects.get()
    plan = TreatmentPlan.objects.get()
    assert body == {
        "id": decision.pk,
        "patient": patient.pk,
        "consultation": None,
        "outcome": "approved",
        "conditions": "",
        "contraindications": NONE_PRESENT,
        "decided_by": "dr.one",
        "decided_at": "2026-06-01T12:00:00Z",
        "plan": {
            "id": plan.pk,
            "patient": patient.pk,
            "decision": decision.pk,
            "protocol": {
                "id": mood.pk,
                "slug": "mood-induction",
                "name": "Mood induction series",
                "appointment_type": "iv-mood",
                "location": "midtown",
                "sessions": 6,
            },
            "sessions_authorised": 6,
            "sessions_used": 0,
            "sessions_remaining": 6,
            "valid_until": "2026-06-30",
            "conditions": "",
            "status": "in_force",
            "revoked_at": None,
            "decided_by": "dr.one",
            "decided_at": "2026-06-01T12:00:00Z",
        },
    }
    assert decision.decided_by == prescriber


def test_a_decline_is_recorded_without_a_plan(prescriber, make_patient, protocols):
    patient = make_patient()
    body = {
        "patient": patient.pk,
        "outcome": "declined",
        "contraindications": {**NONE_PRESENT, "recent_cardiac_event": True},
        "conditions": "Cardiology review first.",
    }

    response = post(as_user(prescriber), DECISIONS, body)

    assert response.status_code == 201, response.content
    assert response.json()["plan"] is None
    assert response.json()["contraindications"]["recent_cardiac_event"] is True
    assert not TreatmentPlan.objects.exists()


def test_it_links_a_decision_to_its_consultation_by_reference(
    prescriber, make_patient, protocols, consultation
):
    patient = make_patient()
    visit = appointment_book(
        appointment_type=consultation,
        patient=patient,
        start=NOW + timedelta(days=1, hours=2),
        now=NOW,
    )

    response = post(
        as_user(prescriber),
        DECISIONS,
        approval(patient, protocols["mood-induction"], consultation=visit.reference),
    )

    assert response.status_code == 201, response.content
    assert response.json()["consultation"] == visit.reference


def test_staff_of_another_location_cannot_decide_for_or_read_its_patients(
    prescriber, make_patient, protocols, consultation, make_location
):
    patient = make_patient()
    appointment_book(
        appointment_type=consultation,
        patient=patient,
        start=NOW + timedelta(days=1, hours=2),
        now=NOW,
    )
    decide(prescriber, patient, protocols["mood-induction"])
    plan = TreatmentPlan.objects.get(patient=patient)
    elsewhere = staff("dr.elsewhere", "add_eligibilitydecision", "view_treatmentplan")
    elsewhere.staff_profile.locations.set([make_location()])
    client = as_user(elsewhere)

    refused = post(client, DECISIONS, approval(patient, protocols["booster"]))
    assert {"patient", "protocol"} <= set(assert_error(refused, 400)["fields"])
    assert "patient" in assert_error(client.get(PLANS, {"patient": patient.pk}), 400)["fields"]
    assert_error(post(client, f"{PLANS}{plan.pk}/revoke/", {}), 404)
    assert TreatmentPlan.objects.get(pk=plan.pk).revoked_at is None


def test_it_refuses_a_decision_from_staff_who_are_not_prescribers(desk, make_patient, protocols):
    response = post(as_user(desk), DECISIONS, approval(make_patient(), protocols["booster"]))

    assert_error(response, 403, "permission_denied")
    assert not EligibilityDecision.objects.exists()


def test_it_refuses_a_decision_from_someone_not_signed_in(make_patient, protocols):
    response = post(as_user(None), DECISIONS, approval(make_patient(), protocols["booster"]))

    assert_error(response, 403)
    assert not EligibilityDecision.objects.exists()


def test_it_names_every_missing_term_of_an_approval(prescriber, make_patient):
    body = {"patient": make_patient().pk, "outcome": "approved", "contraindications": NONE_PRESENT}

    error = assert_error(post(as_user(prescriber), DECISIONS, body), 400, "invalid")

    assert set(error["fields"]) == {"protocol", "sessions_authorised", "valid_until"}


def test_it_refuses_plan_terms_on_a_decline(prescriber, make_patient, protocols):
    body = approval(make_patient(), protocols["mood-induction"], outcome="declined")

    error = assert_error(post(as_user(prescriber), DECISIONS, body), 400)

    assert set(error["fields"]) == {"protocol", "sessions_authorised", "valid_until"}


def test_it_names_each_unanswered_contraindication(prescriber, make_patient, protocols):
    body = approval(
        make_patient(),
        protocols["mood-induction"],
        contraindications={"pregnancy": False, "psychosis_history": "no"},
    )

    error = assert_error(post(as_user(prescriber), DECISIONS, body), 400)

    named = error["fields"]["contraindications"]
    assert set(named) == set(ASKED) - {"pregnancy"}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"patient": 999999}, "patient"),
        ({"outcome": "maybe"}, "outcome"),
        ({"sessions_authorised": 0}, "sessions_authorised"),
        ({"valid_until": "30/06/2026"}, "valid_until"),
        ({"valid_until": "2026-05-31"}, "valid_until"),
        ({"consultation": "NOSUCHREF"}, "consultation"),
        ({"outcome": "approved_conditions", "conditions": ""}, "conditions"),
        ({"contraindications": {**NONE_PRESENT, "pregnancy": True}}, "outcome"),
        ({"protocl": 1}, "protocl"),
    ],
)
def test_it_names_the_field_of_a_bad_decision(prescriber, make_patient, protocols, changes, field):
    body = approval(make_patient(), protocols["mood-induction"])
    body.update(changes)

    error = assert_error(post(as_user(prescriber), DECISIONS, body), 400)

    assert field in error["fields"], error
    assert not EligibilityDecision.objects.exists()


def test_a_contraindication_the_clinic_adds_is_asked_and_one_it_retires_is_not(
    prescriber, make_patient, protocols
):
    Contraindication.objects.filter(slug="breastfeeding").update(is_active=False)
    Contraindication.objects.create(slug="glaucoma", label="Glaucoma", position=20)
    body = approval(make_patient(), protocols["mood-induction"])

    error = assert_error(post(as_user(prescriber), DECISIONS, body), 400)
    assert set(error["fields"]["contraindications"]) == {"breastfeeding", "glaucoma"}

    body["contraindications"] = {**NONE_PRESENT, "glaucoma": False}
    del body["contraindications"]["breastfeeding"]
    created = post(as_user(prescriber), DECISIONS, body)
    assert created.status_code == 201, created.content
    assert created.json()["contraindications"] == {
        **{slug: False for slug in ASKED if slug != "breastfeeding"},
        "glaucoma": False,
    }


# --- GET /api/v1/plans/?patient= ---------------------------------------------------------------


def decide(prescriber: User, patient: Patient, protocol: Protocol, **changes: Any):
    values: dict[str, Any] = {
        "patient": patient,
        "outcome": DecisionOutcome.APPROVED,
        "contraindications": dict(NONE_PRESENT),
        "protocol": protocol,
        "sessions_authorised": protocol.sessions,
        "valid_until": date(2026, 6, 30),
        "decided_by": prescriber,
        "now": NOW,
    }
    values.update(changes)
    return eligibility_decide(**values)


def test_it_lists_a_patients_plans_in_force_expired_and_revoked(
    prescriber, desk, make_patient, protocols, infusion
):
    patient = make_patient()
    earlier = NOW - timedelta(days=60)
    with time_machine.travel(earlier, tick=False):
        expired = decide(
            prescriber,
            patient,
            protocols["pain-series"],
            valid_until=date(2026, 4, 30),
            now=earlier,
        ).plan
    replaced = decide(prescriber, patient, protocols["mood-induction"], sessions_authorised=4).plan
    current = decide(
        prescriber,
        patient,
        protocols["mood-induction"],
        sessions_authorised=6,
        now=NOW + timedelta(minutes=1),
    ).plan
    appointment_book(
        appointment_type=infusion, patient=patient, start=NOW + timedelta(days=1), now=NOW
    )
    decide(prescriber, make_patient(), protocols["booster"])  # someone else's

    response = as_user(desk).get(PLANS, {"patient": patient.pk})

    assert response.status_code == 200, response.content
    listed = {plan["id"]: plan for plan in response.json()}
    assert list(listed) == [current.pk, replaced.pk, expired.pk]
    assert {pk: plan["status"] for pk, plan in listed.items()} == {
        current.pk: "in_force",
        replaced.pk: "revoked",
        expired.pk: "expired",
    }
    assert listed[current.pk]["sessions_used"] == 1
    assert listed[current.pk]["sessions_remaining"] == 5
    assert listed[replaced.pk]["revoked_at"] == "2026-06-01T12:01:00Z"


def test_listing_plans_takes_the_same_queries_for_many(
    prescriber, desk, make_patient, protocols, django_assert_num_queries
):
    patient = make_patient()
    for slug in ("mood-induction", "pain-series", "spravato-induction", "booster"):
        decide(prescriber, patient, protocols[slug])
    client = as_user(desk)
    client.get(PLANS, {"patient": patient.pk})  # a first request warms the session

    # session, user, user's permissions, group permissions, user's locations, patient, plans,
    # the audit event, and the session's renewal, an UPDATE in a savepoint (idle logout counts
    # from the last request)
    with django_assert_num_queries(11):
        response = client.get(PLANS, {"patient": patient.pk})

    assert len(response.json()) == 4


def test_it_needs_a_known_patient_to_list_plans(desk, db):
    client = as_user(desk)

    assert "patient" in assert_error(client.get(PLANS), 400)["fields"]
    assert "patient" in assert_error(client.get(PLANS, {"patient": 424242}), 400)["fields"]
    assert "patient" in assert_error(client.get(PLANS, {"patient": "x"}), 400)["fields"]


def test_it_refuses_plans_to_staff_without_the_view_permission(make_patient):
    response = as_user(staff("porter")).get(PLANS, {"patient": make_patient().pk})

    assert_error(response, 403, "permission_denied")


def test_it_refuses_plans_to_someone_not_signed_in(make_patient):
    assert_error(as_user(None).get(PLANS, {"patient": make_patient().pk}), 403)


# --- POST /api/v1/plans/<id>/revoke/ -----------------------------------------------------------


def test_a_prescriber_revokes_a_plan_and_the_patient_can_book_no_more(
    prescriber, make_patient, protocols, infusion
):
    patient = make_patient()
    plan = decide(prescriber, patient, protocols["mood-induction"]).plan
    client = as_user(prescriber)

    response = post(client, f"{PLANS}{plan.pk}/revoke/")
    again = post(client, f"{PLANS}{plan.pk}/revoke/")

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "revoked"
    assert response.json()["revoked_at"] == "2026-06-01T12:00:00Z"
    assert again.json() == response.json()
    with pytest.raises(NotEligible):
        plan_in_force(patient=patient, appointment_type=infusion, now=NOW)


def test_only_a_prescriber_revokes_a_plan(prescriber, desk, make_patient, protocols):
    plan = decide(prescriber, make_patient(), protocols["mood-induction"]).plan

    assert_error(post(as_user(desk), f"{PLANS}{plan.pk}/revoke/"), 403)
    assert_error(post(as_user(None), f"{PLANS}{plan.pk}/revoke/"), 403)

    plan.refresh_from_db()
    assert plan.revoked_at is None


def test_revoking_an_unknown_plan_is_not_found(prescriber):
    assert_error(post(as_user(prescriber), f"{PLANS}424242/revoke/"), 404, "not_found")


# --- The gate over the public booking API -------------------------------------------------------


@pytest.fixture
def online_infusion(infusion: AppointmentType) -> Iterator[AppointmentType]:
    """The infusion offered online, as a clinic might for approved patients: the gate must
    still refuse everyone else."""
    infusion.bookable_online = True
    infusion.save(update_fields=["bookable_online"])
    before = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    cache.clear()
    yield infusion
    cache.clear()
    celery_app.conf.task_always_eager = before


def infusion_request() -> dict[str, Any]:
    return {
        "location": "midtown",
        "appointment_type": "treatment-session",  # the infusion's public slug
        "start": "2026-06-03T10:00:00-04:00",
        "patient": {
            "first_name": "Ada",
            "last_name": "Lovelace",
            "email": "ada@example.com",
            "phone": "(212) 555-0123",
            "date_of_birth": "1985-12-10",
        },
        "sms_consent": False,
    }


def test_the_public_booking_api_refuses_an_infusion_without_an_approval(
    online_infusion, make_patient
):
    # Where online bookings are booked at once, the gate answers at once.
    Location.objects.filter(pk=online_infusion.location_id).update(verify_online_bookings=False)
    make_patient(email="ada@example.com", date_of_birth=date(1985, 12, 10))

    response = post(Client(), "/api/v1/bookings/", infusion_request())

    assert_error(response, 422, "not_eligible")
    assert not Appointment.objects.exists()


def test_a_held_online_infusion_without_an_approval_is_refused_only_on_confirmation(
    online_infusion, make_patient
):
    # Held by default: whether this address and birth date have an approval is told to the
    # owner of the address only, once they follow the e-mailed link.
    make_patient(email="ada@example.com", date_of_birth=date(1985, 12, 10))

    response = post(Client(), "/api/v1/bookings/", infusion_request())

    assert response.status_code == 202, response.content
    message_deliver_due(enqueue=lambda ids: [message_send(message_id=i) for i in ids])
    (link,) = {
        found
        for message in mail.outbox
        for found in re.findall(r"(/book/confirm/[\w-]+/)", str(message.body))
    }
    refused = Client().post(link + "confirm/")
    assert refused.status_code == 409
    assert "approval" in refused.content.decode().lower()
    assert not Appointment.objects.exists()


# --- Schema ------------------------------------------------------------------------------------


def test_the_schema_describes_the_plan_endpoints(db, client):
    schema = client.get("/api/schema/").content.decode()

    for path in ("/api/v1/plans/", "/api/v1/plans/decisions/", "/api/v1/plans/{id}/revoke/"):
        assert f"  {path}:" in schema


# --- The audit log -------------------------------------------------------------------------------


def audited(user: User) -> list[tuple[str, str, str, int | None, dict[str, Any]]]:
    return [
        (e.method, e.action, e.object_type, e.patient_id, e.detail)
        for e in AuditEvent.objects.filter(user=user).order_by("pk")
    ]


def test_reading_deciding_and_revoking_are_audited(prescriber, make_patient, protocols, clinic):
    patient = make_patient()
    client = as_user(prescriber)

    decided = post(client, DECISIONS, approval(patient, protocols["mood-induction"]))
    plan_id = decided.json()["plan"]["id"]
    client.get(PLANS, {"patient": patient.pk})
    post(client, f"{PLANS}{plan_id}/revoke/")

    assert audited(prescriber) == [
        (
            "POST",
            "create",
            "eligibilitydecision",
            patient.pk,
            {"outcome": "approved", "consultation": None},
        ),
        ("GET", "view", "plan_list", patient.pk, {"plans": [plan_id]}),
        ("POST", "update", "treatmentplan", patient.pk, {"step": "revoke"}),
    ]
    decision = AuditEvent.objects.get(object_type="eligibilitydecision")
    assert (decision.object_id, decision.location_id) == (str(decided.json()["id"]), clinic.pk)
    revoked = AuditEvent.objects.get(object_type="treatmentplan")
    assert (revoked.object_id, revoked.location_id) == (str(plan_id), clinic.pk)


def test_a_refused_read_is_not_audited(desk, db):
    as_user(desk).get(PLANS, {"patient": 424242})

    assert not AuditEvent.objects.exists()
