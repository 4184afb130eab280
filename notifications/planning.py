"""When each message is due: pure functions of an appointment's start, its clinic's zone and a rule.

Wall-clock rules ("the evening before at 19:00") are computed on the clinic's local calendar and
converted to UTC at once; offsets ("48 hours before") are real elapsed time. Text messages never go
out in the clinic's quiet hours: a reminder that would fall inside them moves *earlier*, to just
before they begin, and is never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from scheduling.clock import quiet_period, wall_clock

# An evening-before reminder reaches the patient at least this long before they must stop eating.
FASTING_NOTICE = timedelta(hours=2)
# A text moved out of quiet hours goes this long before they begin.
QUIET_MARGIN = timedelta(minutes=15)


@dataclass(frozen=True)
class Timing:
    offset_minutes: int | None
    local_time: time | None
    days_before: int
    follows_fasting: bool = False


def reminder_due(
    *, start: datetime, zone: ZoneInfo, timing: Timing, fasting_solids_hours: int | None
) -> datetime:
    """When a reminder for a visit at ``start`` is due (UTC)."""
    # Offsets are elapsed time: subtracting from a zone-aware local time would be wall-clock
    # arithmetic in Python, an hour off across a change of clocks.
    start = start.astimezone(UTC)
    if timing.offset_minutes is not None:
        return start - timedelta(minutes=timing.offset_minutes)
    if timing.local_time is None:
        raise ValueError("a timing needs an offset or a local time")
    day = start.astimezone(zone).date() - timedelta(days=timing.days_before)
    due = wall_clock(zone, day, timing.local_time)
    if timing.follows_fasting and fasting_solids_hours:
        # Elapsed hours, as booking.preparation computes the cutoff the patient is shown.
        solids_stop = start - timedelta(hours=fasting_solids_hours)
        due = min(due, solids_stop - FASTING_NOTICE)
    return due


def before_quiet_hours(
    moment: datetime, zone: ZoneInfo, quiet_start: time, quiet_end: time
) -> datetime:
    """``moment``, or if it falls in quiet hours, shortly before those quiet hours began."""
    period = quiet_period(moment, zone, quiet_start, quiet_end)
    return moment if period is None else period[0] - QUIET_MARGIN
