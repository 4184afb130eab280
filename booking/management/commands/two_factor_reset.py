from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from booking.access.two_factor import two_factor_required, two_factor_reset


class Command(BaseCommand):
    """Forget a staff account's authenticator and recovery codes: the way back in for someone
    who lost both their phone and their recovery codes. Where a second factor is required they
    set up a new authenticator at their next sign-in; their password is unchanged."""

    help = "Remove a staff account's two-factor authenticator and recovery codes."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"username: no account {options['username']!r}")
        two_factor_reset(user)
        then = (
            "enrols again at the next sign-in" if two_factor_required(user) else "may enrol again"
        )
        self.stdout.write(f"Two-factor sign-in of {user.get_username()} reset; {then}.")
