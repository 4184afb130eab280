from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from booking.access.audit import audit
from booking.clinic import ClinicInvalid, clinic_set_up
from booking.models import AuditAction


class Command(BaseCommand):
    """A new clinic from nothing: one location with the default appointment types, protocols,
    reminder rules and intake questions, and no accounts, staff, chairs or demo data.

    Then a superuser (``createsuperuser``) signs in at /staff/ and sets the rest up at
    /staff/setup/: hours, people and places, staff accounts. Run it again with another
    ``--slug`` for each further location; a slug already taken is refused.
    """

    help = "Create a location with the default types, protocols, reminders and intake questions."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True, help="Internal name, seen by staff only.")
        parser.add_argument(
            "--public-name",
            required=True,
            help="The neutral name patients see in pages and messages (it must not reveal the "
            "treatment).",
        )
        parser.add_argument(
            "--timezone", required=True, help="The IANA zone, e.g. America/New_York."
        )
        parser.add_argument(
            "--slug", default=None, help="Its part of the booking address (default: from name)."
        )
        parser.add_argument("--address", default="")
        parser.add_argument("--phone", default="", help="The number patients may call.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            set_up = clinic_set_up(
                name=options["name"],
                public_name=options["public_name"],
                timezone=options["timezone"],
                slug=options["slug"],
                address=options["address"],
                phone=options["phone"],
            )
        except ClinicInvalid as refused:
            flag = (refused.field or "").replace("_", "-")
            raise CommandError(f"{refused.message} (--{flag})") from refused
        location = set_up.location
        audit(None, AuditAction.CREATE, location, setup=True, via="clinic_create")
        self.stdout.write(
            f"Created location {location.name!r} (slug {location.slug}, {location.timezone}) with:"
        )
        for line in set_up.summary():
            self.stdout.write(f"  - {line}")
        self.stdout.write(
            "No accounts, staff, chairs or rooms were created. Next: create a superuser "
            "(manage.py createsuperuser), sign in at /staff/ and set the clinic up at "
            f"/staff/setup/{location.pk}/."
        )
