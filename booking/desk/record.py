"""The desk completes the patient's record from a visit's page: the escort's details taken by
phone, the allergies beside the medications, and a contraindication flagged after the decision.

Each is a CSRF-protected POST from a form on ``/staff/appointments/<reference>/`` that calls one
service and comes back to the page (post/redirect/get); refused input shows the page again with
the form's errors, each naming its field. The visit is looked up through
``booking.access.scoping``: another location's visit is a 404. Every change is audited.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from booking.access.audit import audit
from booking.access.decorators import staff_required
from booking.access.roles import CHANGE, VIEW, may_flag_contraindication, may_record_allergies
from booking.desk.board import appointment_page, appointment_visit
from booking.desk.forms import AllergiesForm, ContraindicationFlagForm, DeskForm, EscortByPhoneForm
from booking.eligibility import contraindication_flag
from booking.errors import BookingError
from booking.models import Appointment, AuditAction
from booking.patients import patient_allergies_record
from booking.services import appointment_escort_update


def _back(appointment: Appointment, section: str) -> HttpResponse:
    return redirect(f"{reverse('staff-appointment', args=[appointment.reference])}#{section}")


def _refused(
    request: HttpRequest, appointment: Appointment, name: str, form: DeskForm, status: int = 400
) -> HttpResponse:
    return appointment_page(request, appointment, refused={name: form}, status=status)


def _add_refusal(form: DeskForm, refused: BookingError) -> None:
    form.add_error(refused.field if refused.field in form.fields else None, refused.message)


@require_POST
@staff_required(CHANGE)
def escort_record(request: HttpRequest, reference: str) -> HttpResponse:
    """The escort's name and mobile number, as the patient gives them on the phone."""
    appointment = appointment_visit(request.user, reference)
    form = EscortByPhoneForm(request.POST, prefix="escort", patient_phone=appointment.patient.phone)
    if not form.is_valid():
        return _refused(request, appointment, "escort_form", form)
    try:
        appointment_escort_update(
            appointment=appointment,
            name=form.cleaned_data["escort_name"],
            phone=form.cleaned_data["escort_phone"],
            by=request.user,
            now=timezone.now(),
        )
    except BookingError as refused:
        _add_refusal(form, refused)
        return _refused(request, appointment, "escort_form", form, refused.status)
    audit(request, AuditAction.UPDATE, appointment, change="escort")
    messages.success(request, "The escort's details are recorded.")
    return _back(appointment, "escort")


@require_POST
@staff_required(VIEW)
def allergies_record(request: HttpRequest, reference: str) -> HttpResponse:
    """The patient's known allergies, or that they have none."""
    if not may_record_allergies(request.user):
        raise PermissionDenied
    appointment = appointment_visit(request.user, reference)
    form = AllergiesForm(request.POST, prefix="allergies")
    if not form.is_valid():
        return _refused(request, appointment, "allergies_form", form)
    answer = form.allergies_answer()
    try:
        patient_allergies_record(
            patient=appointment.patient, allergies=answer or "", by=request.user, now=timezone.now()
        )
    except BookingError as refused:
        _add_refusal(form, refused)
        return _refused(request, appointment, "allergies_form", form, refused.status)
    audit(
        request,
        AuditAction.UPDATE,
        appointment.patient,
        location_id=appointment.location_id,
        change="allergies",
    )
    messages.success(request, "The allergies are recorded.")
    return _back(appointment, "intake")


@require_POST
@staff_required(VIEW)
def contraindication_record(request: HttpRequest, reference: str) -> HttpResponse:
    """A contraindication a nurse or prescriber noticed after the decision: treatment stops at
    check-in until a prescriber decides again."""
    if not may_flag_contraindication(request.user):
        raise PermissionDenied
    appointment = appointment_visit(request.user, reference)
    form = ContraindicationFlagForm(request.POST, prefix="flag")
    if not form.is_valid():
        return _refused(request, appointment, "flag_form", form)
    try:
        flag = contraindication_flag(
            patient=appointment.patient,
            contraindication=form.cleaned_data["contraindication"],
            by=request.user,
            note=form.cleaned_data["note"],
            now=timezone.now(),
        )
    except BookingError as refused:
        _add_refusal(form, refused)
        return _refused(request, appointment, "flag_form", form, refused.status)
    audit(
        request,
        AuditAction.CREATE,
        flag,
        patient=appointment.patient,
        location_id=appointment.location_id,
        contraindication=flag.contraindication.slug,
    )
    messages.success(
        request,
        f"{flag.contraindication.label} is flagged: treatment waits for a prescriber's decision.",
    )
    return _back(appointment, "contraindications")
