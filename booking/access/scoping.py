"""Location scoping: the rows a staff account may reach.

A staff account sees only the locations on its :class:`~booking.models.StaffProfile`; anything
at another location answers 404, exactly as if it did not exist. Every staff query of patients,
visits, plans, series and audit events starts from one of these querysets; the patient search
is here too, audited.
"""

from __future__ import annotations

from datetime import date
from functools import reduce
from operator import or_
from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import Http404, HttpRequest

from booking.access.audit import audit
from booking.models import (
    Appointment,
    AppointmentStatus,
    AuditAction,
    AuditEvent,
    Patient,
    Protocol,
    Series,
    StaffProfile,
    TreatmentPlan,
)
from scheduling.models import Location


def location_ids(user: Any) -> set[int]:
    """The locations ``user`` works at; a superuser works everywhere."""
    if user is None or not user.is_authenticated or not user.is_active:
        return set()
    cached = getattr(user, "_chairside_location_ids", None)
    if cached is not None:
        return set(cached)
    if user.is_superuser:
        ids = set(Location.objects.values_list("id", flat=True))
    else:
        ids = set(
            StaffProfile.locations.through.objects.filter(staffprofile__user=user).values_list(
                "location_id", flat=True
            )
        )
    user._chairside_location_ids = frozenset(ids)
    return ids


def locations_for(user: Any) -> QuerySet[Location]:
    return Location.objects.filter(id__in=location_ids(user))


def appointments_for(user: Any) -> QuerySet[Appointment]:
    """Every appointment ``user`` may see: those at their locations. An online booking still
    awaiting its patient's e-mail (TENTATIVE) is nobody's visit yet: its name is only what was
    typed, so staff see it on the calendar as a hold, never as a record."""
    return Appointment.objects.filter(location_id__in=location_ids(user)).exclude(
        status=AppointmentStatus.TENTATIVE
    )


def patients_for(user: Any) -> QuerySet[Patient]:
    """Patients ``user`` may see: those with a visit at one of their locations, and those with
    no visit anywhere yet (registered at a desk, or waiting for their first booking)."""
    ids = location_ids(user)
    here = Appointment.objects.filter(patient=OuterRef("pk"), location_id__in=ids)
    anywhere = Appointment.objects.filter(patient=OuterRef("pk"))
    # Provisional records (online bookings not yet confirmed) are nobody's patients yet.
    return Patient.objects.on_file().filter(Exists(here) | ~Exists(anywhere))


# A search is for finding one patient to book, not for browsing the register.
PATIENT_SEARCH_LIMIT = 10
_SEARCH_WORDS = 4


def _search_words(text: str) -> list[str]:
    # Nothing unprintable reaches the database (PostgreSQL refuses a NUL in any text).
    return "".join(ch if ch.isprintable() else " " for ch in text).split()[:_SEARCH_WORDS]


def patients_search(user: Any, text: str) -> list[Patient]:
    """The first few patients ``user`` may see that match every word of ``text``: part of a
    name or e-mail address, four or more digits of a phone number, a record number, or a date of
    birth written YYYY-MM-DD."""
    words = _search_words(text)
    if not words:
        return []
    match = Q()
    for word in words:
        try:
            born = date.fromisoformat(word) if len(word) == 10 else None
        except ValueError:
            born = None
        if born is not None:
            match &= Q(date_of_birth=born)
        elif word.isdecimal():
            ways = [Q(pk=int(word))] if len(word) <= 9 else []  # past that, no record number
            if len(word) >= 4:
                ways.append(Q(phone__contains=word))
            match &= reduce(or_, ways)
        else:
            match &= (
                Q(first_name__icontains=word)
                | Q(last_name__icontains=word)
                | Q(email__icontains=word)
            )
    return list(
        patients_for(user)
        .filter(match)
        .order_by("last_name", "first_name", "pk")[:PATIENT_SEARCH_LIMIT]
    )


def patients_find(
    request: HttpRequest, text: str, *, location_id: int | None = None
) -> list[Patient]:
    """:func:`patients_search` for the signed-in staff member, recorded in the audit log."""
    found = patients_search(request.user, text)
    audit(
        request,
        AuditAction.VIEW,
        object_type="patient_search",
        location_id=location_id,
        query=" ".join(_search_words(text)),
        count=len(found),
    )
    return found


def plans_for(user: Any) -> QuerySet[TreatmentPlan]:
    """Treatment plans for visits at ``user``'s locations."""
    return TreatmentPlan.objects.filter(
        protocol__appointment_type__location_id__in=location_ids(user)
    )


def series_for(user: Any) -> QuerySet[Series]:
    return Series.objects.filter(protocol__appointment_type__location_id__in=location_ids(user))


def protocols_for(user: Any) -> QuerySet[Protocol]:
    return Protocol.objects.filter(appointment_type__location_id__in=location_ids(user))


def audit_events_for(user: Any) -> QuerySet[AuditEvent]:
    """The audit events ``user`` may read: those at their locations, and those at no location
    whose patient (if any) has a visit at one of them."""
    ids = location_ids(user)
    patient_here = Exists(
        Appointment.objects.filter(patient_id=OuterRef("patient_id"), location_id__in=ids)
    )
    return AuditEvent.objects.filter(
        Q(location_id__in=ids) | Q(location__isnull=True) & (Q(patient__isnull=True) | patient_here)
    )


def get_scoped(queryset: QuerySet[Any], **lookup: Any) -> Any:
    """``queryset.get(**lookup)`` that answers 404 when the row is missing or out of scope."""
    try:
        return queryset.get(**lookup)
    except (queryset.model.DoesNotExist, ValueError, TypeError) as exc:
        raise Http404("Not found.") from exc
