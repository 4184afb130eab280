"""The prescriber's pages, /staff/prescriber/: the queue of consultations awaiting a decision, the
decision form, and one patient's decisions, plans and series with the prescriber's steps on them.

Every page is a prescriber's (``booking.access.roles.is_prescriber``; other staff get 403) and
reaches only the user's locations through ``booking.access.scoping``: another location's visit,
patient, plan or series is a 404. Every read of patient data and every change is audited. The
rules live in the services and nowhere here: the decision in
``booking.eligibility.eligibility_decide``, revocation in ``plan_revoke``, the REMS enrolment in
``rems_enrolment_record``, the series steps in ``booking.series.changes``. A refusal shows the
service's own message on the page, answered with the status the service gives it (400, 409, 422).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import wraps
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Case, Exists, OuterRef, Prefetch, Q, QuerySet, Value, When
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from booking.access.audit import audit
from booking.access.decorators import staff_required
from booking.access.roles import is_prescriber
from booking.access.scoping import (
    appointments_for,
    get_scoped,
    location_ids,
    locations_for,
    patients_for,
    plans_for,
    protocols_for,
    series_for,
)
from booking.eligibility import (
    MAX_SESSIONS_AUTHORISED,
    contraindications_asked,
    contraindications_unanswered,
    eligibility_decide,
    plan_revoke,
    plans_with_usage,
    rems_enrolment_record,
)
from booking.errors import BookingError
from booking.models import (
    CHANGEABLE_STATUSES,
    Appointment,
    AppointmentStatus,
    AuditAction,
    Contraindication,
    ContraindicationAnswer,
    DecisionOutcome,
    EligibilityDecision,
    Intake,
    Patient,
    PlanStatus,
    Protocol,
    Series,
    SeriesStatus,
    TreatmentPlan,
)
from booking.series.changes import (
    series_cancel_rest,
    series_hold,
    series_resume,
    series_review_confirm,
)
from scheduling.models import AppointmentKind

S = AppointmentStatus

# A consultation that happened: the patient came. A booked or confirmed one whose time has passed
# counts too (the desk may not have clicked through the visit).
HAPPENED_STATUSES = frozenset({S.CHECKED_IN, S.IN_CHAIR, S.RECOVERING, S.DISCHARGED})
# How far back the queue looks, and the most it lists: a bounded page, oldest first.
QUEUE_DAYS = 60
QUEUE_LIMIT = 200
# Sessions of a series still to come, as the series services count them.
_TO_COME = CHANGEABLE_STATUSES | {S.ON_HOLD}


def prescriber_required(
    view: Callable[..., HttpResponseBase],
) -> Callable[..., HttpResponseBase]:
    """A prescriber's page: staff only (others go to sign in), prescribers only (403)."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not is_prescriber(request.user):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return staff_required()(wrapped)


def _patient_url(patient_id: int) -> str:
    return reverse("staff-prescriber-patient", args=[patient_id])


# --- The queue ----------------------------------------------------------------------------------


def consultations_awaiting_decision(user: Any, *, now: datetime) -> QuerySet[Appointment]:
    """The consultations at ``user``'s locations in the last ``QUEUE_DAYS`` days that happened
    and have no eligibility decision for their patient since they began, oldest first."""
    decided_since = EligibilityDecision.objects.filter(
        patient_id=OuterRef("patient_id"), decided_at__gte=OuterRef("start")
    )
    return (
        appointments_for(user)
        .filter(
            appointment_type__kind=AppointmentKind.CONSULTATION,
            start__gte=now - timedelta(days=QUEUE_DAYS),
        )
        .filter(
            Q(status__in=sorted(HAPPENED_STATUSES))
            | Q(status__in=sorted(CHANGEABLE_STATUSES), start__lt=now)
        )
        .filter(~Exists(decided_since))
        .select_related("patient", "appointment_type", "location", "intake")
        .order_by("start", "pk")
    )


@dataclass(frozen=True)
class QueueRow:
    consultation: Appointment
    screening_yes: int
    has_intake: bool


def _queue_row(consultation: Appointment) -> QueueRow:
    intake: Intake | None = getattr(consultation, "intake", None)
    screening = intake.screening if intake is not None else []
    return QueueRow(
        consultation=consultation,
        screening_yes=sum(1 for answer in screening if answer.get("answer") is True),
        has_intake=intake is not None,
    )


@require_GET
@never_cache
@prescriber_required
def queue(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    rows = [
        _queue_row(consultation)
        for consultation in consultations_awaiting_decision(request.user, now=now)[:QUEUE_LIMIT]
    ]
    audit(
        request,
        AuditAction.VIEW,
        object_type="prescriber_queue",
        consultations=len(rows),
    )
    return render(
        request,
        "staff/prescriber/queue.html",
        {
            "nav": "prescriber",
            "rows": rows,
            "days": QUEUE_DAYS,
            "limit": QUEUE_LIMIT,
            "several_locations": len(location_ids(request.user)) > 1,
        },
    )


# --- What a prescriber reads about a patient ------------------------------------------------------


@dataclass
class PlanRow:
    plan: TreatmentPlan
    status: str
    status_label: str

    @property
    def can_revoke(self) -> bool:
        return self.status == PlanStatus.IN_FORCE

    @classmethod
    def of(cls, plan: TreatmentPlan, now: datetime) -> PlanRow:
        status = plan.status(now=now)
        return cls(
            plan=plan,
            status=status,
            status_label=PlanStatus(status).label,
        )


@dataclass
class DecisionRow:
    decision: EligibilityDecision
    plan: PlanRow | None
    answers: list[ContraindicationAnswer]

    @property
    def present(self) -> list[str]:
        return [a.contraindication.label for a in self.answers if a.present]


@dataclass
class History:
    """A patient's decisions (answers and plan beside each), the contraindications flagged since
    a decision, and their plans at the user's locations."""

    decisions: list[DecisionRow]
    flags: list[ContraindicationAnswer]
    plans: list[PlanRow]


def _history(user: Any, patient: Patient, now: datetime) -> History:
    # Every decision about the patient is shown, wherever it was made: the newest one speaks for
    # the patient at every location (a decline elsewhere stops treatment here too).
    recorded = ContraindicationAnswer.objects.select_related("contraindication", "recorded_by")
    decisions = list(
        EligibilityDecision.objects.filter(patient=patient)
        .select_related("decided_by", "consultation")
        .prefetch_related(Prefetch("answers", queryset=recorded))
        .order_by("-decided_at", "-pk")
    )
    plans = [
        PlanRow.of(plan, now)
        for plan in plans_with_usage(plans_for(user).filter(patient=patient)).order_by(
            "-decision__decided_at", "-pk"
        )
    ]
    by_decision = {row.plan.decision_id: row for row in plans}
    flags = list(
        recorded.filter(patient=patient, decision__isnull=True).order_by("-recorded_at", "-pk")
    )
    return History(
        decisions=[
            DecisionRow(decision, by_decision.get(decision.pk), list(decision.answers.all()))
            for decision in decisions
        ],
        flags=flags,
        plans=plans,
    )


def _page_zone(user: Any, patient: Patient) -> str:
    """The zone a patient's page reads in: their latest visit's at the user's locations, else
    the user's first location's."""
    latest = (
        appointments_for(user)
        .filter(patient=patient)
        .select_related("location")
        .order_by("-start")
        .first()
    )
    if latest is not None:
        return latest.location.timezone
    first = locations_for(user).order_by("name").first()
    return first.timezone if first is not None else "UTC"


# --- The decision -------------------------------------------------------------------------------


YES_NO = [("yes", "Yes, present"), ("no", "No")]


def answer_field(slug: str) -> str:
    """The form field of one contraindication's yes/no answer."""
    return f"answer_{slug}"


class ProtocolChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        visit_type = obj.appointment_type
        return f"{obj.name} ({visit_type.name}, {visit_type.location.name})"


class DecisionForm(forms.Form):
    outcome = forms.ChoiceField(
        label="Decision",
        choices=DecisionOutcome.choices,
        required=False,
        widget=forms.RadioSelect,
    )
    protocol = ProtocolChoiceField(
        label="Protocol",
        queryset=Protocol.objects.none(),
        required=False,
        empty_label="Choose a protocol (approvals only)",
    )
    sessions_authorised = forms.IntegerField(
        label="Sessions authorised",
        required=False,
        widget=forms.NumberInput({"min": 1, "max": MAX_SESSIONS_AUTHORISED}),
    )
    valid_until = forms.DateField(
        label="Valid until",
        required=False,
        input_formats=["%Y-%m-%d"],
        widget=forms.DateInput({"type": "date"}),
        help_text="The last day the approval holds, on the clinic's calendar.",
    )
    conditions = forms.CharField(
        label="Conditions",
        required=False,
        max_length=2000,
        widget=forms.Textarea({"rows": 3}),
        help_text="Needed for an approval with conditions.",
    )

    def __init__(
        self,
        *args: Any,
        asked: list[Contraindication],
        protocols: QuerySet[Protocol],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.asked = asked
        protocol = self.fields["protocol"]
        assert isinstance(protocol, forms.ModelChoiceField)  # noqa: S101 - narrows the type
        protocol.queryset = protocols
        for item in asked:
            self.fields[answer_field(item.slug)] = forms.ChoiceField(
                label=item.label, choices=YES_NO, required=False, widget=forms.RadioSelect
            )

    def answers(self) -> dict[str, bool]:
        """The contraindications answered, by slug: True when present."""
        data = self.cleaned_data
        return {
            item.slug: data[answer_field(item.slug)] == "yes"
            for item in self.asked
            if data.get(answer_field(item.slug))
        }

    def answer_fields(self) -> list[forms.BoundField]:
        return [self[answer_field(item.slug)] for item in self.asked]

    def clean(self) -> dict[str, Any] | None:
        cleaned = super().clean()
        # Every unanswered one at once (the service names only the first): a missing answer is
        # not a "no".
        for slug in contraindications_unanswered(self.answers(), self.asked):
            self.add_error(answer_field(slug), "Answer yes or no.")
        return cleaned

    def field_for(self, name: str | None) -> str | None:
        """The form field a service's ``BookingError.field`` names (None: the whole form)."""
        if name in self.fields:
            return name
        if name is not None and answer_field(name) in self.fields:
            return answer_field(name)
        return None

    def error_summary(self) -> list[tuple[str, str]]:
        """(anchor, text naming the field) per error, in the order the fields appear."""
        summary: list[tuple[str, str]] = []
        for name, form_field in self.fields.items():
            if name not in self.errors:
                continue
            bound = self[name]
            anchor = bound.auto_id
            if isinstance(form_field.widget, forms.RadioSelect):
                anchor = f"{anchor}_0"  # the first choice of the group takes the focus
            summary.extend((anchor, f"{bound.label}: {message}") for message in self.errors[name])
        summary.extend(("decision-form", str(message)) for message in self.non_field_errors())
        return summary


def _active_protocols(user: Any) -> QuerySet[Protocol]:
    return (
        protocols_for(user)
        .filter(is_active=True)
        .select_related("appointment_type__location")
        .order_by("appointment_type__location__name", "appointment_type__name", "name")
    )


def _intake(user: Any, consultation: Appointment) -> Intake | None:
    """The consultation's own intake, else the patient's latest at one of the user's locations."""
    return (
        Intake.objects.filter(
            appointment__patient_id=consultation.patient_id,
            appointment__location_id__in=location_ids(user),
        )
        .annotate(own=Case(When(appointment=consultation, then=Value(0)), default=Value(1)))
        .order_by("own", "-created_at")
        .first()
    )


def _decision_page(
    request: HttpRequest, consultation: Appointment, form: DecisionForm, status: int = 200
) -> HttpResponse:
    patient = consultation.patient
    now = timezone.now()
    audit(request, AuditAction.VIEW, consultation, page="prescriber_decision")
    return render(
        request,
        "staff/prescriber/decide.html",
        {
            "nav": "prescriber",
            "consultation": consultation,
            "patient": patient,
            "zone": consultation.location.timezone,
            "intake": _intake(request.user, consultation),
            "history": _history(request.user, patient, now),
            "form": form,
        },
        status=status,
    )


@require_http_methods(["GET", "POST"])
@never_cache
@prescriber_required
def decide(request: HttpRequest, reference: str) -> HttpResponse:
    user = request.user
    consultation = get_scoped(
        appointments_for(user)
        .filter(appointment_type__kind=AppointmentKind.CONSULTATION)
        .select_related("patient__allergies_recorded_by", "appointment_type", "location"),
        reference=reference,
    )
    asked = contraindications_asked()
    protocols = _active_protocols(user)
    if request.method == "GET":
        return _decision_page(request, consultation, DecisionForm(asked=asked, protocols=protocols))
    form = DecisionForm(request.POST, asked=asked, protocols=protocols)
    if not form.is_valid():
        return _decision_page(request, consultation, form, status=400)
    data = form.cleaned_data
    patient = consultation.patient
    try:
        decision = eligibility_decide(
            patient=patient,
            consultation=consultation,
            outcome=data["outcome"],
            contraindications=form.answers(),
            conditions=data["conditions"],
            protocol=data["protocol"],
            sessions_authorised=data["sessions_authorised"],
            valid_until=data["valid_until"],
            decided_by=user,
            now=timezone.now(),
        )
    except BookingError as refused:
        form.add_error(form.field_for(refused.field), refused.message)
        return _decision_page(request, consultation, form, status=refused.status)
    audit(
        request,
        AuditAction.CREATE,
        decision,
        patient=patient,
        location_id=consultation.location_id,
        outcome=decision.outcome,
        consultation=consultation.reference,
    )
    messages.success(
        request, f"Decision recorded for {patient}: {decision.get_outcome_display().lower()}."
    )
    return redirect(_patient_url(patient.pk))


# --- One patient --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeriesStep:
    """A button on a series: ``name`` is its address, ``label`` its text."""

    name: str
    label: str
    needs_reason: bool = False
    danger: bool = False


@dataclass
class SeriesRow:
    series: Series
    zone: str
    sessions: list[Appointment]
    steps: list[SeriesStep] = field(default_factory=list)
    # The sessions "cancel the rest" may start from: those still to come.
    to_come: list[Appointment] = field(default_factory=list)


def _series_row(series: Series, now: datetime) -> SeriesRow:
    """A series with the buttons worth showing now; the services still decide."""
    sessions = list(series.sessions.all())
    to_come = [s for s in sessions if s.status in _TO_COME and s.start > now]
    live = series.status in (SeriesStatus.BOOKED, SeriesStatus.ON_HOLD)
    steps: list[SeriesStep] = []
    if live and series.protocol.review_after_session and any(s.tentative for s in sessions):
        steps.append(SeriesStep("review", "Confirm the review"))
    if series.status == SeriesStatus.BOOKED:
        steps.append(SeriesStep("hold", "Put on hold", needs_reason=True))
    if series.status == SeriesStatus.ON_HOLD:
        steps.append(SeriesStep("resume", "Resume"))
    if live and to_come:
        steps.append(SeriesStep("cancel-rest", "Cancel the rest", needs_reason=True, danger=True))
    return SeriesRow(
        series=series,
        zone=series.protocol.appointment_type.location.timezone,
        sessions=sessions,
        steps=steps,
        to_come=to_come,
    )


class RemsForm(forms.Form):
    rems_patient_id = forms.CharField(
        label="REMS patient ID",
        required=False,
        strip=False,
        widget=forms.TextInput(
            {"maxlength": Patient._meta.get_field("rems_patient_id").max_length}
        ),
    )


def _patient_page(
    request: HttpRequest,
    patient: Patient,
    *,
    status: int = 200,
    error: str = "",
    rems_form: RemsForm | None = None,
) -> HttpResponse:
    user = request.user
    now = timezone.now()
    series = (
        series_for(user)
        .filter(plan__patient=patient)
        .select_related("protocol__appointment_type__location")
        .prefetch_related(
            Prefetch("sessions", queryset=Appointment.objects.order_by("series_index", "start"))
        )
        .order_by("-created_at", "-pk")
    )
    consultation = (
        appointments_for(user)
        .filter(patient=patient, appointment_type__kind=AppointmentKind.CONSULTATION)
        .exclude(status=S.CANCELLED)
        .order_by("-start")
        .first()
    )
    audit(request, AuditAction.VIEW, patient, page="prescriber_patient")
    return render(
        request,
        "staff/prescriber/patient.html",
        {
            "nav": "prescriber",
            "patient": patient,
            "zone": _page_zone(user, patient),
            "history": _history(user, patient, now),
            "series_rows": [_series_row(s, now) for s in series],
            "consultation": consultation,
            "rems_form": rems_form
            or RemsForm(initial={"rems_patient_id": patient.rems_patient_id}),
            "error": error,
        },
        status=status,
    )


def _scoped_patient(user: Any, patient_id: int) -> Patient:
    return get_scoped(patients_for(user).select_related("allergies_recorded_by"), pk=patient_id)


@require_GET
@never_cache
@prescriber_required
def patient_page(request: HttpRequest, patient_id: int) -> HttpResponse:
    return _patient_page(request, _scoped_patient(request.user, patient_id))


@require_POST
@prescriber_required
def rems_enrolment(request: HttpRequest, patient_id: int) -> HttpResponse:
    patient = _scoped_patient(request.user, patient_id)
    form = RemsForm(request.POST)
    form.is_valid()  # one optional text field: always valid; the service checks the ID
    try:
        rems_enrolment_record(
            patient=patient,
            rems_patient_id=form.cleaned_data.get("rems_patient_id", ""),
            now=timezone.now(),
        )
    except BookingError as refused:
        form.add_error(refused.field if refused.field in form.fields else None, refused.message)
        return _patient_page(
            request, patient, status=refused.status, error=refused.message, rems_form=form
        )
    audit(request, AuditAction.UPDATE, patient, step="rems_enrolment")
    messages.success(request, f"REMS enrolment recorded for {patient}.")
    return redirect(f"{_patient_url(patient.pk)}#rems")


@require_http_methods(["GET", "POST"])
@never_cache
@prescriber_required
def plan_revocation(request: HttpRequest, plan_id: int) -> HttpResponse:
    """GET asks to confirm; POST revokes (``plan_revoke`` holds what it had booked still to
    come)."""
    user = request.user
    plan = get_scoped(
        plans_with_usage(plans_for(user)).select_related("patient"),
        pk=plan_id,
    )
    patient = plan.patient
    location_id = plan.protocol.appointment_type.location_id
    now = timezone.now()
    if request.method == "GET":
        audit(request, AuditAction.VIEW, plan, patient=patient, location_id=location_id)
        return render(
            request,
            "staff/prescriber/revoke.html",
            {"nav": "prescriber", "row": PlanRow.of(plan, now), "patient": patient},
        )
    try:
        plan_revoke(plan=plan, revoked_by=user, now=now)
    except BookingError as refused:
        return _patient_page(request, patient, status=refused.status, error=refused.message)
    audit(
        request,
        AuditAction.UPDATE,
        plan,
        patient=patient,
        location_id=location_id,
        step="revoke",
    )
    messages.success(
        request,
        f"{plan.protocol.name} for {patient} revoked: nothing more can be booked under it, and "
        "the sessions it had booked still to come are on hold.",
    )
    return redirect(f"{_patient_url(patient.pk)}#plans")


# --- The series steps ----------------------------------------------------------------------------


def _reason(request: HttpRequest, what: str) -> str:
    reason = " ".join(request.POST.get("reason", "").split())[:500]
    if not reason:
        raise BookingError(f"Give a reason to {what}.", field="reason")
    return reason


def _from_index(request: HttpRequest) -> int:
    try:
        index = int(request.POST.get("from_index", ""))
    except ValueError:
        index = 0
    if index < 1:
        raise BookingError("Choose the first session to cancel.", field="from_index")
    return index


def _review(request: HttpRequest, series: Series, now: datetime) -> str:
    confirmed = series_review_confirm(series=series, by=request.user, now=now)
    if not confirmed:
        return "No sessions were waiting for the review."
    return f"Review confirmed: {confirmed} later session{'s' if confirmed != 1 else ''} confirmed."


def _hold(request: HttpRequest, series: Series, now: datetime) -> str:
    held = series_hold(series=series, reason=_reason(request, "put the series on hold"), now=now)
    return f"Series on hold: {len(held)} session{'s' if len(held) != 1 else ''} held."


def _resume(request: HttpRequest, series: Series, now: datetime) -> str:
    resumed = series_resume(series=series, by=request.user, now=now)
    return f"Series resumed: {len(resumed)} session{'s' if len(resumed) != 1 else ''} booked again."


def _cancel_rest(request: HttpRequest, series: Series, now: datetime) -> str:
    from_index = _from_index(request)
    cancelled = series_cancel_rest(
        series=series,
        from_index=from_index,
        reason=_reason(request, "cancel the rest of the series"),
        now=now,
    )
    if not cancelled:
        return "No session was left to cancel."
    return (
        f"{len(cancelled)} session{'s' if len(cancelled) != 1 else ''} cancelled from session "
        f"{from_index} on."
    )


SERIES_STEPS: dict[str, Callable[[HttpRequest, Series, datetime], str]] = {
    "review": _review,
    "hold": _hold,
    "resume": _resume,
    "cancel-rest": _cancel_rest,
}


@require_POST
@prescriber_required
def series_step(request: HttpRequest, series_id: int, step: str) -> HttpResponse:
    run = SERIES_STEPS.get(step)
    if run is None:
        raise Http404("Not found.")
    series = get_scoped(
        series_for(request.user).select_related(
            "plan__patient__allergies_recorded_by", "protocol__appointment_type__location"
        ),
        pk=series_id,
    )
    patient = series.plan.patient
    try:
        done = run(request, series, timezone.now())
    except BookingError as refused:
        return _patient_page(request, patient, status=refused.status, error=refused.message)
    audit(
        request,
        AuditAction.UPDATE,
        series,
        patient=patient,
        location_id=series.protocol.appointment_type.location_id,
        step=step,
    )
    messages.success(request, done)
    return redirect(f"{_patient_url(patient.pk)}#series-{series.pk}")
