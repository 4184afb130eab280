"""Staff accounts on the setup pages (issue #16): the list of one location's accounts, inviting
someone by e-mail with a set-password link, changing roles, locations and calendar within the
administrator's own locations, deactivating (signed out, tokens gone), and the scoping of it all."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core import mail
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from knox.models import AuthToken

from booking.access.roles import Role
from booking.models import AuditEvent, StaffProfile
from booking.staff_accounts import AccountRefused, staff_account_update
from scheduling.models import Location, Resource, ResourceKind, StaffRole
from tests.staff_helpers import PASSWORD, client_for, staff_user

NOW = datetime(2026, 6, 8, 13, 0, tzinfo=UTC)
NEW_PASSWORD = "a long and unusual passphrase 7"
API_LIST = "/api/v1/appointments/?location=midtown&start=2026-06-08&end=2026-06-08"


@pytest.fixture(autouse=True)
def clock() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def other(make_location: Any) -> Location:
    return make_location(name="Uptown Clinic")


@pytest.fixture
def admin(location: Location, other: Location) -> User:
    """An administrator of both locations."""
    user = staff_user(Role.ADMIN, location, other, username="ada")
    user.first_name, user.last_name = "Ada", "Admin"
    user.save()
    return user


@pytest.fixture
def nurse_column(location: Location) -> Resource:
    return Resource.objects.create(
        location=location, kind=ResourceKind.STAFF, role=StaffRole.NURSE, name="Nurse Nora"
    )


def accounts_url(location: Location) -> str:
    return f"/staff/setup/{location.pk}/accounts/"


def account_url(location: Location, account: User, action: str = "") -> str:
    return f"{accounts_url(location)}{account.pk}/{action + '/' if action else ''}"


def invite(client: Client, location: Location, **fields: Any) -> Any:
    data: dict[str, Any] = {
        "first_name": "Nora",
        "last_name": "Nightingale",
        "email": "Nora@Example.com",
        "roles": [Role.NURSE],
        "locations": [location.pk],
        "resource": "",
        **fields,
    }
    return client.post(f"{accounts_url(location)}invite/", data)


def link_in(message: mail.EmailMessage) -> str:
    """The path of the set-password link in an invitation."""
    found = re.search(r"https?://[^/\s]+(/staff/welcome/[^\s]+/)", str(message.body))
    assert found, message.body
    return found.group(1)


def set_password(link: str, password: str = NEW_PASSWORD) -> tuple[Client, Any]:
    """Open the link as the invited person would, and choose ``password``."""
    browser = Client()
    opened = browser.get(link)
    assert opened.status_code == 302  # the token moves to the session, out of the address
    form_page = browser.get(opened["Location"])
    assert form_page.status_code == 200
    assert form_page.context["validlink"]
    done = browser.post(opened["Location"], {"new_password1": password, "new_password2": password})
    return browser, done


def sign_in(username: str, password: str) -> Client:
    browser = Client()
    browser.post("/staff/login/", {"username": username, "password": password})
    return browser


def signed_in(browser: Client) -> bool:
    return "_auth_user_id" in browser.session


# --- The list -------------------------------------------------------------------------------------


def test_the_list_shows_who_works_here_with_role_calendar_status_and_last_sign_in(
    admin, location, other, nurse_column
):
    nurse = staff_user(Role.NURSE, location, username="nora@example.com")
    nurse.first_name, nurse.last_name, nurse.email = "Nora", "Nightingale", "nora@example.com"
    nurse.last_login = NOW - timedelta(days=1)
    nurse.save()
    StaffProfile.objects.filter(user=nurse).update(resource=nurse_column)
    staff_user(Role.FRONT_DESK, other, username="elsewhere-only")

    response = client_for(admin).get(accounts_url(location))

    assert response.status_code == 200
    page = response.content.decode()
    assert "Nora Nightingale" in page
    assert "nora@example.com" in page
    assert "Nurse Nora" in page
    assert "2026-06-07 13:00" in page
    assert "Ada Admin" in page
    assert "elsewhere-only" not in page
    rows = {row.account.username: row for row in response.context["rows"]}
    assert set(rows) == {"ada", "nora@example.com"}
    assert rows["nora@example.com"].roles == [Role.NURSE]
    assert rows["ada"].locations == sorted([location.name, other.name])
    assert AuditEvent.objects.filter(
        object_type="staff_account_list", location=location, user=admin
    ).exists()


def test_the_list_costs_the_same_queries_however_many_accounts(
    admin, location, django_assert_num_queries
):
    client = client_for(admin)
    client.get(accounts_url(location))  # warm the session and the role groups
    with CaptureQueriesContext(connection) as few:
        client.get(accounts_url(location))
    for n in range(5):
        staff_user(Role.FRONT_DESK, location, username=f"desk-{n}")
    with django_assert_num_queries(len(few)):
        client.get(accounts_url(location))


def test_the_front_desk_may_not_open_the_accounts(location):
    desk = client_for(staff_user(Role.FRONT_DESK, location))

    assert desk.get(accounts_url(location)).status_code == 403
    assert invite(desk, location).status_code == 403
    assert not User.objects.filter(email="nora@example.com").exists()


def test_an_admin_of_another_location_gets_404(location, make_location):
    nurse = staff_user(Role.NURSE, location)
    outsider = client_for(staff_user(Role.ADMIN, make_location()))

    assert outsider.get(accounts_url(location)).status_code == 404
    assert outsider.get(account_url(location, nurse)).status_code == 404
    assert outsider.post(account_url(location, nurse, "active"), {"active": "0"}).status_code == 404
    assert User.objects.get(pk=nurse.pk).is_active


def test_an_account_not_working_at_this_location_is_404_here(admin, location, other):
    elsewhere = staff_user(Role.NURSE, other)
    client = client_for(admin)

    assert client.get(account_url(location, elsewhere)).status_code == 404
    assert (
        client.post(account_url(location, elsewhere, "active"), {"active": "0"}).status_code == 404
    )
    assert client.get(account_url(other, elsewhere)).status_code == 200
    # Opening an account is a read of a person's details, audited like any other.
    assert AuditEvent.objects.filter(
        action="view", object_type="user", object_id=str(elsewhere.pk), location=other
    ).exists()


def test_a_superuser_is_out_of_an_admins_reach(admin, location):
    root = User.objects.create_superuser("root", "root@example.com", PASSWORD)
    StaffProfile.objects.create(user=root).locations.set([location])
    client = client_for(admin)

    assert "root@example.com" not in client.get(accounts_url(location)).content.decode()
    assert client.get(account_url(location, root)).status_code == 404
    assert client.post(account_url(location, root, "active"), {"active": "0"}).status_code == 404
    assert User.objects.get(pk=root.pk).is_active


# --- Inviting -------------------------------------------------------------------------------------


def test_an_invitation_makes_an_account_without_a_password_and_emails_its_link(
    admin, location, nurse_column
):
    response = invite(client_for(admin), location, resource=nurse_column.pk)

    account = User.objects.get(email="nora@example.com")
    assert response.status_code == 302
    assert response["Location"] == account_url(location, account)
    assert account.username == "nora@example.com"
    assert (account.first_name, account.last_name) == ("Nora", "Nightingale")
    assert not account.has_usable_password()
    assert [g.name for g in account.groups.all()] == [Role.NURSE]
    assert list(account.staff_profile.locations.all()) == [location]
    assert account.staff_profile.resource == nurse_column
    (message,) = mail.outbox
    assert message.to == ["nora@example.com"]
    assert message.subject == "Your staff account: set your password"
    assert "nora@example.com" in message.body
    assert "3 days" in message.body
    # Nothing of the clinic's treatment, nor any patient: only the neutral public name.
    assert location.public_name in message.body
    assert location.name not in message.body
    assert link_in(message).startswith("/staff/welcome/")
    created = AuditEvent.objects.get(action="create", object_type="user", user=admin)
    assert created.object_id == str(account.pk)
    assert created.location_id == location.pk
    assert created.detail["step"] == "invite"
    assert "roles" in created.detail["changed"]
    assert created.detail["setup"]


def test_the_link_sets_a_password_and_the_new_account_signs_in(admin, location):
    invite(client_for(admin), location, roles=[Role.FRONT_DESK])
    link = link_in(mail.outbox[0])
    assert not signed_in(sign_in("nora@example.com", ""))

    _browser, done = set_password(link)

    assert done.status_code == 302
    assert done["Location"] == "/staff/login/"
    account = User.objects.get(email="nora@example.com")
    assert account.check_password(NEW_PASSWORD)
    browser = sign_in("nora@example.com", NEW_PASSWORD)
    assert signed_in(browser)
    assert browser.get("/staff/board/").status_code == 200
    assert AuditEvent.objects.filter(user=account, detail__step="password_set").exists()


def test_a_used_link_no_longer_works(admin, location):
    invite(client_for(admin), location)
    link = link_in(mail.outbox[0])
    set_password(link)

    again = Client().get(link)

    assert again.status_code == 200
    assert not again.context["validlink"]
    assert "does not work any more" in again.content.decode()
    assert User.objects.get(email="nora@example.com").check_password(NEW_PASSWORD)


def test_a_link_expires_after_three_days(admin, location, clock):
    invite(client_for(admin), location)
    link = link_in(mail.outbox[0])

    clock.move_to(NOW + timedelta(seconds=settings.PASSWORD_RESET_TIMEOUT - 60))
    assert Client().get(link).status_code == 302
    clock.move_to(NOW + timedelta(seconds=settings.PASSWORD_RESET_TIMEOUT + 1))
    expired = Client().get(link)

    assert expired.status_code == 200
    assert not expired.context["validlink"]
    assert not User.objects.get(email="nora@example.com").has_usable_password()


def test_a_wrong_or_mangled_link_sets_nothing(admin, location):
    invite(client_for(admin), location)
    link = link_in(mail.outbox[0])
    _, _, uidb64, token, _ = link.rsplit("/", 4)

    assert not Client().get(f"/staff/welcome/{uidb64}/{token[:-2]}xx/").context["validlink"]
    assert not Client().get(f"/staff/welcome/%21%21/{token}/").context["validlink"]
    browser = Client()  # no token in its session
    refused = browser.post(
        f"/staff/welcome/{uidb64}/set-password/",
        {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert refused.status_code == 200
    assert not refused.context["validlink"]
    assert not User.objects.get(email="nora@example.com").has_usable_password()


def test_a_weak_password_is_refused_naming_the_field(admin, location):
    invite(client_for(admin), location)

    _browser, refused = set_password(link_in(mail.outbox[0]), password="short")

    assert refused.status_code == 200
    summary = dict(refused.context["form"].error_summary())
    assert any(text.startswith("New password") for text in summary.values())
    assert not User.objects.get(email="nora@example.com").has_usable_password()


def test_a_new_invitation_ends_the_earlier_link(admin, location):
    client = client_for(admin)
    invite(client, location)
    first = link_in(mail.outbox[0])
    account = User.objects.get(email="nora@example.com")

    response = client.post(account_url(location, account, "resend"))

    assert response.status_code == 302
    assert len(mail.outbox) == 2
    second = link_in(mail.outbox[1])
    assert not Client().get(first).context["validlink"]
    assert Client().get(second).status_code == 302
    assert AuditEvent.objects.filter(
        object_id=str(account.pk), detail__step="invitation_resent"
    ).exists()


def test_an_account_with_a_password_is_not_invited_again(admin, location):
    nurse = staff_user(Role.NURSE, location)
    nurse.email = "nurse@example.com"
    nurse.save()

    client_for(admin).post(account_url(location, nurse, "resend"))

    assert mail.outbox == []
    assert User.objects.get(pk=nurse.pk).check_password(PASSWORD)


def test_an_email_already_used_is_refused_naming_the_field(admin, location):
    client = client_for(admin)
    invite(client, location)

    again = invite(client, location, email=" NORA@example.COM ", first_name="Other")

    assert again.status_code == 422
    assert dict(again.context["form"].error_summary())["id_email"].startswith("E-mail address:")
    assert User.objects.filter(email__iexact="nora@example.com").count() == 1
    assert len(mail.outbox) == 1


def test_an_email_used_as_a_sign_in_name_is_refused(admin, location):
    staff_user(Role.NURSE, location, username="nora@example.com")

    refused = invite(client_for(admin), location)

    assert refused.status_code == 422
    assert "id_email" in dict(refused.context["form"].error_summary())
    assert User.objects.filter(username__iexact="nora@example.com").count() == 1


def test_an_invitation_to_a_location_outside_the_admins_is_refused(location, make_location):
    admin = staff_user(Role.ADMIN, location)
    foreign = make_location()

    refused = invite(client_for(admin), location, locations=[location.pk, foreign.pk])

    assert refused.status_code == 400
    assert dict(refused.context["form"].error_summary())["id_locations"].startswith("Locations:")
    assert not User.objects.filter(email="nora@example.com").exists()
    assert mail.outbox == []


def test_an_invitation_from_a_location_includes_it(admin, location, other):
    refused = invite(client_for(admin), location, locations=[other.pk])

    assert refused.status_code == 400
    assert location.name in dict(refused.context["form"].error_summary())["id_locations"]
    assert not User.objects.filter(email="nora@example.com").exists()


def test_an_invitation_needs_a_role(admin, location):
    refused = invite(client_for(admin), location, roles=["Superhero"])

    assert refused.status_code == 400
    assert "id_roles" in dict(refused.context["form"].error_summary())
    assert not User.objects.filter(email="nora@example.com").exists()


def test_a_calendar_linked_to_another_account_is_not_offered(admin, location, nurse_column):
    taken = staff_user(Role.NURSE, location)
    StaffProfile.objects.filter(user=taken).update(resource=nurse_column)

    refused = invite(client_for(admin), location, resource=nurse_column.pk)

    assert refused.status_code == 400
    assert "id_resource" in dict(refused.context["form"].error_summary())
    assert not User.objects.filter(email="nora@example.com").exists()


def test_an_invitation_the_mail_server_refuses_keeps_the_account_to_invite_again(
    admin, location, monkeypatch
):
    def refuse(*args: Any, **kwargs: Any) -> int:
        raise OSError("connection refused")

    client = client_for(admin)
    monkeypatch.setattr(mail.EmailMultiAlternatives, "send", refuse)

    response = client.post(
        f"{accounts_url(location)}invite/",
        follow=True,
        data={
            "first_name": "Nora",
            "last_name": "Nightingale",
            "email": "nora@example.com",
            "roles": [Role.NURSE],
            "locations": [location.pk],
        },
    )

    assert response.status_code == 200
    assert "could not be sent" in response.content.decode()
    account = User.objects.get(email="nora@example.com")
    monkeypatch.undo()
    client.post(account_url(location, account, "resend"))
    assert len(mail.outbox) == 1
    assert Client().get(link_in(mail.outbox[0])).status_code == 302


# --- Editing --------------------------------------------------------------------------------------


def test_editing_changes_the_role_locations_and_calendar(admin, location, other, nurse_column):
    nurse = staff_user(Role.NURSE, location)

    response = client_for(admin).post(
        account_url(location, nurse),
        {
            "roles": [Role.NURSE, Role.PRESCRIBER],
            "locations": [location.pk, other.pk],
            "resource": nurse_column.pk,
        },
    )

    assert response.status_code == 302
    nurse.refresh_from_db()
    assert {g.name for g in nurse.groups.all()} == {Role.NURSE, Role.PRESCRIBER}
    assert set(nurse.staff_profile.locations.all()) == {location, other}
    assert nurse.staff_profile.resource == nurse_column
    changed = AuditEvent.objects.get(action="update", object_id=str(nurse.pk))
    assert changed.detail["changed"] == ["locations", "resource", "roles"]
    assert changed.location_id == location.pk


def test_editing_keeps_groups_and_locations_the_admin_does_not_administer(
    location, other, make_location
):
    admin = staff_user(Role.ADMIN, location, other)
    far = make_location(name="Far Away")
    nurse = staff_user(Role.NURSE, location, far)
    nurse.groups.add(Group.objects.create(name="Newsletter"))

    client_for(admin).post(
        account_url(location, nurse), {"roles": [Role.FRONT_DESK], "locations": [other.pk]}
    )

    assert {g.name for g in nurse.groups.all()} == {Role.FRONT_DESK, "Newsletter"}
    assert set(nurse.staff_profile.locations.all()) == {other, far}


def test_editing_cannot_add_a_location_outside_the_admins(location, make_location):
    admin = staff_user(Role.ADMIN, location)
    foreign = make_location()
    nurse = staff_user(Role.NURSE, location)

    refused = client_for(admin).post(
        account_url(location, nurse),
        {"roles": [Role.NURSE], "locations": [location.pk, foreign.pk]},
    )

    assert refused.status_code == 400
    assert "id_locations" in dict(refused.context["form"].error_summary())
    assert list(nurse.staff_profile.locations.all()) == [location]


def test_an_account_taken_off_the_admins_last_location_needs_a_location(admin, location, other):
    nurse = staff_user(Role.NURSE, location)

    refused = client_for(admin).post(account_url(location, nurse), {"roles": [Role.NURSE]})

    assert refused.status_code == 400
    assert list(nurse.staff_profile.locations.all()) == [location]


def test_an_admin_cannot_take_away_their_own_admin_role(admin, location):
    refused = client_for(admin).post(
        account_url(location, admin), {"roles": [Role.FRONT_DESK], "locations": [location.pk]}
    )

    assert refused.status_code == 422
    assert dict(refused.context["form"].error_summary())["id_roles"].startswith("Role:")
    assert {g.name for g in admin.groups.all()} == {Role.ADMIN}


def test_an_admin_cannot_deactivate_themselves(admin, location):
    client = client_for(admin)

    response = client.post(account_url(location, admin, "active"), {"active": "0"}, follow=True)

    assert "cannot deactivate your own account" in response.content.decode()
    assert User.objects.get(pk=admin.pk).is_active
    assert client.get(accounts_url(location)).status_code == 200


# --- Deactivating ---------------------------------------------------------------------------------


def test_a_deactivated_account_is_signed_out_loses_its_tokens_and_cannot_sign_in(admin, location):
    desk = staff_user(Role.FRONT_DESK, location, username="robin")
    session = client_for(desk)
    _, token = AuthToken.objects.create(user=desk)
    assert session.get("/staff/board/").status_code == 200
    assert Client().get(API_LIST, HTTP_AUTHORIZATION=f"Token {token}").status_code == 200

    response = client_for(admin).post(account_url(location, desk, "active"), {"active": "0"})

    assert response.status_code == 302
    assert not User.objects.get(pk=desk.pk).is_active
    assert not AuthToken.objects.filter(user=desk).exists()
    assert Client().get(API_LIST, HTTP_AUTHORIZATION=f"Token {token}").status_code in (401, 403)
    assert session.get("/staff/board/")["Location"].startswith("/staff/login/")
    assert not signed_in(sign_in("robin", PASSWORD))
    deactivated = AuditEvent.objects.get(object_id=str(desk.pk), detail__step="deactivate")
    assert deactivated.detail["changed"] == ["is_active"]
    assert deactivated.detail["tokens_revoked"] == 1


def test_a_reactivated_account_signs_in_again(admin, location):
    desk = staff_user(Role.FRONT_DESK, location, username="robin")
    client = client_for(admin)
    client.post(account_url(location, desk, "active"), {"active": "0"})

    client.post(account_url(location, desk, "active"), {"active": "1"})

    assert User.objects.get(pk=desk.pk).is_active
    assert signed_in(sign_in("robin", PASSWORD))
    assert AuditEvent.objects.filter(object_id=str(desk.pk), detail__step="reactivate").exists()


def test_a_deactivated_invitees_link_no_longer_works(admin, location):
    client = client_for(admin)
    invite(client, location)
    account = User.objects.get(email="nora@example.com")
    link = link_in(mail.outbox[0])

    client.post(account_url(location, account, "active"), {"active": "0"})

    assert not Client().get(link).context["validlink"]
    client.post(account_url(location, account, "resend"))
    assert len(mail.outbox) == 1  # nobody is invited to a deactivated account


def test_the_accounts_page_is_in_the_setup_navigation(admin, location):
    page = client_for(admin).get(account_url(location, admin)).content.decode()

    assert f'href="{accounts_url(location)}"' in page
    assert "Staff accounts" in page
    assert "You cannot deactivate your own account." in page


def test_the_service_itself_refuses_a_location_outside_the_scope(location, make_location):
    admin = staff_user(Role.ADMIN, location)
    foreign = make_location()
    nurse = staff_user(Role.NURSE, location)

    with pytest.raises(AccountRefused) as refused:
        staff_account_update(
            account=nurse,
            roles=[Role.NURSE],
            locations=[location, foreign],
            scope={location.pk},
            resource=None,
            by=admin,
        )

    assert refused.value.field == "locations"
    assert list(nurse.staff_profile.locations.all()) == [location]
