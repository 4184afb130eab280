"""The form of a type's reminder rules on the setup pages: one small form per kind, each with its
kind as prefix (``prep-hours``, ``evening_before-local_time`` …), so an error names its field.

A reminder goes out either a set time before the visit (hours and minutes; a follow-up: after
it) or at a time of day on the clinic's clock, some days before. Never both: the form says so
on the field rather than guessing which one the admin meant.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import forms

from booking.desk.forms import DeskForm
from notifications.models import MessageKind, ReminderRule
from notifications.planning import Timing
from notifications.rules import REMINDER_KINDS, RuleSettings

MAX_DAYS_BEFORE = 14
MAX_HOURS = 24 * MAX_DAYS_BEFORE
MAX_LATE_CUTOFF = 7 * 24 * 60


class ReminderRuleForm(DeskForm):
    """One kind's rule. Prefixed by its kind; ``kind`` says which."""

    is_active = forms.BooleanField(required=False, label="Send this message")
    email = forms.BooleanField(required=False, label="By e-mail")
    sms = forms.BooleanField(required=False, label="By text message")
    hours = forms.IntegerField(
        required=False, min_value=0, max_value=MAX_HOURS, label="Hours before the visit"
    )
    minutes = forms.IntegerField(required=False, min_value=0, max_value=59, label="Minutes")
    local_time = forms.TimeField(
        required=False,
        label="Or at this time of day",
        help_text="On the clinic's clock, for example 19:00.",
        widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
    )
    days_before = forms.IntegerField(
        required=False,
        min_value=0,
        max_value=MAX_DAYS_BEFORE,
        label="Days before the visit",
        help_text="With a time of day: 1 is the day before, 0 the day of the visit.",
    )
    late_cutoff_minutes = forms.IntegerField(
        min_value=0,
        max_value=MAX_LATE_CUTOFF,
        label="Skip it when this many minutes late",
        help_text="A message not sent by then (the clinic's provider was down, say) is dropped.",
    )

    def __init__(self, data: Mapping[str, Any] | None = None, *, kind: str, **kwargs: Any) -> None:
        super().__init__(data, prefix=kind, **kwargs)
        self.kind = kind
        self.is_follow_up = kind == MessageKind.FOLLOW_UP
        if self.is_follow_up:
            self.fields["hours"].label = "Hours after the visit starts"
            self.fields["days_before"].help_text = "A follow-up by the clock goes on the day: 0."

    @property
    def label(self) -> str:
        return str(MessageKind(self.kind).label)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        hours, minutes = data.get("hours"), data.get("minutes")
        local_time, days_before = data.get("local_time"), data.get("days_before")
        # "0 minutes" left beside a cleared hours field is no offset.
        by_offset = hours is not None or bool(minutes)
        if data.get("is_active") and not (data.get("email") or data.get("sms")):
            self.add_error("email", "Choose e-mail, text message or both.")
        if any(name in self.errors for name in ("hours", "minutes", "local_time", "days_before")):
            return data  # the timing is judged once each of its fields is valid
        if by_offset and local_time is not None:
            self.add_error(
                "local_time",
                "Give a number of hours or a time of day, not both: clear one of them.",
            )
        elif not by_offset and local_time is None:
            if data.get("is_active"):
                self.add_error(
                    "hours",
                    "Say when this message goes out: a number of hours, or a time of day.",
                )
        elif by_offset and (hours or 0) * 60 + (minutes or 0) == 0:
            self.add_error(
                "hours",
                "A follow-up goes at least one minute after the visit starts."
                if self.is_follow_up
                else "A reminder goes at least one minute before the visit.",
            )
        elif local_time is not None and days_before is None:
            self.add_error("days_before", "Say how many days before the visit (0: the same day).")
        elif local_time is not None and self.is_follow_up and days_before:
            self.add_error("days_before", "A follow-up goes after the visit: use 0, the same day.")
        return data

    @property
    def offset_minutes(self) -> int | None:
        hours, minutes = self.cleaned_data.get("hours"), self.cleaned_data.get("minutes")
        if hours is None and not minutes:
            return None
        offset = (hours or 0) * 60 + (minutes or 0)
        # Stored as minutes before the start: a follow-up's are negative.
        return -offset if self.is_follow_up else offset

    def settings(self) -> RuleSettings:
        """The rule as set; call on a valid form."""
        data = self.cleaned_data
        local_time = data.get("local_time")
        days_before = data.get("days_before")
        return RuleSettings(
            kind=self.kind,
            is_active=bool(data.get("is_active")),
            email=bool(data.get("email")),
            sms=bool(data.get("sms")),
            offset_minutes=self.offset_minutes,
            local_time=local_time,
            days_before=1 if days_before is None else days_before,
            late_cutoff_minutes=data["late_cutoff_minutes"],
        )

    def initial_data(self) -> dict[str, str]:
        """The initial values as the browser would submit them."""
        data = {}
        for name, value in self.initial.items():
            if value is None or value is False:
                continue
            text = "on" if value is True else f"{value:%H:%M}" if name == "local_time" else value
            data[self.add_prefix(name)] = str(text)
        return data

    def timing(self) -> Timing | None:
        """When the rule sends its message, for the preview: as typed, or as saved on a form
        not yet submitted; None when invalid or without a timing."""
        if not self.is_bound:
            return ReminderRuleForm(self.initial_data(), kind=self.kind).timing()
        if not self.is_valid():
            return None
        rule = self.settings()
        if not rule.has_timing:
            return None
        return Timing(
            offset_minutes=rule.offset_minutes,
            local_time=rule.local_time,
            days_before=rule.days_before,
            follows_fasting=self.kind == MessageKind.EVENING_BEFORE,
        )


def rule_initial(rule: ReminderRule | None) -> dict[str, Any]:
    """A saved rule as the form shows it; a kind without a rule starts switched off."""
    if rule is None:
        return {"email": True, "sms": True, "days_before": 1, "late_cutoff_minutes": 6 * 60}
    offset = rule.offset_minutes
    if offset is not None:
        offset = abs(offset)
    return {
        "is_active": rule.is_active,
        "email": rule.email,
        "sms": rule.sms,
        "hours": None if offset is None else offset // 60,
        "minutes": (offset % 60) or None if offset is not None else None,
        "local_time": rule.local_time,
        "days_before": rule.days_before,
        "late_cutoff_minutes": rule.late_cutoff_minutes,
    }


def reminder_rule_forms(
    rules: Mapping[str, ReminderRule], data: Mapping[str, Any] | None = None
) -> list[ReminderRuleForm]:
    """One form per reminder kind, filled from ``rules`` (by kind), bound to ``data`` if given."""
    return [
        ReminderRuleForm(data, kind=kind, initial=rule_initial(rules.get(kind)))
        for kind in REMINDER_KINDS
    ]


def rule_summary(rule: ReminderRule | None) -> str:
    """``48 h before · e-mail, text``: one rule in a few words, for the list of types."""
    if rule is None or not rule.is_active:
        return "off"
    if rule.offset_minutes is not None:
        offset = abs(rule.offset_minutes)
        hours, minutes = divmod(offset, 60)
        amount = (
            f"{hours} h" + (f" {minutes} min" if minutes else "") if hours else f"{minutes} min"
        )
        when = f"{amount} {'after' if rule.offset_minutes < 0 else 'before'}"
    else:
        days = {0: "the same day", 1: "the day before"}.get(
            rule.days_before, f"{rule.days_before} days before"
        )
        when = f"{rule.local_time:%H:%M} {days}" if rule.local_time else days
    channels = [name for name, on in (("e-mail", rule.email), ("text", rule.sms)) if on]
    return f"{when} · {', '.join(channels) or 'no channel'}"
