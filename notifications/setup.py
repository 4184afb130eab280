"""The reminder rules' setup pages: each type's rules at a location, the editor with its live
preview, and the progress of the re-plan a save starts.

They sit in notifications, beside the rules, on booking's setup frame
(``booking.desk.setup.base``): booking never imports notifications.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from booking.desk.setup.base import audit_setup, render_setup, setup_required
from booking.models import AuditAction
from notifications.models import ReminderRule, ReplanJob
from notifications.preview import MessagePreview, clinic_moment, message_preview
from notifications.rules import REMINDER_KINDS, reminder_rules_save
from notifications.setup_forms import ReminderRuleForm, reminder_rule_forms, rule_summary
from notifications.tasks import replan_job_queue
from scheduling.models import AppointmentType, Location

SECTION = "setup-reminders"


def _type_at(location: Location, type_id: int) -> AppointmentType:
    # Another location's type is not found here: 404, never a hint that it exists.
    return get_object_or_404(
        AppointmentType.objects.select_related("location"), pk=type_id, location=location
    )


def _rules_by_kind(appointment_type: AppointmentType) -> dict[str, ReminderRule]:
    return {
        rule.kind: rule for rule in ReminderRule.objects.filter(appointment_type=appointment_type)
    }


@require_GET
@setup_required
def reminders_list(request: HttpRequest, location: Location) -> HttpResponse:
    """Every type of the location, with its reminders in a few words each."""
    types = list(AppointmentType.objects.filter(location=location).order_by("name"))
    rules: dict[int, dict[str, ReminderRule]] = {t.pk: {} for t in types}
    for rule in ReminderRule.objects.filter(appointment_type__in=types):
        rules[rule.appointment_type_id][rule.kind] = rule
    rows = [(t, [rule_summary(rules[t.pk].get(kind)) for kind in REMINDER_KINDS]) for t in types]
    return render_setup(
        request,
        "notifications/setup/reminders.html",
        location,
        section=SECTION,
        rows=rows,
        kinds=[kind.label for kind in REMINDER_KINDS],
    )


def _preview_kind(value: str | None, forms: list[ReminderRuleForm]) -> ReminderRuleForm:
    by_kind = {form.kind: form for form in forms}
    if value in by_kind:
        return by_kind[value]
    return next((f for f in forms if f.initial.get("is_active")), forms[0])


def _preview(appointment_type: AppointmentType, form: ReminderRuleForm) -> MessagePreview:
    return message_preview(appointment_type=appointment_type, kind=form.kind, timing=form.timing())


@never_cache
@require_http_methods(["GET", "POST"])
@setup_required
def reminder_rules_edit(request: HttpRequest, location: Location, type_id: int) -> HttpResponse:
    """Edit one type's rules. "Preview" (the page without JavaScript) shows the chosen message
    for the values typed, saving nothing; "Save" saves and starts the re-plan."""
    appointment_type = _type_at(location, type_id)
    rules = _rules_by_kind(appointment_type)
    job = ReplanJob.objects.filter(appointment_type=appointment_type).first()
    data = request.POST if request.method == "POST" else None
    forms = reminder_rule_forms(rules, data)
    shown = _preview_kind(request.POST.get("kind") or request.GET.get("kind"), forms)
    status = 200
    if request.method == "POST" and request.POST.get("action") != "preview":
        if all(form.is_valid() for form in forms):
            changed, started = reminder_rules_save(
                appointment_type=appointment_type,
                rules=[form.settings() for form in forms],
                requested_by=request.user,  # type: ignore[arg-type]
            )
            if started is None:
                messages.info(request, "Nothing changed: the rules are as they were.")
            else:
                audit_setup(
                    request,
                    AuditAction.UPDATE,
                    appointment_type,
                    location=location,
                    changed=[
                        f"reminder_rule.{kind}.{f}" for kind, fs in changed.items() for f in fs
                    ],
                    replan_job=started.pk,
                )
                replan_job_queue(started.pk)
                messages.success(
                    request, "Saved. Messages already planned are being moved to the new rules."
                )
            return redirect("setup-reminders-type", location.pk, appointment_type.pk)
        status = 400
    return render_setup(
        request,
        "notifications/setup/rules.html",
        location,
        section=SECTION,
        status=status,
        appointment_type=appointment_type,
        forms=forms,
        refused=status == 400,
        shown=shown.kind,
        kinds=[(kind.value, kind.label) for kind in REMINDER_KINDS],
        preview=_preview(appointment_type, shown),
        preview_form=shown,
        job=job_state(job) if job is not None else None,
    )


@never_cache
@require_GET
@setup_required
def reminder_rule_preview(request: HttpRequest, location: Location, type_id: int) -> HttpResponse:
    """The preview of one kind as an HTML fragment, from the editor's current values
    (``?kind=…&<kind>-hours=…``): the page's script fetches it as the admin types."""
    appointment_type = _type_at(location, type_id)
    kind = request.GET.get("kind", "")
    if kind not in REMINDER_KINDS:
        raise Http404("No such reminder.")
    form = ReminderRuleForm(request.GET, kind=kind)
    return render(
        request,
        "notifications/setup/_preview.html",
        {
            "preview": _preview(appointment_type, form),
            "preview_form": form,
            "appointment_type": appointment_type,
        },
    )


def job_state(job: ReplanJob) -> dict[str, Any]:
    """A re-plan job as the progress bar reads it."""
    return {
        "id": job.pk,
        "status": job.status,
        "status_label": job.get_status_display(),
        "total": job.total,
        "done": job.done,
        "finished": job.is_finished,
        "error": job.error,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "finished_at_label": clinic_moment(job.finished_at, job.appointment_type)
        if job.finished_at
        else "",
    }


@never_cache
@require_GET
@setup_required
def replan_job_status(request: HttpRequest, location: Location, job_id: int) -> JsonResponse:
    """How far a re-plan job has come: ``{"status", "total", "done", …}``."""
    job = get_object_or_404(
        ReplanJob.objects.select_related("appointment_type__location"),
        pk=job_id,
        appointment_type__location=location,
    )
    return JsonResponse(job_state(job))
