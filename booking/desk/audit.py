"""The audit log for administrators: who read or changed which patient's data, filtered, paged
and exported as CSV. Reading the log, and exporting it, are themselves audited.

An administrator sees the events of their own locations, plus events tied to no location whose
patient (if any) has a visit at one of them.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django import forms
from django.conf import settings
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from booking.access.audit import audit
from booking.access.decorators import staff_required
from booking.access.roles import VIEW_AUDIT
from booking.access.scoping import audit_events_for
from booking.models import AuditAction, AuditEvent
from booking.paging import keyset_page
from booking.validators import validate_date_in_range

PAGE_SIZE = 50
PAGE_SPANS = (timedelta(days=31), timedelta(days=366))
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection): such a
# cell is written with a leading apostrophe, which spreadsheets show as text.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CSV_COLUMNS = [
    "at",
    "user",
    "action",
    "object_type",
    "object_id",
    "patient_id",
    "patient",
    "location",
    "method",
    "path",
    "ip",
    "detail",
]


def _zone() -> ZoneInfo:
    return ZoneInfo(settings.DEFAULT_CLINIC_TIMEZONE)


class AuditFilterForm(forms.Form):
    user = forms.CharField(required=False, max_length=150, label="User")
    patient = forms.IntegerField(required=False, min_value=1, label="Patient id")
    start = forms.DateField(
        required=False,
        input_formats=["%Y-%m-%d"],
        label="From",
        validators=[validate_date_in_range],
    )
    end = forms.DateField(
        required=False,
        input_formats=["%Y-%m-%d"],
        label="To",
        validators=[validate_date_in_range],
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("start"), data.get("end")
        if start and end and end < start:
            self.add_error("end", "The end date is before the start date.")
        return data

    def apply(self, events: QuerySet[AuditEvent]) -> QuerySet[AuditEvent]:
        data = self.cleaned_data
        if data.get("user"):
            events = events.filter(username__iexact=data["user"].strip())
        if data.get("patient"):
            events = events.filter(patient_id=data["patient"])
        # Dates are the clinic's local days, converted to UTC bounds at once.
        if data.get("start"):
            events = events.filter(at__gte=_midnight(data["start"]))
        if data.get("end"):
            events = events.filter(at__lt=_midnight(data["end"] + timedelta(days=1)))
        return events

    def as_detail(self) -> dict[str, str]:
        """The filters as given, for the audit event that records this read."""
        return {k: str(v) for k, v in self.cleaned_data.items() if v not in (None, "")}


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=_zone()).astimezone(UTC)


def _events(request: HttpRequest) -> tuple[AuditFilterForm, QuerySet[AuditEvent]]:
    form = AuditFilterForm(request.GET)
    events = audit_events_for(request.user).select_related("patient", "location")
    if not form.is_valid():
        return form, events.none()
    return form, form.apply(events).order_by("-at", "-id")


@require_GET
@never_cache
@staff_required(VIEW_AUDIT)
def audit_log(request: HttpRequest) -> HttpResponse:
    form, events = _events(request)
    if not form.is_valid():
        status = 400
    else:
        status = 200
        audit(request, AuditAction.VIEW, object_type="audit_log", filters=form.as_detail())
    # Found from the key of the row next to it, never counted: a location's log grows for
    # its legal period (bench.growth: a count of pages took 184 ms at 10 M visits). Looked for
    # in the nearest month first, then year: reading every month's partition for its first
    # row of this location cost in proportion to the months kept (16 ms at 5 M visits).
    page = keyset_page(
        events,
        ("at", "id"),
        before=request.GET.get("before"),
        after=request.GET.get("after"),
        size=PAGE_SIZE,
        spans=PAGE_SPANS,
    )
    query = request.GET.copy()
    for key in ("before", "after", "page"):
        query.pop(key, None)
    return render(
        request,
        "staff/audit.html",
        {
            "nav": "audit",
            "form": form,
            "page": page,
            "query": query.urlencode(),
            "zone": settings.DEFAULT_CLINIC_TIMEZONE,
        },
        status=status,
    )


def csv_safe(value: object) -> str:
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(_FORMULA_STARTS) else text


class _Echo:
    """A file whose ``write`` hands back the line, so csv.writer can feed a streaming response."""

    def write(self, value: str) -> str:
        return value


def _csv_lines(events: QuerySet[AuditEvent]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    for event in events.iterator(chunk_size=2000):
        patient = event.patient
        row = [
            event.at.isoformat(),
            event.username,
            event.action,
            event.object_type,
            event.object_id,
            event.patient_id or "",
            f"{patient.first_name} {patient.last_name}" if patient else "",
            event.location.name if event.location else "",
            event.method,
            event.path,
            event.ip or "",
            json.dumps(event.detail, sort_keys=True) if event.detail else "",
        ]
        yield writer.writerow([csv_safe(cell) for cell in row])


@require_GET
@never_cache
@staff_required(VIEW_AUDIT)
def audit_export(request: HttpRequest) -> HttpResponseBase:
    form, events = _events(request)
    if not form.is_valid():
        return render(
            request,
            "staff/audit.html",
            {"nav": "audit", "form": form, "page": None, "zone": settings.DEFAULT_CLINIC_TIMEZONE},
            status=400,
        )
    audit(request, AuditAction.EXPORT, object_type="audit_log", filters=form.as_detail())
    response = StreamingHttpResponse(_csv_lines(events), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="audit-log.csv"'
    return response
