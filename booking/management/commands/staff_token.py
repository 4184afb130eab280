from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone
from knox.models import AuthToken

from booking.access.roles import is_staff_member


class Command(BaseCommand):
    """API tokens of a staff account (``Authorization: Token <key>``).

    Prints a new token, which works for ``API_TOKEN_TTL_HOURS`` hours. Only a digest of it is
    stored, so it is shown this once: a lost token is replaced, never looked up. ``--rotate``
    revokes the account's other tokens first; ``--revoke`` only revokes them. A token carries the
    account's role and locations, nothing more, and stops with the account (untick *Active*).
    """

    help = "Print a new API token of a staff account, or revoke its tokens."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        action = parser.add_mutually_exclusive_group()
        action.add_argument(
            "--rotate",
            action="store_true",
            help="Revoke the account's tokens, then print a new one.",
        )
        action.add_argument(
            "--revoke",
            action="store_true",
            help="Revoke every token of the account; print none.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        username = options["username"]
        user = get_user_model().objects.filter(username=username).first()
        if options["revoke"]:
            # Any account: a token must be revocable after its staff profile is gone.
            if user is None:
                raise CommandError(f"No account named {username!r}.")
            revoked, _ = AuthToken.objects.filter(user=user).delete()
            self.stdout.write(f"Revoked {revoked} token(s) of {username}.")
            return
        if user is None or not is_staff_member(user):
            raise CommandError(f"No active staff account named {username!r}.")
        with transaction.atomic():
            tokens = AuthToken.objects.filter(user=user)
            if not options["rotate"]:
                tokens = tokens.filter(expiry__lte=timezone.now())  # only the dead ones
            tokens.delete()
            _instance, token = AuthToken.objects.create(user=user)
        # The token alone on stdout, so a script can take it as it is.
        self.stdout.write(token)
