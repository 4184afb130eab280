"""The clinic bench.peers loads into both systems: the same for everyone, and bookable."""

from collections import defaultdict
from datetime import date, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from bench.peers import HOURS, SERVICES, clinic_generate, overlap_target, window_first_day

NEW_YORK = ZoneInfo("America/New_York")


def test_the_same_day_and_seed_give_the_same_clinic():
    first = clinic_generate(first_day=date(2027, 1, 4), staff=4, visits=200)
    again = clinic_generate(first_day=date(2027, 1, 4), staff=4, visits=200)
    other_seed = clinic_generate(first_day=date(2027, 1, 4), staff=4, visits=200, seed=1)

    assert first == again
    assert first["visits"] != other_seed["visits"]


def test_every_visit_fits_the_hours_and_no_staff_member_is_booked_twice_at_once():
    clinic = clinic_generate(first_day=date(2027, 1, 4))
    by_staff_day = defaultdict(list)
    for person, day, minute, slug in clinic["visits"]:
        opens, closes = HOURS[date.fromisoformat(day).weekday()]
        end = minute + SERVICES[slug]
        assert opens <= minute
        assert end <= closes
        assert minute % clinic["grid"] == 0
        by_staff_day[person, day].append((minute, end))

    assert len(clinic["visits"]) == 2_500
    assert len(clinic["staff"]) == 20
    for spans in by_staff_day.values():
        spans.sort()
        assert all(end <= start for (_, end), (start, _) in pairwise(spans))


def test_the_overlap_target_is_a_visit_of_the_asked_service():
    clinic = clinic_generate(first_day=date(2027, 1, 4), staff=3, visits=50)

    target = overlap_target(clinic)

    assert target in clinic["visits"]
    assert target[3] == clinic["asked"]


def test_the_window_starts_on_a_monday_at_least_a_week_ahead():
    assert window_first_day(date(2027, 1, 6), NEW_YORK) == date(2027, 1, 18)
    assert window_first_day(date(2027, 1, 4), NEW_YORK) == date(2027, 1, 11)


def test_the_window_skips_a_change_of_utc_offset():
    # 2027-03-14 is the spring-forward Sunday in New York: the windows from 2027-03-01 and
    # 2027-03-08 contain it, so the first clean one starts on 2027-03-15.
    first = window_first_day(date(2027, 2, 22), NEW_YORK)

    assert first == date(2027, 3, 15)
    offsets = {
        datetime(day.year, day.month, day.day, tzinfo=NEW_YORK).utcoffset()
        for day in (first + timedelta(days=n) for n in range(15))
    }
    assert len(offsets) == 1
