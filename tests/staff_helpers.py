"""Staff accounts for tests: a user in a role's group, bound to locations, and a client signed in
as them. Import these from any test module::
"""

from __future__ import annotations

import itertools

from django.contrib.auth.models import Group, User
from django.test import Client

from booking.access.roles import sync_roles
from booking.models import StaffProfile
from scheduling.models import Location

_serial = itertools.count(1)

# Every test account's password, for the tests that sign in through the form.
PASSWORD = "correct horse battery staple"


def staff_user(role: str, *locations: Location, username: str | None = None) -> User:
    """A staff member in ``role`` (a ``booking.access.roles.Role`` name) at ``locations``."""
    group = Group.objects.filter(name=role).first()
    if group is None:
        # A flushed database (transactional tests) loses the groups post_migrate made.
        sync_roles()
        group = Group.objects.get(name=role)
    user = User.objects.create_user(
        username or f"staff-{next(_serial)}",
        email="",
        password=PASSWORD,
    )
    user.groups.add(group)
    profile = StaffProfile.objects.create(user=user)
    profile.locations.set(locations)
    return user


def client_for(user: User) -> Client:
    """A test client signed in as ``user`` (no password form, no lockout bookkeeping)."""
    client = Client()
    client.force_login(user)
    return client
