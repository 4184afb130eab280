"""What a patient may book a series for: the plans in force with no series running under them."""

from __future__ import annotations

from datetime import datetime

from booking.eligibility import plan_in_force
from booking.errors import NotEligible
from booking.models import Patient, Series, SeriesStatus, TreatmentPlan


def series_offers(*, patient: Patient, now: datetime) -> list[TreatmentPlan]:
    """The plans ``patient`` may book a series under through their link: in force for their
    type (by :func:`booking.eligibility.plan_in_force`, the gate every booking passes), of more than
    one session, and with no series booked or on hold under them."""
    candidates = (
        TreatmentPlan.objects.filter(
            patient=patient, revoked_at__isnull=True, protocol__sessions__gt=1
        )
        .select_related("patient", "protocol__appointment_type__location")
        .order_by("pk")
    )
    offers = []
    for plan in candidates:
        try:
            in_force = plan_in_force(
                patient=patient, appointment_type=plan.protocol.appointment_type, now=now
            )
        except NotEligible:
            continue
        if in_force.pk != plan.pk:
            continue  # replaced by a newer approval for the same type
        running = Series.objects.filter(
            plan=plan, status__in=[SeriesStatus.BOOKED, SeriesStatus.ON_HOLD]
        )
        if not running.exists():
            offers.append(plan)
    return offers
