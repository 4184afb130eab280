"""Every answer is checked against the R4 model of its type before it leaves: a resource R4
refuses is never sent, and the check names the element at fault."""

from __future__ import annotations

from typing import Any

import pytest

from booking.fhir import views
from booking.fhir.resources import InvalidResource, validated


def appointment(**changes: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Appointment",
        "status": "proposed",
        "start": "2026-06-09T10:00:00-04:00",
        "minutesDuration": 30,
        "contained": [{"resourceType": "Slot", "id": "slot", "status": "free", **_schedule()}],
        "participant": [{"actor": {"reference": "Location/1"}, "status": "needs-action"}],
    }
    resource.update(changes)
    return resource


def _schedule() -> dict[str, Any]:
    return {
        "schedule": {"reference": "Schedule/1"},
        "start": "2026-06-09T10:00:00-04:00",
        "end": "2026-06-09T10:30:00-04:00",
    }


def test_a_resource_r4_allows_passes_unchanged():
    resource = appointment()
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": resource}],
    }

    assert validated(bundle) is bundle
    assert bundle["entry"][0]["resource"] == appointment()


@pytest.mark.parametrize(
    ("resource", "elements"),
    [
        ({"resourceType": "Location", "nickname": "Midtown"}, ["Location.nickname"]),
        ({k: v for k, v in appointment().items() if k != "status"}, ["Appointment.status"]),
        # An instant needs its offset.
        (appointment(start="2026-06-09T10:00:00"), ["Appointment.start"]),
        (appointment(minutesDuration="30"), ["Appointment.minutesDuration"]),
        (appointment(participant={"status": "accepted"}), ["Appointment.participant"]),
        # A participant that is there but wrong is not also reported missing.
        (appointment(participant=[{"status": 5}]), ["Appointment.participant[0].status"]),
        (
            appointment(contained=[{"resourceType": "Slot", "id": "slot", **_schedule()}]),
            ["Appointment.contained[0].status"],
        ),
        (
            {
                "resourceType": "Bundle",
                "type": "searchset",
                "entry": [{"resource": appointment()}, {"resource": appointment(colour="red")}],
            },
            ["Bundle.entry[1].resource.colour"],
        ),
        (
            {
                "resourceType": "Parameters",
                "parameter": [{"name": "appt-resource", "resource": {"resourceType": "Nope"}}],
            },
            ["Parameters.parameter[0].resource"],
        ),
        # The name of a part of a resource, and a name R4 does not have.
        ({"resourceType": "AppointmentParticipant", "status": "accepted"}, ["resourceType"]),
        ({"resourceType": "Nope"}, ["resourceType"]),
    ],
)
def test_a_resource_r4_refuses_is_named_by_its_elements(resource, elements):
    with pytest.raises(InvalidResource) as refused:
        validated(resource)

    assert [element for element, _ in refused.value.problems] == elements
    assert all(what for _, what in refused.value.problems)


def test_an_answer_the_model_refuses_is_never_sent(api, clinic, monkeypatch):
    def misnamed(location: Any) -> dict[str, Any]:
        return {"resourceType": "Location", "id": str(location.pk), "title": location.name}

    monkeypatch.setattr(views, "location_resource", misnamed)

    with pytest.raises(InvalidResource, match=r"Location\.title"):
        api.get(f"/fhir/Location/{clinic.pk}")
