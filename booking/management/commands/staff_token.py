from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from rest_framework.authtoken.models import Token

from booking.access.roles import is_staff_member


class Command(BaseCommand):
    """An API token for a staff account (``Authorization: Token <key>``): prints the account's
    token, making one if it has none. ``--rotate`` replaces it, so the old key stops working at
    once. The token carries the account's role and locations, nothing more."""

    help = "Print (or, with --rotate, replace) the API token of a staff account."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument(
            "--rotate", action="store_true", help="Replace the token; the old one stops working."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["username"]).first()
        if user is None or not is_staff_member(user):
            raise CommandError(f"No active staff account named {options['username']!r}.")
        with transaction.atomic():
            if options["rotate"]:
                Token.objects.filter(user=user).delete()
            token, _created = Token.objects.get_or_create(user=user)
        self.stdout.write(token.key)
