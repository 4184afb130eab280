"""Who the signed-in staff member is, for templates: ``{% if user|is_prescriber %}`` asks the one
definition of a prescriber (``booking.access.roles``), so a page never shows a link the view
behind it would refuse."""

from __future__ import annotations

from django import template

from booking.access.roles import is_prescriber

register = template.Library()
register.filter("is_prescriber", is_prescriber)
