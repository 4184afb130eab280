"""Re-planning every future visit of one type after its reminder rules changed.

Two paths with one result. On PostgreSQL (:func:`replan_sql`) the plan is set-based: for every
(visit, rule, channel) one statement computes exactly what the Python planner
(``notifications.outbox.reminder_rows`` and ``notifications.planning``) would write, merges it
with the rows already there in (visit, kind, channel) order and keeps only the difference, which
a second statement writes: new rows inserted, changed rows updated, pending rows no rule plans
any more cancelled. Rows equal to their plan are not touched, so a rule change rewrites the rows
of that rule and no others; given the kinds of the rules that changed, neither path even reads
the other kinds' rows. Elsewhere (:func:`replan_python`, SQLite) the visits go through the
Python planner in batches; it is also the reference the set-based path is tested against.

Wall-clock instants are computed once per clinic and local day (a small calendar) rather than
once per message. PostgreSQL and Python read a local time that the clocks skip (spring forward)
the same way, with the offset in force before the change; a time the clocks repeat (fall back)
PostgreSQL reads as its *second* occurrence, Python (``fold=0``) as its first. The calendar
corrects that: when the same local time also existed under the earlier offset, the earlier
instant is taken.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db import connection, transaction
from django.db.models import Case, Value, When
from django.utils import timezone

from booking.models import ACTIVE_STATUSES, Appointment, AppointmentStatus
from notifications.models import (
    CHANGE_KINDS,
    Channel,
    MessageKind,
    MessageStatus,
    OutboundMessage,
    ReminderRule,
)
from notifications.outbox import (
    CATCH_UP_KINDS,
    outbox_upsert,
    patient_channels,
    reminder_rows,
    rules_in_force,
)
from notifications.planning import FASTING_NOTICE, QUIET_MARGIN
from scheduling.models import AppointmentType

# Exactly the wording of the Python planner, so both paths leave the same rows.
LATE_DETAIL = "its time had passed when the visit was booked"
RULE_REMOVED = "its rule was removed"
NO_LONGER_PLANNED = "no longer planned by its rule"

# Visits re-planned per statement, so that the difference stays small.
SLICE = 100_000
# Enough for one slice's sorts to stay in memory; local to the re-plan's transaction.
WORK_MEM = "128MB"


def _wall_clock(local: str, zone: str) -> str:
    """SQL for the UTC instant of the local timestamp ``local`` in ``zone``, as Python's
    ``datetime.combine(day, time, tzinfo=zone)`` (fold=0) reads it."""
    return f"""(
        SELECT CASE WHEN earlier < later AND earlier AT TIME ZONE zone = stamp
                    THEN earlier ELSE later END
        FROM (
            SELECT stamp, zone, later,
                   (stamp - ((later - interval '1 day') AT TIME ZONE zone
                             - (later - interval '1 day') AT TIME ZONE 'UTC'))
                       AT TIME ZONE 'UTC' AS earlier
            FROM (SELECT {local} AS stamp, {zone} AS zone, {local} AT TIME ZONE {zone} AS later) s
        ) candidates
    )"""  # noqa: S608 - fixed fragments; values are bound parameters


_RULES = """
unnest(
    %(kinds)s::text[], %(emails)s::boolean[], %(smss)s::boolean[], %(offsets)s::integer[],
    %(local_times)s::time[], %(days_before)s::integer[], %(cutoffs)s::integer[]
) WITH ORDINALITY AS r(kind, email, sms, offset_minutes, local_time, days_before, cutoff, n)
"""

# The wall-clock instants a clinic's visits need, once per local day rather than once per
# message: walls[d * rules + n] is rule n's instant for a visit on local day first + d,
# quiet[d + 1] where a text due in the quiet hours that begin on day first + d moves to.
_CALENDAR = f"""
SELECT ARRAY(
           SELECT CASE WHEN r.local_time IS NOT NULL THEN
               {_wall_clock("(%(first)s::date + d - r.days_before + r.local_time)", "%(zone)s")}
           END
           FROM generate_series(0, %(days)s) d CROSS JOIN {_RULES}
           ORDER BY d, r.n
       ),
       ARRAY(
           SELECT {_wall_clock("(%(first)s::date + d + %(quiet_start)s::time)", "%(zone)s")}
                  - %(quiet_margin)s
           FROM generate_series(0, %(days)s) d
           ORDER BY d
       )
"""  # noqa: S608 - fixed fragments; values are bound parameters

# Every message the rules plan for one clinic's visits in one slice of ids, against the rows
# there are, both in (visit, kind, channel) order so that they merge without a sort or a hash;
# what differs goes to ``replan_difference``.
_DIFFERENCE = f"""
WITH
planned AS (
    SELECT c.id AS appointment_id, c.kind, c.channel, c.version, c.cutoff,
           CASE WHEN c.late THEN %(skipped)s ELSE %(pending)s END AS status,
           CASE WHEN c.late THEN %(late_detail)s ELSE '' END AS detail,
           GREATEST(c.sheltered_at, %(now)s) AS due_at
    FROM (
        SELECT k.id, k.kind, k.channel, k.version, k.cutoff,
               -- Texts never go out in quiet hours: one due inside them moves to just before
               -- they began.
               CASE WHEN k.local IS NULL OR %(quiet_start)s = %(quiet_end)s THEN k.at
                    WHEN %(quiet_start)s < %(quiet_end)s
                         AND (k.local::time < %(quiet_start)s OR k.local::time >= %(quiet_end)s)
                    THEN k.at
                    WHEN %(quiet_start)s > %(quiet_end)s
                         AND k.local::time < %(quiet_start)s AND k.local::time >= %(quiet_end)s
                    THEN k.at
                    WHEN %(quiet_start)s > %(quiet_end)s AND k.local::time < %(quiet_end)s
                    THEN (%(quiet)s::timestamptz[])[k.local::date - %(first)s::date]
                    ELSE (%(quiet)s::timestamptz[])[k.local::date - %(first)s::date + 1]
               END AS sheltered_at,
               -- Lateness is judged on the rule's own time, before any move out of quiet
               -- hours.
               k.at < %(now)s
               AND (k.kind <> ALL(%(catch_up_kinds)s::text[])
                    OR %(now)s - k.at > k.cutoff * interval '1 minute') AS late
        FROM (
            SELECT d.id, d.version, d.kind, d.cutoff, d.at, m.channel,
                   CASE WHEN m.channel = %(sms)s THEN d.at AT TIME ZONE %(zone)s END AS local
            FROM (
                SELECT a.id, a.start, a.version, r.kind, r.cutoff, r.email, r.sms,
                       p.has_email, p.has_sms,
                       CASE WHEN r.offset_minutes IS NOT NULL
                            THEN a.start - r.offset_minutes * interval '1 minute'
                            -- An evening-before message by the clock comes early enough to
                            -- be read before the fast begins.
                            WHEN r.kind = %(evening_before)s AND %(fasting_hours)s > 0
                            THEN LEAST(
                                (%(walls)s::timestamptz[])[
                                    ((a.start AT TIME ZONE %(zone)s)::date - %(first)s::date)
                                    * %(rule_count)s + r.n],
                                a.start - %(fasting_hours)s * interval '1 hour'
                                - %(fasting_notice)s)
                            ELSE (%(walls)s::timestamptz[])[
                                ((a.start AT TIME ZONE %(zone)s)::date - %(first)s::date)
                                * %(rule_count)s + r.n]
                       END AS at
                FROM booking_appointment a
                CROSS JOIN LATERAL (
                    SELECT p.email <> '' AND p.email_reminders AS has_email,
                           p.sms_consent AND p.sms_reminders AND p.phone <> '' AS has_sms
                    FROM booking_patient p WHERE p.id = a.patient_id
                    OFFSET 0
                ) p
                CROSS JOIN LATERAL (
                    SELECT * FROM {_RULES}
                    -- A visit the patient has confirmed is not asked to confirm again.
                    WHERE NOT (r.kind = %(confirm_request)s AND a.status <> %(booked)s)
                    ORDER BY r.kind
                    OFFSET 0
                ) r
                WHERE a.appointment_type_id = %(type_id)s
                  AND a.location_id = %(location_id)s
                  AND a.status = ANY(%(active)s::text[])
                  AND a.start > %(now)s
                  AND a.id BETWEEN %(first_id)s AND %(last_id)s
                OFFSET 0
            ) d
            CROSS JOIN LATERAL unnest(ARRAY[
                CASE WHEN d.email AND d.has_email THEN %(email)s END,
                CASE WHEN d.sms AND d.has_sms THEN %(sms)s END
            ]) m(channel)
            WHERE m.channel IS NOT NULL
              AND (d.kind = %(follow_up)s OR d.at < d.start)
            OFFSET 0
        ) k
    ) c
    ORDER BY c.id, c.kind, c.channel
),
existing AS (
    -- Visit by visit through the unique index, so that other visits' rows are never read.
    SELECT o.id, o.appointment_id, o.kind, o.channel, o.status, o.due_at,
           o.appointment_version, o.late_cutoff_minutes, o.attempts, o.claimed_at, o.sent_at,
           o.provider_id, o.detail, a.status AS visit_status
    FROM booking_appointment a
    JOIN notifications_outboundmessage o ON o.appointment_id = a.id
    WHERE a.appointment_type_id = %(type_id)s
      AND a.location_id = %(location_id)s
      AND a.status = ANY(%(active)s::text[])
      AND a.start > %(now)s
      AND a.id BETWEEN %(first_id)s AND %(last_id)s
      AND o.kind = ANY(%(scope)s::text[])
    ORDER BY o.appointment_id, o.kind, o.channel
)
INSERT INTO replan_difference
SELECT p.appointment_id, p.kind, p.channel, p.version, p.cutoff, p.status, p.detail,
       p.due_at, e.id, e.kind
FROM planned p
FULL JOIN existing e
  ON e.appointment_id = p.appointment_id AND e.kind = p.kind AND e.channel = p.channel
WHERE (e.id IS NULL)
   OR (p.appointment_id IS NOT NULL
       -- What was sent (or is being sent) for this very version stays as it is.
       AND NOT (e.appointment_version = p.version AND e.status IN (%(sent)s, %(sending)s))
       AND (e.status, e.due_at, e.appointment_version, e.late_cutoff_minutes, e.attempts,
            e.claimed_at, e.sent_at, e.provider_id, e.detail)
           IS DISTINCT FROM
           (p.status, p.due_at, p.version, p.cutoff, 0, NULL::timestamptz, NULL::timestamptz,
            '', p.detail))
   -- A pending reminder that no rule plans any more (a visit the patient confirmed keeps
   -- its request to confirm as it is).
   OR (p.appointment_id IS NULL
       AND e.status = %(pending)s
       AND NOT (e.kind = %(confirm_request)s AND e.visit_status <> %(booked)s))
"""  # noqa: S608 - fixed fragments; values are bound parameters

_DIFFERENCE_TABLE = """
CREATE TEMP TABLE IF NOT EXISTS replan_difference (
    appointment_id bigint, kind text, channel text, version integer, cutoff integer,
    status text, detail text, due_at timestamptz, existing_id bigint, existing_kind text
) ON COMMIT DROP
"""

# The difference written: new rows inserted, changed ones updated (rows sent meanwhile, or
# re-planned by a booking meanwhile, are checked again as they are now).
_WRITE = """
WITH inserted AS (
    INSERT INTO notifications_outboundmessage AS o (
        appointment_id, location_id, kind, channel, status, due_at, appointment_version,
        late_cutoff_minutes, attempts, claimed_at, sent_at, recipient, provider_id, detail,
        created_at, updated_at
    )
    SELECT d.appointment_id,
           (SELECT a.location_id FROM booking_appointment a WHERE a.id = d.appointment_id),
           d.kind, d.channel, d.status, d.due_at, d.version, d.cutoff, 0, NULL, NULL, '', '',
           d.detail, %(now)s, %(now)s
    FROM replan_difference d
    WHERE d.existing_id IS NULL
    ON CONFLICT (appointment_id, kind, channel) DO UPDATE
    SET status = EXCLUDED.status, due_at = EXCLUDED.due_at,
        appointment_version = EXCLUDED.appointment_version,
        late_cutoff_minutes = EXCLUDED.late_cutoff_minutes, attempts = 0, claimed_at = NULL,
        sent_at = NULL, provider_id = '', detail = EXCLUDED.detail,
        updated_at = EXCLUDED.updated_at
    WHERE o.appointment_version < EXCLUDED.appointment_version
       OR (o.appointment_version = EXCLUDED.appointment_version
           AND o.status NOT IN (%(sent)s, %(sending)s))
)
UPDATE notifications_outboundmessage o
SET status = COALESCE(d.status, %(cancelled)s),
    due_at = COALESCE(d.due_at, o.due_at),
    appointment_version = COALESCE(d.version, o.appointment_version),
    late_cutoff_minutes = COALESCE(d.cutoff, o.late_cutoff_minutes),
    attempts = CASE WHEN d.appointment_id IS NULL THEN o.attempts ELSE 0 END,
    claimed_at = CASE WHEN d.appointment_id IS NULL THEN o.claimed_at END,
    sent_at = CASE WHEN d.appointment_id IS NULL THEN o.sent_at END,
    provider_id = CASE WHEN d.appointment_id IS NULL THEN o.provider_id ELSE '' END,
    detail = CASE WHEN d.appointment_id IS NOT NULL THEN d.detail
                  WHEN d.existing_kind = ANY(%(kinds)s::text[]) THEN %(no_longer_planned)s
                  ELSE %(rule_removed)s END,
    updated_at = %(now)s
FROM replan_difference d
WHERE o.id = d.existing_id
  AND CASE WHEN d.appointment_id IS NULL THEN o.status = %(pending)s
           ELSE o.appointment_version <= d.version
                AND NOT (o.appointment_version = d.version
                         AND o.status IN (%(sent)s, %(sending)s)) END
"""


def replan_rules(
    *, appointment_type_id: int, kinds: Collection[str] | None
) -> tuple[list[ReminderRule], list[str]]:
    """The active rules of ``kinds`` (None: of every kind) and the kinds of reminder whose rows
    a re-plan of them may write."""
    rules = rules_in_force(appointment_type_id)
    if kinds is not None:
        rules = [rule for rule in rules if rule.kind in kinds]
    scope = MessageKind.values if kinds is None else kinds
    return rules, sorted(set(scope) - CHANGE_KINDS)


def replan_params(
    *, appointment_type: AppointmentType, rules: list[ReminderRule], scope: list[str], now: datetime
) -> dict[str, Any]:
    fasting_hours = appointment_type.fasting_solids_hours or 0
    offsets = [abs(rule.offset_minutes or 0) for rule in rules]
    # Days either side of the visits' local dates that a reminder or a quiet-hours move may
    # reach: the longest offset, days-before and fast, and room for a move across midnight.
    pad = (
        max([0, *offsets]) // (24 * 60)
        + max([0, *(rule.days_before for rule in rules)])
        + (fasting_hours + 2) // 24
        + 3
    )
    return {
        "type_id": appointment_type.pk,
        "now": now,
        "active": sorted(ACTIVE_STATUSES),
        "kinds": [rule.kind for rule in rules],
        "emails": [rule.email for rule in rules],
        "smss": [rule.sms for rule in rules],
        "offsets": [rule.offset_minutes for rule in rules],
        "local_times": [rule.local_time for rule in rules],
        "days_before": [rule.days_before for rule in rules],
        "cutoffs": [rule.late_cutoff_minutes for rule in rules],
        "rule_count": len(rules),
        "pad": pad,
        "fasting_hours": fasting_hours,
        "fasting_notice": FASTING_NOTICE,
        "quiet_margin": QUIET_MARGIN,
        "email": Channel.EMAIL.value,
        "sms": Channel.SMS.value,
        "scope": scope,
        "catch_up_kinds": sorted(CATCH_UP_KINDS),
        "confirm_request": MessageKind.CONFIRM_REQUEST.value,
        "evening_before": MessageKind.EVENING_BEFORE.value,
        "follow_up": MessageKind.FOLLOW_UP.value,
        "booked": AppointmentStatus.BOOKED.value,
        "pending": MessageStatus.PENDING.value,
        "skipped": MessageStatus.SKIPPED.value,
        "sent": MessageStatus.SENT.value,
        "sending": MessageStatus.SENDING.value,
        "cancelled": MessageStatus.CANCELLED.value,
        "late_detail": LATE_DETAIL,
        "rule_removed": RULE_REMOVED,
        "no_longer_planned": NO_LONGER_PLANNED,
    }


_PLACES = """
SELECT a.location_id, l.timezone, l.quiet_hours_start, l.quiet_hours_end,
       min(a.start), max(a.start), min(a.id), max(a.id), count(*)
FROM booking_appointment a
JOIN scheduling_location l ON l.id = a.location_id
WHERE a.appointment_type_id = %(type_id)s
  AND a.status = ANY(%(active)s::text[])
  AND a.start > %(now)s
  AND a.id BETWEEN %(low_id)s AND %(high_id)s
GROUP BY a.location_id, l.timezone, l.quiet_hours_start, l.quiet_hours_end
"""


def replan_sql(
    *,
    appointment_type_id: int,
    now: datetime,
    kinds: Collection[str] | None = None,
    ids: tuple[int, int] | None = None,
) -> int:
    """Re-plan every future active visit of one type, set-based; returns how many visits.

    Same result as the Python planner: see the module's docstring. All in one transaction: per
    clinic, its calendar of wall-clock instants, then a slice of about ``SLICE`` visits (by id)
    at a time, the difference between plan and rows taken in one statement and written in two.
    """
    appointment_type = AppointmentType.objects.get(pk=appointment_type_id)
    rules, scope = replan_rules(appointment_type_id=appointment_type_id, kinds=kinds)
    params = replan_params(appointment_type=appointment_type, rules=rules, scope=scope, now=now)
    params["low_id"], params["high_id"] = ids or (0, ALL_IDS)
    visits = 0
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_PLACES, params)
        places = cursor.fetchall()
        if not places:
            return 0
        # Compiling these statements would cost more than running them; the rows they read
        # are in memory, and are best read in key order from the indexes.
        cursor.execute(
            "SELECT set_config('work_mem', %s, true), set_config('jit', 'off', true), "
            "set_config('random_page_cost', '1.1', true)",
            [WORK_MEM],
        )
        cursor.execute(_DIFFERENCE_TABLE)
        for location_id, zone_name, quiet_start, quiet_end, *span, count in places:
            zone = ZoneInfo(zone_name)
            first_start, last_start, first_id, last_id = span
            first = first_start.astimezone(zone).date() - timedelta(days=params["pad"])
            days = (last_start.astimezone(zone).date() - first).days + params["pad"]
            place = {
                **params,
                "location_id": location_id,
                "zone": zone_name,
                "quiet_start": quiet_start,
                "quiet_end": quiet_end,
                "first": first,
                "days": days,
            }
            cursor.execute(_CALENDAR, place)
            place["walls"], place["quiet"] = cursor.fetchone()
            step = max(1, (last_id - first_id + 1) * SLICE // count)
            for low in range(first_id, last_id + 1, step):
                last = min(low + step - 1, last_id)  # never past the visits asked for
                cursor.execute(_DIFFERENCE, {**place, "first_id": low, "last_id": last})
            visits += count
        # The rows that changed, found by primary key: never a pass over the whole table.
        cursor.execute(
            "SELECT set_config('enable_hashjoin', 'off', true), "
            "set_config('enable_mergejoin', 'off', true)"
        )
        cursor.execute(_WRITE, params)
        cursor.execute(
            "SELECT set_config('enable_hashjoin', 'on', true), "
            "set_config('enable_mergejoin', 'on', true)"
        )
        cursor.execute("DROP TABLE replan_difference")
    return visits


# Visits planned per round trip by the portable path.
BATCH = 500
# The widest range of visit ids: every visit.
ALL_IDS = 2**63 - 1


def replan_python(
    *,
    appointment_type_id: int,
    now: datetime,
    kinds: Collection[str] | None = None,
    ids: tuple[int, int] | None = None,
) -> int:
    """The same re-plan visit by visit through the Python planner, in batches of visits: the
    path for SQLite, and the reference the set-based statement is tested against."""
    rules, scope = replan_rules(appointment_type_id=appointment_type_id, kinds=kinds)
    ruled = {rule.kind for rule in rules}
    appointments = (
        Appointment.objects.active()
        .filter(appointment_type_id=appointment_type_id, start__gt=now)
        .filter(id__range=ids or (0, ALL_IDS))
        .select_related("location", "appointment_type", "patient")
        .order_by("id")
    )

    def replan(batch: list[Appointment]) -> None:
        by_id = {appointment.pk: appointment for appointment in batch}
        existing = list(
            OutboundMessage.objects.filter(appointment_id__in=by_id, kind__in=scope).values_list(
                "id", "appointment_id", "kind", "channel", "status", "appointment_version"
            )
        )

        def kept(appointment_id: int, kind: str) -> bool:
            # A visit the patient confirmed is not asked to confirm again.
            return not (
                kind == MessageKind.CONFIRM_REQUEST
                and by_id[appointment_id].status != AppointmentStatus.BOOKED
            )

        done = {
            (appointment_id, kind, channel)
            for _, appointment_id, kind, channel, status, version in existing
            if version == by_id[appointment_id].version
            and status in (MessageStatus.SENT, MessageStatus.SENDING)
        }
        rows = [
            row
            for appointment in batch
            for row in reminder_rows(
                appointment, patient_channels(appointment.patient), rules, now=now
            )
            if kept(appointment.pk, row.kind)
        ]
        planned = {(row.appointment_id, row.kind, row.channel) for row in rows}
        stale: dict[str, list[int]] = {RULE_REMOVED: [], NO_LONGER_PLANNED: []}
        for message_id, appointment_id, kind, channel, status, _ in existing:
            if (
                status == MessageStatus.PENDING
                and (appointment_id, kind, channel) not in planned
                and kept(appointment_id, kind)
            ):
                stale[NO_LONGER_PLANNED if kind in ruled else RULE_REMOVED].append(message_id)
        if stale[RULE_REMOVED] or stale[NO_LONGER_PLANNED]:
            # One statement for both reasons, so the count of statements stays the same
            # however many visits a batch holds.
            OutboundMessage.objects.filter(
                id__in=stale[RULE_REMOVED] + stale[NO_LONGER_PLANNED]
            ).update(
                status=MessageStatus.CANCELLED,
                detail=Case(
                    When(id__in=stale[RULE_REMOVED] or [0], then=Value(RULE_REMOVED)),
                    default=Value(NO_LONGER_PLANNED),
                ),
                updated_at=now,
            )
        outbox_upsert(
            [row for row in rows if (row.appointment_id, row.kind, row.channel) not in done]
        )

    count = 0
    batch: list[Appointment] = []
    with transaction.atomic():
        for appointment in appointments.iterator(chunk_size=BATCH):
            batch.append(appointment)
            if len(batch) == BATCH:
                replan(batch)
                count, batch = count + len(batch), []
        if batch:
            replan(batch)
            count += len(batch)
    return count


def reminder_rules_replan(
    *,
    appointment_type_id: int,
    kinds: Collection[str] | None = None,
    now: datetime | None = None,
    ids: tuple[int, int] | None = None,
) -> int:
    """Re-plan the reminders of every future visit of one type after its rules changed.

    Returns how many appointments were re-planned. Each is planned as if just booked, so the
    result is exactly what a booking now would get, except that rows already sent (or being
    sent) for the visit's current version stay as they are, a visit the patient has confirmed
    keeps its request-to-confirm rows as they are, and a pending reminder no rule plans any
    more (rule removed, channel switched off) is cancelled. On PostgreSQL one set-based
    statement does it; elsewhere the visits are planned in Python, in batches, with the same
    result (:mod:`notifications.replan`).

    ``kinds`` limits the re-plan to the reminders of those kinds, for a change to their rules
    only: a rule's timing and channels decide its own kind's rows and no other's (the type's
    fasting time, its quiet hours or a patient's channels are not rules: re-plan every kind).

    ``ids`` (first, last) limits it to the visits with ids in that range, for a re-plan run
    batch by batch, each in its own short transaction (``notifications.rules``).
    """

    now = now or timezone.now()
    replan = replan_sql if connection.vendor == "postgresql" else replan_python
    return replan(appointment_type_id=appointment_type_id, now=now, kinds=kinds, ids=ids)
