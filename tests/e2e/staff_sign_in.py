"""The staff sign-in form as a person fills it, second factor included, for the browser tests."""

from __future__ import annotations

from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from booking.access.two_factor import must_verify
from tests.staff_helpers import PASSWORD, authenticator_for, totp_code


def submit_sign_in(page: Page, username: str) -> None:
    """On the staff sign-in page: the password, then, for an account that must use a second
    factor (an admin, a prescriber…), the code its authenticator shows now (one is enrolled for
    it first if it has none)."""
    user = User.objects.get(username=username)
    device = authenticator_for(user) if must_verify(user) else None
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    if device is not None:
        expect(page.get_by_role("heading", level=1)).to_have_text("Two-factor sign-in")
        page.get_by_label("Code").fill(totp_code(device))
        page.get_by_role("button", name="Verify").click()
