"""Argonaut's $find, $hold and $book: the availability engine's own times, booked through the
booking services with their rules, conflicts and refusals as OperationOutcomes."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
from django.test import Client

from booking.access.roles import Role
from booking.models import Appointment, AppointmentStatus, AuditEvent, Patient
from booking.services import appointment_book
from scheduling.models import AppointmentType, ResourceKind
from tests.booking.fhir.conftest import at, token_client
from tests.booking.fhir.helpers import FHIR_JSON, entries, fhir, outcome
from tests.staff_helpers import staff_user


def find(api: Client, appointment_type: AppointmentType, start: str, end: str) -> Any:
    return api.get(
        "/fhir/Appointment/$find",
        {
            "start": start,
            "end": end,
            "service-type": appointment_type.slug,
            "location": f"Location/{appointment_type.location_id}",
        },
    )


def proposed(api: Client, appointment_type: AppointmentType, patient: Patient) -> dict[str, Any]:
    """The first time ``$find`` proposes tomorrow, with ``patient`` added, as a client sends
    it back."""
    bundle = fhir(find(api, appointment_type, "2026-06-09", "2026-06-09"), "Bundle")
    appointment = entries(bundle)[0]
    appointment["participant"].append(
        {"actor": {"reference": f"Patient/{patient.pk}"}, "status": "needs-action"}
    )
    return appointment


def call(api: Client, operation: str, *parameters: dict[str, Any]) -> Any:
    body = {"resourceType": "Parameters", "parameter": list(parameters)}
    return api.post(
        f"/fhir/Appointment/${operation}", data=json.dumps(body), content_type=FHIR_JSON
    )


def appt(resource: dict[str, Any]) -> dict[str, Any]:
    return {"name": "appt-resource", "resource": resource}


def test_find_proposes_exactly_the_availability_apis_times(api, client, consultation, make_patient):
    # A visit already booked tomorrow: both answers must leave its time out.
    appointment_book(
        appointment_type=consultation, patient=make_patient(), start=at(10, day=date(2026, 6, 9))
    )
    public = client.get(
        "/api/v1/availability/",
        {
            "location": consultation.location.slug,
            "appointment_type": consultation.patient_slug,
            "start": "2026-06-08",
            "end": "2026-06-12",
        },
    ).json()

    bundle = fhir(find(api, consultation, "2026-06-08", "2026-06-12"), "Bundle")

    found = entries(bundle)
    assert [a["start"] for a in found] == [slot["start"] for slot in public["slots"]]
    assert [a["end"] for a in found] == [slot["end"] for slot in public["slots"]]
    assert len(found) > 10
    first = found[0]
    assert first["status"] == "proposed"
    (slot,) = first["contained"]
    assert (slot["resourceType"], slot["status"], slot["start"]) == ("Slot", "free", first["start"])
    assert slot["schedule"] == {"reference": f"Schedule/{consultation.pk}"}
    assert first["slot"] == [{"reference": "#slot"}]
    event = AuditEvent.objects.get(object_type="fhir_appointment_find")
    assert event.detail["count"] == len(found)


@pytest.mark.parametrize(
    ("params", "element"),
    [
        ({"start": "2026-06-09", "end": "2026-06-09", "location": "1"}, "service-type"),
        (
            {"start": "2026-06-09", "end": "2026-06-08", "service-type": "consultation"},
            "end",
        ),
        ({"start": "2026-06-09", "end": "2026-09-30", "service-type": "consultation"}, "end"),
        ({"start": "June", "end": "2026-06-09", "service-type": "consultation"}, "start"),
        ({"start": "2026-06-09", "end": "2026-06-09", "service-type": "nope"}, "service-type"),
        (
            {"start": "2026-06-09", "end": "2026-06-09", "service-type": "x|consultation"},
            "service-type",
        ),
        ({"specialty": "psychiatry"}, "specialty"),
    ],
)
def test_find_names_the_parameter_it_cannot_use(api, consultation, params, element):
    query = {"location": str(consultation.location_id), **params}
    if element != "service-type" and "service-type" not in query:
        query["service-type"] = "consultation"
    issue = outcome(api.get("/fhir/Appointment/$find", query), 400, "invalid")
    assert issue["expression"] == [element]


def test_book_books_a_proposed_time_through_the_booking_service(api, consultation, make_patient):
    patient = make_patient()
    wanted = proposed(api, consultation, patient)

    bundle = fhir(call(api, "book", appt(wanted)), "Bundle")

    (booked,) = entries(bundle)
    assert booked["status"] == "booked"
    assert booked["start"] == wanted["start"]
    visit = Appointment.objects.get(reference=booked["id"])
    assert (visit.patient, visit.status, visit.source) == (patient, "booked", "staff")
    assert visit.allocations.filter(active=True).exists()
    assert AuditEvent.objects.filter(action="create", object_id=str(visit.pk)).exists()
    again = fhir(api.get(f"/fhir/Appointment/{booked['id']}"), "Appointment")
    assert again["start"] == wanted["start"]


def test_book_of_a_taken_time_answers_a_conflict(api, consultation, make_patient):
    wanted = proposed(api, consultation, make_patient())
    assert call(api, "book", appt(wanted)).status_code == 200
    # The clinic's one consult room is now taken at that time.
    wanted["participant"][-1]["actor"]["reference"] = f"Patient/{make_patient().pk}"

    issue = outcome(call(api, "book", appt(wanted)), 409, "conflict")

    assert issue["expression"] == ["Appointment.start"]
    assert Appointment.objects.count() == 1


def test_book_refused_by_a_rule_answers_422_naming_the_element(api, consultation, make_patient):
    wanted = proposed(api, consultation, make_patient())
    wanted["start"] = "2026-06-08T08:00:00-04:00"  # an hour ago
    del wanted["end"]

    issue = outcome(call(api, "book", appt(wanted)), 422, "business-rule")

    assert issue["expression"] == ["Appointment.start"]


@pytest.mark.parametrize(
    ("change", "element"),
    [
        # R4 makes an instant's offset required: the model refuses it before anything else.
        (lambda a: a.update(start="2026-06-09T10:00:00"), "Parameters.parameter[0].resource.start"),
        (lambda a: a.update(start="1066-10-14T10:00:00+00:00"), "Appointment.start"),
        (lambda a: a.update(end="2026-06-09T23:00:00-04:00"), "Appointment.end"),
        (lambda a: a["participant"].pop(), "Appointment.participant"),
        (
            lambda a: a["participant"][1]["actor"].update(reference="HealthcareService/999999"),
            "Appointment.participant[1].actor",
        ),
        (
            lambda a: a["participant"][2]["actor"].update(reference="Patient/999999"),
            "Appointment.participant[2].actor",
        ),
        (lambda a: a.update(colour="red"), "Parameters.parameter[0].resource.colour"),
        (lambda a: a.pop("status"), "Parameters.parameter[0].resource.status"),
    ],
)
def test_book_names_the_element_of_an_appointment_it_cannot_use(
    api, consultation, make_patient, change, element
):
    wanted = proposed(api, consultation, make_patient())
    change(wanted)

    issue = outcome(call(api, "book", appt(wanted)), 422, "invalid")

    assert element in issue["expression"]
    assert not Appointment.objects.exists()


def test_book_of_another_locations_service_reads_as_unknown(
    api, consultation, make_patient, make_location, make_resource, make_type
):
    uptown = make_location(slug="uptown")
    make_resource(uptown, ResourceKind.CHAIR)
    theirs = make_type(uptown, duration=60, needs=[{"resource_kind": ResourceKind.CHAIR}])
    wanted = proposed(api, consultation, make_patient())
    wanted["participant"] = [
        {"actor": {"reference": f"HealthcareService/{theirs.pk}"}, "status": "needs-action"},
        wanted["participant"][2],
    ]

    issue = outcome(call(api, "book", appt(wanted)), 422, "invalid")

    assert issue["expression"] == ["Appointment.participant[0].actor"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ("{not json", 400, "structure"),
        ('{"resourceType": "Patient"}', 422, "invalid"),
        ('{"resourceType": "Parameters", "parameter": []}', 422, "invalid"),
        (
            '{"resourceType": "Parameters", "parameter": [{"name": "x", "valueString": "y"}]}',
            422,
            "invalid",
        ),
    ],
)
def test_a_body_that_is_not_the_operations_input_is_refused(api, consultation, body, status, code):
    response = api.post("/fhir/Appointment/$book", data=body, content_type=FHIR_JSON)
    outcome(response, status, code)


def test_hold_then_book(api, consultation, make_patient):
    patient = make_patient()
    wanted = proposed(api, consultation, patient)

    (held,) = entries(fhir(call(api, "hold", appt(wanted)), "Bundle"))

    assert held["status"] == "pending"
    assert held["participant"][0]["actor"] == {"reference": f"Patient/{patient.pk}"}
    assert held["comment"].startswith("Held until 2026-06-08T09:")
    visit = Appointment.objects.get(reference=held["id"])
    assert visit.status == AppointmentStatus.TENTATIVE
    # Nobody else can take the time while it is held.
    rival = dict(
        wanted,
        participant=[
            *wanted["participant"][:2],
            {"actor": {"reference": f"Patient/{make_patient().pk}"}, "status": "needs-action"},
        ],
    )
    outcome(call(api, "book", appt(rival)), 409, "conflict")

    (booked,) = entries(
        fhir(
            call(api, "book", {"name": "appt-id", "valueUri": f"Appointment/{held['id']}"}),
            "Bundle",
        )
    )

    assert (booked["id"], booked["status"]) == (held["id"], "booked")
    visit.refresh_from_db()
    assert (visit.status, visit.patient_id) == (AppointmentStatus.BOOKED, patient.pk)
    assert not Patient.objects.filter(provisional=True).exists()
    # Booking it twice finds nothing held any more.
    outcome(call(api, "book", {"name": "appt-id", "valueString": held["id"]}), 404, "not-found")


def test_hold_of_a_type_not_booked_online_is_refused(api, infusion, make_patient):
    wanted = proposed(api, infusion, make_patient())

    issue = outcome(call(api, "hold", appt(wanted)), 422, "business-rule")

    assert issue["expression"] == ["Appointment.participant.actor"]


def test_a_role_that_cannot_book_is_refused_before_anything_happens(
    consultation, make_patient, clinic
):
    nurse = token_client(staff_user(Role.NURSE, clinic))
    wanted = proposed(nurse, consultation, make_patient())

    outcome(call(nurse, "book", appt(wanted)), 403, "forbidden")

    assert not Appointment.objects.exists()
