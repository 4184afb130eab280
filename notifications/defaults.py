"""The reminder schedule a new appointment type starts with (DESIGN §1, step 5)."""

from __future__ import annotations

from datetime import time

from notifications.models import DEFAULT_EVENING_TIME, MessageKind, ReminderRule
from scheduling.models import AppointmentKind, AppointmentType


def reminder_rules_install_defaults(*, appointment_type: AppointmentType) -> list[ReminderRule]:
    """Create the default rules for ``appointment_type`` (kinds it already has are kept)."""
    specs: list[dict[str, object]] = [
        # ~24 h before: reply C to confirm.
        {
            "kind": MessageKind.CONFIRM_REQUEST,
            "offset_minutes": 24 * 60,
            "late_cutoff_minutes": 6 * 60,
        },
        # The morning of: arrival time and the escort.
        {
            "kind": MessageKind.MORNING_OF,
            "local_time": time(7, 30),
            "days_before": 0,
            "late_cutoff_minutes": 60,
        },
    ]
    if appointment_type.kind != AppointmentKind.CONSULTATION:
        specs += [
            # ~48 h before: how to prepare, and who takes them home.
            {"kind": MessageKind.PREP, "offset_minutes": 48 * 60, "late_cutoff_minutes": 12 * 60},
            # The evening before at 19:00, or earlier when the fast starts earlier.
            {
                "kind": MessageKind.EVENING_BEFORE,
                "local_time": DEFAULT_EVENING_TIME,
                "days_before": 1,
                "late_cutoff_minutes": 3 * 60,
            },
            # The day after: e-mail only.
            {
                "kind": MessageKind.FOLLOW_UP,
                "offset_minutes": -24 * 60,
                "sms": False,
                "late_cutoff_minutes": 24 * 60,
            },
        ]
    rules = []
    for spec in specs:
        kind = spec.pop("kind")
        rule, _ = ReminderRule.objects.get_or_create(
            appointment_type=appointment_type, kind=kind, defaults=spec
        )
        rules.append(rule)
    return rules
