"""Eligibility decisions and the treatment plans they authorise: the gate before any treatment.

A prescriber records a decision after the consultation. An approval creates a plan (a protocol,
how many sessions, until when); a decline creates none. Every visit of a type that needs approval
is booked only while a plan for that type is in force: decided, not declined since, not revoked,
not expired, with sessions left (and, for Spravato, the patient's REMS enrolment on file before a
first dose). ``booking.services.appointment_book`` asks :func:`plan_in_force`, so the patient's
link, the API and the front desk all meet the same gate.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import F, Func, IntegerField, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from booking.access.roles import is_prescriber, may_flag_contraindication
from booking.defaults import contraindications_install_defaults
from booking.errors import BookingError, NotEligible
from booking.holds import visits_hold
from booking.models import (
    ACTIVE_STATUSES,
    CHANGEABLE_STATUSES,
    Appointment,
    AppointmentEvent,
    AppointmentStatus,
    Contraindication,
    ContraindicationAnswer,
    DecisionOutcome,
    EligibilityDecision,
    Patient,
    Protocol,
    Series,
    SeriesStatus,
    TreatmentPlan,
)
from booking.signals import appointment_changed, plan_decided
from scheduling.models import AppointmentKind, AppointmentType, Location

APPROVALS = frozenset({DecisionOutcome.APPROVED, DecisionOutcome.APPROVED_WITH_CONDITIONS})

# Sessions that use up an authorisation: booked, under way or given. An on-hold session is kept
# for its series and comes back on resume without passing the gate again, so it keeps its place;
# cancelled and missed ones do not count.
COUNTED_STATUSES = frozenset(ACTIVE_STATUSES | {AppointmentStatus.ON_HOLD})
# The kinds of visit that are a treatment: at most one a day, spaced as the plan says.
TREATMENT_KINDS = frozenset(
    {AppointmentKind.INFUSION, AppointmentKind.SPRAVATO, AppointmentKind.BOOSTER}
)

# A booster follows the infusions it boosts: its interval counts from the last of either.
_INTERVAL_KINDS: dict[str, frozenset[str]] = {
    AppointmentKind.BOOSTER: frozenset({AppointmentKind.INFUSION, AppointmentKind.BOOSTER}),
}

MAX_SESSIONS_AUTHORISED = 100
MAX_VALIDITY_DAYS = 2 * 366


class DecisionNotAllowed(BookingError):
    """Only a prescriber decides eligibility or revokes a plan."""

    status = 403
    code = "permission_denied"


def local_today(location: Location, now: datetime) -> date:
    # Approvals run to the end of a calendar day where the clinic is, not in UTC: an approval
    # "valid until the 30th" in New York still holds at 21:00 there on the 30th.
    return now.astimezone(location.zone).date()


def _count(appointments: QuerySet[Appointment]) -> Coalesce:
    counted = (
        appointments.filter(status__in=sorted(COUNTED_STATUSES))
        .order_by()
        .annotate(n=Func(F("pk"), function="COUNT"))
        .values("n")
    )
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


def plans_with_usage(plans: QuerySet[TreatmentPlan]) -> QuerySet[TreatmentPlan]:
    """``plans`` annotated with ``sessions_used``, counted in the same query: the plan's series
    sessions, plus single visits of its type booked for the patient since it was approved (a
    booster has no series).

    Two counts added, not one count over an OR: each half then probes its own index (series,
    patient) instead of PostgreSQL scanning every appointment.
    """
    in_series = Appointment.objects.filter(series__plan=OuterRef("pk"))
    single = Appointment.objects.filter(
        series__isnull=True,
        patient=OuterRef("patient"),
        appointment_type=OuterRef("protocol__appointment_type"),
        start__gte=OuterRef("decision__decided_at"),
    )
    return plans.annotate(sessions_used=_count(in_series) + _count(single)).select_related(
        "protocol__appointment_type__location", "decision__decided_by"
    )


def contraindications_asked() -> list[Contraindication]:
    """The contraindications every decision answers: the clinic's list (``Contraindication``),
    in its order, retired entries left out. The list is never empty: where none was ever set
    up, the defaults are installed first."""
    asked = list(Contraindication.objects.filter(is_active=True))
    if not asked and not Contraindication.objects.exists():
        contraindications_install_defaults()
        asked = list(Contraindication.objects.filter(is_active=True))
    return asked


def contraindications_none() -> dict[str, bool]:
    """Every contraindication asked, answered "absent"."""
    return {item.slug: False for item in contraindications_asked()}


def contraindications_unanswered(
    answers: dict[str, Any], asked: list[Contraindication] | None = None
) -> dict[str, str]:
    """What is wrong with ``answers`` (slug → True when present), per slug: one not asked, or
    one asked and not answered true or false. A missing answer is not a "no"."""
    slugs = {item.slug for item in (contraindications_asked() if asked is None else asked)}
    problems = dict.fromkeys(answers, "Not a contraindication the clinic asks about.")
    for slug in slugs:
        problems.pop(slug, None)
        if not isinstance(answers.get(slug), bool):
            problems[slug] = "Record whether this contraindication is present (true or false)."
    return problems


def _validate_contraindications(answers: dict[str, Any]) -> list[tuple[Contraindication, bool]]:
    asked = contraindications_asked()
    problems = contraindications_unanswered(answers, asked)
    if problems:
        slug = sorted(problems)[0]
        raise BookingError(problems[slug], field=slug)
    return [(item, answers[item.slug]) for item in asked]


@dataclass(frozen=True)
class PlanTerms:
    """What an approval authorises."""

    protocol: Protocol
    sessions_authorised: int
    valid_until: date


@dataclass(frozen=True)
class CheckedDecision:
    answers: list[tuple[Contraindication, bool]]
    terms: PlanTerms | None


def decision_validate(
    *,
    patient: Patient,
    consultation: Appointment | None,
    outcome: str,
    contraindications: dict[str, bool],
    conditions: str,
    protocol: Protocol | None,
    sessions_authorised: int | None,
    valid_until: date | None,
    now: datetime,
) -> CheckedDecision:
    """Refuse a decision that does not hold together, naming the field (``BookingError``).

    Shared by :func:`eligibility_decide` and the admin's form, so both refuse the same things.
    """
    if outcome not in DecisionOutcome.values:
        raise BookingError(
            "Choose approved, approved with conditions or declined.", field="outcome"
        )
    answers = _validate_contraindications(contraindications)
    if consultation is not None:
        if consultation.patient_id != patient.pk:
            raise BookingError("That consultation is another patient's.", field="consultation")
        if consultation.appointment_type.kind != AppointmentKind.CONSULTATION:
            raise BookingError("That visit is not a consultation.", field="consultation")
        if consultation.status == AppointmentStatus.CANCELLED:
            raise BookingError("That consultation was cancelled.", field="consultation")
    if outcome == DecisionOutcome.DECLINED:
        for name, value in (
            ("protocol", protocol),
            ("sessions_authorised", sessions_authorised),
            ("valid_until", valid_until),
        ):
            if value is not None:
                raise BookingError("A declined decision authorises no plan.", field=name)
        return CheckedDecision(answers, None)
    if outcome == DecisionOutcome.APPROVED_WITH_CONDITIONS and not conditions.strip():
        raise BookingError("Say which conditions the approval carries.", field="conditions")
    if outcome == DecisionOutcome.APPROVED and any(present for _, present in answers):
        # A contraindication noted and approved anyway must say on what terms.
        raise BookingError(
            "A contraindication is present: approve with conditions, or decline.",
            field="outcome",
        )
    if protocol is None:
        raise BookingError("An approval needs a protocol.", field="protocol")
    if not protocol.is_active:
        raise BookingError("That protocol is retired.", field="protocol")
    if sessions_authorised is None:
        raise BookingError("An approval needs a number of sessions.", field="sessions_authorised")
    if not 1 <= sessions_authorised <= MAX_SESSIONS_AUTHORISED:
        raise BookingError(
            f"Authorise between 1 and {MAX_SESSIONS_AUTHORISED} sessions.",
            field="sessions_authorised",
        )
    if valid_until is None:
        raise BookingError("An approval needs a date it is valid until.", field="valid_until")
    today = local_today(protocol.appointment_type.location, now)
    if valid_until < today:
        raise BookingError("That date has passed.", field="valid_until")
    if valid_until > today + timedelta(days=MAX_VALIDITY_DAYS):
        raise BookingError("An approval lasts at most two years.", field="valid_until")
    return CheckedDecision(answers, PlanTerms(protocol, sessions_authorised, valid_until))


def _require_prescriber(user: Any) -> None:
    if not is_prescriber(user):
        raise DecisionNotAllowed("Only a prescriber can decide eligibility or revoke a plan.")


def eligibility_decide(
    *,
    patient: Patient,
    consultation: Appointment | None = None,
    outcome: str,
    contraindications: dict[str, bool],
    conditions: str = "",
    protocol: Protocol | None = None,
    sessions_authorised: int | None = None,
    valid_until: date | None = None,
    decided_by: Any,
    now: datetime | None = None,
) -> EligibilityDecision:
    """Record a prescriber's eligibility decision for ``patient``; an approval creates its plan.

    ``contraindications`` answers every slug of :func:`contraindications_asked` (True:
    present); each answer is kept with who recorded it and when. An
    approval needs ``protocol``, ``sessions_authorised`` and ``valid_until`` (a clinic-local
    date, inclusive); "approved with conditions" needs ``conditions``, and so does approving
    with a contraindication present. A decline authorises nothing.

    The newest decision speaks for the patient: an approval replaces the plans in force for
    the same appointment type, and a decline revokes every plan in force (sessions already
    booked stay for the front desk to handle). Raises ``DecisionNotAllowed`` (403) unless
    ``decided_by`` holds the prescriber permission, ``BookingError`` (400) naming the field.
    """
    now = now or timezone.now()
    _require_prescriber(decided_by)
    checked = decision_validate(
        patient=patient,
        consultation=consultation,
        outcome=outcome,
        contraindications=contraindications,
        conditions=conditions,
        protocol=protocol,
        sessions_authorised=sessions_authorised,
        valid_until=valid_until,
        now=now,
    )
    with transaction.atomic():
        # Serialises decisions with bookings for the same patient (appointment_book locks this
        # row too), so a booking never counts against a plan being replaced under it.
        Patient.objects.select_for_update(no_key=True).filter(pk=patient.pk).exists()
        decision = EligibilityDecision.objects.create(
            patient=patient,
            consultation=consultation,
            outcome=outcome,
            conditions=conditions.strip(),
            decided_by=decided_by,
            decided_at=now,
        )
        ContraindicationAnswer.objects.bulk_create(
            ContraindicationAnswer(
                patient=patient,
                decision=decision,
                contraindication=item,
                present=present,
                recorded_by=decided_by,
                recorded_at=now,
            )
            for item, present in checked.answers
        )
        in_force = TreatmentPlan.objects.filter(patient=patient, revoked_at__isnull=True)
        terms = checked.terms
        plan: TreatmentPlan | None = None
        if terms is None:
            stopped = list(in_force.select_related("protocol"))
            in_force.update(revoked_at=now)
            _plans_stop(patient, stopped, reason="Treatment declined", now=now)
        else:
            in_force.filter(protocol__appointment_type=terms.protocol.appointment_type).update(
                revoked_at=now
            )
            plan = TreatmentPlan.objects.create(
                patient=patient,
                decision=decision,
                protocol=terms.protocol,
                sessions_authorised=terms.sessions_authorised,
                valid_until=terms.valid_until,
                conditions=decision.conditions,
            )
        plan_decided.send(
            sender=EligibilityDecision,
            patient=patient,
            decision=decision,
            plan=plan,
            change="decided",
            now=now,
        )
    return decision


def plan_revoke(
    *, plan: TreatmentPlan, revoked_by: Any, now: datetime | None = None
) -> TreatmentPlan:
    """Withdraw ``plan``: nothing more can be booked under it, and what it had booked still to
    come is put on hold in the same transaction (:func:`_plans_stop`). Revoking twice is
    harmless."""
    now = now or timezone.now()
    _require_prescriber(revoked_by)
    with transaction.atomic():
        Patient.objects.select_for_update(no_key=True).filter(pk=plan.patient_id).exists()
        revoked = TreatmentPlan.objects.filter(pk=plan.pk, revoked_at__isnull=True).update(
            revoked_at=now
        )
        plan.refresh_from_db(fields=["revoked_at"])
        if revoked:
            _plans_stop(plan.patient, [plan], reason="Treatment plan withdrawn", now=now)
            plan_decided.send(
                sender=TreatmentPlan,
                patient=plan.patient,
                decision=None,
                plan=plan,
                change="revoked",
                now=now,
            )
    return plan


def _plans_stop(
    patient: Patient, plans: list[TreatmentPlan], *, reason: str, now: datetime
) -> list[Appointment]:
    """Hold the visits still to come that ``plans`` (just revoked) had booked: the sessions of
    their series, which go on hold with the reason, and the patient's single visits of their
    types that no other plan in force covers. The patient's row is locked by the caller."""
    if not plans:
        return []
    types = {plan.protocol.appointment_type_id for plan in plans}
    covered = set(
        TreatmentPlan.objects.filter(
            patient=patient, revoked_at__isnull=True, protocol__appointment_type_id__in=types
        ).values_list("protocol__appointment_type_id", flat=True)
    )
    visits = (
        Appointment.objects.select_for_update(of=("self",))
        .select_related("location")
        .filter(patient=patient, start__gt=now, status__in=sorted(CHANGEABLE_STATUSES))
        .filter(
            Q(series__plan__in=plans)
            | Q(series__isnull=True, appointment_type_id__in=sorted(types - covered))
        )
        .order_by("start", "pk")
    )
    held = visits_hold(visits=visits, now=now)
    Series.objects.filter(plan__in=plans, status=SeriesStatus.BOOKED).update(
        status=SeriesStatus.ON_HOLD, hold_reason=reason, held_at=now
    )
    if held:
        # One neutral message for the whole stop, not one per visit: it rides on the first.
        appointment_changed.send(
            sender=Appointment, appointment=held[0], change="treatment_stopped", now=now
        )
    return held


def contraindication_flag(
    *,
    patient: Patient,
    contraindication: Contraindication,
    by: Any,
    note: str = "",
    now: datetime | None = None,
) -> ContraindicationAnswer:
    """Record that ``contraindication`` is now present for ``patient`` (a nurse or prescriber
    noticed it after the decision). Treatment stops at check-in ("treatment authorised" is
    unmet) until a prescriber decides again, answering it afresh."""
    if not may_flag_contraindication(by):
        raise PermissionDenied("Only a nurse or prescriber can flag a contraindication.")
    if not contraindication.is_active:
        raise BookingError("The clinic no longer asks about that.", field="contraindication")
    note = " ".join(note.split())
    if len(note) > 500:
        raise BookingError("Keep the note under 500 characters.", field="note")
    return ContraindicationAnswer.objects.create(
        patient=patient,
        contraindication=contraindication,
        present=True,
        note=note,
        recorded_by=by,
        recorded_at=now or timezone.now(),
    )


def treatment_authorisations(visits: Collection[Appointment]) -> dict[int, str]:
    """Why each of ``visits`` may not be given today, by visit id ("" when it may): the check
    behind the "treatment authorised" checklist item, computed at check-in, never ticked.

    A visit of a type that needs approval needs the patient's latest plan for that type in
    force on the visit's day (not declined since, not withdrawn, not expired), the patient's
    REMS enrolment for a Spravato dose, and no contraindication flagged since the approval.
    Three queries, whatever the number of visits (the day board asks for all of its rows).
    """
    gated = [v for v in visits if v.appointment_type.needs_approval]
    if not gated:
        return {v.pk: "" for v in visits}
    patients = {v.patient_id for v in gated}
    latest: dict[int, EligibilityDecision] = {}
    for decision in EligibilityDecision.objects.filter(patient_id__in=patients).order_by(
        "-decided_at", "-pk"
    ):
        latest.setdefault(decision.patient_id, decision)
    plans: dict[tuple[int, int], TreatmentPlan] = {}
    for plan in (
        TreatmentPlan.objects.filter(
            patient_id__in=patients,
            protocol__appointment_type_id__in={v.appointment_type_id for v in gated},
        )
        .select_related("decision", "protocol")
        .order_by("-decision__decided_at", "-pk")
    ):
        plans.setdefault((plan.patient_id, plan.protocol.appointment_type_id), plan)
    flags: dict[int, list[ContraindicationAnswer]] = {}
    for flag in (
        ContraindicationAnswer.objects.filter(
            patient_id__in=patients, decision__isnull=True, present=True
        )
        .select_related("contraindication")
        .order_by("recorded_at", "pk")
    ):
        flags.setdefault(flag.patient_id, []).append(flag)

    def problem(visit: Appointment) -> str:
        zone = visit.location.zone
        decision = latest.get(visit.patient_id)
        plan = plans.get((visit.patient_id, visit.appointment_type_id))
        if plan is None:
            return "No approval for this treatment is on file."
        if (
            decision is not None
            and decision.outcome == DecisionOutcome.DECLINED
            and decision.decided_at > plan.decision.decided_at
        ):
            return f"Treatment was declined on {decision.decided_at.astimezone(zone):%Y-%m-%d}."
        if plan.revoked_at is not None:
            return f"The plan was withdrawn on {plan.revoked_at.astimezone(zone):%Y-%m-%d}."
        if visit.start.astimezone(zone).date() > plan.valid_until:
            return f"The approval expired on {plan.valid_until:%Y-%m-%d}."
        spravato = visit.appointment_type.kind == AppointmentKind.SPRAVATO
        if spravato and visit.patient.rems_enrolled_at is None:
            return "The patient's REMS enrolment is not on file."
        since = [
            f for f in flags.get(visit.patient_id, []) if f.recorded_at > plan.decision.decided_at
        ]
        if since:
            named = ", ".join(f.contraindication.label.lower() for f in since)
            first = since[0].recorded_at.astimezone(zone)
            return f"Flagged since the approval ({first:%Y-%m-%d}): {named}."
        return ""

    found = {v.pk: problem(v) for v in gated}
    return {v.pk: found.get(v.pk, "") for v in visits}


def rems_enrolment_record(
    *, patient: Patient, rems_patient_id: str, now: datetime | None = None
) -> Patient:
    """Record the patient's Spravato REMS enrolment (their REMS patient ID), which a first
    Spravato dose needs before it can be booked."""
    now = now or timezone.now()
    rems_patient_id = rems_patient_id.strip()
    if not rems_patient_id:
        raise BookingError("Give the patient's REMS ID.", field="rems_patient_id")
    if len(rems_patient_id) > 64:
        raise BookingError("A REMS ID has at most 64 characters.", field="rems_patient_id")
    with transaction.atomic():
        Patient.objects.filter(pk=patient.pk).update(
            rems_patient_id=rems_patient_id, rems_enrolled_at=now
        )
        patient.refresh_from_db(fields=["rems_patient_id", "rems_enrolled_at"])
    return patient


# These messages reach patients too (their link, the public API): appointment types go by their
# neutral public names, never a drug's.
def _check_plan(
    plan: TreatmentPlan,
    *,
    patient: Patient,
    appointment_type: AppointmentType,
    start: datetime | None,
    now: datetime,
    moving: Appointment | None = None,
) -> None:
    """Refuse with the reason a plan cannot cover one more visit of ``appointment_type`` (or,
    with ``moving``, that visit at its new time: it keeps the session it already holds)."""
    location = appointment_type.location
    if plan.patient_id != patient.pk:
        raise NotEligible("That plan is another patient's.", field="plan")
    if plan.protocol.appointment_type_id != appointment_type.pk:
        raise NotEligible(
            f"The patient's plan covers {plan.protocol.appointment_type.public_name}, not "
            f"{appointment_type.public_name}.",
            field="appointment_type",
        )
    if plan.revoked_at is not None:
        raise NotEligible(
            f"The patient's treatment plan was withdrawn on "
            f"{plan.revoked_at.astimezone(location.zone):%Y-%m-%d}: a prescriber must approve "
            "treatment again.",
            field="patient",
        )
    if plan.valid_until < local_today(location, now):
        raise NotEligible(
            f"The patient's approval expired on {plan.valid_until:%Y-%m-%d}: a prescriber must "
            "approve treatment again.",
            field="patient",
        )
    if start is not None and start.astimezone(location.zone).date() > plan.valid_until:
        raise NotEligible(
            f"The patient's approval is valid until {plan.valid_until:%Y-%m-%d}; this visit "
            "would be after it.",
            field="start",
        )
    used = getattr(plan, "sessions_used", None)
    if used is None:
        used = _sessions_used(plan)
    if moving is None and used >= plan.sessions_authorised:
        raise NotEligible(
            f"All {plan.sessions_authorised} sessions the plan authorises are booked or used: a "
            "prescriber must approve more.",
            field="patient",
        )
    first_dose_checked = moving is not None  # when it was booked
    if (
        appointment_type.kind == AppointmentKind.SPRAVATO
        and patient.rems_enrolled_at is None
        and not first_dose_checked
    ):
        first_dose = not Appointment.objects.filter(
            patient=patient,
            appointment_type__kind=AppointmentKind.SPRAVATO,
            status__in=sorted(COUNTED_STATUSES),
        ).exists()
        if first_dose:
            raise NotEligible(
                "The patient's REMS enrolment must be on file before a first session of this "
                "treatment.",
                field="patient",
            )
    if start is not None and plan.protocol.min_days_since_last:
        _check_interval(
            plan.protocol,
            patient=patient,
            appointment_type=appointment_type,
            start=start,
            exclude=() if moving is None else (moving.pk,),
        )


def _sessions_used(plan: TreatmentPlan) -> int:
    annotated = plans_with_usage(TreatmentPlan.objects.filter(pk=plan.pk)).get()
    return int(getattr(annotated, "sessions_used", 0))


def _check_interval(
    protocol: Protocol,
    *,
    patient: Patient,
    appointment_type: AppointmentType,
    start: datetime,
    exclude: Collection[int] = (),
) -> None:
    """A single session keeps ``min_days_since_last`` calendar days (clinic time) from the
    patient's nearest session of the kind it follows, before or after it."""
    zone = appointment_type.location.zone
    days = protocol.min_days_since_last
    kinds = _INTERVAL_KINDS.get(appointment_type.kind, frozenset({appointment_type.kind}))
    local = start.astimezone(zone)
    # Calendar days, not 24-hour periods: a session on the 1st and one on the 15th are 14 days
    # apart whatever their times. The bounds are generous; the exact test is below, locally.
    near = Appointment.objects.filter(
        patient=patient,
        appointment_type__kind__in=sorted(kinds),
        status__in=sorted(ACTIVE_STATUSES),
        start__gt=start - timedelta(days=days + 1),
        start__lt=start + timedelta(days=days + 1),
    )
    for other in near.exclude(pk__in=exclude).values_list("start", flat=True):
        apart = abs((other.astimezone(zone).date() - local.date()).days)
        if apart < days:
            raise NotEligible(
                f"A single session needs at least {days} days after the last one; the nearest "
                f"is on {other.astimezone(zone):%Y-%m-%d}.",
                field="start",
            )


def plan_in_force(
    *,
    patient: Patient,
    appointment_type: AppointmentType,
    now: datetime,
    start: datetime | None = None,
    moving: Appointment | None = None,
) -> TreatmentPlan:
    """The plan that lets ``patient`` book one more visit of ``appointment_type`` (or move
    ``moving`` to ``start``: it keeps its session and its first-dose check).

    Raises ``NotEligible`` (422) saying why not: no decision on file; declined since the last
    approval; no approval for this type; revoked; expired (``valid_until`` passed, clinic time);
    every authorised session booked or given; a Spravato first dose without REMS enrolment.
    With ``start``, also when the visit falls after ``valid_until`` and, for a protocol with a
    ``min_days_since_last`` (boosters), too close to the patient's previous session.

    The plan returned carries ``sessions_used`` (counted as :func:`plans_with_usage` does).
    Call it inside the booking's transaction after the patient row is locked and before the
    appointment row is written, so two bookings for the same patient cannot both take the last
    authorised session and the new visit does not count against itself.
    """
    latest = (
        EligibilityDecision.objects.filter(patient=patient).order_by("-decided_at", "-pk").first()
    )
    if latest is None:
        raise NotEligible(
            "No eligibility decision is on file: the patient needs a consultation and a "
            "prescriber's approval first.",
            field="patient",
        )
    plan = (
        plans_with_usage(
            TreatmentPlan.objects.filter(
                patient=patient, protocol__appointment_type=appointment_type
            )
        )
        .order_by("-decision__decided_at", "-pk")
        .first()
    )
    declined_since = latest.outcome == DecisionOutcome.DECLINED and (
        plan is None or plan.decision.decided_at <= latest.decided_at
    )
    if declined_since:
        local = latest.decided_at.astimezone(appointment_type.location.zone)
        raise NotEligible(
            f"Treatment was declined on {local:%Y-%m-%d}.",
            field="patient",
        )
    if plan is None:
        raise NotEligible(
            f"The patient has no approval for {appointment_type.public_name}.",
            field="appointment_type",
        )
    _check_plan(
        plan,
        patient=patient,
        appointment_type=appointment_type,
        start=start,
        now=now,
        moving=moving,
    )
    return plan


def treatment_check(
    *,
    patient: Patient,
    appointment_type: AppointmentType,
    start: datetime,
    now: datetime,
    moving: Appointment | None = None,
    by: Any = None,
    override_reason: str = "",
) -> list[str]:
    """The one rule check every treatment visit passes, booked or moved, whatever the path:
    the staff API and the desk's calendar, the waitlist, the patient's link, series booking and
    session moves all call it (the series services for each session).

    The patient must be at least the type's ``min_age_years`` on the visit's local day. A type
    that needs approval needs a plan in force for the visit (:func:`plan_in_force`).
    Every treatment keeps its spacing from the patient's other treatment visits
    (:func:`spacing_check`): at most one a day, and sessions of one type at least the plan's
    ``min_gap_days`` apart. ``moving`` is the visit being moved: it is not its own neighbour,
    and a series session's spacing from its own series is the series' cadence, which a
    prescriber may override (``booking.series.changes``).

    The age and the spacing are clinical judgements: a prescriber (``by``) may override them
    with ``override_reason``, and the rules overridden are returned for the visit's history
    (:func:`rules_override_record`); anybody else giving a reason is refused (403). A plan not
    in force needs a decision, not an override. Call it after the patient row is locked, before
    the visit is written.
    """
    overridden: list[str] = []

    def judged(rule: Callable[[], None]) -> None:
        try:
            rule()
        except NotEligible as refused:
            if not override_reason:
                raise
            if not is_prescriber(by):
                raise PermissionDenied("Only a prescriber can override a clinical rule.") from None
            overridden.append(refused.message)

    judged(lambda: age_check(patient=patient, appointment_type=appointment_type, start=start))
    plan = None
    if appointment_type.needs_approval:
        plan = plan_in_force(
            patient=patient, appointment_type=appointment_type, now=now, start=start, moving=moving
        )
    if appointment_type.kind in TREATMENT_KINDS:
        exclude: set[int] = set()
        if moving is not None:
            exclude.add(moving.pk)
            if moving.series_id is not None:
                exclude.update(
                    Appointment.objects.filter(series_id=moving.series_id).values_list(
                        "pk", flat=True
                    )
                )
        min_gap_days = plan.protocol.min_gap_days if plan is not None else 1
        judged(
            lambda: spacing_check(
                patient=patient,
                appointment_type=appointment_type,
                start=start,
                min_gap_days=min_gap_days,
                exclude=exclude,
            )
        )
    return overridden


def rules_override_record(
    *, appointment: Appointment, overridden: list[str], by: Any, reason: str, now: datetime
) -> None:
    """Keep a prescriber's override of clinical rules in the visit's history: the reason, and
    each rule it set aside."""
    if overridden:
        detail = f"{' '.join(reason.split())} (overriding: {' '.join(overridden)})"
        AppointmentEvent.objects.create(
            appointment=appointment, kind="rule_override", by=by, at=now, detail=detail[:500]
        )


def age_check(*, patient: Patient, appointment_type: AppointmentType, start: datetime) -> None:
    """Refuse a visit for a patient younger than the type's ``min_age_years`` on its local day
    (a birthday counts from the start of that day where the clinic is)."""
    least = appointment_type.min_age_years
    if not least:
        return
    day = start.astimezone(appointment_type.location.zone).date()
    born = patient.date_of_birth
    age = day.year - born.year - ((day.month, day.day) < (born.month, born.day))
    if age < least:
        raise NotEligible(
            f"{appointment_type.public_name} is for patients aged {least} or over on the day of "
            "the visit.",
            field="patient",
        )


def spacing_check(
    *,
    patient: Patient,
    appointment_type: AppointmentType,
    start: datetime,
    min_gap_days: int,
    exclude: Collection[int] = (),
) -> None:
    """Refuse a treatment at ``start`` too close to another of the patient's treatment visits
    (:func:`treatment_days_taken` says which days are)."""
    day = start.astimezone(appointment_type.location.zone).date()
    taken = treatment_days_taken(
        patient=patient,
        appointment_type=appointment_type,
        first=day,
        last=day,
        min_gap_days=min_gap_days,
        exclude=exclude,
    )
    if day in taken:
        raise NotEligible(taken[day], field="start")


def treatment_days_taken(
    *,
    patient: Patient,
    appointment_type: AppointmentType,
    first: date,
    last: date,
    min_gap_days: int,
    exclude: Collection[int] = (),
) -> dict[date, str]:
    """The local days from ``first`` to ``last`` on which a treatment of ``appointment_type``
    would break the patient's spacing, each with the reason: a day that has another treatment
    visit, whatever its type (at most one a day), and a day fewer than ``min_gap_days`` calendar
    days from a visit of this type (2 is "a free day between sessions"; 1 allows consecutive
    days). Series proposals leave these days out; bookings and moves are refused on them."""
    zone = appointment_type.location.zone
    reach = timedelta(days=max(min_gap_days, 1) + 1)
    # Generous bounds in UTC; the exact test is on local calendar days below.
    lo = datetime.combine(first, time(), tzinfo=zone) - reach
    hi = datetime.combine(last, time(), tzinfo=zone) + reach + timedelta(days=1)
    near = (
        Appointment.objects.filter(
            patient=patient,
            appointment_type__kind__in=sorted(TREATMENT_KINDS),
            status__in=sorted(ACTIVE_STATUSES),
            start__gt=lo,
            start__lt=hi,
        )
        .exclude(pk__in=exclude)
        .values_list("start", "appointment_type_id")
    )
    taken: dict[date, str] = {}
    for other, type_id in sorted(near):
        local = other.astimezone(zone)
        if type_id == appointment_type.pk:
            for apart in range(1, min_gap_days):
                for day in (
                    local.date() - timedelta(days=apart),
                    local.date() + timedelta(days=apart),
                ):
                    taken.setdefault(
                        day,
                        f"Sessions of this treatment need at least {min_gap_days} days between "
                        f"their starts; the patient has one on {local:%Y-%m-%d}.",
                    )
        # The same day is refused whatever else is said about it.
        taken[local.date()] = (
            f"At most one treatment a day: the patient has one on {local:%Y-%m-%d} at "
            f"{local:%H:%M}."
        )
    return {day: reason for day, reason in taken.items() if first <= day <= last}


def booster_check(
    *, patient: Patient, plan: TreatmentPlan, start: datetime, now: datetime | None = None
) -> TreatmentPlan:
    """Whether a single booster session at ``start`` may be booked under ``plan``.

    The plan must be in force (an expired or revoked one needs a new approval), have a session
    left, and the session must keep the protocol's ``min_days_since_last`` from the patient's
    nearest session. Raises ``NotEligible`` (422) saying which; returns the plan.
    """
    now = now or timezone.now()
    plan = plans_with_usage(TreatmentPlan.objects.filter(pk=plan.pk)).get()
    appointment_type = plan.protocol.appointment_type
    _check_plan(plan, patient=patient, appointment_type=appointment_type, start=start, now=now)
    return plan
