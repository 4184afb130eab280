"""Two-factor sign-in for staff: who must, enrolment, verification with a code or a recovery code,
the refusal of unverified sessions on pages, admin and API, throttling, and the demo's published
secret (booking.access.two_factor, booking.desk.two_factor)."""

from __future__ import annotations

import re
from base64 import b32decode
from collections.abc import Iterator
from datetime import UTC, datetime
from io import StringIO

import pytest
import time_machine
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice
from knox.models import AuthToken

from booking.access.roles import Role
from booking.access.two_factor import (
    DEMO_TOTP_SECRET,
    MAX_SESSION_FAILURES,
    RECHECK_SECONDS,
    RECOVERY_CODES,
    demo_code,
    demo_totp_device,
    two_factor_required,
)
from booking.models import AuditEvent
from scheduling.models import Location
from tests.staff_helpers import (
    PASSWORD,
    authenticator_for,
    client_for,
    staff_user,
    totp_code,
)

LOGIN = "/staff/login/"
ENROL = "/staff/two-factor/enrol/"
VERIFY = "/staff/two-factor/verify/"
MANAGE = "/staff/two-factor/"
BOARD = "/staff/board/"
API = "/api/v1/appointments/?location=midtown&start=2026-06-08&end=2026-06-08"
NOW = datetime(2026, 6, 8, 13, 0, 5, tzinfo=UTC)


@pytest.fixture(autouse=True)
def clock() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def prescriber(location: Location) -> User:
    return staff_user(Role.PRESCRIBER, location, username="dr.osei")


@pytest.fixture
def desk(location: Location) -> User:
    return staff_user(Role.FRONT_DESK, location, username="robin")


def password_only(user: User, next_url: str = BOARD) -> tuple[Client, str]:
    """A client past the password form only; where the sign-in sent it next."""
    client = Client()
    response = client.post(
        LOGIN, {"username": user.username, "password": PASSWORD, "next": next_url}
    )
    assert response.status_code == 302, response.content
    followed = client.get(response["Location"])
    return client, followed.get("Location", response["Location"])


def enrolled(user: User) -> TOTPDevice:
    return authenticator_for(user)


# --- Who must -----------------------------------------------------------------------------


def test_admins_prescribers_and_superusers_must_and_the_desk_need_not(location, settings):
    admin = staff_user(Role.ADMIN, location)
    nurse = staff_user(Role.NURSE, location)
    desk = staff_user(Role.FRONT_DESK, location)
    prescriber = staff_user(Role.PRESCRIBER, location)
    root = User.objects.create_superuser("root", "", PASSWORD)

    assert [two_factor_required(u) for u in (admin, prescriber, root)] == [True] * 3
    assert [two_factor_required(u) for u in (desk, nurse)] == [False, False]

    settings.TWO_FACTOR_REQUIRED = False
    assert [two_factor_required(u) for u in (admin, prescriber, root)] == [False] * 3


def test_a_location_can_ask_it_of_all_its_staff(location, make_location, desk):
    elsewhere = make_location(slug="uptown", two_factor_for_all_staff=True)
    visitor = staff_user(Role.NURSE, elsewhere)
    assert two_factor_required(visitor)
    assert not two_factor_required(desk)

    location.two_factor_for_all_staff = True
    location.save()
    assert two_factor_required(User.objects.get(pk=desk.pk))


# --- Enrolment ----------------------------------------------------------------------------


def test_a_prescriber_without_an_authenticator_is_sent_to_enrol_after_the_password(prescriber):
    client, went = password_only(prescriber)

    assert went == f"{ENROL}?next=%2Fstaff%2Fboard%2F"
    assert client.get(BOARD)["Location"].startswith(ENROL)
    page = client.get(went)
    assert page.status_code == 200
    content = page.content.decode()
    assert "<svg" in content
    assert "<title>QR code for your authenticator app</title>" in content
    device = TOTPDevice.objects.get(user=prescriber)
    assert not device.confirmed
    secret = re.search(r'id="two-factor-secret">([A-Z2-7 ]+)<', content)
    assert secret is not None
    assert b32decode(secret.group(1).replace(" ", "")) == device.bin_key
    # A reload shows the same key, not a new one.
    client.get(went)
    assert TOTPDevice.objects.filter(user=prescriber).count() == 1


def test_a_wrong_code_does_not_confirm_the_authenticator(prescriber, clock):
    client, went = password_only(prescriber)
    client.get(went)

    response = client.post(ENROL, {"code": "000000", "next": BOARD})

    assert response.status_code == 400
    assert "That code is not right" in response.content.decode()
    assert not TOTPDevice.objects.get(user=prescriber).confirmed
    assert client.get(BOARD)["Location"].startswith(ENROL)


def test_the_right_code_confirms_it_and_shows_ten_recovery_codes_once(prescriber):
    client, went = password_only(prescriber)
    client.get(went)
    device = TOTPDevice.objects.get(user=prescriber)

    response = client.post(ENROL, {"code": totp_code(device), "next": BOARD})

    assert response.status_code == 200
    codes = re.findall(r"<li><code>([a-z2-7]{8})</code></li>", response.content.decode())
    assert len(codes) == RECOVERY_CODES
    assert set(
        StaticToken.objects.filter(device__user=prescriber).values_list("token", flat=True)
    ) == set(codes)
    assert TOTPDevice.objects.get(user=prescriber).confirmed
    assert client.get(BOARD).status_code == 200
    # Shown once: the enrolment page now leads to managing, which never lists them.
    assert client.get(ENROL)["Location"].startswith(MANAGE)
    manage = client.get(MANAGE).content.decode()
    assert all(code not in manage for code in codes)
    assert f"{RECOVERY_CODES} of {RECOVERY_CODES} left" in manage
    assert AuditEvent.objects.filter(object_type="two_factor", user=prescriber).exists()


def test_the_password_alone_cannot_enrol_a_second_authenticator(prescriber):
    enrolled(prescriber)
    client, went = password_only(prescriber)

    assert went.startswith(VERIFY)
    assert client.get(ENROL)["Location"].startswith(VERIFY)
    assert TOTPDevice.objects.filter(user=prescriber).count() == 1


def test_someone_who_need_not_may_enrol_and_is_then_asked_at_sign_in(desk):
    client = client_for(desk)
    assert client.get(BOARD).status_code == 200
    client.get(ENROL)
    client.post(ENROL, {"code": totp_code(TOTPDevice.objects.get(user=desk))})

    _, went = password_only(desk)

    assert went.startswith(VERIFY)


# --- Verification -------------------------------------------------------------------------


def test_a_code_from_the_app_completes_the_sign_in(prescriber, clock):
    device = enrolled(prescriber)
    client, went = password_only(prescriber)
    assert went == f"{VERIFY}?next=%2Fstaff%2Fboard%2F"
    assert client.get(went).status_code == 200

    wrong = client.post(VERIFY, {"code": "123456", "next": BOARD})
    assert wrong.status_code == 400
    assert client.get(BOARD).status_code == 302

    # The device waits a second after a wrong code.
    clock.shift(1)
    response = client.post(VERIFY, {"code": totp_code(device), "next": BOARD})

    assert response.status_code == 302
    assert response["Location"] == BOARD
    assert client.get(BOARD).status_code == 200


def test_a_recovery_code_works_once(prescriber):
    enrolled(prescriber)
    signed_in = client_for(prescriber)
    codes = re.findall(
        r"<li><code>([a-z2-7]{8})</code></li>",
        signed_in.post(MANAGE, {"action": "recovery"}).content.decode(),
    )
    assert len(codes) == RECOVERY_CODES

    first, _ = password_only(prescriber)
    response = first.post(VERIFY, {"code": codes[0].upper(), "next": BOARD})
    assert response["Location"] == BOARD
    assert f"{RECOVERY_CODES - 1} left" in first.get(BOARD).content.decode()

    second, _ = password_only(prescriber)
    again = second.post(VERIFY, {"code": codes[0], "next": BOARD})
    assert again.status_code == 400
    assert second.get(BOARD).status_code == 302


def test_new_recovery_codes_replace_the_old_ones(prescriber, clock):
    enrolled(prescriber)
    client = client_for(prescriber)
    pattern = r"<li><code>([a-z2-7]{8})</code></li>"
    old = re.findall(pattern, client.post(MANAGE, {"action": "recovery"}).content.decode())
    new = re.findall(pattern, client.post(MANAGE, {"action": "recovery"}).content.decode())

    late, _ = password_only(prescriber)
    assert late.post(VERIFY, {"code": old[0], "next": BOARD}).status_code == 400
    clock.shift(5)
    assert late.post(VERIFY, {"code": new[0], "next": BOARD}).status_code == 302


def test_wrong_codes_are_throttled_by_the_device(prescriber, clock):
    device = enrolled(prescriber)
    client, _ = password_only(prescriber)
    client.post(VERIFY, {"code": "000000"})
    clock.shift(1)
    client.post(VERIFY, {"code": "000001"})

    right_too_soon = client.post(VERIFY, {"code": totp_code(device), "next": BOARD})

    assert right_too_soon.status_code == 400
    assert "Too many wrong codes: wait 2 seconds" in right_too_soon.content.decode()
    # Signing in again does not reset the device's wait.
    other, _ = password_only(prescriber)
    assert other.post(VERIFY, {"code": totp_code(device), "next": BOARD}).status_code == 400
    clock.shift(2)
    assert other.post(VERIFY, {"code": totp_code(device), "next": BOARD}).status_code == 302


def test_a_session_that_tries_too_many_wrong_codes_is_signed_out(prescriber, clock):
    enrolled(prescriber)
    client, _ = password_only(prescriber)

    for _ in range(MAX_SESSION_FAILURES - 1):
        assert client.post(VERIFY, {"code": "000000"}).status_code == 400
        clock.shift(60)
    last = client.post(VERIFY, {"code": "000000"})

    assert last["Location"] == LOGIN
    assert "_auth_user_id" not in client.session


def test_a_code_is_accepted_once(prescriber):
    device = enrolled(prescriber)
    code = totp_code(device)
    first, _ = password_only(prescriber)
    assert first.post(VERIFY, {"code": code}).status_code == 302

    second, _ = password_only(prescriber)

    assert second.post(VERIFY, {"code": code}).status_code == 400


# --- Enforcement --------------------------------------------------------------------------


def test_the_desk_signs_in_with_the_password_alone(desk):
    client, went = password_only(desk)

    assert went == BOARD
    assert client.get(BOARD).status_code == 200


def test_a_location_turning_it_on_reaches_open_sessions(desk, location, clock):
    client, _ = password_only(desk)
    location.two_factor_for_all_staff = True
    location.save()

    clock.shift(RECHECK_SECONDS + 1)

    assert client.get(BOARD)["Location"] == f"{ENROL}?next=%2Fstaff%2Fboard%2F"


def test_the_session_signed_api_refuses_an_unverified_session(prescriber, desk):
    enrolled(prescriber)
    client, _ = password_only(prescriber)

    response = client.get(API)

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "two_factor_required"
    assert password_only(desk)[0].get(API).status_code == 200
    assert client_for(prescriber).get(API).status_code == 200


def test_an_api_token_is_not_affected(prescriber):
    _, token = AuthToken.objects.create(user=prescriber)

    response = Client().get(API, headers={"authorization": f"Token {token}"})

    assert response.status_code == 200


def test_the_admin_refuses_an_unverified_superuser(db):
    root = User.objects.create_superuser("root", "", PASSWORD)
    client, _ = password_only(root, next_url="/admin/")

    response = client.get("/admin/")

    assert response.status_code == 302
    assert response["Location"] == f"{ENROL}?next=%2Fadmin%2F"
    assert client_for(root).get("/admin/").status_code == 200


def test_signing_out_stays_reachable(prescriber):
    client, _ = password_only(prescriber)

    response = client.post("/staff/logout/")

    assert response.status_code == 302
    assert "_auth_user_id" not in client.session


def test_removing_the_authenticator_needs_a_current_code(desk, prescriber, clock):
    device = enrolled(desk)
    client = client_for(desk)

    refused = client.post(MANAGE, {"action": "remove", "code": "000000"})
    assert refused.status_code == 400
    assert TOTPDevice.objects.filter(user=desk).exists()
    clock.shift(30)
    removed = client.post(MANAGE, {"action": "remove", "code": totp_code(device)})
    assert removed["Location"] == MANAGE
    assert not TOTPDevice.objects.filter(user=desk).exists()
    # Not required of the desk: its pages stay open.
    assert client.get(BOARD).status_code == 200

    dr_device = enrolled(prescriber)
    dr = client_for(prescriber)
    replaced = dr.post(MANAGE, {"action": "remove", "code": totp_code(dr_device)})
    assert replaced["Location"] == ENROL
    assert dr.get(BOARD)["Location"].startswith(ENROL)


# --- The demo -----------------------------------------------------------------------------


def seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_seed_demo_enrols_the_demo_accounts_with_the_published_secret(settings):
    settings.DEBUG = True

    out = seed()

    key = b32decode(DEMO_TOTP_SECRET).hex()
    names = ["admin", "desk", "nurse", "prescriber"]
    assert (
        sorted(
            TOTPDevice.objects.filter(key=key, confirmed=True).values_list(
                "user__username", flat=True
            )
        )
        == names
    )
    assert "demo_code" in out
    code, _seconds = demo_code()
    client = Client()
    client.post(LOGIN, {"username": "prescriber", "password": settings.DEMO_STAFF_PASSWORD})
    assert client.post(VERIFY, {"code": code, "next": BOARD})["Location"] == BOARD


@pytest.mark.django_db
def test_a_deployment_never_takes_the_published_secret(settings):
    settings.DEBUG = False
    settings.HTTPS = True

    out = seed()

    assert not TOTPDevice.objects.exists()
    assert "set up their own authenticator" in out
    with pytest.raises(CommandError, match="local demo only"):
        call_command("demo_code", stdout=StringIO(), stderr=StringIO())


@pytest.mark.django_db
def test_the_operator_may_insist_on_the_published_secret(settings):
    settings.DEBUG = False
    settings.HTTPS = True

    seed("--allow-production")

    assert TOTPDevice.objects.filter(key=b32decode(DEMO_TOTP_SECRET).hex()).count() == 4


def test_a_demo_database_in_a_deployment_does_not_accept_the_demo_secret(prescriber, settings):
    settings.DEBUG = True
    demo_totp_device(prescriber)
    settings.DEBUG = False
    settings.HTTPS = True
    client, went = password_only(prescriber)

    assert went.startswith(ENROL)
    assert client.post(VERIFY, {"code": demo_code()[0]})["Location"].startswith(ENROL)
    assert client.get(BOARD)["Location"].startswith(ENROL)


def test_demo_code_prints_the_current_code_in_a_local_demo(settings):
    settings.DEBUG = True
    out, err = StringIO(), StringIO()

    call_command("demo_code", stdout=out, stderr=err)

    assert out.getvalue().strip() == demo_code(NOW.timestamp())[0]
    assert re.fullmatch(r"\d{6}", out.getvalue().strip())
    assert "valid for 25 more seconds" in err.getvalue()


def test_an_operator_resets_a_lost_authenticator(prescriber):
    enrolled(prescriber)
    out = StringIO()

    call_command("two_factor_reset", "dr.osei", stdout=out)

    assert "enrols again at the next sign-in" in out.getvalue()
    assert not TOTPDevice.objects.filter(user=prescriber).exists()
    _, went = password_only(prescriber)
    assert went.startswith(ENROL)
    with pytest.raises(CommandError, match="username"):
        call_command("two_factor_reset", "nobody", stdout=StringIO())
