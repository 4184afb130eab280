"""A clinic's local clock: wall-clock instants, its quiet hours, and times written as patients read
them, as pure functions.

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


def quiet_period(
    moment: datetime, zone: ZoneInfo, quiet_start: time, quiet_end: time
) -> tuple[datetime, datetime] | None:
    """The quiet hours ``moment`` falls in, as the instants they began and end; None outside."""
    if not in_quiet_hours(moment, zone, quiet_start, quiet_end):
        return None
    local = moment.astimezone(zone)
    began = local.date()
    overnight = quiet_start > quiet_end
    if overnight and local.time() < quiet_end:
        began -= timedelta(days=1)  # after midnight: they began the evening before
    ends = began + timedelta(days=1) if overnight else began
    return wall_clock(zone, began, quiet_start), wall_clock(zone, ends, quiet_end)


def quiet_hours_end(
    moment: datetime, zone: ZoneInfo, quiet_start: time, quiet_end: time
) -> datetime:
    """The first instant after ``moment`` outside quiet hours (``moment`` itself if it is)."""
    period = quiet_period(moment, zone, quiet_start, quiet_end)
    return moment if period is None else period[1]


# --- Times as patients read them: the clinic's wall clock, with its zone abbreviation -----------


def clinic_local(moment: datetime, zone_name: str) -> datetime:
    return moment.astimezone(ZoneInfo(zone_name))


def clinic_time(moment: datetime | None, zone_name: str) -> str:
    """``9:00 AM EST``"""
    if moment is None:
        return ""
    local = clinic_local(moment, zone_name)
    return f"{local:%I:%M %p} {local.tzname()}".lstrip("0")


def clinic_date(moment: datetime | None, zone_name: str) -> str:
    """``Monday 30 November 2026``"""
    if moment is None:
        return ""
    local = clinic_local(moment, zone_name)
    return f"{local:%A} {local.day} {local:%B %Y}"


def clinic_datetime(moment: datetime | None, zone_name: str) -> str:
    """``Monday 30 November 2026 at 9:00 AM EST``"""
    if moment is None:
        return ""
    return f"{clinic_date(moment, zone_name)} at {clinic_time(moment, zone_name)}"
