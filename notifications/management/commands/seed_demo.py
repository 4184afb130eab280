from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group, Permission, User
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from booking.access.roles import Role
from booking.access.two_factor import DEMO_TOTP_SECRET, demo_enrol
from booking.clinic import clinic_create
from booking.eligibility import contraindications_none, eligibility_decide
from booking.errors import BookingError
from booking.models import (
    SMS_CONSENT_VERSION,
    Appointment,
    DecisionOutcome,
    Patient,
    Protocol,
    StaffProfile,
)
from booking.services import appointment_book
from scheduling.demo import DEMO_LOCATIONS, demo_resources_create
from scheduling.models import AppointmentType, Location, Resource, StaffRole

DEMO_PATIENTS = (
    ("Avery", "Jordan", "avery.jordan@example.com", "+12125550111", date(1984, 3, 14)),
    ("Blake", "Morgan", "blake.morgan@example.com", "+12125550122", date(1979, 11, 2)),
    ("Casey", "Reed", "casey.reed@example.com", "+13035550133", date(1991, 7, 23)),
    ("Devon", "Quinn", "devon.quinn@example.com", "+13035550144", date(1968, 1, 30)),
)

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
        now = timezone.now()
        patients = [
            Patient.objects.create(
                first_name=first,
                last_name=last,
                email=email,
                phone=phone,
                date_of_birth=born,
                sms_consent=True,
                sms_consent_at=now,
                sms_consent_version=SMS_CONSENT_VERSION,
            )
            for first, last, email, phone, born in DEMO_PATIENTS
        ]
        prescriber = _demo_prescriber()
        booked = 0
        for week, location in enumerate(locations):
            zone = location.zone
            types = {t.slug: t for t in AppointmentType.objects.filter(location=location)}
            plan = [("consultation", 10), ("iv-mood", 9), ("iv-mood", 11), ("iv-pain", 8)]
            for offset, patient in enumerate(patients):
                slug, hour = plan[offset]
                if types[slug].needs_approval:
                    _approve(patient, types[slug], prescriber, now)
                day = (now.astimezone(zone) + timedelta(days=2 + offset + 7 * week)).date()
                while day.weekday() >= 5:
                    day += timedelta(days=1)
                start = datetime.combine(day, time(hour, 0), tzinfo=zone)
                try:
                    appointment_book(
                        appointment_type=types[slug], patient=patient, start=start, now=now
                    )
                    booked += 1
                except BookingError as exc:
                    self.stderr.write(f"skipped a demo booking: {exc.message}")
        self.stdout.write(f"Demo clinic seeded: {len(locations)} locations, {booked} bookings.")

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


def _approve(patient: Patient, appointment_type: AppointmentType, by: User, now: datetime) -> None:
    protocol = Protocol.objects.filter(appointment_type=appointment_type, is_active=True).first()
    if protocol is None:
        return
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
