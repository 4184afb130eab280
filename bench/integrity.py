"""The integrity report after a load run (``bench/load.py``), also usable on its own.

Checks, against the database of ``DATABASE_URL`` and the journal the load client kept:

1. **No overlaps**: no two active allocations of one resource lane overlap in time (a self-join
   with ``tstzrange &&``), and no patient holds two overlapping active visits.
2. **No lost bookings**: every booking the client got a 201 for exists, in the state the client
   last saw acknowledged (active, moved to the acknowledged time, or cancelled by the scenario);
   every visit in the database was either acknowledged or answered by a dropped connection or a
   5xx (committed, answer lost). Anything else is a phantom.
3. **Reminders planned**: every active future visit has the outbox rows the planner gives it:
   the booking confirmation (and the notice of a move) on each of the patient's channels, and
   each rule's reminder whose time is still ahead, for the visit's current version and time.
   Cancelled visits have nothing left to send but the cancellation notice.
4. **Nothing sent twice**: per (visit, kind, channel) at most one sent row; per message at most
   one successful delivery attempt for change notices (one per version of the visit for
   reminders); the mail and SMS files hold no message twice (links masked: each send issues a
   new one), and exactly as many messages as successful attempts recorded.
5. **Delivered** (with ``--require-drained``): nothing due is left unsent.

Run: DATABASE_URL=postgres://postgres@127.0.0.1:5432/chairside_load \\
     .venv/bin/python -m bench.integrity --journal var/load/journal.jsonl --var-dir var/load
Prints one JSON object; exits 1 when any check fails.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import json
import re
import sys
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import setup_django

_OVERLAPPING_ALLOCATIONS = """
SELECT count(*) FROM booking_allocation a
JOIN booking_allocation b
  ON a.resource_id = b.resource_id AND a.lane = b.lane AND a.id < b.id
 AND tstzrange(a.start, a."end") && tstzrange(b.start, b."end")
WHERE a.active AND b.active
"""

_OVERLAPPING_VISITS = """
SELECT count(*) FROM booking_appointment a
JOIN booking_appointment b
  ON a.patient_id = b.patient_id AND a.id < b.id
 AND tstzrange(a.start, a."end") && tstzrange(b.start, b."end")
WHERE a.status = ANY(%(active)s) AND b.status = ANY(%(active)s)
"""

_LINK = re.compile(r"https?://\S+")
_SEPARATOR = "\n" + "-" * 79 + "\n"
# Examples of each violation kept in the report; the counts are complete.
_EXAMPLES = 5


def _journal(path: Path | None) -> dict[str, Any]:
    booked: dict[str, dict[str, Any]] = {}
    unknown_emails: set[str] = set()
    moved: dict[str, str] = {}
    move_unknown: dict[str, set[str]] = defaultdict(set)
    cancelled: set[str] = set()
    cancel_unknown: set[str] = set()
    if path is not None and path.exists():
        with path.open(encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                entry = json.loads(line)
                op = entry["op"]
                if op == "booked":
                    booked[entry["ref"]] = entry
                elif op == "book_unknown":
                    unknown_emails.add(entry["email"])
                elif op == "rescheduled":
                    moved[entry["ref"]] = entry["start"]
                elif op == "reschedule_unknown":
                    move_unknown[entry["ref"]].add(entry["start"])
                elif op == "cancelled":
                    cancelled.add(entry["ref"])
                elif op == "cancel_unknown":
                    cancel_unknown.add(entry["ref"])
    return {
        "booked": booked,
        "unknown_emails": unknown_emails,
        "moved": moved,
        "move_unknown": move_unknown,
        "cancelled": cancelled,
        "cancel_unknown": cancel_unknown,
    }


def _same_instant(a: str | datetime, b: str | datetime) -> bool:
    def parse(value: str | datetime) -> datetime:
        return value if isinstance(value, datetime) else datetime.fromisoformat(value)

    return parse(a) == parse(b)


def check_overlaps() -> dict[str, int]:
    from django.db import connection

    from booking.models import ACTIVE_STATUSES

    with connection.cursor() as cursor:
        cursor.execute(_OVERLAPPING_ALLOCATIONS)
        allocations = cursor.fetchone()[0]
        cursor.execute(_OVERLAPPING_VISITS, {"active": sorted(ACTIVE_STATUSES)})
        visits = cursor.fetchone()[0]
    return {"overlapping_allocations": allocations, "overlapping_patient_visits": visits}


def check_bookings(journal: dict[str, Any], location_slug: str | None) -> dict[str, Any]:
    """Every acknowledged booking is there as last acknowledged; nothing else appeared."""
    from booking.models import Appointment, AppointmentStatus

    rows = Appointment.objects.all()
    if location_slug:
        rows = rows.filter(location__slug=location_slug)
    in_db = {
        ref: (status, start, mail)
        for ref, status, start, mail in rows.values_list(
            "reference", "status", "start", "patient__email"
        )
    }
    booked: dict[str, dict[str, Any]] = journal["booked"]
    lost = [ref for ref in booked if ref not in in_db]
    wrong_status, wrong_time = [], []
    for ref, entry in booked.items():
        if ref not in in_db:
            continue
        status, start, _mail = in_db[ref]
        is_cancelled = status == AppointmentStatus.CANCELLED
        if ref in journal["cancelled"]:
            if not is_cancelled:
                wrong_status.append(ref)
        elif is_cancelled and ref not in journal["cancel_unknown"]:
            wrong_status.append(ref)
        acknowledged = journal["moved"].get(ref, entry["start"])
        possible = {acknowledged, *journal["move_unknown"].get(ref, ())}
        if not any(_same_instant(start, p) for p in possible):
            wrong_time.append(ref)
    unacknowledged = [ref for ref in in_db if ref not in booked]
    explained = [ref for ref in unacknowledged if in_db[ref][2] in journal["unknown_emails"]]
    phantoms = [ref for ref in unacknowledged if in_db[ref][2] not in journal["unknown_emails"]]
    return {
        "acknowledged_201": len(booked),
        "in_database": len(in_db),
        "active_in_database": sum(
            1 for status, _, _ in in_db.values() if status != AppointmentStatus.CANCELLED
        ),
        "cancelled_acknowledged": len(journal["cancelled"]),
        "moved_acknowledged": len(journal["moved"]),
        "unanswered_booking_requests": len(journal["unknown_emails"]),
        "committed_but_unanswered": len(explained),
        "lost": len(lost),
        "lost_examples": lost[:_EXAMPLES],
        "wrong_status": len(wrong_status),
        "wrong_status_examples": wrong_status[:_EXAMPLES],
        "wrong_time": len(wrong_time),
        "wrong_time_examples": wrong_time[:_EXAMPLES],
        "phantoms": len(phantoms),
        "phantom_examples": phantoms[:_EXAMPLES],
    }


def check_reminders(*, now: datetime, location_slug: str | None) -> dict[str, Any]:
    """Each active future visit's outbox is what the planner gives it now; cancelled visits have
    nothing but their cancellation notice left to send."""
    from booking.models import Appointment, AppointmentEvent, AppointmentStatus
    from notifications.models import MessageKind, MessageStatus, OutboundMessage, ReminderRule
    from notifications.outbox import patient_channels, reminder_rows

    visits = Appointment.objects.select_related("location", "appointment_type", "patient")
    if location_slug:
        visits = visits.filter(location__slug=location_slug)
    rules: dict[int, list[ReminderRule]] = defaultdict(list)
    for rule in ReminderRule.objects.filter(is_active=True):
        rules[rule.appointment_type_id].append(rule)
    outbox: dict[int, dict[tuple[str, str], OutboundMessage]] = defaultdict(dict)
    messages = OutboundMessage.objects.all()
    if location_slug:
        messages = messages.filter(appointment__location__slug=location_slug)
    for row in messages.iterator(chunk_size=5_000):
        outbox[row.appointment_id][(row.kind, row.channel)] = row
    moved = set(
        AppointmentEvent.objects.filter(kind="rescheduled").values_list("appointment_id", flat=True)
    )
    live = {MessageStatus.PENDING, MessageStatus.SENDING, MessageStatus.SENT}
    checked = expected_rows = 0
    missing: list[str] = []
    stale: list[str] = []
    after_cancel: list[str] = []
    for visit in visits.filter(start__gt=now).iterator(chunk_size=2_000):
        rows = outbox.get(visit.pk, {})
        if visit.status == AppointmentStatus.CANCELLED:
            for (kind, _channel), row in rows.items():
                if kind != MessageKind.CANCELLED and row.status in (
                    MessageStatus.PENDING,
                    MessageStatus.SENDING,
                ):
                    after_cancel.append(f"{visit.reference}/{kind}")
            continue
        if not visit.is_active:
            continue
        checked += 1
        channels = patient_channels(visit.patient)
        notices = [MessageKind.CONFIRMATION]
        if visit.pk in moved:
            notices.append(MessageKind.RESCHEDULED)
        wanted: list[tuple[str, str, datetime | None]] = [
            (kind, channel, None) for kind in notices for channel in channels
        ]
        for planned in reminder_rows(
            visit, channels, rules.get(visit.appointment_type_id, []), now=now
        ):
            # Only what is still ahead: a reminder due by now may rightly be sent or skipped.
            if planned.status == MessageStatus.PENDING and planned.due_at > now:
                wanted.append((planned.kind, planned.channel, planned.due_at))
        for kind, channel, due in wanted:
            expected_rows += 1
            message = rows.get((kind, channel))
            if message is None or message.status not in live:
                missing.append(f"{visit.reference}/{kind}/{channel}")
            elif due is not None and (
                message.due_at != due or message.appointment_version != visit.version
            ):
                stale.append(f"{visit.reference}/{kind}/{channel}")
    return {
        "active_future_visits_checked": checked,
        "expected_rows": expected_rows,
        "missing": len(missing),
        "missing_examples": missing[:_EXAMPLES],
        "planned_for_another_time": len(stale),
        "planned_for_another_time_examples": stale[:_EXAMPLES],
        "pending_after_cancel": len(after_cancel),
        "pending_after_cancel_examples": after_cancel[:_EXAMPLES],
    }


def _mail_messages(folder: Path) -> list[tuple[str, str, str]]:
    """(Message-ID, identity, channel) of every message in the file backends' output."""
    found: list[tuple[str, str, str]] = []
    mail = folder / "mail"
    if mail.is_dir():
        for path in sorted(mail.iterdir()):
            for chunk in path.read_bytes().decode("utf-8", "replace").split(_SEPARATOR):
                if not chunk.strip():
                    continue
                message = email.message_from_string(chunk, policy=email.policy.default)
                text = message.get_body(preferencelist=("plain",))
                body = text.get_content() if text is not None else ""
                identity = "\n".join(
                    [str(message["To"]), str(message["Subject"]), _LINK.sub("<link>", body)]
                )
                found.append((str(message["Message-ID"]), identity, "email"))
    sms = folder / "sms"
    if sms.is_dir():
        for path in sorted(sms.iterdir()):
            found.append((path.stem, _LINK.sub("<link>", path.read_text("utf-8")), "sms"))
    return found


def check_sends(*, var_dir: Path | None, location_slug: str | None) -> dict[str, Any]:
    from django.db.models import Count

    from notifications.delivery import UNCONFIRMED
    from notifications.models import CHANGE_KINDS, DeliveryAttempt, MessageStatus, OutboundMessage

    messages = OutboundMessage.objects.all()
    attempts = DeliveryAttempt.objects.filter(outcome="sent")
    if location_slug:
        messages = messages.filter(appointment__location__slug=location_slug)
        attempts = attempts.filter(message__appointment__location__slug=location_slug)
    sent_twice_rows = (
        messages.filter(status=MessageStatus.SENT)
        .values("appointment_id", "kind", "channel")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )
    over_delivered = []
    for message_id, kind, version, n in (
        attempts.values("message_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .values_list("message_id", "message__kind", "message__appointment__version", "n")
    ):
        # A reminder is planned again for each new version of its visit; a notice never is.
        allowed = 1 if kind in CHANGE_KINDS else version + 1
        if n > allowed:
            over_delivered.append(message_id)
    report: dict[str, Any] = {
        "sent_rows": messages.filter(status=MessageStatus.SENT).count(),
        "successful_attempts": attempts.count(),
        "rows_sent_twice": sent_twice_rows,
        "messages_delivered_more_than_once": len(over_delivered),
        "messages_delivered_more_than_once_examples": over_delivered[:_EXAMPLES],
        # Sends whose worker died with the message in the provider's hands or on its way: each
        # may have gone out once, unrecorded, and is never sent again.
        "unconfirmed": DeliveryAttempt.objects.filter(
            outcome=UNCONFIRMED, message__in=messages
        ).count(),
        "handed_over_unresolved": messages.filter(handed_at__isnull=False).count(),
    }
    if var_dir is not None:
        output = _mail_messages(var_dir)
        ids = Counter(message_id for message_id, _, _ in output)
        identities = Counter(identity for _, identity, _ in output)
        by_channel = Counter(channel for _, _, channel in output)
        recorded = Counter(attempts.values_list("message__channel", flat=True))
        report.update(
            {
                "output_messages": dict(by_channel),
                "recorded_sends": dict(recorded),
                "output_duplicate_ids": sum(1 for n in ids.values() if n > 1),
                "output_duplicate_messages": sum(1 for n in identities.values() if n > 1),
                # Written by the backend but never recorded as sent: a send whose worker died
                # after the provider accepted it (recorded as unconfirmed), or output of
                # another process.
                "output_without_record": sum(
                    max(0, by_channel[c] - recorded.get(c, 0)) for c in by_channel
                ),
                "records_without_output": sum(
                    max(0, n - by_channel.get(c, 0)) for c, n in recorded.items()
                ),
            }
        )
    return report


def check_delivery(*, now: datetime, location_slug: str | None) -> dict[str, Any]:
    from notifications.models import MessageStatus, OutboundMessage

    messages = OutboundMessage.objects.all()
    if location_slug:
        messages = messages.filter(appointment__location__slug=location_slug)
    counts = Counter(messages.values_list("status", flat=True))
    due = messages.filter(status=MessageStatus.PENDING, due_at__lte=now).count()
    return {
        "by_status": dict(counts),
        "due_unsent": due,
        "sending": counts.get(MessageStatus.SENDING, 0),
        "failed": counts.get(MessageStatus.FAILED, 0),
    }


def integrity_report(
    *,
    journal_path: Path | None,
    var_dir: Path | None,
    location_slug: str | None,
    require_drained: bool = False,
    now: datetime | None = None,
    senders_killed: int = 0,
) -> dict[str, Any]:
    """The report, with ``violations`` listing every failed check (empty: all held).

    A worker killed (SIGKILL) after the provider took a message and before its transaction
    committed leaves the message written by the backend but not recorded as sent. Its hand-over,
    committed before the call, is what the outbox then records as unconfirmed (or leaves set, if
    the visit was cancelled first): output without a recorded send is allowed up to that many,
    and any output written twice is a violation, whatever the fault. ``senders_killed`` is how
    many sends the run's fault could catch mid-way (a killed worker's processes): more sends
    left in doubt than that, or any without such a fault, is a violation too."""
    from django.utils import timezone

    # A minute of slack: a reminder due in the next moment may be claimed while we read.
    now = (now or timezone.now()) + timedelta(minutes=1)
    journal = _journal(journal_path)
    report: dict[str, Any] = {
        "overlaps": check_overlaps(),
        "bookings": check_bookings(journal, location_slug),
        "reminders": check_reminders(now=now, location_slug=location_slug),
        "sends": check_sends(var_dir=var_dir, location_slug=location_slug),
        "delivery": check_delivery(now=now, location_slug=location_slug),
    }
    sends_in_doubt = report["sends"]["unconfirmed"] + report["sends"]["handed_over_unresolved"]
    checks = {
        "overlapping allocations": report["overlaps"]["overlapping_allocations"],
        "overlapping visits of one patient": report["overlaps"]["overlapping_patient_visits"],
        "lost bookings": report["bookings"]["lost"],
        "bookings not as acknowledged (status)": report["bookings"]["wrong_status"],
        "bookings not as acknowledged (time)": report["bookings"]["wrong_time"],
        "phantom bookings": report["bookings"]["phantoms"],
        "reminders missing": report["reminders"]["missing"],
        "reminders planned for another time": report["reminders"]["planned_for_another_time"],
        "messages pending after cancel": report["reminders"]["pending_after_cancel"],
        "rows sent twice": report["sends"]["rows_sent_twice"],
        "messages delivered more than once": report["sends"]["messages_delivered_more_than_once"],
        "duplicate message ids in output": report["sends"].get("output_duplicate_ids", 0),
        "duplicate messages in output": report["sends"].get("output_duplicate_messages", 0),
        "output without a recorded send (beyond the unconfirmed sends)": max(
            0, report["sends"].get("output_without_record", 0) - sends_in_doubt
        ),
        "sends left in doubt (beyond the senders the fault killed)": max(
            0, sends_in_doubt - senders_killed
        ),
        "recorded sends without output": report["sends"].get("records_without_output", 0),
    }
    if require_drained:
        checks["due messages left unsent"] = report["delivery"]["due_unsent"]
        checks["messages stuck sending"] = report["delivery"]["sending"]
    report["violations"] = [f"{name}: {n}" for name, n in checks.items() if n]
    report["ok"] = not report["violations"]
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--journal", type=Path, help="the load client's JSON-lines journal")
    parser.add_argument("--var-dir", type=Path, help="VAR_DIR of the worker (mail/, sms/)")
    parser.add_argument("--location", default="load-clinic", help="location slug ('' for all)")
    parser.add_argument("--require-drained", action="store_true")
    args = parser.parse_args(argv)
    setup_django()
    report = integrity_report(
        journal_path=args.journal,
        var_dir=args.var_dir,
        location_slug=args.location or None,
        require_drained=args.require_drained,
    )
    print(json.dumps(report, indent=2, default=str))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
