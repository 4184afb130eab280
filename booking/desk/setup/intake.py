"""The questions of a location's booking form (conditions, screening), and the clinic-wide
contraindications a prescriber reviews at every decision.

Each list is edited a row at a time: add, reword, move up or down, retire (and restore). Nothing
is deleted that a patient or a prescriber may have answered: an intake keeps the wording the
patient saw, and a decision's answers point at their contraindication. The work is done by
``booking.clinic``; every change is audited.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.db.models import Count, Model
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_http_methods, require_POST

from booking.clinic import (
    CONTRAINDICATION_LABEL_MAX,
    INTAKE_TEXT_MAX,
    SetupInvalid,
    contraindication_add,
    contraindication_delete,
    contraindication_move,
    contraindication_relabel,
    contraindication_retire,
    intake_option_add,
    intake_option_move,
    intake_option_retire,
    intake_option_reword,
)
from booking.desk.forms import DeskForm
from booking.desk.setup.base import audit_setup, render_setup, setup_required
from booking.models import AuditAction, Contraindication, IntakeOption, IntakeOptionKind
from scheduling.models import Location

MOVES = {"up": -1, "down": 1}


class IntakeOptionForm(DeskForm):
    kind = forms.ChoiceField(
        label="Kind",
        choices=IntakeOptionKind.choices,
        widget=forms.RadioSelect,
        error_messages={"required": "Choose a condition or a screening question."},
    )
    text = forms.CharField(
        label="Wording",
        max_length=INTAKE_TEXT_MAX,
        help_text="As the patient will read it. A screening question is answered yes or no.",
        error_messages={"required": "Write the question."},
    )


class ContraindicationForm(DeskForm):
    label = forms.CharField(
        label="Contraindication",
        max_length=CONTRAINDICATION_LABEL_MAX,
        help_text="As the prescriber will read it at every eligibility decision.",
        error_messages={"required": "Write the label."},
    )


# --- A location's intake questions --------------------------------------------------------------


def _intake_page(
    request: HttpRequest,
    location: Location,
    *,
    form: IntakeOptionForm | None = None,
    row_error: tuple[int, str, str] | None = None,
    status: int = 200,
) -> HttpResponse:
    options = list(IntakeOption.objects.filter(location=location).order_by("position", "pk"))
    lists = [
        (
            kind,
            label,
            [o for o in options if o.kind == kind and o.is_active],
            [o for o in options if o.kind == kind and not o.is_active],
        )
        for kind, label in (
            (IntakeOptionKind.CONDITION, "Conditions patients seek help for"),
            (IntakeOptionKind.SCREENING, "Screening questions (yes or no)"),
        )
    ]
    return render_setup(
        request,
        "staff/setup/intake.html",
        location,
        section="setup-intake",
        status=status,
        lists=lists,
        form=form or IntakeOptionForm(),
        row_error=row_error,
    )


@require_http_methods(["GET", "POST"])
@setup_required
def intake(request: HttpRequest, location: Location) -> HttpResponseBase:
    """/staff/setup/<location>/intake/: the form's questions; a POST adds one."""
    if request.method != "POST":
        return _intake_page(request, location)
    form = IntakeOptionForm(request.POST)
    if form.is_valid():
        try:
            option = intake_option_add(location=location, **form.cleaned_data)
        except SetupInvalid as refused:
            form.add_error(refused.field if refused.field in form.fields else None, str(refused))
        else:
            audit_setup(
                request, AuditAction.CREATE, option, location=location, changed=["kind", "text"]
            )
            messages.success(request, f"Added to the booking form: {option.text}")
            return redirect("setup-intake", location.pk)
    return _intake_page(request, location, form=form, status=400)


@require_POST
@setup_required
def intake_option(request: HttpRequest, location: Location, option_id: int) -> HttpResponseBase:
    """One question's buttons: reword, up, down, retire, restore."""
    option = get_object_or_404(IntakeOption, pk=option_id, location=location)
    action = request.POST.get("action", "")
    was = option.text
    try:
        changed, fields, said = _intake_change(option, action, request.POST.get("text", ""))
    except SetupInvalid as refused:
        error = (option.pk, str(refused), request.POST.get("text", ""))
        return _intake_page(request, location, row_error=error, status=400)
    if changed:
        detail = {"was": was} if action == "reword" else {}
        audit_setup(
            request, AuditAction.UPDATE, option, location=location, changed=fields, **detail
        )
        messages.success(request, said)
    return redirect("setup-intake", location.pk)


def _intake_change(option: IntakeOption, action: str, text: str) -> tuple[bool, list[str], str]:
    """Apply one button's change: (changed?, the fields changed, what to tell the admin)."""
    if action == "reword":
        changed = intake_option_reword(option=option, text=text)
        return changed, ["text"], f"Reworded: {option.text}"
    if action in MOVES:
        return intake_option_move(option=option, step=MOVES[action]), ["position"], "Moved."
    if action in ("retire", "restore"):
        changed = intake_option_retire(option=option, active=action == "restore")
        said = "Back on the booking form" if action == "restore" else "Retired"
        return changed, ["is_active"], f"{said}: {option.text}"
    raise SetupInvalid("Choose what to do with this question.", field="action")


# --- The clinic's contraindications -------------------------------------------------------------


def _contraindications_page(
    request: HttpRequest,
    *,
    form: ContraindicationForm | None = None,
    row_error: tuple[int, str, str] | None = None,
    status: int = 200,
) -> HttpResponse:
    rows = list(
        Contraindication.objects.annotate(answered=Count("answers")).order_by("position", "pk")
    )
    return render_setup(
        request,
        "staff/setup/intake_contraindications.html",
        None,
        section="setup-contraindications",
        status=status,
        active=[c for c in rows if c.is_active],
        retired=[c for c in rows if not c.is_active],
        form=form or ContraindicationForm(),
        row_error=row_error,
    )


@require_http_methods(["GET", "POST"])
@setup_required
def contraindications(request: HttpRequest) -> HttpResponseBase:
    """/staff/setup/contraindications/: the list every eligibility decision answers (one for
    the whole clinic); a POST adds one."""
    if request.method != "POST":
        return _contraindications_page(request)
    form = ContraindicationForm(request.POST)
    if form.is_valid():
        try:
            added = contraindication_add(label=form.cleaned_data["label"])
        except SetupInvalid as refused:
            form.add_error("label", str(refused))
        else:
            _audit_clinic_wide(request, AuditAction.CREATE, added, ["label"])
            messages.success(request, f"Added: {added.label}")
            return redirect("setup-contraindications")
    return _contraindications_page(request, form=form, status=400)


@require_POST
@setup_required
def contraindication(request: HttpRequest, contraindication_id: int) -> HttpResponseBase:
    """One contraindication's buttons: relabel, up, down, retire, restore, delete."""
    row = get_object_or_404(Contraindication, pk=contraindication_id)
    action = request.POST.get("action", "")
    label = request.POST.get("label", "")
    was = row.label
    try:
        if action == "delete":
            contraindication_delete(contraindication=row)
            row.pk = contraindication_id  # Django clears it on delete; the log names the row
            _audit_clinic_wide(request, AuditAction.DELETE, row, ["label"], label=was)
            messages.success(request, f"Deleted: {was}")
            return redirect("setup-contraindications")
        changed, fields, said = _contraindication_change(row, action, label)
    except SetupInvalid as refused:
        error = (contraindication_id, str(refused), label or was)
        return _contraindications_page(request, row_error=error, status=400)
    if changed:
        detail = {"was": was} if action == "relabel" else {}
        _audit_clinic_wide(request, AuditAction.UPDATE, row, fields, **detail)
        messages.success(request, said)
    return redirect("setup-contraindications")


def _contraindication_change(
    row: Contraindication, action: str, label: str
) -> tuple[bool, list[str], str]:
    if action == "relabel":
        changed = contraindication_relabel(contraindication=row, label=label)
        return changed, ["label"], f"Relabelled: {row.label}"
    if action in MOVES:
        return (
            contraindication_move(contraindication=row, step=MOVES[action]),
            ["position"],
            "Moved.",
        )
    if action in ("retire", "restore"):
        changed = contraindication_retire(contraindication=row, active=action == "restore")
        said = "Asked again" if action == "restore" else "Retired"
        return changed, ["is_active"], f"{said}: {row.label}"
    raise SetupInvalid("Choose what to do with this contraindication.", field="action")


def _audit_clinic_wide(
    request: HttpRequest, action: str, row: Model, changed: list[str], **detail: Any
) -> None:
    # The list is the whole clinic's, no one location's.
    audit_setup(request, action, row, location=None, changed=changed, **detail)
