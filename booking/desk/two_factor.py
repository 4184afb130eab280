"""Two-factor sign-in pages, /staff/two-factor/: enrol an authenticator app, verify a sign-in
with its code (or a recovery code), and manage one's own (new recovery codes, remove it).

Enrolment and verification are reachable before the second factor (the middleware in
``booking.access.two_factor`` sends an unverified session here); managing needs a verified
session wherever a second factor is required. Enrolling is refused to a session that has not
verified an authenticator already enrolled: the password alone never adds a device.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from booking.access.audit import audit
from booking.access.decorators import staff_required
from booking.access.roles import is_staff_member
from booking.access.two_factor import (
    MAX_SESSION_FAILURES,
    RECOVERY_CODES,
    Check,
    enrolment_confirm,
    enrolment_device,
    has_authenticator,
    is_verified,
    locked_until,
    mark_verified,
    qr_svg,
    recovery_codes_issue,
    recovery_codes_left,
    redirect_with_next,
    secret_of,
    session_failure,
    session_need_forget,
    two_factor_check,
    two_factor_required,
    two_factor_reset,
)
from booking.desk.forms import DeskForm
from booking.models import AuditAction


class CodeForm(DeskForm):
    code = forms.CharField(
        label="Code",
        max_length=20,
        strip=True,
        widget=forms.TextInput(
            {"autocomplete": "one-time-code", "autocapitalize": "off", "spellcheck": "false"}
        ),
    )


def _next_url(request: HttpRequest) -> str:
    """Where to go once done: the page the session was sent away from, if it is ours."""
    wanted = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(
        wanted, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return wanted
    return reverse("staff-home")


def _refusal_text(check: Check) -> str:
    if check.locked_until is not None:
        wait = max(1, int((check.locked_until - timezone.now()).total_seconds() + 0.999))
        unit = "second" if wait == 1 else "seconds"
        return f"Too many wrong codes: wait {wait} {unit}, then try again."
    return "That code is not right. Check the time on your phone and try the newest code."


def _audit(request: HttpRequest, action: str, what: str) -> None:
    audit(
        request,
        action,
        object_type="two_factor",
        object_id=str(request.user.pk),
        what=what,
    )


@never_cache
@require_http_methods(["GET", "POST"])
def enrol(request: HttpRequest) -> HttpResponse:
    """Scan the QR code (or type the key), confirm with a code, then see the recovery codes,
    once."""
    if not is_staff_member(request.user):
        return redirect_to_login(request.get_full_path())
    if has_authenticator(request.user):
        # Replacing an authenticator starts from a verified session, on the manage page.
        step = "two-factor" if is_verified(request) else "two-factor-verify"
        return redirect_with_next(step, _next_url(request))
    device = enrolment_device(request.user)
    form = CodeForm(request.POST or None)
    locked = locked_until(device) if request.method == "POST" else None
    if request.method == "POST" and form.is_valid() and locked is None:
        codes = enrolment_confirm(device, form.cleaned_data["code"])
        if codes is not None:
            device.refresh_from_db()
            mark_verified(request, device)
            _audit(request, AuditAction.CREATE, "authenticator enrolled")
            return render(
                request,
                "staff/two_factor_recovery.html",
                {"codes": codes, "next": _next_url(request), "nav": "two-factor"},
            )
    if request.method == "POST" and form.is_valid():
        form.add_error("code", _refusal_text(Check(locked_until=locked)))
    return render(
        request,
        "staff/two_factor_enrol.html",
        {
            "form": form,
            "qr": qr_svg(device),
            "secret": secret_of(device),
            "required": two_factor_required(request.user),
            "next": _next_url(request),
            "nav": "two-factor",
        },
        status=400 if form.errors else 200,
    )


@never_cache
@require_http_methods(["GET", "POST"])
def verify(request: HttpRequest) -> HttpResponse:
    """The second step of signing in: a code from the authenticator app, or a recovery code."""
    if not is_staff_member(request.user):
        return redirect_to_login(request.get_full_path())
    if not has_authenticator(request.user):
        return redirect_with_next("two-factor-enrol", _next_url(request))
    if is_verified(request):
        return redirect(_next_url(request))
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        check = two_factor_check(request.user, form.cleaned_data["code"])
        if check.device is not None:
            mark_verified(request, check.device)
            if check.by_recovery_code:
                left = recovery_codes_left(request.user)
                messages.warning(
                    request,
                    f"You signed in with a recovery code; {left} left. "
                    "Make new ones under Two-factor if you are running short.",
                )
            return redirect(_next_url(request))
        if session_failure(request) >= MAX_SESSION_FAILURES:
            logout(request)
            messages.error(request, "Too many wrong codes: sign in again.")
            return redirect("staff-login")
        form.add_error("code", _refusal_text(check))
    return render(
        request,
        "staff/two_factor_verify.html",
        {"form": form, "next": _next_url(request), "nav": "two-factor"},
        status=400 if form.errors else 200,
    )


@never_cache
@require_http_methods(["GET", "POST"])
@staff_required()
def manage(request: HttpRequest) -> HttpResponse:
    """One's own second factor: whether it is on, recovery codes left; make new recovery codes,
    or remove the authenticator (with a current code, so a session left open cannot)."""
    user = request.user
    form = CodeForm(request.POST or None)
    action = request.POST.get("action", "")
    if request.method == "POST" and action == "recovery" and has_authenticator(user):
        codes = recovery_codes_issue(user)
        _audit(request, AuditAction.UPDATE, "recovery codes replaced")
        return render(
            request,
            "staff/two_factor_recovery.html",
            {"codes": codes, "next": reverse("two-factor"), "nav": "two-factor"},
        )
    if request.method == "POST" and action == "remove" and form.is_valid():
        check = two_factor_check(user, form.cleaned_data["code"])
        if check.device is not None:
            two_factor_reset(user)
            session_need_forget(request)
            _audit(request, AuditAction.DELETE, "authenticator removed")
            if two_factor_required(user):
                messages.info(request, "Authenticator removed. Set up the new one now.")
                return redirect("two-factor-enrol")
            messages.info(request, "Two-factor sign-in is off for your account.")
            return redirect("two-factor")
        form.add_error("code", _refusal_text(check))
    return render(
        request,
        "staff/two_factor_manage.html",
        {
            "form": form,
            "enrolled": has_authenticator(user),
            "required": two_factor_required(user),
            "recovery_left": recovery_codes_left(user),
            "recovery_total": RECOVERY_CODES,
            "nav": "two-factor",
        },
        status=400 if form.errors else 200,
    )
