"""Every clinical booking rule against every booking path: the rule-by-path matrix.

``booking.eligibility.treatment_check`` is the one rule check behind every way a treatment visit
is booked or moved. This module walks each rule across each path and asserts the same three
things everywhere: the request is refused (a 422 ``not_eligible`` naming the rule, or on a
patient's page the reason shown), nothing was booked or moved, and, for the two clinical
judgements, a prescriber's ``override_reason`` lets it through (kept in the visit's history as a
``rule_override`` event) where the path takes one, while anybody else's reason is a 403.
``tests/booking/test_treatment_spacing.py`` walks the spacing rule in depth; this is the grid.

The rules (each broken after the path has set up what it needs, as it happens in a clinic)

- ``no-decision``: the patient has no eligibility decision on file;
- ``declined``: a prescriber declined treatment after the approval;
- ``revoked``: the approval's plan was withdrawn;
- ``expired``: a new approval ran to the end of yesterday (set up late in the evening, tried the
  next morning);
- ``after-valid-until``: a new approval ends the day before the visit;
- ``sessions-used``: a new approval for one session, and the desk has booked it;
- ``rems-first-dose``: an observed (Spravato) first dose, and the patient's REMS enrolment was
  taken off the record (entered for the wrong patient);
- ``under-age``: the patient is 17 on the visit's day, 18 the day after (the desk corrected the
  date of birth);
- ``same-day``: another treatment that day, at another time;
- ``min-gap``: another mood infusion the day after (the protocol wants a free day between).

The paths

- ``api-create`` and ``api-reschedule``: ``/api/v1/appointments/`` and its ``reschedule/``;
- ``calendar-create`` and ``calendar-drag``: the desk calendar's own requests, as
  ``static/chairside/calendar.js`` makes them: the page's configuration and CSRF token, the
  visit found in the calendar's data (``/api/v1/calendar/``), then the staff appointments API;
  the drag moves a series session, so it goes through ``visit_move``'s series branch;
- ``waitlist-accept``: an offer made while the patient could take it, accepted on the offer's
  page after the rule was broken (``/w/<token>/accept/``);
- ``link-move``: the patient moves a visit from their secure link (``visit_reschedule``);
- ``link-series``: the patient books a series from their link (``/a/<token>/series/book/``);
- ``api-series``: a series booked through ``/api/v1/series/``;
- ``session-move``: a series session moved through ``/api/v1/series/sessions/<ref>/reschedule/``;
- ``held-session-move``: the same move while the series is on hold (the desk held it; held
  sessions may be given new times, "checked again on resume"), then the series resumed
  (``/api/v1/series/<id>/resume/``). Refusing at either step passes; the session must not end up
  booked at the new time.

Overrides are tried on the staff paths that take ``override_reason``: ``api-create``,
``calendar-create``, ``api-reschedule``, ``calendar-drag`` and ``session-move``.

Pairs left out, and why

- ``sessions-used`` and ``rems-first-dose`` on every move (``api-reschedule``, ``calendar-drag``,
  ``link-move``, ``session-move``, ``held-session-move``): a visit moved keeps the session it
  already holds and was checked for a first dose when booked.
- ``no-decision`` on every move, ``waitlist-accept`` and ``api-series``: a visit of a type that
  needs approval, a waitlist place (joining and every offer need a plan in force) and a series
  (booked under a plan) all presuppose an approval, and decisions are never deleted.
- ``declined`` and ``revoked`` on ``api-reschedule``, ``calendar-drag``, ``link-move`` and
  ``session-move``: a decline or a revocation puts every visit still to come on hold
  (``booking.eligibility._plans_stop``), and a held visit cannot be moved at all (409
  ``invalid_transition``, ``tests/booking/test_plan_stops.py``). A held series session can be
  given a new time: that is ``held-session-move``, where both rules are tried.

On ``link-series`` a plan that is not in force is not offered at all: its rules (no decision,
declined, revoked, expired, used up, REMS) answer the page "Nothing to book here" (404), which is
what is asserted there.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, ClassVar

import pytest
import time_machine
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.utils import timezone

from booking.access.roles import Role
from booking.defaults import protocols_install_defaults
from booking.eligibility import contraindications_none, eligibility_decide, plan_revoke
from booking.links import patient_link_issue
from booking.models import (
    ACTIVE_STATUSES,
    Appointment,
    DecisionOutcome,
    Patient,
    Protocol,
    Series,
    TreatmentPlan,
)
from booking.series.changes import series_hold
from booking.series.services import series_book
from booking.services import appointment_book
from booking.waitlist import offer_freed_slot, waitlist_add
from scheduling.models import AppointmentType, Location
from tests.booking.test_treatment_spacing import NEW_YORK, NOW, at, post, refused
from tests.booking.test_waitlist import offer_tokens
from tests.staff_helpers import client_for, signed_in, staff_user

# NOW (from the spacing tests) is Monday 1 June 2026, 08:00 in New York.
LATE = date(2026, 6, 17)  # Wednesday: where most attempts go
EARLY = date(2026, 6, 2)  # Tuesday: the day before the patient turns 18 (under-age)
ORIGIN = date(2026, 6, 3)  # the single visit a move starts from: the 18th birthday
# A mood series' sessions (a free day between, Monday to Saturday): a move takes the first
# session to EARLY, or the last to LATE, keeping the protocol's spacing either way.
SERIES_DAYS = [date(2026, 6, d) for d in (3, 5, 8, 10, 12, 15)]
BIRTHDAY = date(2008, 6, 3)
VALID_UNTIL = date(2026, 6, 16)  # the day before LATE
FAR_AWAY = date(2026, 7, 20)  # a Monday clear of everything else: the session that uses a plan up
# The expired approval: set up in the evening (offers made then are texted after the quiet
# hours and kept until 10:00), tried the next morning.
EVENING = datetime(2026, 6, 1, 22, tzinfo=NEW_YORK)
NEXT_MORNING = datetime(2026, 6, 2, 9, tzinfo=NEW_YORK)
REASON = "Reviewed with the patient today"


@pytest.fixture(autouse=True)
def clock() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


# --- What each case works with ------------------------------------------------------------------


@dataclass
class Case:
    rule: Rule
    clinic: Location
    patient: Patient
    appointment_type: AppointmentType
    prescriber: User
    # Set by the path: the visit it moves (or the series session), the series, the token of the
    # patient's link or of the waitlist offer.
    visit: Appointment | None = None
    series: Series | None = None
    token: str = ""

    @property
    def target(self) -> datetime:
        return at(self.rule.day, 10)

    @property
    def plan(self) -> TreatmentPlan | None:
        """The patient's newest plan for the type, in force or not."""
        return (
            TreatmentPlan.objects.filter(
                patient=self.patient, protocol__appointment_type=self.appointment_type
            )
            .select_related("protocol")
            .order_by("-decision__decided_at", "-pk")
            .first()
        )

    @property
    def protocol(self) -> Protocol:
        return Protocol.objects.get(appointment_type=self.appointment_type)

    @property
    def moving(self) -> Appointment:
        assert self.visit is not None
        return Appointment.objects.get(pk=self.visit.pk)

    def book(self, start: datetime, slug: str = "iv-mood") -> Appointment:
        """The desk books the patient a visit (a neighbour, a session used)."""
        return appointment_book(
            appointment_type=AppointmentType.objects.select_related("location").get(
                location=self.clinic, slug=slug
            ),
            patient=self.patient,
            start=start,
        )


def reapprove(case: Case, *, sessions: int = 100, valid_until: date = date(2027, 12, 31)) -> None:
    """A prescriber approves the patient again for the type, on new terms (the plan it replaces
    keeps what it booked)."""
    eligibility_decide(
        patient=case.patient,
        outcome=DecisionOutcome.APPROVED,
        contraindications=contraindications_none(),
        protocol=case.protocol,
        sessions_authorised=sessions,
        valid_until=valid_until,
        decided_by=case.prescriber,
    )


def snapshot(patient: Patient) -> list[tuple[Any, ...]]:
    """Every visit of the patient's (holds included) as it stands, and their series."""
    visits = Appointment.objects.filter(patient=patient).values_list(
        "pk", "start", "status", "version"
    )
    series = Series.objects.filter(plan__patient=patient).values_list("pk", "status")
    return sorted(visits) + sorted(series)


def page_text(response: Any) -> str:
    return html.unescape(response.content.decode())


def series_starts(protocol: Protocol, first: datetime) -> list[datetime]:
    """A start for each of the protocol's sessions from ``first``, each the protocol's least
    gap after the last (a day more when that day has no sessions), at the same time."""
    days = [first.astimezone(NEW_YORK).date()]
    while len(days) < protocol.sessions:
        day = days[-1] + timedelta(days=protocol.min_gap_days)
        while str(day.weekday()) not in protocol.allowed_weekdays:
            day += timedelta(days=1)
        days.append(day)
    hour = first.astimezone(NEW_YORK).hour
    return [at(day, hour) for day in days]


# --- The rules ----------------------------------------------------------------------------------


def _nothing(case: Case) -> None:
    """The patient never had a decision: nothing to break."""


def _decline(case: Case) -> None:
    eligibility_decide(
        patient=case.patient,
        outcome=DecisionOutcome.DECLINED,
        contraindications=contraindications_none(),
        decided_by=case.prescriber,
    )


def _revoke(case: Case) -> None:
    plan = case.plan
    assert plan is not None
    plan_revoke(plan=plan, revoked_by=case.prescriber)


def _expire(case: Case) -> None:
    reapprove(case, valid_until=timezone.now().astimezone(NEW_YORK).date())


def _end_before(case: Case) -> None:
    reapprove(case, valid_until=VALID_UNTIL)


def _use_up(case: Case) -> None:
    reapprove(case, sessions=1)
    case.book(at(FAR_AWAY, 10), slug=case.appointment_type.slug)


def _unenrol(case: Case) -> None:
    Patient.objects.filter(pk=case.patient.pk).update(rems_enrolled_at=None, rems_patient_id="")


def _correct_birthday(case: Case) -> None:
    Patient.objects.filter(pk=case.patient.pk).update(date_of_birth=BIRTHDAY)


def _same_day(case: Case) -> None:
    case.book(at(LATE, 15))


def _next_day(case: Case) -> None:
    case.book(at(LATE + timedelta(days=1), 10))


@dataclass(frozen=True)
class Rule:
    name: str
    # The words of the refusal that name the rule.
    says: str
    breaks: Callable[[Case], None]
    # A rule of the plan (no override) or a clinical judgement (a prescriber's override).
    of_the_plan: bool
    type_slug: str = "iv-mood"
    day: date = LATE
    decided: bool = True
    prepared_at: datetime = NOW
    tried_at: datetime = NOW
    # Series booking checks the starts against the plan's validity first, in its own words.
    says_for_series: str | None = None

    def __str__(self) -> str:
        return self.name


RULES = {
    rule.name: rule
    for rule in (
        Rule("no-decision", "No eligibility decision is on file", _nothing, True, decided=False),
        Rule("declined", "Treatment was declined on 2026-06-01", _decline, True),
        Rule("revoked", "treatment plan was withdrawn on 2026-06-01", _revoke, True),
        Rule(
            "expired",
            "approval expired on 2026-06-01",
            _expire,
            True,
            prepared_at=EVENING,
            tried_at=NEXT_MORNING,
            says_for_series="this approval runs until Monday, June 1",
        ),
        Rule(
            "after-valid-until",
            "valid until 2026-06-16; this visit would be after it",
            _end_before,
            True,
            says_for_series="this approval runs until Tuesday, June 16",
        ),
        Rule("sessions-used", "All 1 sessions the plan authorises are booked", _use_up, True),
        Rule(
            "rems-first-dose",
            "REMS enrolment must be on file before a first session",
            _unenrol,
            True,
            type_slug="spravato",
        ),
        Rule(
            "under-age",
            "is for patients aged 18 or over on the day of the visit",
            _correct_birthday,
            False,
            day=EARLY,
        ),
        Rule("same-day", "At most one treatment a day", _same_day, False),
        Rule("min-gap", "need at least 2 days between their starts", _next_day, False),
    )
}
ALL = frozenset(RULES)
OF_THE_PLAN = frozenset(name for name, rule in RULES.items() if rule.of_the_plan)
# What a move is checked for: it keeps its session and its first-dose check, and a visit of an
# approval-gated type has a decision behind it.
ON_A_MOVE = frozenset({"expired", "after-valid-until", "under-age", "same-day", "min-gap"})
# A plan that is not in force is not offered on the patient's series page at all.
NOT_OFFERED = OF_THE_PLAN - {"after-valid-until"}


# --- The paths ----------------------------------------------------------------------------------


class Path:
    name: ClassVar[str]
    rules: ClassVar[frozenset[str]]
    # Takes a prescriber's override_reason.
    overrides: ClassVar[bool] = False

    def __str__(self) -> str:
        return self.name

    def prepare(self, case: Case) -> None:
        """Set up what the path acts on, before the rule is broken."""

    def attempt(self, case: Case, user: User, reason: str = "") -> Any:
        raise NotImplementedError

    def says(self, case: Case) -> str:
        return case.rule.says

    def assert_refused(self, case: Case, response: Any) -> None:
        refused(response, self.says(case))

    def assert_unchanged(self, case: Case, before: list[tuple[Any, ...]]) -> None:
        assert snapshot(case.patient) == before

    def desk(self, clinic: Location) -> User:
        """Staff who may make the request but are not prescribers."""
        return staff_user(Role.FRONT_DESK, clinic)

    def overridden(self, case: Case, response: Any) -> Appointment:
        """The visit a successful override booked or moved, checked to be at the target."""
        raise NotImplementedError


def _body(case: Case, reason: str, **fields: Any) -> dict[str, Any]:
    return {**fields, **({"override_reason": reason} if reason else {})}


class _Creates(Path):
    rules = ALL
    overrides = True

    def new_visit(self, case: Case, reason: str) -> dict[str, Any]:
        return _body(
            case,
            reason,
            location=case.clinic.slug,
            appointment_type=case.appointment_type.slug,
            patient=case.patient.pk,
            start=case.target.isoformat(),
        )

    def overridden(self, case: Case, response: Any) -> Appointment:
        assert response.status_code == 201, response.content
        booked = Appointment.objects.get(reference=response.json()["reference"])
        assert (booked.patient_id, booked.start) == (case.patient.pk, case.target)
        return booked


class _Moves(Path):
    rules = ON_A_MOVE
    overrides = True

    def overridden(self, case: Case, response: Any) -> Appointment:
        assert response.status_code == 200, response.content
        moved = case.moving
        assert moved.start == case.target
        return moved


class DeskCalendar:
    """The calendar page as ``calendar.js`` drives it: its configuration and CSRF token from the
    page, the visits from the data endpoint, changes through the staff appointments API."""

    def __init__(self, user: User, day: date) -> None:
        self.client = signed_in(Client(enforce_csrf_checks=True), user)
        page = self.client.get("/staff/calendar/", {"location": "midtown", "date": day.isoformat()})
        assert page.status_code == 200, page.content
        text = page.content.decode()
        self.config: dict[str, Any] = json.loads(
            text.split('id="calendar-config" type="application/json">')[1].split("<")[0]
        )
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', text)
        assert token is not None
        self.csrf = token.group(1)

    def send(self, url: str, body: dict[str, Any]) -> Any:
        return self.client.post(
            url,
            data=json.dumps(body),
            content_type="application/json",
            headers={"X-CSRFToken": self.csrf, "Accept": "application/json"},
        )

    def event(self, reference: str, day: date) -> dict[str, Any]:
        data = self.client.get(
            self.config["dataUrl"],
            {
                "location": self.config["location"],
                "start": str(day),
                "end": str(day),
                "by": "chair",
            },
        )
        assert data.status_code == 200, data.content
        # The visit's piece on its chair (the calendar draws a piece per resource it holds).
        found: dict[str, Any] = next(
            e for e in data.json()["events"] if e["kind"] == "visit" and e["visit"] == reference
        )
        return found


class ApiCreate(_Creates):
    name = "api-create"

    def attempt(self, case: Case, user: User, reason: str = "") -> Any:
        return post(client_for(user), "/api/v1/appointments/", self.new_visit(case, reason))


class CalendarCreate(_Creates):
    name = "calendar-create"

    def attempt(self, case: Case, user: User, reason: str = "") -> Any:
        calendar = DeskCalendar(user, case.rule.day)
        return calendar.send(calendar.config["appointmentsUrl"], self.new_visit(case, reason))


class _SingleVisitMoves(_Moves):
    def prepare(self, case: Case) -> None:
        case.visit = case.book(at(ORIGIN, 10))


class ApiReschedule(_SingleVisitMoves):
    name = "api-reschedule"

    def attempt(self, case: Case, user: User, reason: str = "") -> Any:
        return post(
            client_for(user),
            f"/api/v1/appointments/{case.moving.reference}/reschedule/",
            _body(case, reason, start=case.target.isoformat()),
        )


class _SeriesMoves(_Moves):
    def prepare(self, case: Case) -> None:
        plan = case.plan
        assert plan is not None
        case.series = series_book(plan=plan, starts=[at(day, 10) for day in SERIES_DAYS])
        # The first session moves a day earlier, the last two days later: the spacing holds.
        index = 1 if case.rule.day < SERIES_DAYS[0] else len(SERIES_DAYS)
        case.visit = case.series.sessions.get(series_index=index)


class CalendarDrag(_SeriesMoves):
    name = "calendar-drag"

    def attempt(self, case: Case, user: User, reason: str = "") -> Any:
        session = case.moving
        calendar = DeskCalendar(user, case.rule.day)
        event = calendar.event(session.reference, session.start.astimezone(NEW_YORK).date())
        return calendar.send(
            f"{calendar.config['appointmentsUrl']}{event['visit']}/reschedule/",
            _body(case, reason, start=case.target.isoformat()),
        )


class SessionMove(_SeriesMoves):
    name = "session-move"

    def attempt(self, case: Case, user: User, reason: str = "") -> Any:
        return post(
            client_for(user),
            f"/api/v1/series/sessions/{case.moving.reference}/reschedule/",
            _body(case, reason, start=case.target.isoformat()),
        )

    def desk(self, clinic: Location) -> User:
        # The front desk cannot use the series API at all; one of them allowed to book series
        # reaches the rule check, which is what is tried here.
        user = staff_user(Role.FRONT_DESK, clinic)
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label="booking", codename="add_series")
        )
        return User.objects.get(pk=user.pk)


class HeldSessionMove(SessionMove):
    name = "held-session-move"
    rules = ON_A_MOVE | {"declined", "revoked"}
    overrides = False

    def prepare(self, case: Case) -> None:
        super().prepare(case)
        assert case.series is not None
        series_hold(series=case.series, reason="The patient is unwell this week")

    def attempt(self, case: Case, user: User, reason: str = "") -> Any:
        moved = super().attempt(case, user, reason)
        if moved.status_code != 200:
            return moved
        assert case.series is not None
        return post(client_for(user), f"/api/v1/series/{case.series.pk}/resume/", {})

    def assert_unchanged(self, case: Case, before: list[tuple[Any, ...]]) -> None:
        # A held session may be given a new time; it must not come back booked there.
        session = case.moving
        assert not (session.start == case.target and session.status in ACTIVE_STATUSES), (
            session.status
        )


class LinkMove(Path):
    name = "link-move"
    rules = ON_A_MOVE

    def prepare(self, case: Case) -> None:
        case.visit = case.book(at(ORIGIN, 10))
        case.token = patient_link_issue(patient=case.patient)

    def attempt(self, case: Case, user: User, reason: str = "") -> Any:
        return Client().post(
            f"/a/{case.token}/{case.moving.reference}/reschedule/",
            {"start": case.target.isoformat()},
            follow=True,
        )

    def assert_refused(self, case: Case, response: Any) -> None:
        # Back to the times of that day, with the reason above them.
        assert response.status_code == 200
        assert self.says(case) in page_text(response)


class WaitlistAccept(Path):
    name = "waitlist-accept"
    rules = ALL - {"no-decision"}

    def prepare(self, case: Case) -> None:
        waitlist_add(
            patient=case.patient,
            location=case.clinic,
            appointment_type=case.appointment_type,
            earliest_date=case.rule.day,
            latest_date=case.rule.day,
        )
        with offer_tokens() as tokens:
            offer = offer_freed_slot(appointment_type=case.appointment_type, start=case.target)
        assert offer is not None  # the patient could take it when it was offered
        case.token = tokens[offer.pk]

    def attempt(self, case: Case, user: User, reason: str = "") -> Any:
        return Client().post(f"/w/{case.token}/accept/")

    def assert_refused(self, case: Case, response: Any) -> None:
        assert response.status_code == 422, response.content
        assert self.says(case) in page_text(response)


class _BooksSeries(Path):
    def says(self, case: Case) -> str:
        return case.rule.says_for_series or case.rule.says

    def starts(self, case: Case) -> list[datetime]:
        return series_starts(case.protocol, case.target)


class ApiSeries(_BooksSeries):
    name = "api-series"
    rules = ALL - {"no-decision"}

    def attempt(self, case: Case, user: User, reason: str = "") -> Any:
        plan = case.plan
        assert plan is not None
        starts = [start.isoformat() for start in self.starts(case)]
        return post(client_for(user), "/api/v1/series/", {"plan": plan.pk, "starts": starts})


class LinkSeries(_BooksSeries):
    name = "link-series"
    rules = ALL

    def prepare(self, case: Case) -> None:
        case.token = patient_link_issue(patient=case.patient)
        plan = case.plan
        if plan is not None:  # on offer until the rule is broken
            page = Client().get(f"/a/{case.token}/series/", {"plan": plan.pk})
            assert page.status_code == 200, page.content

    def attempt(self, case: Case, user: User, reason: str = "") -> Any:
        plan = case.plan
        data = {"plan": "" if plan is None else str(plan.pk)}
        for n, start in enumerate(self.starts(case), start=1):
            data[f"session_{n}"] = start.isoformat()
        return Client().post(f"/a/{case.token}/series/book/", data)

    def assert_refused(self, case: Case, response: Any) -> None:
        if case.rule.name in NOT_OFFERED:
            assert response.status_code == 404, response.content
            assert "Nothing to book here" in page_text(response)
            assert "once your clinician has approved them" in page_text(response)
            return
        assert response.status_code == 422, response.content
        assert self.says(case) in page_text(response)


PATHS: list[Path] = [
    ApiCreate(),
    CalendarCreate(),
    ApiReschedule(),
    CalendarDrag(),
    SessionMove(),
    HeldSessionMove(),
    LinkMove(),
    WaitlistAccept(),
    ApiSeries(),
    LinkSeries(),
]

MATRIX = [(RULES[name], path) for path in PATHS for name in RULES if name in path.rules]
PLAN_OVERRIDES = [(rule, path) for rule, path in MATRIX if path.overrides and rule.of_the_plan]
CLINICAL_OVERRIDES = [
    (rule, path) for rule, path in MATRIX if path.overrides and not rule.of_the_plan
]


@dataclass
class Arranged:
    case: Case
    path: Path
    before: list[tuple[Any, ...]] = field(default_factory=list)


@pytest.fixture
def arrange(
    clock: time_machine.Traveller,
    clinic: Location,
    make_patient: Callable[..., Patient],
    make_approved_patient: Callable[..., Patient],
) -> Callable[[Rule, Path], Arranged]:
    """Set up ``path`` for the rule's patient, break ``rule``, and bring the clock to the
    attempt; ``before`` is the patient's visits as they then stand."""

    def make(rule: Rule, path: Path) -> Arranged:
        clock.move_to(rule.prepared_at)
        protocols_install_defaults(location=clinic)
        patient = make_approved_patient() if rule.decided else make_patient()
        case = Case(
            rule=rule,
            clinic=clinic,
            patient=patient,
            appointment_type=AppointmentType.objects.select_related("location").get(
                location=clinic, slug=rule.type_slug
            ),
            prescriber=staff_user(Role.PRESCRIBER, clinic),
        )
        path.prepare(case)
        rule.breaks(case)
        clock.move_to(rule.tried_at)
        return Arranged(case, path, snapshot(patient))

    return make


def _id(pair: tuple[Rule, Path]) -> str:
    rule, path = pair
    return f"{rule}-{path}"


# --- The matrix ---------------------------------------------------------------------------------


@pytest.mark.parametrize("pair", MATRIX, ids=[_id(pair) for pair in MATRIX])
def test_the_rule_refuses_on_the_path(pair: tuple[Rule, Path], arrange) -> None:
    rule, path = pair
    arranged = arrange(rule, path)
    case = arranged.case

    path.assert_refused(case, path.attempt(case, case.prescriber))

    path.assert_unchanged(case, arranged.before)


@pytest.mark.parametrize("pair", PLAN_OVERRIDES, ids=[_id(pair) for pair in PLAN_OVERRIDES])
def test_the_plan_is_no_rule_a_prescriber_sets_aside(pair: tuple[Rule, Path], arrange) -> None:
    rule, path = pair
    arranged = arrange(rule, path)
    case = arranged.case

    path.assert_refused(case, path.attempt(case, case.prescriber, REASON))

    path.assert_unchanged(case, arranged.before)
    assert not Appointment.objects.filter(events__kind="rule_override").exists()


@pytest.mark.parametrize("pair", CLINICAL_OVERRIDES, ids=[_id(pair) for pair in CLINICAL_OVERRIDES])
def test_only_a_prescriber_sets_the_rule_aside(pair: tuple[Rule, Path], arrange) -> None:
    rule, path = pair
    arranged = arrange(rule, path)
    case = arranged.case

    desk = path.attempt(case, path.desk(case.clinic), REASON)

    assert desk.status_code == 403, desk.content
    assert desk.json()["error"]["code"] == "permission_denied"
    path.assert_unchanged(case, arranged.before)

    visit = path.overridden(case, path.attempt(case, case.prescriber, REASON))

    override = visit.events.get(kind="rule_override")
    assert override.by == case.prescriber
    assert override.detail.startswith(f"{REASON} (overriding: ")
    assert rule.says in override.detail


def test_the_matrix_leaves_out_only_what_the_docstring_says() -> None:
    left_out = {(rule, path.name) for path in PATHS for rule in RULES if rule not in path.rules}
    moves = {"api-reschedule", "calendar-drag", "session-move", "held-session-move", "link-move"}
    expected = (
        {(rule, path) for path in moves for rule in ("sessions-used", "rems-first-dose")}
        | {("no-decision", path) for path in moves | {"waitlist-accept", "api-series"}}
        | {
            (rule, path)
            for path in moves - {"held-session-move"}
            for rule in ("declined", "revoked")
        }
    )
    assert left_out == expected
    assert len(MATRIX) == len(PATHS) * len(RULES) - len(expected)
