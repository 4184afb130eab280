"""Who the staff are and what they may touch: roles, locations, and the audit trail.

A role is a Django group whose permissions are kept here, in code, and re-synced after every
migration (``sync_roles``): what a front-desk account may do is reviewed like any other change.
A staff account sees only the locations on its :class:`~booking.models.StaffProfile`; anything
at another location answers 404, exactly as if it did not exist. Every read or write of patient
data by staff leaves an :class:`~booking.models.AuditEvent`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from functools import reduce, wraps
from operator import or_
from typing import Any

from django.contrib.auth.models import Group, Permission
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, Model, OuterRef, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponseBase
from django.utils import timezone

from booking.models import (
    Appointment,
    AuditAction,
    AuditEvent,
    Patient,
    Protocol,
    Series,
    StaffProfile,
    TreatmentPlan,
)
from booking.plans import PRESCRIBE
from scheduling.models import Location


class Role:
    FRONT_DESK = "Front desk"
    NURSE = "Nurse"
    PRESCRIBER = "Prescriber"
    ADMIN = "Admin"


# What each action on a visit needs. Views, the API and the tests' permission matrix all read
# this one table.
VIEW = "booking.view_appointment"
BOOK = "booking.add_appointment"
CHANGE = "booking.change_appointment"  # reschedule, cancel, checklist items the desk records
CHECK_IN = "booking.check_in_appointment"  # check in, no-show
CARE = "booking.care_appointment"  # in chair, recovering, escort present, discharge
REVIEW_MEDICATIONS = "booking.review_medications"
OVERRIDE_CHECKLIST = "booking.override_checklist"
VIEW_AUDIT = "booking.view_auditevent"
MANAGE_WAITLIST = "booking.change_waitlistentry"

_DESK = [
    VIEW,
    BOOK,
    CHANGE,
    CHECK_IN,
    "booking.view_patient",
    "booking.view_waitlistentry",
    "booking.add_waitlistentry",
    MANAGE_WAITLIST,
    "booking.view_series",
    "booking.view_treatmentplan",
]
_CLINICAL = [VIEW, CHECK_IN, CARE, REVIEW_MEDICATIONS, OVERRIDE_CHECKLIST, "booking.view_patient"]
_PRESCRIBING = [
    PRESCRIBE,
    "booking.view_eligibilitydecision",
    "booking.add_treatmentplan",
    "booking.change_treatmentplan",
    "booking.view_treatmentplan",
    "booking.add_series",
    "booking.change_series",
    "booking.view_series",
    "booking.add_scheduleoverride",
]

ROLE_PERMISSIONS: dict[str, list[str]] = {
    Role.FRONT_DESK: _DESK,
    Role.NURSE: [*_CLINICAL, "booking.view_series"],
    Role.PRESCRIBER: [*_CLINICAL, BOOK, CHANGE, *_PRESCRIBING],
    # The clinic's administrator runs the desk and reads the audit log; the clinical steps
    # (medication review, overriding the checklist, chair, recovery, discharge) stay with nurses
    # and prescribers. Someone who is both is given both groups.
    Role.ADMIN: [*_DESK, VIEW_AUDIT, "booking.change_patient"],
}


def sync_roles(**_: Any) -> None:
    """Create the role groups and set exactly the permissions ``ROLE_PERMISSIONS`` gives them
    (a ``post_migrate`` receiver, so a fresh database has its roles)."""
    for name, perms in ROLE_PERMISSIONS.items():
        group, _created = Group.objects.get_or_create(name=name)
        wanted = []
        for perm in perms:
            app_label, codename = perm.split(".")
            found = Permission.objects.filter(
                content_type__app_label=app_label, codename=codename
            ).first()
            if found is not None:
                wanted.append(found)
        group.permissions.set(wanted)


def is_staff_member(user: Any) -> bool:
    return bool(
        user is not None
        and user.is_authenticated
        and user.is_active
        and (user.is_superuser or StaffProfile.objects.filter(user=user).exists())
    )


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
    """Every appointment ``user`` may see: those at their locations."""
    return Appointment.objects.filter(location_id__in=location_ids(user))


def patients_for(user: Any) -> QuerySet[Patient]:
    """Patients ``user`` may see: those with a visit at one of their locations, and those with
    no visit anywhere yet (registered at a desk, or waiting for their first booking)."""
    ids = location_ids(user)
    here = Appointment.objects.filter(patient=OuterRef("pk"), location_id__in=ids)
    anywhere = Appointment.objects.filter(patient=OuterRef("pk"))
    return Patient.objects.filter(Exists(here) | ~Exists(anywhere))


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


def _client_ip(request: HttpRequest) -> str | None:
    # Behind the reverse proxy of docs/operations.md, REMOTE_ADDR is set from X-Forwarded-For
    # by the proxy itself; we never trust a client-supplied header here.
    return request.META.get("REMOTE_ADDR") or None


def audit(
    request: HttpRequest | None,
    action: str,
    obj: Model | None = None,
    *,
    object_type: str = "",
    object_id: str = "",
    patient: Patient | None = None,
    location_id: int | None = None,
    user: Any = None,
    **detail: Any,
) -> AuditEvent:
    """Record that the requesting staff member did ``action`` (an :class:`AuditAction`) on
    ``obj`` (or on ``object_type``/``object_id`` when it is not one row, e.g. a calendar week)."""
    actor = user if user is not None else getattr(request, "user", None)
    if obj is not None:
        object_type = object_type or obj._meta.model_name or ""
        object_id = object_id or str(obj.pk)
        if patient is None and isinstance(obj, Patient):
            patient = obj
        if isinstance(obj, Appointment):
            patient = patient or obj.patient
            location_id = location_id or obj.location_id
    if actor is None or not actor.is_authenticated:
        actor = None
    return AuditEvent.objects.create(
        at=timezone.now(),
        user=actor,
        username=actor.get_username() if actor is not None else "",
        action=AuditAction(action),
        object_type=object_type,
        object_id=object_id,
        patient=patient,
        location_id=location_id,
        method=(request.method or "") if request is not None else "",
        path=request.get_full_path()[:300] if request is not None else "",
        ip=_client_ip(request) if request is not None else None,
        detail=detail,
    )


def staff_required(
    permission: str | None = None,
) -> Callable[[Callable[..., HttpResponseBase]], Callable[..., HttpResponseBase]]:
    """A staff page: signed-in staff only (others go to the sign-in page), optionally with a
    permission (403 without it)."""

    def decorate(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if not is_staff_member(request.user):
                # LOGIN_URL is a URL name: redirect_to_login resolves it and quotes ``next``.
                return redirect_to_login(request.get_full_path())
            if permission is not None and not request.user.has_perm(permission):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return wrapped

    return decorate
