"""Reminder rules as a clinic's admin edits them: saving a type's rules, and the background
re-plan of its future visits that a save starts.

A save writes the rules and a :class:`ReplanJob` in one transaction; the job runs after commit
(``notifications.tasks.replan_reminders``). It re-plans the visits in batches of ids, each batch
in its own short transaction, so bookings go on meanwhile: a visit booked during the re-plan is
planned by the new rules already (they committed first), and a batch that meets it plans it
again to the same rows.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import F, Max
from django.utils import timezone

from booking.models import Appointment
from notifications.models import MessageKind, ReminderRule, ReplanJob, ReplanStatus
from notifications.replan import reminder_rules_replan
from scheduling.models import AppointmentType

logger = logging.getLogger(__name__)

# The reminders an admin sets per type, in the order a patient gets them. The notices of a
# change (booked, moved, cancelled) are due at once and have no rule.
REMINDER_KINDS: tuple[MessageKind, ...] = (
    MessageKind.PREP,
    MessageKind.EVENING_BEFORE,
    MessageKind.CONFIRM_REQUEST,
    MessageKind.MORNING_OF,
    MessageKind.FOLLOW_UP,
)

# Visits re-planned per transaction by a background job: small enough that a batch holds its
# rows' locks for a moment only.
REPLAN_BATCH = 500

_RULE_FIELDS = (
    "is_active",
    "email",
    "sms",
    "offset_minutes",
    "local_time",
    "days_before",
    "late_cutoff_minutes",
)


@dataclass(frozen=True)
class RuleSettings:
    """One kind's rule as the admin set it. Without a timing (neither ``offset_minutes`` nor
    ``local_time``) it can only switch an existing rule off, keeping the timing it had."""

    kind: str
    is_active: bool
    email: bool
    sms: bool
    offset_minutes: int | None
    local_time: time | None
    days_before: int
    late_cutoff_minutes: int

    @property
    def has_timing(self) -> bool:
        return self.offset_minutes is not None or self.local_time is not None


def reminder_rules_save(
    *,
    appointment_type: AppointmentType,
    rules: Iterable[RuleSettings],
    requested_by: User | None,
    now: datetime | None = None,
) -> tuple[dict[str, list[str]], ReplanJob | None]:
    """Save the reminder rules of ``appointment_type``.

    Returns the fields changed per kind and, when any rule changed, the :class:`ReplanJob` that
    re-plans those kinds' messages for the type's future visits: queue it after commit with
    ``notifications.tasks.replan_job_queue``. Rules not changed are not written, and their
    kinds' messages are not re-planned.
    """
    now = now or timezone.now()
    changed: dict[str, list[str]] = {}
    with transaction.atomic():
        existing = {
            rule.kind: rule
            for rule in ReminderRule.objects.select_for_update().filter(
                appointment_type=appointment_type
            )
        }
        for wanted in rules:
            rule = existing.get(wanted.kind)
            if not wanted.has_timing:
                if rule is not None and rule.is_active and not wanted.is_active:
                    rule.is_active = False
                    rule.save(update_fields=["is_active"])
                    changed[wanted.kind] = ["is_active"]
                continue
            if rule is None:
                rule = ReminderRule(appointment_type=appointment_type, kind=wanted.kind)
            fields = [name for name in _RULE_FIELDS if getattr(rule, name) != getattr(wanted, name)]
            if rule.pk is not None and not fields:
                continue
            for name in _RULE_FIELDS:
                setattr(rule, name, getattr(wanted, name))
            rule.full_clean(exclude=["appointment_type"])
            rule.save()
            changed[wanted.kind] = fields
        job = None
        if changed:
            job = ReplanJob.objects.create(
                appointment_type=appointment_type,
                kinds=sorted(changed),
                requested_by=requested_by,
                created_at=now,
            )
    return changed, job


def replan_job_run(
    *, job_id: int, batch_size: int = REPLAN_BATCH, now: datetime | None = None
) -> ReplanJob | None:
    """Run one re-plan job: every future active visit of its type, ``batch_size`` at a time.

    Each batch commits on its own and counts itself in ``done``, so the setup page's progress
    bar shows what is already re-planned. A job run again (a worker lost mid-way redelivers
    it) starts over: re-planning a visit twice leaves the same rows. A finished job is not run
    again. ``now`` pins the clock (tests); otherwise each batch plans at its own moment.
    """
    claimed = ReplanJob.objects.filter(
        pk=job_id, status__in=[ReplanStatus.QUEUED, ReplanStatus.RUNNING]
    ).update(status=ReplanStatus.RUNNING, done=0, error="")
    job = ReplanJob.objects.filter(pk=job_id).first()
    if not claimed or job is None:
        return job
    visits = Appointment.objects.active().filter(
        appointment_type_id=job.appointment_type_id, start__gt=now or timezone.now()
    )
    # Visits booked after this point are planned by the new rules already: the job's work is
    # the visits there are now.
    last_id = visits.aggregate(last=Max("id"))["last"] or 0
    visits = visits.filter(id__lte=last_id)
    ReplanJob.objects.filter(pk=job_id).update(total=visits.count())
    try:
        after = 0
        while ids := list(
            visits.filter(id__gt=after).order_by("id").values_list("id", flat=True)[:batch_size]
        ):
            reminder_rules_replan(
                appointment_type_id=job.appointment_type_id,
                kinds=job.kinds,
                now=now or timezone.now(),
                ids=(ids[0], ids[-1]),
            )
            after = ids[-1]
            ReplanJob.objects.filter(pk=job_id).update(done=F("done") + len(ids))
    except Exception as exc:
        logger.exception("re-plan job %s failed", job_id)
        ReplanJob.objects.filter(pk=job_id).update(
            status=ReplanStatus.FAILED,
            error=f"{type(exc).__name__}: {exc}"[:500],
            finished_at=timezone.now(),
        )
    else:
        ReplanJob.objects.filter(pk=job_id).update(
            status=ReplanStatus.DONE, finished_at=timezone.now()
        )
    job.refresh_from_db()
    return job
