"""``manage.py demo_code``: the code the demo clinic's accounts sign in with right now.

The demo accounts (``seed_demo``) share one published authenticator secret (README, "Try it"):
this prints its current code, so trying the demo needs no phone. It refuses anywhere but a local
demo (``booking.access.two_factor.demo_secret_allowed``), where that secret never enrols anyone.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from booking.access.two_factor import DEMO_TOTP_SECRET, demo_code, demo_secret_allowed


class Command(BaseCommand):
    help = "Print the demo staff accounts' current two-factor code (a local demo only)."

    def handle(self, *args: Any, **options: Any) -> None:
        if not demo_secret_allowed():
            raise CommandError(
                "demo_code is for a local demo only (DEBUG=true, or the embedded SQLite "
                "defaults without HTTPS): a deployment's accounts never use the demo secret."
            )
        code, seconds = demo_code()
        self.stdout.write(code)
        self.stderr.write(
            f"valid for {seconds} more seconds (secret {DEMO_TOTP_SECRET}); a code is accepted "
            "once per account: if it is refused, wait for the next."
        )
