"""Staff accounts for tests: a user in a role's group, bound to locations, and a client signed in
as them. Import these from any test module::
"""

from __future__ import annotations

import itertools

from django.contrib.auth.models import Group, User
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from booking.access.roles import sync_roles
from booking.access.two_factor import must_verify
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
    """A test client signed in as ``user`` (no password form, no lockout bookkeeping), past the
    second factor when ``user`` must use one (booking.access.two_factor)."""
    return signed_in(Client(), user)


def signed_in(client: Client, user: User) -> Client:
    """``client`` signed in as ``user`` as :func:`client_for` does (for a client made with
    options of its own, e.g. ``enforce_csrf_checks``)."""
    client.force_login(user)
    if must_verify(user):
        verify_session(client, user)
    return client


def authenticator_for(user: User) -> TOTPDevice:
    """``user``'s confirmed authenticator app, enrolled now if they have none."""
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="Test authenticator", confirmed=True)
    return device


def totp_code(device: TOTPDevice) -> str:
    """The code ``device``'s authenticator app shows now (the clock time-machine pins)."""
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{totp.token():0{device.digits}d}"


def verify_session(client: Client, user: User) -> None:
    """Mark ``client``'s session as past the second factor with ``user``'s authenticator, as
    django-otp's login does after a right code."""
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = authenticator_for(user).persistent_id
    session.save()


def sign_in(client: Client, user: User, *, next_url: str = "/staff/") -> Client:
    """Sign in through the forms: the password, then (when asked) a code from ``user``'s
    authenticator. The last answer is on ``client.last_response``."""
    response = client.post(
        "/staff/login/", {"username": user.username, "password": PASSWORD, "next": next_url}
    )
    if response.status_code == 302 and must_verify(user):
        device = authenticator_for(user)
        response = client.post(
            "/staff/two-factor/verify/", {"code": totp_code(device), "next": next_url}
        )
    client.last_response = response  # type: ignore[attr-defined]
    return client
