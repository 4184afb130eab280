from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group, Permission, User
from django.core.management.base import BaseCommand
from django.db import transaction
from django.test import override_settings
from django.utils import timezone
from django.utils.module_loading import import_string

from booking import checkin
from booking.access.audit import audit
from booking.access.roles import Role
from booking.access.two_factor import DEMO_TOTP_SECRET, demo_enrol
from booking.clinic import clinic_create
from booking.eligibility import contraindications_none, eligibility_decide
from booking.errors import BookingError
from booking.models import (
    SMS_CONSENT_VERSION,
    Appointment,
    AppointmentStatus,
    AuditAction,
    DecisionOutcome,
    Patient,
    Protocol,
    Series,
    StaffProfile,
    TreatmentPlan,
)
from booking.series.changes import series_hold, series_review_confirm
from booking.series.services import series_book
from booking.services import (
    appointment_book,
    appointment_cancel,
    appointment_confirm,
    appointment_escort_update,
)
from booking.waitlist import offer_freed_slot, waitlist_add
from notifications.delivery import message_deliver_due, message_send
from notifications.sms import BaseBackend, PermanentSendError
from scheduling.demo import DEMO_LOCATIONS, demo_board_day, demo_resources_create, demo_weekdays
from scheduling.models import AppointmentKind, AppointmentType, Location, Resource, StaffRole

DEFAULT_SEED = 2026
FIRST_NAMES = (
    "Avery", "Blake", "Casey", "Devon", "Emery", "Finley", "Harper", "Jamie", "Kendall",
    "Logan", "Morgan", "Noel", "Parker", "Quinn", "Riley", "Sage", "Taylor", "Rowan",
)  # fmt: skip
LAST_NAMES = (
    "Jordan", "Reed", "Ellis", "Hayes", "Brooks", "Carter", "Foster", "Gray", "Hughes",
    "Lane", "Mills", "Price", "Shaw", "Wells", "Young", "Bishop",
)  # fmt: skip
ESCORTS = ("Alex Rivera", "Sam Patel", "Chris Novak", "Dana Kim", "Lee Moreno")
# When consultations start (clinic time): around the prescribers' lunch, never through it.
CONSULT_TIMES = (time(8, 30), time(11, 0), time(13, 30), time(15, 0), time(16, 0))
# The carrier refuses texts to this demo number, so the desk's list of failures has one entry.
UNREACHABLE_PHONE = "+12125550199"

# Demo sign-ins for the staff pages, one per role: (username, first, last, role, all locations).
DEMO_STAFF = (
    ("desk", "Robin", "Hale", Role.FRONT_DESK, True),
    ("nurse", "Sam", "Ortiz", Role.NURSE, False),
    ("prescriber", "Amara", "Osei", Role.PRESCRIBER, False),
    ("admin", "Kim", "Lee", Role.ADMIN, True),
)


class Command(BaseCommand):
    """Lives in notifications, the top of the app stack, because it sets up every layer."""

    help = "Seed the demo clinic: two locations, staff, chairs, types, reminders and bookings."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--seed",
            type=int,
            default=DEFAULT_SEED,
            help="Draws the demo's patients and times: the same seed on the same day builds the "
            "same clinic.",
        )
        parser.add_argument(
            "--allow-production",
            action="store_true",
            help="Enrol the demo accounts with the published two-factor secret even though "
            "this is not a local demo (DEBUG, or SQLite without HTTPS).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        locations = _demo_locations()
        self._demo_staff(locations)
        self._demo_two_factor(allow_production=options.get("allow_production", False))
        if Appointment.objects.exists():
            self.stdout.write("Demo clinic already seeded.")
            return
        # A seeded generator, not a secret: the same seed builds the same demo.
        rng = random.Random(options.get("seed", DEFAULT_SEED))  # noqa: S311
        demo = DemoClinic(rng, timezone.now())
        for location in locations:
            demo.location_build(location, busy=location == locations[0])
        demo.outbox_deliver()
        for problem in demo.skipped:
            self.stderr.write(f"skipped a demo step: {problem}")
        self.stdout.write(
            f"Demo clinic seeded: {len(locations)} locations, {demo.booked} bookings, "
            f"{Series.objects.count()} series, a waitlist offer open."
        )

    def _demo_staff(self, locations: list[Location]) -> None:
        """One account per role, signed in at /staff/ with DEMO_STAFF_PASSWORD. The nurse and
        the prescriber work at the first location only, so the scoping shows."""
        password = settings.DEMO_STAFF_PASSWORD
        for username, first, last, role, everywhere in DEMO_STAFF:
            user, created = User.objects.get_or_create(
                username=username,
                defaults={"first_name": first, "last_name": last, "is_staff": role == Role.ADMIN},
            )
            if not created:
                continue
            user.set_password(password)
            user.save()
            user.groups.add(Group.objects.get(name=role))
            profile = StaffProfile.objects.create(user=user)
            profile.locations.set(locations if everywhere else locations[:1])
            if role == Role.PRESCRIBER:
                profile.resource = Resource.objects.filter(
                    location=locations[0], role=StaffRole.PRESCRIBER
                ).first()
                profile.save(update_fields=["resource"])
        self.stdout.write(
            "Staff sign-in at /staff/: "
            + ", ".join(username for username, *_ in DEMO_STAFF)
            + f" (password {password!r})."
        )

    def _demo_two_factor(self, *, allow_production: bool) -> None:
        """The demo accounts' second factor: the published demo secret on a local demo only."""
        users = User.objects.filter(username__in=[username for username, *_ in DEMO_STAFF])
        if demo_enrol(users, allow_production=allow_production):
            self.stdout.write(
                "Two-factor code: `manage.py demo_code` prints it (demo secret "
                f"{DEMO_TOTP_SECRET}, in any authenticator app)."
            )
        else:
            self.stdout.write(
                "Two-factor: not a local demo, so the demo accounts set up their own "
                "authenticator at first sign-in (the published secret is for local demos)."
            )


def _demo_locations() -> list[Location]:
    """The demo's locations, made once (an existing slug is left as it is) by the same service
    as a real clinic's, so the demo starts from the same defaults; then its people and chairs."""
    locations = []
    for spec in DEMO_LOCATIONS:
        location = Location.objects.filter(slug=spec["slug"]).first()
        if location is None:
            with transaction.atomic():
                location = clinic_create(**spec)
                demo_resources_create(location)
        locations.append(location)
    return locations


def _demo_prescriber() -> User:
    """The prescriber who signed the demo approvals; no password, so nobody signs in as them."""
    user, created = User.objects.get_or_create(
        username="demo-prescriber", defaults={"first_name": "Amara", "last_name": "Osei"}
    )
    if created:
        user.set_unusable_password()
        user.save()
        user.user_permissions.add(
            Permission.objects.get(
                content_type__app_label="booking", codename="add_eligibilitydecision"
            )
        )
    return user


def _approve(patient: Patient, protocol: Protocol, by: User, now: datetime) -> TreatmentPlan:
    eligibility_decide(
        patient=patient,
        outcome=DecisionOutcome.APPROVED,
        contraindications=contraindications_none(),
        protocol=protocol,
        sessions_authorised=protocol.sessions,
        valid_until=(now + timedelta(days=90)).date(),
        decided_by=by,
        now=now,
    )
    return TreatmentPlan.objects.get(patient=patient, protocol=protocol, revoked_at__isnull=True)


class _DemoCarrier(BaseBackend):
    """The configured text backend, except that the demo's unreachable number is refused as a
    carrier refuses a disconnected one: the outbox records a real failure."""

    def send(self, to: str, body: str) -> str:
        if to == UNREACHABLE_PHONE:
            raise PermanentSendError("carrier: the number is not in service")
        backend: BaseBackend = import_string(_DemoCarrier.configured)()
        return backend.send(to, body)

    configured = ""


S = AppointmentStatus
# The steps a visit goes through at the desk, in order (booking.checkin).
STEPS = (S.CHECKED_IN, S.IN_CHAIR, S.RECOVERING, S.DISCHARGED)


def _weekday_after(day: date, days: int) -> date:
    day += timedelta(days=days)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def _weekday_before(day: date, days: int) -> date:
    day -= timedelta(days=days)
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return day


def _series_days(anchor: date, index: int, sessions: int) -> list[date]:
    """Session days a free day apart (Mon-Wed-Fri), weekdays only, session ``index`` on
    ``anchor``."""
    days = [anchor]
    for _ in range(index):
        days.insert(0, _weekday_before(days[0], 2))
    while len(days) < sessions:
        days.append(_weekday_after(days[-1], 2))
    return days


@dataclass
class DemoClinic:
    """Builds the demo's visits through the booking services, each step at the time it would
    have happened (every service takes its clock), so the rows are what real use leaves."""

    rng: random.Random
    now: datetime
    booked: int = 0
    skipped: list[str] = field(default_factory=list)
    _serial: int = 0

    def __post_init__(self) -> None:
        self.desk = User.objects.get(username="desk")
        self.nurse = User.objects.get(username="nurse")
        self.prescriber = User.objects.get(username="prescriber")
        self.approver = _demo_prescriber()

    # --- people -----------------------------------------------------------------------------

    def patient(self, location: Location, phone: str = "") -> Patient:
        self._serial += 1
        first, last = self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES)
        area = location.phone[:5]  # the clinic's own area code: +1212 or +1303
        return Patient.objects.create(
            first_name=first,
            last_name=last,
            email=f"{first}.{last}.{self._serial}@example.com".lower(),
            # 555-01xx: numbers reserved for fiction.
            phone=phone or f"{area}55501{self._serial % 100:02d}",
            date_of_birth=date(1960 + self.rng.randrange(40), self.rng.randrange(1, 13), 15),
            sms_consent=True,
            sms_consent_at=self.now - timedelta(days=60),
            sms_consent_version=SMS_CONSENT_VERSION,
        )

    # --- visits ------------------------------------------------------------------------------

    def at(self, location: Location, day: date, clock: time) -> datetime:
        return datetime.combine(day, clock, tzinfo=location.zone)

    def book(
        self, appointment_type: AppointmentType, patient: Patient, start: datetime
    ) -> Appointment | None:
        # Booked a few days ahead, or now for a visit still to come.
        booked_at = min(self.now, start - timedelta(days=4))
        try:
            visit = appointment_book(
                appointment_type=appointment_type,
                patient=patient,
                start=start,
                now=booked_at,
                by=self.desk,
            )
        except BookingError as exc:
            self.skipped.append(f"{appointment_type.slug} at {start:%Y-%m-%d %H:%M}: {exc.message}")
            return None
        self.booked += 1
        return visit

    def prepare(self, visit: Appointment, *, complete: bool = True) -> None:
        """The pre-visit checklist, ticked the day before (the escort by phone)."""
        before = min(self.now, visit.start - timedelta(days=1))
        kind = visit.appointment_type
        if kind.kind == AppointmentKind.CONSULTATION:
            return
        checkin.appointment_checklist_record(
            appointment=visit, item="fasting", by=self.desk, now=before
        )
        if not complete:
            return
        checkin.appointment_checklist_record(
            appointment=visit, item="medications", by=self.nurse, now=before
        )
        checkin.appointment_checklist_record(
            appointment=visit, item="consent", by=self.desk, now=before
        )
        if kind.escort_required:
            appointment_escort_update(
                appointment=visit,
                name=self.rng.choice(ESCORTS),
                phone=f"{visit.location.phone[:5]}5550177",
                by=self.desk,
                now=before,
            )

    def progress(self, visit: Appointment, to: str) -> Appointment:
        """Take ``visit`` to status ``to`` through the desk's steps, each at its own time."""
        start = visit.start
        if to == S.NO_SHOW:
            late = start + timedelta(minutes=visit.location.no_show_after_minutes + 5)
            return checkin.appointment_no_show(appointment=visit, by=self.desk, now=late)
        if to == S.CONFIRMED:
            return appointment_confirm(
                appointment=visit, now=min(self.now, start - timedelta(hours=20))
            )
        if to not in STEPS:
            return visit
        self.prepare(visit)
        infusion = visit.appointment_type.kind != AppointmentKind.CONSULTATION
        visit = checkin.appointment_check_in(
            appointment=visit, by=self.desk, now=start - timedelta(minutes=10)
        )
        if to == S.CHECKED_IN:
            return visit
        visit = checkin.appointment_seat(appointment=visit, by=self.nurse, now=start)
        if infusion and STEPS.index(to) >= STEPS.index(S.RECOVERING):
            visit = checkin.appointment_recover(
                appointment=visit, by=self.nurse, now=start + timedelta(minutes=50)
            )
        if to in (S.IN_CHAIR, S.RECOVERING):
            return visit
        if visit.appointment_type.escort_required:
            visit = checkin.appointment_escort_arrived(
                appointment=visit, by=self.nurse, now=visit.end - timedelta(minutes=15)
            )
        leave = max(visit.end, visit.may_leave_at or visit.end) + timedelta(minutes=5)
        return checkin.appointment_discharge(appointment=visit, by=self.nurse, now=leave)

    def past_status(self, start: datetime) -> str:
        """What became of a visit by now: discharged once over, now and then a no-show."""
        if start >= self.now:
            return S.CONFIRMED if start - self.now < timedelta(days=1) else S.BOOKED
        return S.NO_SHOW if self.rng.random() < 0.08 else S.DISCHARGED

    # --- a location's three weeks ------------------------------------------------------------

    def location_build(self, location: Location, *, busy: bool) -> None:
        types = {t.slug: t for t in AppointmentType.objects.filter(location=location)}
        protocols = {
            p.slug: p
            for p in Protocol.objects.filter(appointment_type__location=location, is_active=True)
        }
        today = self.now.astimezone(location.zone).date()
        board = demo_board_day(today)
        for day in demo_weekdays(today):
            if day == board:
                continue
            for clock in sorted(self.rng.sample(CONSULT_TIMES, 2)):
                start = self.at(location, day, clock)
                visit = self.book(types["consultation"], self.patient(location), start)
                if visit is not None:
                    self.progress(visit, self.past_status(start))
        mood = protocols["mood-induction"]
        # Infusion series, each with its session on the board's day at a step of the day.
        series_today = (
            [(3, time(8, 0), S.DISCHARGED), (1, time(9, 30), S.RECOVERING),
             (4, time(10, 15), S.IN_CHAIR), (0, time(13, 0), S.CONFIRMED)]
            if busy
            else [(2, time(9, 0), S.CHECKED_IN)]
        )  # fmt: skip
        for index, clock, status in series_today:
            series = self.series(location, mood, board, index, clock)
            if series is None:
                continue
            visits = list(series.sessions.order_by("start"))
            for number, visit in enumerate(visits):
                if number < index:
                    self.progress(visit, S.DISCHARGED)
                elif number == index:
                    self.prepare(visit, complete=status != S.CONFIRMED)
                    self.progress(visit, status)
                elif number == index + 1:
                    self.prepare(visit, complete=False)
            self.review(series)
        consult = types["consultation"]
        # The board's consultations: one arrived, one who did not come, one still to come.
        for clock, status in ((time(8, 30), S.NO_SHOW), (time(11, 0), S.CHECKED_IN)) + (
            ((time(15, 0), S.BOOKED),) if busy else ((time(15, 0), S.CONFIRMED),)
        ):
            visit = self.book(consult, self.patient(location), self.at(location, board, clock))
            if visit is not None:
                self.progress(visit, status)
        if not busy:
            return
        self.series_on_hold(location, mood, board)
        self.booster(location, protocols["booster"], types["booster"], board)
        self.waitlist(location, consult, board)

    def series(
        self, location: Location, protocol: Protocol, anchor: date, index: int, clock: time
    ) -> Series | None:
        days = _series_days(anchor, index, protocol.sessions)
        starts = [self.at(location, day, clock) for day in days]
        booked_at = min(self.now, starts[0] - timedelta(days=3))
        patient = self.patient(location)
        plan = _approve(patient, protocol, self.approver, booked_at - timedelta(days=7))
        try:
            series = series_book(plan=plan, starts=starts, now=booked_at)
        except BookingError as exc:
            self.skipped.append(f"series from {starts[0]:%Y-%m-%d %H:%M}: {exc.message}")
            return None
        self.booked += len(starts)
        return series

    def review(self, series: Series) -> None:
        """The prescriber's review once the gate's session has begun; later ones wait."""
        gate = series.protocol.review_after_session
        sessions = list(series.sessions.order_by("start"))
        if gate is None or sessions[gate - 1].start > self.now:
            return
        series_review_confirm(
            series=series, by=self.prescriber, now=sessions[gate - 1].start + timedelta(hours=2)
        )

    def series_on_hold(self, location: Location, protocol: Protocol, board: date) -> None:
        """A series stopped mid-way: a contraindication flagged the day before the board's."""
        series = self.series(location, protocol, board, 3, time(14, 0))
        if series is None:
            return
        visits = list(series.sessions.order_by("start"))
        for visit in visits[:3]:
            self.progress(visit, S.DISCHARGED)
        self.review(series)
        held_at = min(self.now, self.at(location, _weekday_before(board, 1), time(16, 0)))
        series_hold(series=series, reason="Blood pressure high at the last session", now=held_at)

    def booster(
        self, location: Location, protocol: Protocol, kind: AppointmentType, board: date
    ) -> None:
        """A booster due next week, for a patient whose induction ended before the demo; their
        number is the unreachable one."""
        patient = self.patient(location, phone=UNREACHABLE_PHONE)
        _approve(patient, protocol, self.approver, self.now - timedelta(days=2))
        start = self.at(location, _weekday_after(board, 5), time(10, 0))
        try:
            appointment_book(
                appointment_type=kind,
                patient=patient,
                start=start,
                now=self.now - timedelta(days=1),
                by=self.desk,
            )
            self.booked += 1
        except BookingError as exc:
            self.skipped.append(exc.message)

    def waitlist(self, location: Location, consult: AppointmentType, board: date) -> None:
        """A patient waiting for a consultation, and a cancellation that offers them its slot."""
        waiting = self.patient(location)
        first, last = _weekday_after(board, 1), _weekday_after(board, 10)
        waitlist_add(
            patient=waiting,
            location=location,
            appointment_type=consult,
            earliest_date=first,
            latest_date=last,
            by=self.desk,
            now=self.now,
        )
        later = [
            visit
            for visit in Appointment.objects.filter(
                appointment_type=consult, status=S.BOOKED, start__gt=self.now
            ).order_by("start")
            if _weekday_after(board, 2) <= visit.start.astimezone(location.zone).date() <= last
        ]
        if not later:
            self.skipped.append("no consultation to cancel for the waitlist")
            return
        visit, start = later[0], later[0].start
        appointment_cancel(
            appointment=visit, reason="Patient asked for a later date", by=self.desk, now=self.now
        )
        # After the cancel's commit booking offers the slot itself; inside a caller's
        # transaction (a test) that waits for a commit, so it is offered here too (a second
        # offer of one slot finds it held and makes none).
        offer_freed_slot(appointment_type=consult, start=start, now=self.now)
        for seen in Appointment.objects.filter(location=location, start__date=board)[:3]:
            audit(None, AuditAction.VIEW, seen, user=self.desk)

    # --- messages ------------------------------------------------------------------------------

    def outbox_deliver(self) -> None:
        """What the worker would have sent by now: a sweep every few hours over the last days
        (sooner than the reminders' six-hour late cut-off), each message sent at its sweep.
        Older ones are skipped as too late, as they would be after a pause."""
        _DemoCarrier.configured = settings.SMS_BACKEND
        carrier = f"{_DemoCarrier.__module__}.{_DemoCarrier.__qualname__}"
        sweep = self.now - timedelta(days=3)
        with override_settings(SMS_BACKEND=carrier):
            while True:
                sweep = min(sweep, self.now)

                def send(ids: list[int], at: datetime = sweep) -> None:
                    for message_id in ids:
                        message_send(message_id=message_id, now=at)

                message_deliver_due(now=sweep, enqueue=send)
                if sweep == self.now:
                    break
                sweep += timedelta(hours=4)
