"""Security headers on every kind of page, and templates the Content-Security-Policy can hold to.

The policy runs no inline script or style, so a page template may carry neither; e-mail
templates are exempt (mail clients need inline styles, and no CSP applies to a message).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.test.utils import override_settings

from booking.access.roles import Role
from booking.links import patient_link_issue
from scheduling.models import AppointmentType
from tests.staff_helpers import client_for, staff_user

TEMPLATES = Path(settings.BASE_DIR) / "templates"
POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}


def directives(header: str) -> dict[str, str]:
    return dict(part.strip().split(" ", 1) for part in header.split(";") if part.strip())


@pytest.fixture
def pages(consultation: AppointmentType, make_patient) -> dict[str, tuple[Client, str]]:
    """One address of each kind of page, with the client that may open it."""
    staff = client_for(staff_user(Role.FRONT_DESK, consultation.location))
    token = patient_link_issue(patient=make_patient())
    return {
        "booking": (Client(), "/book/"),
        "booking step": (Client(), f"/book/{consultation.location.slug}/"),
        "secure link": (Client(), f"/a/{token}/"),
        "waitlist offer": (Client(), "/w/not-a-token/"),
        "staff sign-in": (Client(), "/staff/login/"),
        "staff board": (staff, "/staff/board/"),
        "staff calendar": (staff, "/staff/calendar/"),
        "API docs": (Client(), "/api/docs/"),
        "API docs script": (Client(), "/api/docs/?script="),
        "API answer": (Client(), "/api/v1/locations/"),
        "API error": (Client(), "/api/v1/appointment-types/"),
        "not found": (Client(), "/no-such-page/"),
    }


def test_every_kind_of_page_carries_the_policy_and_the_other_headers(pages) -> None:
    for kind, (client, url) in pages.items():
        response = client.get(url)
        assert response.status_code < 500, (kind, response.status_code)
        header = response.headers.get("Content-Security-Policy")
        assert header, f"{kind}: no Content-Security-Policy"
        found = directives(header)
        for name, value in POLICY.items():
            assert found.get(name) == value, (kind, name, found.get(name))
        assert "unsafe-inline" not in header, kind
        assert "unsafe-eval" not in header, kind
        assert response.headers["X-Frame-Options"] == "DENY", kind
        assert response.headers["X-Content-Type-Options"] == "nosniff", kind
        assert response.headers["Referrer-Policy"] == "same-origin", kind


def test_the_api_docs_page_runs_no_inline_script_or_style(client: Client) -> None:
    page = client.get("/api/docs/").content.decode()

    assert re.search(r'<script src="[^"]*\?script=', page)
    assert not re.search(r"<script>|<style", page)


@override_settings(
    SECURE_SSL_REDIRECT=True,
    SECURE_HSTS_SECONDS=31536000,
    SECURE_HSTS_INCLUDE_SUBDOMAINS=True,
    SECURE_HSTS_PRELOAD=True,
    SESSION_COOKIE_SECURE=True,
    CSRF_COOKIE_SECURE=True,
)
def test_over_https_it_sends_hsts_and_secure_cookies(db: None) -> None:
    # These are what HTTPS=true sets (tests.config.test_settings checks that mapping).
    client = Client()
    assert client.get("/staff/login/").status_code == 301  # plain HTTP goes to HTTPS

    response = client.get("/staff/login/", secure=True)

    assert response.headers["Strict-Transport-Security"] == (
        "max-age=31536000; includeSubDomains; preload"
    )
    assert response.headers["Content-Security-Policy"]
    assert response.cookies["csrftoken"]["secure"]
    signed_in = client_for(staff_user(Role.FRONT_DESK))
    signed_in.get("/staff/board/", secure=True)
    assert signed_in.cookies["sessionid"]["secure"]
    assert signed_in.cookies["sessionid"]["httponly"]


def _page_templates() -> list[Path]:
    return [
        path
        for path in sorted(TEMPLATES.rglob("*.html"))
        if "email/_layout.html" not in path.read_text()
        and path.relative_to(TEMPLATES).parts[:2] != ("notifications", "email")
    ]


def test_page_templates_hold_no_inline_script_style_or_handler() -> None:
    templates = _page_templates()
    assert len(templates) > 20  # the scan found the pages
    for path in templates:
        text = path.read_text()
        name = path.relative_to(TEMPLATES)
        for script in re.finditer(r"<script\b([^>]*)>(.*?)</script>", text, re.S):
            attributes, body = script.groups()
            # json_script's output is data, never run; anything else must come from a file.
            assert "src=" in attributes, f"{name}: inline <script>"
            assert not body.strip(), f"{name}: inline <script>"
        assert not re.search(r"<style\b", text), f"{name}: <style> block"
        assert not re.search(r"\sstyle\s*=", text), f"{name}: style= attribute"
        assert not re.search(r"\son[a-z]+\s*=", text), f"{name}: inline event handler"
        assert "javascript:" not in text, f"{name}: javascript: URL"
