"""The visit at the desk: the pre-visit checklist, check-in, chair, recovery, discharge, no-show.

Check-in waits until the checklist is complete (treatment authorised, fasting acknowledged,
escort confirmed, medications reviewed, consent current). A nurse or prescriber may override an
incomplete list by giving a reason, which is kept on the visit; an unauthorised treatment only a
prescriber may. Discharge needs the escort in person when the visit
requires one. Each step locks the visit's row, checks its status and records an event, so two
clicks at once make one change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from booking.access.roles import (
    CARE,
    CHANGE,
    CHECK_IN,
    OVERRIDE_CHECKLIST,
    REVIEW_MEDICATIONS,
    is_prescriber,
)
from booking.eligibility import treatment_authorisations
from booking.errors import BookingError, InvalidTransition, PolicyViolation
from booking.models import (
    CONSENT_VALID_DAYS,
    Allocation,
    Appointment,
    AppointmentEvent,
    AppointmentStatus,
)
from booking.signals import visit_progressed
from scheduling.clock import clinic_time
from scheduling.models import AppointmentKind

S = AppointmentStatus


class ChecklistIncomplete(BookingError):
    status = 409
    code = "checklist_incomplete"


@dataclass(frozen=True)
class ChecklistItem:
    key: str
    label: str
    done: bool
    detail: str = ""  # why it is not done, when the system computes it


def appointment_checklist(
    appointment: Appointment, authorisation: str | None = None
) -> list[ChecklistItem]:
    """The items this visit needs before check-in, each with whether it is done. A consultation
    needs none; a treatment needs the ones its type asks for.

    A type that needs approval has "treatment authorised" first, computed and never ticked
    (``booking.eligibility.treatment_authorisations``: the plan in force on the day, REMS, no
    contraindication flagged since the approval). ``authorisation`` is its answer when the
    caller computed it for many visits at once ("" when authorised)."""
    kind = appointment.appointment_type
    items: list[ChecklistItem] = []
    if kind.needs_approval:
        if authorisation is None:
            authorisation = treatment_authorisations([appointment])[appointment.pk]
        items.append(
            ChecklistItem("authorised", "Treatment authorised", not authorisation, authorisation)
        )
    if kind.fasting_solids_hours or kind.fasting_clear_liquids_hours:
        items.append(
            ChecklistItem(
                "fasting", "Fasting acknowledged", appointment.fasting_acknowledged_at is not None
            )
        )
    if kind.escort_required:
        items.append(
            ChecklistItem(
                "escort",
                "Escort name and phone confirmed",
                bool(appointment.escort_name and appointment.escort_phone),
            )
        )
    if kind.kind != AppointmentKind.CONSULTATION:
        items.append(
            ChecklistItem(
                "medications",
                "Medications reviewed",
                appointment.medications_reviewed_at is not None,
            )
        )
        consent_at = appointment.patient.treatment_consent_at
        current = consent_at is not None and appointment.start - consent_at <= timedelta(
            days=CONSENT_VALID_DAYS
        )
        items.append(ChecklistItem("consent", "Consent current", current))
    return items


def appointment_checklist_missing(appointment: Appointment) -> list[ChecklistItem]:
    return [item for item in appointment_checklist(appointment) if not item.done]


# Which permission records which item (the escort goes through the escort form).
ITEM_PERMISSIONS = {"fasting": CHANGE, "medications": REVIEW_MEDICATIONS, "consent": CHANGE}


def _locked(appointment: Appointment) -> Appointment:
    return (
        Appointment.objects.select_for_update(of=("self",))
        .select_related("appointment_type", "patient", "location")
        .get(pk=appointment.pk)
    )


def _event(appointment: Appointment, kind: str, by: Any, now: datetime, detail: str = "") -> None:
    AppointmentEvent.objects.create(
        appointment=appointment, at=now, kind=kind, detail=detail[:500], by=by
    )


def _require(user: Any, permission: str) -> None:
    if not user.has_perm(permission):
        raise PermissionDenied("Your role cannot do this.")


def appointment_checklist_record(
    *, appointment: Appointment, item: str, by: Any, now: datetime | None = None
) -> Appointment:
    """Tick one checklist item (``fasting``, ``medications`` or ``consent``)."""
    if item not in ITEM_PERMISSIONS:
        raise BookingError(
            f"Unknown checklist item; choose one of {', '.join(sorted(ITEM_PERMISSIONS))}.",
            field="item",
        )
    _require(by, ITEM_PERMISSIONS[item])
    now = now or timezone.now()
    with transaction.atomic():
        current = _locked(appointment)
        if current.status not in (S.BOOKED, S.CONFIRMED):
            raise InvalidTransition(
                "The checklist is closed once the patient has checked in.", field="status"
            )
        if item == "fasting":
            current.fasting_acknowledged_at = now
            current.save(update_fields=["fasting_acknowledged_at", "updated_at"])
        elif item == "medications":
            current.medications_reviewed_at, current.medications_reviewed_by = now, by
            current.save(
                update_fields=["medications_reviewed_at", "medications_reviewed_by", "updated_at"]
            )
        else:
            patient = current.patient
            patient.treatment_consent_at = now
            patient.save(update_fields=["treatment_consent_at"])
        _event(current, f"checklist_{item}", by, now)
    return current


def appointment_check_in(
    *, appointment: Appointment, by: Any, override_reason: str = "", now: datetime | None = None
) -> Appointment:
    """Booked or confirmed → arrived, on the visit's own day, once the checklist is complete (or
    a nurse or prescriber overrides it with a reason)."""
    _require(by, CHECK_IN)
    now = now or timezone.now()
    override_reason = override_reason.strip()
    with transaction.atomic():
        current = _locked(appointment)
        if current.status == S.CHECKED_IN:
            return current
        if current.status not in (S.BOOKED, S.CONFIRMED):
            raise InvalidTransition(
                f"A {current.get_status_display().lower()} visit cannot be checked in.",
                field="status",
            )
        zone = current.location.zone
        if now.astimezone(zone).date() != current.start.astimezone(zone).date():
            raise PolicyViolation("Check-in opens on the day of the visit.", field="status")
        missing = appointment_checklist_missing(current)
        if missing and not override_reason:
            raise ChecklistIncomplete(
                "Check-in waits for the checklist: "
                + ", ".join(
                    item.label.lower() + (f" ({item.detail})" if item.detail else "")
                    for item in missing
                )
                + ".",
                field="checklist",
            )
        fields = ["status", "checked_in_at", "updated_at"]
        if missing:
            if any(item.key == "authorised" for item in missing) and not is_prescriber(by):
                raise PermissionDenied(
                    "Only a prescriber can check in a treatment that is not authorised."
                )
            if not by.has_perm(OVERRIDE_CHECKLIST):
                raise PermissionDenied("Only a nurse or prescriber can override the checklist.")
            current.checklist_override_reason = override_reason[:500]
            current.checklist_override_by = by
            fields += ["checklist_override_reason", "checklist_override_by"]
            _event(current, "checklist_override", by, now, override_reason)
        current.status, current.checked_in_at = S.CHECKED_IN, now
        current.save(update_fields=fields)
        _event(current, "checked_in", by, now)
        visit_progressed.send(sender=Appointment, appointment=current, step="checked_in", now=now)
    return current


def _step(
    appointment: Appointment,
    by: Any,
    now: datetime | None,
    *,
    permission: str,
    allowed: tuple[str, ...],
    change: Callable[[Appointment, datetime], list[str]],
    kind: str,
) -> Appointment:
    _require(by, permission)
    now = now or timezone.now()
    with transaction.atomic():
        current = _locked(appointment)
        if current.status not in allowed:
            raise InvalidTransition(
                f"Not possible for a {current.get_status_display().lower()} visit.",
                field="status",
            )
        fields = change(current, now)
        current.save(update_fields=[*fields, "updated_at"])
        _event(current, kind, by, now)
        visit_progressed.send(sender=Appointment, appointment=current, step=kind, now=now)
    return current


def appointment_seat(
    *, appointment: Appointment, by: Any, now: datetime | None = None
) -> Appointment:
    def change(current: Appointment, at: datetime) -> list[str]:
        current.status, current.seated_at = S.IN_CHAIR, at
        return ["status", "seated_at"]

    return _step(
        appointment,
        by,
        now,
        permission=CARE,
        allowed=(S.CHECKED_IN,),
        change=change,
        kind="in_chair",
    )


def appointment_recover(
    *, appointment: Appointment, by: Any, now: datetime | None = None
) -> Appointment:
    def change(current: Appointment, at: datetime) -> list[str]:
        current.status, current.recovering_at = S.RECOVERING, at
        return ["status", "recovering_at"]

    return _step(
        appointment,
        by,
        now,
        permission=CARE,
        allowed=(S.IN_CHAIR,),
        change=change,
        kind="recovering",
    )


def appointment_escort_arrived(
    *, appointment: Appointment, by: Any, now: datetime | None = None
) -> Appointment:
    def change(current: Appointment, at: datetime) -> list[str]:
        current.escort_present_at = at
        return ["escort_present_at"]

    return _step(
        appointment,
        by,
        now,
        permission=CARE,
        allowed=(S.CHECKED_IN, S.IN_CHAIR, S.RECOVERING),
        change=change,
        kind="escort_present",
    )


def appointment_discharge(
    *, appointment: Appointment, by: Any, now: datetime | None = None, override_reason: str = ""
) -> Appointment:
    """In chair or recovering → discharged; a visit that needs an escort needs them present,
    and the type's observation must be over (:attr:`Appointment.may_leave_at`). A prescriber
    may discharge before it with a reason, recorded in the visit's history."""
    override_reason = " ".join(override_reason.split())[:500]

    def change(current: Appointment, at: datetime) -> list[str]:
        if current.appointment_type.escort_required and current.escort_present_at is None:
            raise PolicyViolation(
                "Discharge waits for the escort: record them as present first.", field="escort"
            )
        _observed(current, at, by, override_reason)
        current.status, current.discharged_at = S.DISCHARGED, at
        return ["status", "discharged_at"]

    return _step(
        appointment,
        by,
        now,
        permission=CARE,
        allowed=(S.IN_CHAIR, S.RECOVERING),
        change=change,
        kind="discharged",
    )


def _observed(current: Appointment, at: datetime, by: Any, override_reason: str) -> None:
    visit_type = current.appointment_type
    if not visit_type.observation_minutes:
        return
    leave = current.may_leave_at
    if leave is not None and at >= leave:
        return
    if not override_reason:
        from_dosing = visit_type.observation_from == "seated"
        if leave is not None:
            when = f"may leave at {clinic_time(leave, current.location.timezone)}"
        elif from_dosing:
            when = "is not observed yet"
        else:
            when = "is not observed yet: move them to recovery first"
        since = "dosing" if from_dosing else "the end of the infusion"
        raise PolicyViolation(
            f"The patient {when} ({visit_type.observation_minutes} minutes of observation from "
            f"{since}). A prescriber can discharge earlier with a reason.",
            field="observation",
        )
    if not is_prescriber(by):
        raise PermissionDenied("Only a prescriber can discharge before the observation time.")
    _event(current, "discharge_override", by, at, override_reason)


def appointment_no_show(
    *, appointment: Appointment, by: Any, now: datetime | None = None
) -> Appointment:
    """A patient who did not come, once the late threshold has passed. The visit's lanes are
    released, so the rest of the chair's time can be used."""

    def change(current: Appointment, at: datetime) -> list[str]:
        if not current.is_late(at):
            raise PolicyViolation(
                f"A visit becomes a no-show {current.location.no_show_after_minutes} minutes "
                "after its start.",
                field="status",
            )
        Allocation.objects.filter(appointment=current, active=True).update(active=False)
        current.status = S.NO_SHOW
        current.version += 1
        return ["status", "version"]

    return _step(
        appointment,
        by,
        now,
        permission=CHECK_IN,
        allowed=(S.BOOKED, S.CONFIRMED),
        change=change,
        kind="no_show",
    )
