"""A clinic's local clock: wall-clock instants and its quiet hours, as pure functions.

Both the reminders (a text never goes out in quiet hours) and the waitlist (a hold does not run
out while the patient may not be contacted) read a location's quiet hours through these.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


def wall_clock(zone: ZoneInfo, day: date, moment: time) -> datetime:
    """The UTC instant of a local wall-clock time. A time skipped by a spring-forward change
    means the same wall-clock reading just after the gap; a repeated one its first occurrence."""
    local = datetime.combine(day, moment, tzinfo=zone)
    return local.astimezone(UTC)


def in_quiet_hours(moment: datetime, zone: ZoneInfo, quiet_start: time, quiet_end: time) -> bool:
    local = moment.astimezone(zone).time()
    if quiet_start == quiet_end:
        return False
    if quiet_start < quiet_end:
        return quiet_start <= local < quiet_end
    return local >= quiet_start or local < quiet_end  # the usual case: across midnight


def quiet_hours_end(
    moment: datetime, zone: ZoneInfo, quiet_start: time, quiet_end: time
) -> datetime:
    """The first instant after ``moment`` outside quiet hours (``moment`` itself if it is)."""
    if not in_quiet_hours(moment, zone, quiet_start, quiet_end):
        return moment
    local = moment.astimezone(zone)
    day = local.date()
    if quiet_start > quiet_end and local.time() >= quiet_start:
        day += timedelta(days=1)  # before midnight: they end the next morning
    return wall_clock(zone, day, quiet_end)
