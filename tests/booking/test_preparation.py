"""Preparation times: elapsed hours before the visit, shown on the clinic's wall clock."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from booking.models import Appointment
from booking.preparation import appointment_preparation


def visit(appointment_type, local: str) -> Appointment:
    # Unsaved: preparation is a fact of the row, no query needed.
    start = datetime.fromisoformat(local)
    return Appointment(
        appointment_type=appointment_type,
        location=appointment_type.location,
        start=start,
        end=start + timedelta(minutes=appointment_type.duration_minutes),
    )


def wall(moment: datetime | None) -> tuple[str, str | None]:
    assert moment is not None
    return moment.strftime("%Y-%m-%d %H:%M"), moment.tzname()


def test_a_0830_visit_means_nothing_to_eat_after_0230_and_clear_liquids_until_0630(infusion):
    prep = appointment_preparation(visit(infusion, "2026-10-07T08:30:00-04:00"))

    assert wall(prep.solids_until) == ("2026-10-07 02:30", "EDT")
    assert wall(prep.clear_liquids_until) == ("2026-10-07 06:30", "EDT")
    assert wall(prep.arrive_at) == ("2026-10-07 08:15", "EDT")
    assert prep.escort_required
    assert prep.no_driving_hours == 24
    assert wall(prep.no_driving_until) == ("2026-10-08 10:00", "EDT")


def test_on_the_morning_clocks_fall_back_six_real_hours_before_0830_est_is_0230_est(infusion):
    # Clocks go from 02:00 EDT back to 01:00 EST before 02:30, so the six hours between 02:30
    # and 08:30 are all EST: the wall-clock answer and the elapsed-time answer agree here.
    start = datetime.fromisoformat("2026-11-01T08:30:00-05:00")
    prep = appointment_preparation(visit(infusion, start.isoformat()))

    assert wall(prep.solids_until) == ("2026-11-01 02:30", "EST")
    assert wall(prep.clear_liquids_until) == ("2026-11-01 06:30", "EST")
    assert prep.solids_until is not None
    assert start - prep.solids_until == timedelta(hours=6)


def test_when_the_fall_back_hour_lies_inside_the_fast_the_cutoff_is_the_second_0130(infusion):
    # 6 elapsed hours before 07:30 EST is 01:30 EST; 01:30 EDT (the first one) would be 7 hours.
    start = datetime.fromisoformat("2026-11-01T07:30:00-05:00")
    prep = appointment_preparation(visit(infusion, start.isoformat()))

    assert wall(prep.solids_until) == ("2026-11-01 01:30", "EST")
    assert prep.solids_until is not None
    assert prep.solids_until.fold == 1
    assert start - prep.solids_until == timedelta(hours=6)


def test_on_the_morning_clocks_spring_forward_the_cutoff_is_0130_est_not_a_missing_0230(
    infusion,
):
    start = datetime.fromisoformat("2026-03-08T08:30:00-04:00")
    prep = appointment_preparation(visit(infusion, start.isoformat()))

    assert wall(prep.solids_until) == ("2026-03-08 01:30", "EST")
    assert wall(prep.clear_liquids_until) == ("2026-03-08 06:30", "EDT")
    assert prep.solids_until is not None
    assert start - prep.solids_until == timedelta(hours=6)


@pytest.mark.parametrize(
    ("slug", "solids", "liquids"),
    [("consultation", None, None), ("spravato", "2026-10-07 08:30", None)],
)
def test_types_without_a_fasting_rule_have_no_cutoff(clinic, slug, solids, liquids):
    appointment_type = clinic.appointment_types.get(slug=slug)

    prep = appointment_preparation(visit(appointment_type, "2026-10-07T10:30:00-04:00"))

    assert (prep.solids_until and wall(prep.solids_until)[0]) == solids
    assert (prep.clear_liquids_until and wall(prep.clear_liquids_until)[0]) == liquids
