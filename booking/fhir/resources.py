"""FHIR R4 resources made from Chairside's rows, each checked against the R4 (4.0.1) models of
``fhirclient`` before it leaves: a field we misname, a required one we leave out or a value of the
wrong type or format is our bug, and fails here rather than in a client's parser.

Ids: a visit is known by its reference (what the desk and the patient quote); a location and an
appointment type (a HealthcareService, and its Schedule) by their numbers; a patient by their
record number. Slots are never stored: each is the engine's answer, contained in the proposed
Appointment that offers it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fhirclient.models.fhirabstractbase import (  # type: ignore[import-untyped]
    FHIRValidationError,
)
from fhirclient.models.fhirelementfactory import (  # type: ignore[import-untyped]
    FHIRElementFactory,
)
from fhirclient.models.resource import Resource  # type: ignore[import-untyped]

from booking.models import Appointment, AppointmentStatus, Patient
from scheduling.models import AppointmentType, Location

FHIR_VERSION = "4.0.1"
FHIR_JSON = "application/fhir+json"
# The code system of the clinic's appointment types (a HealthcareService's type, an
# appointment's serviceType): the staff's slug, unique within a location.
APPOINTMENT_TYPE_SYSTEM = "urn:chairside:appointment-type"
# The IANA zone of a location, as the core extension carries it.
TIMEZONE_EXTENSION = "http://hl7.org/fhir/StructureDefinition/timezone"

# How each status reads in FHIR's Appointment.status.
STATUS = {
    AppointmentStatus.BOOKED: "booked",
    AppointmentStatus.CONFIRMED: "booked",
    AppointmentStatus.CHECKED_IN: "checked-in",
    AppointmentStatus.IN_CHAIR: "arrived",
    AppointmentStatus.RECOVERING: "arrived",
    AppointmentStatus.DISCHARGED: "fulfilled",
    AppointmentStatus.NO_SHOW: "noshow",
    AppointmentStatus.CANCELLED: "cancelled",
    # Kept, without a time the patient can come: waiting to be scheduled again.
    AppointmentStatus.ON_HOLD: "waitlist",
    # Lanes held for somebody who has not said yes yet (a waitlist offer, a time held until it
    # is booked): Argonaut's "pending".
    AppointmentStatus.HELD: "pending",
    AppointmentStatus.TENTATIVE: "pending",
}
# Our statuses each FHIR status stands for, for searching by it.
STATUSES_OF: dict[str, list[str]] = {}
for _ours, _theirs in STATUS.items():
    STATUSES_OF.setdefault(_theirs, []).append(_ours.value)


class InvalidResource(ValueError):
    """A resource the R4 model of its type refuses. ``problems`` are (element, what is wrong)
    pairs, each element a path from the resource type: ``Parameters.parameter[0].resource.start``.
    """

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{element}: {what}" for element, what in problems))
        self.problems = problems


def validated(resource: dict[str, Any]) -> dict[str, Any]:
    """``resource`` once the R4 model of its ``resourceType`` accepts it: no element R4 does not
    define, none it requires missing, each value of its type (an instant with its offset).
    Raises InvalidResource if not."""
    resource_type = resource.get("resourceType")
    try:
        # Strict (the default): every problem is raised, none only logged.
        model = FHIRElementFactory.instantiate(resource_type, resource)
    except FHIRValidationError as exc:
        raise InvalidResource(_problems(exc, str(resource_type)[:64], resource)) from exc
    # The factory also builds the parts of a resource by name, and a bare Element for a name it
    # does not know: neither is a resource.
    if not isinstance(model, Resource) or model.resource_type != resource_type:
        raise InvalidResource([("resourceType", "is not an R4 resource type")])
    return resource


# The model reports an element it requires, or one it does not define, in a sentence.
_MISSING = re.compile(r'Non-optional property "([^"]+)"')
_UNKNOWN = re.compile(r'Superfluous entry "([^"]+)"')


def _problems(error: FHIRValidationError, path: str, node: Any) -> list[tuple[str, str]]:
    """The model's nested errors as (element, what is wrong) pairs; ``node`` is the JSON at
    ``path``, followed down with it."""
    for part in error.path.split(".") if error.path else []:
        if part.isdecimal():
            path += f"[{part}]"
            index = int(part)
            node = node[index] if isinstance(node, list) and index < len(node) else None
        else:
            path += f".{part}"
            node = node.get(part) if isinstance(node, dict) else None
    found: list[tuple[str, str]] = []
    for cause in error.errors:
        if isinstance(cause, FHIRValidationError):
            found.extend(_problems(cause, path, node))
            continue
        message = str(cause.args[0]) if cause.args else ""
        missing = _MISSING.search(message) if isinstance(cause, KeyError) else None
        unknown = _UNKNOWN.search(message) if isinstance(cause, AttributeError) else None
        if missing:
            # An element that is there but refused also reads as missing: its own problem is
            # the one to report.
            if not (isinstance(node, dict) and node.get(missing[1]) is not None):
                found.append((f"{path}.{missing[1]}", "is required"))
        elif unknown:
            found.append((f"{path}.{unknown[1]}", "is not an element of this resource in R4"))
        elif isinstance(cause, ValueError):
            found.append((path, "is not in the format R4 gives this element"))
        else:
            found.append((path, "has the wrong JSON type for this element"))
    return found


def _local(instant: datetime, zone: ZoneInfo) -> str:
    return instant.astimezone(zone).isoformat()


def reference(resource_type: str, resource_id: object) -> dict[str, str]:
    return {"reference": f"{resource_type}/{resource_id}"}


def service_type(appointment_type: AppointmentType) -> dict[str, Any]:
    return {
        "coding": [
            {
                "system": APPOINTMENT_TYPE_SYSTEM,
                "code": appointment_type.slug,
                "display": appointment_type.name,
            }
        ],
        "text": appointment_type.name,
    }


def location_resource(location: Location) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Location",
        "id": str(location.pk),
        "extension": [{"url": TIMEZONE_EXTENSION, "valueCode": location.timezone}],
        "status": "active" if location.is_active else "inactive",
        "name": location.name,
        "alias": [location.public_name] if location.public_name else [],
        "mode": "instance",
    }
    if location.phone:
        resource["telecom"] = [{"system": "phone", "value": location.phone, "use": "work"}]
    if location.address:
        resource["address"] = {"text": location.address}
    if not resource["alias"]:
        del resource["alias"]
    return resource


def healthcare_service_resource(appointment_type: AppointmentType) -> dict[str, Any]:
    return {
        "resourceType": "HealthcareService",
        "id": str(appointment_type.pk),
        "active": appointment_type.is_active,
        "location": [reference("Location", appointment_type.location_id)],
        "name": appointment_type.name,
        "type": [service_type(appointment_type)],
        "comment": f"{appointment_type.duration_minutes} minutes",
        "appointmentRequired": True,
    }


def schedule_resource(appointment_type: AppointmentType) -> dict[str, Any]:
    """One schedule per appointment type: its slots need several resources at once (a chair, a
    nurse, a prescriber), so no one of them is the schedule's owner."""
    return {
        "resourceType": "Schedule",
        "id": str(appointment_type.pk),
        "active": appointment_type.is_active,
        "serviceType": [service_type(appointment_type)],
        "actor": [
            reference("Location", appointment_type.location_id),
            reference("HealthcareService", appointment_type.pk),
        ],
    }


def proposed_appointment(
    appointment_type: AppointmentType, start: datetime, end: datetime
) -> dict[str, Any]:
    """Argonaut's answer to ``$find``: a visit that could be booked, its free slot contained. A
    client adds the patient as a participant and sends it back to ``$hold`` or ``$book``."""
    zone = appointment_type.location.zone
    return {
        "resourceType": "Appointment",
        "contained": [
            {
                "resourceType": "Slot",
                "id": "slot",
                "schedule": reference("Schedule", appointment_type.pk),
                "status": "free",
                "start": _local(start, zone),
                "end": _local(end, zone),
            }
        ],
        "status": "proposed",
        "serviceType": [service_type(appointment_type)],
        "start": _local(start, zone),
        "end": _local(end, zone),
        "minutesDuration": appointment_type.duration_minutes,
        "slot": [{"reference": "#slot"}],
        "participant": [
            {
                "actor": reference("Location", appointment_type.location_id),
                "required": "required",
                "status": "needs-action",
            },
            {
                "actor": reference("HealthcareService", appointment_type.pk),
                "required": "required",
                "status": "needs-action",
            },
        ],
    }


def appointment_resource(appointment: Appointment) -> dict[str, Any]:
    """A visit: when, what, where and whose; nothing of its intake, notes, checklist or why it
    was cancelled (free text the desk wrote for the visit's history)."""
    zone = appointment.location.zone
    status = STATUS[AppointmentStatus(appointment.status)]
    accepted = "needs-action" if status == "pending" else "accepted"
    return {
        "resourceType": "Appointment",
        "id": appointment.reference,
        "meta": {"versionId": str(appointment.version)},
        "identifier": [{"system": "urn:chairside:appointment", "value": appointment.reference}],
        "status": status,
        "serviceType": [service_type(appointment.appointment_type)],
        "start": _local(appointment.start, zone),
        "end": _local(appointment.end, zone),
        "minutesDuration": appointment.appointment_type.duration_minutes,
        "participant": [
            {
                "actor": reference("Patient", appointment.patient_id),
                "required": "required",
                "status": accepted,
            },
            {
                "actor": reference("Location", appointment.location_id),
                "required": "required",
                "status": "accepted",
            },
            {
                "actor": reference("HealthcareService", appointment.appointment_type_id),
                "required": "required",
                "status": "accepted",
            },
        ],
    }


def patient_resource(patient: Patient) -> dict[str, Any]:
    """Who the patient is, enough to tell namesakes apart; no contact details, nothing
    clinical (allergies, consent, intake)."""
    return {
        "resourceType": "Patient",
        "id": str(patient.pk),
        "name": [{"use": "official", "family": patient.last_name, "given": [patient.first_name]}],
        "birthDate": patient.date_of_birth.isoformat(),
    }


def searchset(resources: Iterable[tuple[str | None, dict[str, Any]]]) -> dict[str, Any]:
    """A Bundle of ``(fullUrl, resource)`` pairs, each a match; a proposed appointment has no
    address yet (None)."""
    entries = []
    for full_url, resource in resources:
        entry: dict[str, Any] = {"resource": resource, "search": {"mode": "match"}}
        if full_url is not None:
            entry["fullUrl"] = full_url
        entries.append(entry)
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "total": len(entries)}
    # FHIR's JSON has no empty arrays: a search that matches nothing has no entry element.
    if entries:
        bundle["entry"] = entries
    return bundle


def operation_outcome(
    code: str, diagnostics: str, expression: Iterable[str] = (), *, severity: str = "error"
) -> dict[str, Any]:
    issue: dict[str, Any] = {"severity": severity, "code": code, "diagnostics": diagnostics}
    expressions = list(expression)
    if expressions:
        issue["expression"] = expressions
    return {"resourceType": "OperationOutcome", "issue": [issue]}
