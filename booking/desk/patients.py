"""A new patient registered at the front desk, ``/staff/patients/new/``.

Before a record is made, the likely duplicates the staff member may see are shown
(``booking.patients.patient_duplicates``): the desk books the existing record instead, or ticks
"This is a different person" to save anyway. Showing a duplicate is a read of that patient's
record, and is audited as one; so is the record made.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from booking.access.audit import audit
from booking.access.decorators import staff_required
from booking.access.roles import BOOK
from booking.desk.forms import PatientRegisterForm
from booking.errors import BookingError
from booking.models import AuditAction
from booking.patients import LikelyDuplicate, PossibleDuplicate, patient_register


def _page(
    request: HttpRequest,
    form: PatientRegisterForm,
    *,
    duplicates: list[LikelyDuplicate] | None = None,
    status: int = 200,
) -> HttpResponse:
    return render(
        request,
        "staff/patient_new.html",
        {"nav": "patients", "form": form, "duplicates": duplicates or []},
        status=status,
    )


@require_http_methods(["GET", "POST"])
@never_cache
@staff_required(BOOK)
def patient_new(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    if request.method == "GET":
        return _page(request, PatientRegisterForm(today=now.date()))
    form = PatientRegisterForm(request.POST, today=now.date())
    if not form.is_valid():
        return _page(request, form, status=400)
    try:
        patient = patient_register(
            details=form.patient_details(),
            by=request.user,
            allergies=form.allergies_answer(),
            different_person=form.cleaned_data["different_person"],
            now=now,
        )
    except PossibleDuplicate as found:
        for duplicate in found.duplicates:
            audit(request, AuditAction.VIEW, duplicate.patient, shown_as="likely duplicate")
        return _page(request, form, duplicates=found.duplicates)
    except BookingError as refused:
        form.add_error(refused.field if refused.field in form.fields else None, refused.message)
        return _page(request, form, status=refused.status)
    audit(
        request,
        AuditAction.CREATE,
        patient,
        confirmed_different=form.cleaned_data["different_person"],
    )
    messages.success(
        request,
        f"{patient.first_name} {patient.last_name} is registered as patient #{patient.pk}: "
        f"find them by #{patient.pk} to book their visit.",
    )
    return redirect("staff-calendar")
