"""Times as patients should read them: the clinic's wall clock, with its zone abbreviation."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from django import template

register = template.Library()


def clinic_local(moment: datetime, zone_name: str) -> datetime:
    return moment.astimezone(ZoneInfo(zone_name))


@register.filter
def clinic_time(moment: datetime | None, zone_name: str) -> str:
    """``9:00 AM EST``"""
    if moment is None:
        return ""
    local = clinic_local(moment, zone_name)
    return f"{local:%I:%M %p} {local.tzname()}".lstrip("0")


@register.filter
def clinic_date(moment: datetime | None, zone_name: str) -> str:
    """``Monday 30 November 2026``"""
    if moment is None:
        return ""
    local = clinic_local(moment, zone_name)
    return f"{local:%A} {local.day} {local:%B %Y}"


@register.filter
def clinic_datetime(moment: datetime | None, zone_name: str) -> str:
    """``Monday 30 November 2026 at 9:00 AM EST``"""
    if moment is None:
        return ""
    return f"{clinic_date(moment, zone_name)} at {clinic_time(moment, zone_name)}"
