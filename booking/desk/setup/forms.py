"""Forms of the setup pages for one location, its people and places, and its closures.

They validate input only. Every time is the location's wall-clock time: a form is given the
location's zone, and a local date and time becomes one UTC instant here, once, by the engine's
own rule (:func:`scheduling.availability.local_to_minutes`): a time skipped when the clocks go
forward is refused naming the field, a repeated one means its first occurrence (``fold=0``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from datetime import date as datetime_date
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers
from django import forms
from django.conf import settings

from booking.desk.forms import DeskForm
from booking.validators import validate_date_in_range
from scheduling.availability import from_minutes, local_to_minutes
from scheduling.models import (
    Location,
    Resource,
    ResourceKind,
    StaffRole,
    Weekday,
    region_codes,
)

TIME_FORMATS = ["%H:%M", "%H:%M:%S"]
DATETIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"]


def time_field(label: str, *, required: bool = False, **attrs: str) -> forms.TimeField:
    return forms.TimeField(
        label=label,
        required=required,
        input_formats=TIME_FORMATS,
        widget=forms.TimeInput(attrs={"type": "time", **attrs}, format="%H:%M"),
        error_messages={"invalid": "Enter a time as HH:MM, e.g. 08:30."},
    )


def date_field(label: str, *, help_text: str = "") -> forms.DateField:
    return forms.DateField(
        label=label,
        help_text=help_text,
        input_formats=["%Y-%m-%d"],
        validators=[validate_date_in_range],
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        error_messages={"invalid": "Enter a date as YYYY-MM-DD."},
    )


def local_datetime_field(label: str, *, help_text: str = "") -> forms.DateTimeField:
    return forms.DateTimeField(
        label=label,
        help_text=help_text,
        input_formats=DATETIME_FORMATS,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        error_messages={"invalid": "Enter a date and time, e.g. 2026-12-24T13:00."},
    )


def local_instant(zone: ZoneInfo, wall: datetime) -> datetime | None:
    """The UTC instant of the wall-clock ``wall`` (naive, to the minute) in ``zone``, or
    ``None`` when the clocks skip it. A repeated time is its first occurrence, as everywhere."""
    minutes = local_to_minutes(zone, wall.date(), wall.hour * 60 + wall.minute)
    return None if minutes is None else from_minutes(minutes)


class LocalPeriodForm(DeskForm):
    """A start and an end in the location's wall-clock time, and a reason: time off, a
    closure. ``cleaned_data`` holds the UTC instants."""

    start = local_datetime_field("Starts", help_text="In the clinic's local time.")
    end = local_datetime_field("Ends", help_text="In the clinic's local time.")
    reason = forms.CharField(label="Reason", required=False, max_length=200)

    def __init__(self, *args: Any, zone: ZoneInfo, now: datetime, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.zone = zone
        self.now = now

    def _instant(self, name: str) -> datetime | None:
        wall = self.cleaned_data.get(name)
        if wall is None:
            return None
        # The browser sends a wall-clock reading without a zone: it is the clinic's.
        wall = wall.replace(tzinfo=None)
        if not validate_wall_date(wall.date()):
            self.add_error(name, "Enter a date between 2000 and 2100.")
            return None
        moment = local_instant(self.zone, wall)
        if moment is None:
            self.add_error(
                name,
                f"{wall:%H:%M} does not exist on {wall:%Y-%m-%d} in {self.zone.key}: the "
                "clocks go forward then. Choose another time.",
            )
        return moment

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = self._instant("start"), self._instant("end")
        data["start"], data["end"] = start, end
        if start is not None and end is not None:
            if end <= start:
                self.add_error("end", "The end must come after the start.")
            elif end <= self.now:
                self.add_error("end", "This is over already: enter a time still to come.")
        return data


def validate_wall_date(day: date) -> bool:
    try:
        validate_date_in_range(day)
    except forms.ValidationError:
        return False
    return True


# --- The location --------------------------------------------------------------------------


class LocationForm(DeskForm, forms.ModelForm):
    """A location's own settings. The model's validators check the zone, the region codes and
    the ranges; the clinic's phone number must be a real one."""

    class Meta:
        model = Location
        fields = [
            "public_name",
            "name",
            "timezone",
            "address",
            "phone",
            "quiet_hours_start",
            "quiet_hours_end",
            "late_cancel_hours",
            "no_show_after_minutes",
            "arrive_early_minutes",
            "hold_keeps_chairs",
            "sms_regions",
            "verify_online_bookings",
            "tentative_hold_minutes",
            "tentative_day_percent",
            "two_factor_for_all_staff",
        ]
        labels = {
            "public_name": "Public name",
            "name": "Internal name",
            "timezone": "Time zone",
            "quiet_hours_start": "Quiet hours start",
            "quiet_hours_end": "Quiet hours end",
            "late_cancel_hours": "Change cutoff (hours)",
            "no_show_after_minutes": "No-show after (minutes late)",
            "arrive_early_minutes": "Arrive early (minutes)",
            "hold_keeps_chairs": "A series on hold keeps its chairs and staff",
            "sms_regions": "Countries that may get texts",
            "verify_online_bookings": "Online bookings wait for the patient's e-mail",
            "tentative_hold_minutes": "Unconfirmed hold lasts (minutes)",
            "tentative_day_percent": "Unconfirmed holds may take (per cent of a day)",
            "two_factor_for_all_staff": "Every staff member signs in with a second factor",
        }
        help_texts = {
            "timezone": "An IANA zone name, e.g. America/New_York. Hours, closures and "
            "reminders follow it.",
            "quiet_hours_start": "No text goes out between these times (clinic time).",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("quiet_hours_start", "quiet_hours_end"):
            field = self.fields[name]
            assert isinstance(field, forms.TimeField)  # noqa: S101 - narrows the type
            field.input_formats = TIME_FORMATS
            field.widget = forms.TimeInput(attrs={"type": "time"}, format="%H:%M")
        self.fields["timezone"].widget.attrs.update({"autocomplete": "off", "spellcheck": "false"})

    def clean_timezone(self) -> str:
        return str(self.cleaned_data["timezone"]).strip()

    def clean_phone(self) -> str:
        value = str(self.cleaned_data.get("phone", "")).strip()
        if not value:
            return ""
        try:
            number = phonenumbers.parse(value, settings.DEFAULT_PHONE_REGION)
        except phonenumbers.NumberParseException:
            number = None
        if number is None or not phonenumbers.is_valid_number(number):
            raise forms.ValidationError("Enter a valid phone number, e.g. +1 212 555 0100.")
        return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))

    def clean_sms_regions(self) -> str:
        return ",".join(region_codes(str(self.cleaned_data.get("sms_regions", ""))))


# --- People and places -----------------------------------------------------------------------


class ResourceForm(DeskForm):
    """A staff member, chair or room serving the location. ``sites`` (other locations a person
    works at) offers only the admin's own locations."""

    name = forms.CharField(label="Name", max_length=120)
    kind = forms.ChoiceField(label="Kind", choices=ResourceKind.choices)
    role = forms.ChoiceField(
        label="Role",
        choices=StaffRole.choices,
        required=False,
        help_text="Staff only: which visits they can take.",
    )
    capacity = forms.IntegerField(
        label="Patients at once",
        min_value=1,
        max_value=20,
        initial=1,
        help_text="A nurse watching three chairs takes 3; a chair or room takes 1.",
    )
    sites = forms.ModelMultipleChoiceField(
        label="Also works at",
        queryset=Location.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Staff only: one person, one calendar across these sites.",
    )
    is_active = forms.BooleanField(label="Active (can be booked)", required=False, initial=True)

    def __init__(
        self,
        *args: Any,
        other_sites: Any,
        resource: Resource | None = None,
        **kwargs: Any,
    ) -> None:
        if resource is not None and "initial" not in kwargs:
            kwargs["initial"] = {
                "name": resource.name,
                "kind": resource.kind,
                "role": resource.role,
                "capacity": resource.capacity,
                "sites": list(resource.sites.filter(pk__in=other_sites.values("pk"))),
                "is_active": resource.is_active,
            }
        super().__init__(*args, **kwargs)
        self.resource = resource
        field = self.fields["sites"]
        assert isinstance(field, forms.ModelMultipleChoiceField)  # noqa: S101 - narrows the type
        field.queryset = other_sites
        if resource is not None:
            # A resource keeps its kind: a chair does not become a person.
            del self.fields["kind"]

    @property
    def resource_kind(self) -> str:
        if self.resource is not None:
            return self.resource.kind
        return str(self.cleaned_data.get("kind", ""))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.resource_kind != ResourceKind.STAFF:
            if data.get("role"):
                self.add_error("role", "Only a staff member has a role.")
            if data.get("sites"):
                self.add_error("sites", "Only a staff member works at other sites.")
        return data


WEEKDAYS = list(Weekday.choices)
SHIFTS = (1, 2)


@dataclass(frozen=True)
class GridRow:
    """One weekday of the grid, for the template: its label, its fields and its errors."""

    day: int
    label: str
    fields: list[forms.BoundField]
    errors: list[str]


class WeeklyHoursForm(DeskForm):
    """A week of hours at one location: per weekday, up to two shifts. Empty is a day off."""

    # The person's page holds several forms: prefixes keep their fields' ids apart.
    prefix = "hours"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for day, label in WEEKDAYS:
            for shift in SHIFTS:
                for edge in ("start", "end"):
                    name = f"d{day}_{shift}_{edge}"
                    self.fields[name] = time_field(
                        f"{label}, {'first' if shift == 1 else 'second'} shift {edge}s",
                    )

    @classmethod
    def initial_from(cls, shifts: list[tuple[int, time, time]]) -> dict[str, time]:
        """The grid's initial values for ``shifts`` (weekday, start, end) in order of start."""
        initial: dict[str, time] = {}
        count: dict[int, int] = {}
        for day, start, end in sorted(shifts):
            count[day] = count.get(day, 0) + 1
            if count[day] <= len(SHIFTS):
                initial[f"d{day}_{count[day]}_start"] = start
                initial[f"d{day}_{count[day]}_end"] = end
        return initial

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        for day, _label in WEEKDAYS:
            previous_end: time | None = None
            for shift in SHIFTS:
                start_name, end_name = f"d{day}_{shift}_start", f"d{day}_{shift}_end"
                if start_name in self.errors or end_name in self.errors:
                    continue
                start, end = data.get(start_name), data.get(end_name)
                if start is None and end is None:
                    continue
                if start is None:
                    self.add_error(start_name, "Enter the start, or leave both times empty.")
                elif end is None:
                    self.add_error(end_name, "Enter the end, or leave both times empty.")
                elif end <= start:
                    self.add_error(end_name, "The end must come after the start.")
                elif previous_end is not None and start < previous_end:
                    self.add_error(start_name, "The second shift must start after the first ends.")
                else:
                    previous_end = end
        return data

    def shifts(self) -> list[tuple[int, time, time]]:
        """(weekday, start, end) of every shift entered."""
        out = []
        for day, _label in WEEKDAYS:
            for shift in SHIFTS:
                start = self.cleaned_data.get(f"d{day}_{shift}_start")
                end = self.cleaned_data.get(f"d{day}_{shift}_end")
                if start is not None and end is not None:
                    out.append((day, start, end))
        return out

    def rows(self) -> Iterator[GridRow]:
        for day, label in WEEKDAYS:
            names = [f"d{day}_{shift}_{edge}" for shift in SHIFTS for edge in ("start", "end")]
            yield GridRow(
                day=day,
                label=label,
                fields=[self[name] for name in names],
                errors=[str(e) for name in names for e in self.errors.get(name, [])],
            )


class HoursFromForm(WeeklyHoursForm):
    """A week of hours that applies from a future date on."""

    prefix = "from"

    def __init__(self, *args: Any, today: date, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.today = today
        self.fields = {
            "valid_from": date_field(
                "From", help_text="The first day of the new hours (after today)."
            ),
            **self.fields,
        }

    def clean_valid_from(self) -> date:
        value: date = self.cleaned_data["valid_from"]
        if value <= self.today:
            raise forms.ValidationError(
                "Choose a day after today; to change the hours from today, edit the weekly hours."
            )
        return value


class DateOverrideForm(DeskForm):
    """One day's hours replacing the weekly ones, or not working that day."""

    prefix = "override"

    date = date_field("Date")
    off = forms.BooleanField(label="Not working that day", required=False)
    start = time_field("Starts")
    end = time_field("Ends")
    start_2 = time_field("Second shift starts")
    end_2 = time_field("Second shift ends")
    reason = forms.CharField(label="Reason", required=False, max_length=200)

    def __init__(self, *args: Any, today: datetime_date, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.today = today

    def clean_date(self) -> datetime_date:
        value: datetime_date = self.cleaned_data["date"]
        if value < self.today:
            raise forms.ValidationError("Choose today or a day to come.")
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        times = [data.get(n) for n in ("start", "end", "start_2", "end_2")]
        if data.get("off"):
            if any(t is not None for t in times):
                self.add_error("off", "Tick “Not working that day” or give hours, not both.")
            return data
        if not any(t is not None for t in times) and not self.errors:
            self.add_error("start", "Give that day's hours, or tick “Not working that day”.")
            return data
        previous_end: time | None = None
        for start_name, end_name, required in (("start", "end", True), ("start_2", "end_2", False)):
            start, end = data.get(start_name), data.get(end_name)
            if start_name in self.errors or end_name in self.errors:
                continue
            if start is None and end is None and not required:
                continue
            if start is None:
                self.add_error(start_name, "Enter the start.")
            elif end is None:
                self.add_error(end_name, "Enter the end.")
            elif end <= start:
                self.add_error(end_name, "The end must come after the start.")
            elif previous_end is not None and start < previous_end:
                self.add_error(start_name, "The second shift must start after the first ends.")
            else:
                previous_end = end
        return data

    def shifts(self) -> list[tuple[time, time]]:
        """The day's shifts; empty when not working."""
        if self.cleaned_data.get("off"):
            return []
        pairs = [("start", "end"), ("start_2", "end_2")]
        return [
            (self.cleaned_data[s], self.cleaned_data[e])
            for s, e in pairs
            if self.cleaned_data.get(s) is not None and self.cleaned_data.get(e) is not None
        ]
