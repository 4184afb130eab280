"""Times as patients should read them, as template filters (the functions live in
``scheduling.clock``, where messages and services use them too)."""

from __future__ import annotations

from django import template

from scheduling.clock import clinic_date, clinic_datetime, clinic_time

register = template.Library()
register.filter("clinic_time", clinic_time)
register.filter("clinic_date", clinic_date)
register.filter("clinic_datetime", clinic_datetime)
