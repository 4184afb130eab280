"""Two-factor sign-in for staff: who must use a second factor, enrolment, verification, and the
middleware that refuses an unverified session where one is required.

The codes themselves are django-otp's: a time-based one-time password (TOTP, an authenticator
app) and ten single-use recovery codes (its "static" device). This module never compares a code
itself; it decides which device a code is tried on, and reports a device's throttle (after each
wrong code a device waits 1, 2, 4, 8… seconds before it checks another, kept in the database, so
signing in again does not reset it).

Who must: superusers, admins (anyone who may change the clinic's setup) and prescribers, always;
everybody at a location with ``two_factor_for_all_staff``; and whoever enrolled an authenticator
of their own accord (enrolling would protect nothing if it were never asked for). The
``TWO_FACTOR_REQUIRED`` setting (true by default) lifts the requirement for a deployment that has
its own, e.g. single sign-on in front.

A session's need is worked out once (at its first staff request after the password) and kept in
the session, re-checked every few minutes while it says "not needed": a location that turns the
setting on reaches its staff's open sessions within ``RECHECK_SECONDS``, and a verified session
costs django-otp's one query per request, nothing more.
"""

from __future__ import annotations

import logging
import time
from base64 import b32decode, b32encode
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import django_otp
import segno
from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect
from django.urls import reverse
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from booking.access.roles import SETUP, Role, is_prescriber
from booking.access.scoping import location_ids
from scheduling.models import Location

logger = logging.getLogger(__name__)

RECOVERY_CODES = 10
AUTHENTICATOR_NAME = "Authenticator app"
RECOVERY_NAME = "Recovery codes"
# Wrong codes one session may try before it is signed out and starts again with the password
# (the devices' own throttle holds across sessions; this bounds one session's run).
MAX_SESSION_FAILURES = 5
# How long a session's "no second factor needed" stands before it is worked out again.
RECHECK_SECONDS = 300

SESSION_NEED = "chairside_two_factor"
SESSION_FAILURES = "chairside_two_factor_failures"

# The pages an unverified session may still reach, by URL name: signing in and out, and the
# two-factor steps themselves.
OPEN_URL_NAMES = frozenset(
    {"staff-login", "staff-logout", "staff-welcome", "two-factor-enrol", "two-factor-verify"}
)
# Everything else under these asks for the second factor: the staff pages (with the message
# log), the Django admin, and the API when the session is what signs the request in (a knox
# token from `manage.py staff_token` is not a session, and is not affected).
PROTECTED_PREFIXES = ("/staff/", "/admin/", "/api/v1/")


# --- Who must ---------------------------------------------------------------------------------


def two_factor_required(user: Any) -> bool:
    """Whether ``user``'s role or location requires a second factor at sign-in."""
    if user is None or not user.is_authenticated or not settings.TWO_FACTOR_REQUIRED:
        return False
    if user.is_superuser or is_prescriber(user) or user.has_perm(SETUP):
        return True
    if user.groups.filter(name=Role.ADMIN).exists():
        return True
    return Location.objects.filter(
        id__in=location_ids(user), two_factor_for_all_staff=True
    ).exists()


def has_authenticator(user: Any) -> bool:
    """A confirmed authenticator app: the one device that verifies a sign-in day to day."""
    return authenticators(user).exists()


def authenticators(user: Any) -> QuerySet[TOTPDevice]:
    """``user``'s confirmed authenticator apps. One holding the published demo secret counts
    only in a local demo: a demo database that ends up in a deployment asks those accounts to
    enrol their own."""
    devices = TOTPDevice.objects.filter(user_id=user.pk, confirmed=True)
    if not demo_secret_allowed():
        devices = devices.exclude(key=b32decode(DEMO_TOTP_SECRET).hex())
    return devices


def must_verify(user: Any) -> bool:
    """Required by role or location, or chosen: an enrolled authenticator is always asked for."""
    return two_factor_required(user) or has_authenticator(user)


def session_must_verify(request: HttpRequest) -> bool:
    """:func:`must_verify` for the signed-in user, kept in the session (module docstring)."""
    user = request.user
    kept = request.session.get(SESSION_NEED)
    now = time.time()
    if (
        isinstance(kept, dict)
        and kept.get("user") == user.pk
        and (kept.get("need") or now - float(kept.get("at", 0)) < RECHECK_SECONDS)
    ):
        return bool(kept["need"])
    need = must_verify(user)
    request.session[SESSION_NEED] = {"user": user.pk, "need": need, "at": now}
    return need


def remember_need(sender: Any, request: HttpRequest | None, user: Any, **_: Any) -> None:
    """``user_logged_in`` receiver: the session's need, worked out at sign-in so no staff page
    pays for it (booking.apps connects it)."""
    if request is not None and hasattr(request, "session"):
        request.session[SESSION_NEED] = {
            "user": user.pk,
            "need": must_verify(user),
            "at": time.time(),
        }


def is_verified(request: HttpRequest) -> bool:
    check: Callable[[], bool] | None = getattr(request.user, "is_verified", None)
    return bool(check is not None and check())


# --- Enrolment --------------------------------------------------------------------------------


def enrolment_device(user: Any) -> TOTPDevice:
    """The authenticator being set up: one unconfirmed device per person, the same one on every
    visit to the page until a code confirms it (so a reload shows the same QR code)."""
    device = TOTPDevice.objects.filter(user_id=user.pk, confirmed=False).order_by("pk").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=AUTHENTICATOR_NAME, confirmed=False)
    return device


def secret_of(device: TOTPDevice) -> str:
    """The key as an authenticator app takes it when typed: base32, in groups of four."""
    text = b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(text[i : i + 4] for i in range(0, len(text), 4))


def qr_svg(device: TOTPDevice) -> str:
    """The otpauth:// address as an inline SVG QR code (no image request, nothing the CSP must
    allow). It holds the secret: only ever on the enrolling person's own no-store page."""
    code = segno.make(device.config_url, error="m", micro=False)
    svg: str = code.svg_inline(
        scale=5, title="QR code for your authenticator app", svgclass="qr-code"
    )
    return svg


def locked_until(device: TOTPDevice | StaticDevice) -> datetime | None:
    """When a throttled device takes a code again; None when it takes one now."""
    allowed, info = device.verify_is_allowed()
    if allowed or not info:
        return None
    until: datetime | None = info.get("locked_until")
    return until


def enrolment_confirm(device: TOTPDevice, code: str) -> list[str] | None:
    """Confirm the authenticator with a code it shows, and issue the recovery codes (returned
    once, for the page to show once); None when the code is not right."""
    with transaction.atomic():
        device = TOTPDevice.objects.select_for_update().get(pk=device.pk)
        if device.confirmed or not device.verify_token(normalise(code)):
            return None
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        # A person has one authenticator: any older one is replaced by this.
        TOTPDevice.objects.filter(user_id=device.user_id).exclude(pk=device.pk).delete()
        return recovery_codes_issue(device.user)


def recovery_codes_issue(user: Any) -> list[str]:
    """Ten new single-use recovery codes; the old ones stop working."""
    with transaction.atomic():
        StaticDevice.objects.filter(user_id=user.pk).delete()
        device = StaticDevice.objects.create(user=user, name=RECOVERY_NAME, confirmed=True)
        codes = [StaticToken.random_token() for _ in range(RECOVERY_CODES)]
        StaticToken.objects.bulk_create(StaticToken(device=device, token=c) for c in codes)
    return codes


def recovery_codes_left(user: Any) -> int:
    return StaticToken.objects.filter(device__user_id=user.pk, device__confirmed=True).count()


def two_factor_reset(user: Any) -> None:
    """Forget ``user``'s authenticator and recovery codes (a lost phone, an admin's reset):
    where a second factor is required they enrol again at their next sign-in."""
    with transaction.atomic():
        TOTPDevice.objects.filter(user_id=user.pk).delete()
        StaticDevice.objects.filter(user_id=user.pk).delete()


# --- Verification -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """What a code did: the device that accepted it, or when the devices take codes again."""

    device: TOTPDevice | StaticDevice | None = None
    locked_until: datetime | None = None

    @property
    def by_recovery_code(self) -> bool:
        return isinstance(self.device, StaticDevice)


def normalise(code: str) -> str:
    """What people type around a code: spaces and dashes, capitals."""
    return "".join(code.split()).replace("-", "").lower()


def two_factor_check(user: Any, code: str) -> Check:
    """Try ``code`` on ``user``'s confirmed devices of its shape: six digits on the authenticator,
    anything else on the recovery codes (a used recovery code is deleted by django-otp). A
    throttled device is not asked, and the time it opens again is returned."""
    code = normalise(code)
    model: type[TOTPDevice] | type[StaticDevice] = (
        TOTPDevice if code.isdigit() and len(code) == 6 else StaticDevice
    )
    locked: list[datetime] = []
    with transaction.atomic():
        devices = (
            authenticators(user)
            if model is TOTPDevice
            else StaticDevice.objects.filter(user_id=user.pk, confirmed=True)
        ).select_for_update()
        for device in devices:
            allowed, info = device.verify_is_allowed()
            if not allowed:
                if info and info.get("locked_until"):
                    locked.append(info["locked_until"])
                continue
            if device.verify_token(code):
                return Check(device=device)
    if locked:
        logger.warning("two-factor codes throttled for user %s", user.pk)
    return Check(locked_until=max(locked) if locked else None)


def mark_verified(request: HttpRequest, device: TOTPDevice | StaticDevice) -> None:
    """The session passed its second factor: django-otp remembers the device, and the session
    gets a new key (a raise in privilege, like the password sign-in)."""
    request.session.cycle_key()
    django_otp.login(request, device)
    request.session.pop(SESSION_FAILURES, None)
    request.session[SESSION_NEED] = {"user": request.user.pk, "need": True, "at": time.time()}


def session_need_forget(request: HttpRequest) -> None:
    """Work the session's need out again at its next request (its devices changed)."""
    request.session.pop(SESSION_NEED, None)


def session_failure(request: HttpRequest) -> int:
    """Count a refused code in this session; the count so far."""
    failures = int(request.session.get(SESSION_FAILURES, 0)) + 1
    request.session[SESSION_FAILURES] = failures
    return failures


# --- The demo ---------------------------------------------------------------------------------

# The demo clinic's accounts share this authenticator secret. It is published (README): it may
# only ever enrol the accounts of a local demo, never a deployment's (demo_secret_allowed).
DEMO_TOTP_SECRET = "CHAIRSIDEDEMOTOTPSECRETKEY234567"  # noqa: S105 (published on purpose)
DEMO_DEVICE_NAME = "Demo authenticator (published secret)"


def demo_secret_allowed() -> bool:
    """A local demo: DEBUG, or the embedded defaults `make run` uses (SQLite, no TLS). A
    deployment (PostgreSQL, or HTTPS=true) never takes the published secret unless told to."""
    engine = settings.DATABASES["default"]["ENGINE"]
    return bool(settings.DEBUG) or (not settings.HTTPS and engine == "django.db.backends.sqlite3")


def demo_totp_device(user: Any) -> TOTPDevice:
    """Enrol ``user`` with the published demo secret (no recovery codes: the secret is the way
    back in). An existing demo device is kept."""
    key = b32decode(DEMO_TOTP_SECRET).hex()
    device, _created = TOTPDevice.objects.get_or_create(
        user=user, name=DEMO_DEVICE_NAME, defaults={"key": key, "confirmed": True}
    )
    return device


def demo_code(at: float | None = None) -> tuple[str, int]:
    """The demo secret's code at ``at`` (now), and the seconds it stays valid."""
    totp = TOTP(b32decode(DEMO_TOTP_SECRET), step=30, t0=0, digits=6)
    totp.time = time.time() if at is None else at
    return f"{totp.token():06d}", 30 - int(totp.time) % 30


def demo_enrol(users: Iterable[Any], *, allow_production: bool = False) -> bool:
    """Enrol the demo accounts with :data:`DEMO_TOTP_SECRET` where that is safe (or when the
    operator insists); False when it was not done, and each enrols their own at first sign-in."""
    if not (allow_production or demo_secret_allowed()):
        return False
    for user in users:
        if not has_authenticator(user):
            demo_totp_device(user)
    return True


# --- The middleware ---------------------------------------------------------------------------


class TwoFactorMiddleware:
    """After django-otp's ``OTPMiddleware``: a signed-in session that must verify and has not is
    sent to enrolment (no authenticator yet) or to verification (one enrolled) from every staff
    and admin page, and refused with a 403 by the session-signed API. The pages in
    ``OPEN_URL_NAMES`` stay reachable."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view: Callable[..., Any], args: Any, kwargs: Any
    ) -> HttpResponseBase | None:
        if not request.path_info.startswith(PROTECTED_PREFIXES):
            return None
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated or is_verified(request):
            return None
        match = request.resolver_match
        if match is not None and match.url_name in OPEN_URL_NAMES:
            return None
        if not session_must_verify(request):
            return None
        if request.path_info.startswith("/api/"):
            return JsonResponse(
                {
                    "error": {
                        "code": "two_factor_required",
                        "message": "Two-factor sign-in is required: complete it at "
                        f"{reverse('two-factor-verify')} or use an API token.",
                        "fields": {},
                    }
                },
                status=403,
            )
        step = "two-factor-verify" if has_authenticator(user) else "two-factor-enrol"
        return redirect_with_next(step, request.get_full_path())


def redirect_with_next(url_name: str, next_url: str) -> HttpResponse:
    response: HttpResponse = redirect(f"{reverse(url_name)}?{urlencode({'next': next_url})}")
    return response
