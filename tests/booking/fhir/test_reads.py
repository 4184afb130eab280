"""FHIR reads and searches: every answer an R4 resource, scoped to the token's locations (any
other location's rows are not found), and audited as the staff API's reads are."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from django.test import Client

from booking.access.roles import Role
from booking.models import AuditEvent
from booking.services import appointment_book
from scheduling.models import AppointmentType, Location, ResourceKind
from tests.booking.fhir.conftest import at, token_client
from tests.booking.fhir.helpers import entries, fhir, outcome
from tests.staff_helpers import client_for, staff_user


@pytest.fixture
def elsewhere(make_location, make_resource, make_type) -> AppointmentType:
    """A one-chair visit at another location, which the desk user does not work at."""
    location = make_location(slug="uptown")
    make_resource(location, ResourceKind.CHAIR)
    return make_type(location, duration=60, needs=[{"resource_kind": ResourceKind.CHAIR}])


def test_the_capability_statement_is_open_and_lists_the_argonaut_operations(client):
    body = fhir(client.get("/fhir/metadata"), "CapabilityStatement")

    assert body["fhirVersion"] == "4.0.1"
    (rest,) = body["rest"]
    by_type = {resource["type"]: resource for resource in rest["resource"]}
    assert set(by_type) == {"Location", "HealthcareService", "Schedule", "Appointment", "Patient"}
    assert [op["name"] for op in by_type["Appointment"]["operation"]] == ["find", "hold", "book"]


def test_without_a_token_every_resource_answers_401_with_an_outcome(client, consultation):
    for path in ("/fhir/Location", f"/fhir/Location/{consultation.location_id}", "/fhir/Patient/1"):
        response = client.get(path)
        outcome(response, 401, "login")
        assert response["WWW-Authenticate"] == "Token"


def test_a_signed_in_session_is_not_a_token(desk_user, clinic):
    outcome(client_for(desk_user).get(f"/fhir/Location/{clinic.pk}"), 401, "login")


def test_a_role_that_cannot_see_visits_is_refused(clinic):
    nobody = staff_user(Role.FRONT_DESK, clinic)
    nobody.groups.clear()
    outcome(token_client(nobody).get("/fhir/Location"), 403, "forbidden")


def test_a_location_reads_with_its_zone_and_is_audited(api, clinic, desk_user):
    body = fhir(api.get(f"/fhir/Location/{clinic.pk}"), "Location")

    assert body["id"] == str(clinic.pk)
    assert body["name"] == clinic.name
    assert body["extension"] == [
        {"url": "http://hl7.org/fhir/StructureDefinition/timezone", "valueCode": clinic.timezone}
    ]
    event = AuditEvent.objects.get()
    assert (event.user, event.action, event.object_type, event.object_id) == (
        desk_user,
        "view",
        "fhir_location",
        str(clinic.pk),
    )


def test_the_location_search_lists_only_yours(api, clinic, elsewhere):
    bundle = fhir(api.get("/fhir/Location"), "Bundle")

    assert [loc["id"] for loc in entries(bundle)] == [str(clinic.pk)]
    assert AuditEvent.objects.filter(object_type="fhir_location_search").count() == 1


def test_appointment_types_are_healthcare_services_with_a_schedule_each(api, consultation):
    service = fhir(api.get(f"/fhir/HealthcareService/{consultation.pk}"), "HealthcareService")
    schedule = fhir(api.get(f"/fhir/Schedule/{consultation.pk}"), "Schedule")
    listed = entries(
        fhir(api.get(f"/fhir/HealthcareService?location={consultation.location_id}"), "Bundle")
    )
    schedules = entries(
        fhir(api.get(f"/fhir/Schedule?actor=Location/{consultation.location_id}"), "Bundle")
    )

    assert service["type"][0]["coding"][0]["code"] == "consultation"
    assert service["location"] == [{"reference": f"Location/{consultation.location_id}"}]
    assert {"reference": f"HealthcareService/{consultation.pk}"} in schedule["actor"]
    active = AppointmentType.objects.filter(location_id=consultation.location_id)
    assert len(listed) == len(schedules) == active.count()
    assert AuditEvent.objects.filter(action="view").count() == 4


def test_an_appointment_reads_without_intake_or_notes(api, consultation, make_patient):
    patient = make_patient()
    booked = appointment_book(appointment_type=consultation, patient=patient, start=at(14))

    body = fhir(api.get(f"/fhir/Appointment/{booked.reference}"), "Appointment")

    assert body["id"] == booked.reference
    assert body["status"] == "booked"
    assert body["start"] == "2026-06-08T14:00:00-04:00"
    actors = [p["actor"]["reference"] for p in body["participant"]]
    assert actors == [
        f"Patient/{patient.pk}",
        f"Location/{consultation.location_id}",
        f"HealthcareService/{consultation.pk}",
    ]
    event = AuditEvent.objects.get()
    assert (event.action, event.object_type, event.patient_id) == (
        "view",
        "appointment",
        patient.pk,
    )


def test_a_patient_reads_as_name_and_birth_date_only(api, consultation, make_patient):
    patient = make_patient(first_name="Ada", last_name="Byron")
    appointment_book(appointment_type=consultation, patient=patient, start=at(14))

    body = fhir(api.get(f"/fhir/Patient/{patient.pk}"), "Patient")

    assert set(body) == {"resourceType", "id", "name", "birthDate"}
    assert body["name"] == [{"use": "official", "family": "Byron", "given": ["Ada"]}]
    event = AuditEvent.objects.get()
    assert (event.action, event.patient_id) == ("view", patient.pk)


def test_another_locations_rows_are_not_found_like_missing_ones(
    api, elsewhere, make_patient, consultation
):
    patient = make_patient()
    theirs = appointment_book(appointment_type=elsewhere, patient=patient, start=at(14))
    paths = [
        f"/fhir/Location/{elsewhere.location_id}",
        f"/fhir/HealthcareService/{elsewhere.pk}",
        f"/fhir/Schedule/{elsewhere.pk}",
        f"/fhir/Appointment/{theirs.reference}",
        f"/fhir/Patient/{patient.pk}",
        f"/fhir/Appointment?location={elsewhere.location_id}&date=2026-06-08",
        "/fhir/Location/999999",
        "/fhir/Appointment/NOSUCHREF",
        "/fhir/Patient/not-a-number",
    ]
    for path in paths:
        outcome(api.get(path), 404, "not-found")
    assert not AuditEvent.objects.exists()


def test_the_appointment_search_filters_by_date_status_and_patient(api, consultation, make_patient):
    ann, bob = make_patient(), make_patient()
    first = appointment_book(appointment_type=consultation, patient=ann, start=at(14))
    second = appointment_book(appointment_type=consultation, patient=bob, start=at(16))
    appointment_book(
        appointment_type=consultation, patient=ann, start=at(10, day=date(2026, 6, 10))
    )
    where = f"/fhir/Appointment?location={consultation.location_id}"

    def found(query: str) -> list[str]:
        return [a["id"] for a in entries(fhir(api.get(where + query), "Bundle"))]

    assert found("&date=2026-06-08") == [first.reference, second.reference]
    assert found(f"&date=2026-06-08&patient=Patient/{bob.pk}") == [second.reference]
    assert len(found(f"&patient={ann.pk}")) == 2
    assert found("&date=ge2026-06-09&date=le2026-06-30") != []
    # The longest range allowed: 62 local days.
    assert len(found("&date=ge2026-06-01&date=le2026-08-01")) == 3
    assert found("&date=2026-06-08&status=cancelled") == []
    assert found("&date=2026-06-08&status=booked&status=cancelled") == [
        first.reference,
        second.reference,
    ]
    search = AuditEvent.objects.filter(object_type="fhir_appointment_search")
    assert search.count() == 7


@pytest.mark.parametrize(
    ("query", "element"),
    [
        ("&colour=red", "colour"),
        ("&date=2026-13-01", "date"),
        ("", "date"),
        ("&date=ge2026-01-01&date=le2026-12-31", "date"),
        ("&date=ge2026-06-01&date=le2026-08-02", "date"),
        ("&date=2026-06-08&status=maybe", "status"),
        ("&patient=Practitioner/1", "patient"),
        ("&date=2026-06-08&location=1", "location"),
    ],
)
def test_a_search_parameter_that_cannot_be_read_is_a_400_naming_it(
    api, consultation, query, element
):
    response = api.get(f"/fhir/Appointment?location={consultation.location_id}{query}")

    assert outcome(response, 400, "invalid")["expression"] == [element]


def test_a_read_takes_no_parameters(api, clinic):
    issue = outcome(api.get(f"/fhir/Location/{clinic.pk}?_elements=name"), 400, "invalid")
    assert issue["expression"] == ["_elements"]


def test_an_unknown_address_under_fhir_is_a_fhir_404(api: Client):
    outcome(api.get("/fhir/Practitioner/1"), 404, "not-found")
    outcome(
        api.post("/fhir/Nothing", data="{}", content_type="application/fhir+json"), 404, "not-found"
    )


def test_a_write_method_on_a_read_is_not_supported(api, clinic):
    outcome(api.delete(f"/fhir/Location/{clinic.pk}"), 405, "not-supported")


def test_answers_are_fhir_json_whatever_the_client_accepts(api, clinic: Location):
    response = api.get(f"/fhir/Location/{clinic.pk}", HTTP_ACCEPT="text/html")
    body: dict[str, Any] = fhir(response, "Location")
    assert body["id"] == str(clinic.pk)


def test_no_answer_is_kept_by_a_browser_or_proxy(api, client, clinic, make_patient):
    patient = make_patient()
    for response in (
        api.get(f"/fhir/Patient/{patient.pk}"),
        api.get("/fhir/Patient/999999"),
        client.get(f"/fhir/Patient/{patient.pk}"),
    ):
        parts = {part.strip() for part in response["Cache-Control"].split(",")}
        assert "no-store" in parts, response.status_code
