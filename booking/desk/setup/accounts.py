"""Staff accounts of one location, ``/staff/setup/<location>/accounts/``: who works there, in
which role, linked to which calendar; inviting someone by e-mail, changing an account,
deactivating it. And ``/staff/welcome/<uidb64>/<token>/``, where an invited person sets their
password (Django's ``PasswordResetConfirmView``, so its one-time, expiring token).

An administrator reaches only the accounts working at a location they administer, and changes
only those locations of an account; a superuser's account is out of a non-superuser's reach (404,
as if it were not there). The work is in ``booking.staff_accounts``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.forms import SetPasswordForm
from django.contrib.auth.models import User
from django.contrib.auth.views import PasswordResetConfirmView
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse, reverse_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from booking.access.audit import audit
from booking.access.scoping import location_ids, locations_for
from booking.desk.forms import DeskForm
from booking.desk.setup.base import audit_setup, render_setup, setup_required
from booking.errors import BookingError
from booking.models import AuditAction, StaffProfile
from booking.staff_accounts import (
    ROLES,
    InvitationNotSent,
    account_roles,
    linkable_resources,
    staff_account_deactivate,
    staff_account_invitation_send,
    staff_account_invite,
    staff_account_reactivate,
    staff_account_update,
    staff_accounts_at,
)
from scheduling.models import Location, Resource

SECTION = "setup-accounts"


class ResourceChoice(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        role = obj.get_role_display() if obj.role else "staff"
        return f"{obj.name} ({role.lower()}, {obj.location.name})"


class AccountForm(DeskForm):
    """What an administrator sets of an account: its roles, which of their own locations it
    works at, and its calendar column."""

    roles = forms.MultipleChoiceField(
        label="Role",
        choices=[(role, role) for role in ROLES],
        widget=forms.CheckboxSelectMultiple,
        help_text="Tick two for someone who does both.",
    )
    locations = forms.ModelMultipleChoiceField(
        label="Locations",
        queryset=Location.objects.none(),
        widget=forms.CheckboxSelectMultiple,
        help_text="Where they work: they see the patients and calendars of these only.",
    )
    resource = ResourceChoice(
        label="Their calendar",
        queryset=Resource.objects.none(),
        required=False,
        empty_label="None: visits are not booked with them",
        help_text="The staff column on the calendar that is this person, if visits are booked "
        "with them.",
    )

    def __init__(
        self,
        *args: Any,
        location: Location,
        scope: Any,
        profile: StaffProfile | None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.location = location
        fields: Any = self.fields
        fields["locations"].queryset = scope.order_by("name")
        fields["resource"].queryset = linkable_resources(location, profile=profile).select_related(
            "location"
        )


class InviteForm(AccountForm):
    """A new account: the person's name and e-mail address (their sign-in name), and what an
    account form sets."""

    field_order = ["first_name", "last_name", "email", "roles", "locations", "resource"]

    first_name = forms.CharField(
        label="First name", max_length=150, widget=forms.TextInput(attrs={"autocomplete": "off"})
    )
    last_name = forms.CharField(
        label="Last name", max_length=150, widget=forms.TextInput(attrs={"autocomplete": "off"})
    )
    email = forms.EmailField(
        label="E-mail address",
        max_length=150,
        help_text="The invitation goes here, and it is their sign-in name.",
        widget=forms.EmailInput(attrs={"autocomplete": "off"}),
    )

    def clean_locations(self) -> Any:
        chosen = self.cleaned_data["locations"]
        if self.location not in chosen:
            raise forms.ValidationError(
                f"Include {self.location.name}: the account is invited from its page."
            )
        return chosen


def _account(request: HttpRequest, location: Location, account_id: int) -> User:
    """An account working at ``location`` that the administrator may see, or 404."""
    account = staff_accounts_at(location, viewer=request.user).filter(pk=account_id).first()
    if account is None:
        raise Http404("No such account here.")
    return account


@dataclass(frozen=True)
class AccountRow:
    account: User
    roles: list[str]
    locations: list[str]  # the administrator's own, by name
    elsewhere: int  # how many other locations the account works at
    resource: Resource | None
    status: str
    last_login: datetime | None


def _status(account: User) -> str:
    if not account.is_active:
        return "Deactivated"
    if not account.has_usable_password():
        return "Invited: no password yet"
    return "Active"


def _row(account: User, scope: set[int]) -> AccountRow:
    profile = account.staff_profile
    places = list(profile.locations.all())
    return AccountRow(
        account=account,
        roles=account_roles(account),
        locations=sorted(place.name for place in places if place.pk in scope),
        elsewhere=sum(1 for place in places if place.pk not in scope),
        resource=profile.resource,
        status=_status(account),
        last_login=account.last_login,
    )


@require_GET
@setup_required
def accounts_list(request: HttpRequest, location: Location) -> HttpResponse:
    scope = location_ids(request.user)
    accounts = staff_accounts_at(location, viewer=request.user).order_by(
        "last_name", "first_name", "username"
    )
    rows = [_row(account, scope) for account in accounts]
    # Staff members' names and addresses: a read of people's data like any other, so audited.
    audit(
        request,
        AuditAction.VIEW,
        object_type="staff_account_list",
        location_id=location.pk,
        count=len(rows),
    )
    return render_setup(request, "staff/setup/accounts.html", location, section=SECTION, rows=rows)


@require_http_methods(["GET", "POST"])
@never_cache
@setup_required
def account_invite(request: HttpRequest, location: Location) -> HttpResponse:
    scope = locations_for(request.user)
    form = InviteForm(
        request.POST if request.method == "POST" else None,
        initial={"locations": [location.pk]},
        location=location,
        scope=scope,
        profile=None,
    )
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            data = form.cleaned_data
            try:
                account, sent = staff_account_invite(
                    first_name=data["first_name"],
                    last_name=data["last_name"],
                    email=data["email"],
                    roles=data["roles"],
                    locations=list(data["locations"]),
                    scope=location_ids(request.user),
                    resource=data["resource"],
                    invited_by=request.user,
                )
            except BookingError as refused:
                form.add_error(
                    refused.field if refused.field in form.fields else None, refused.message
                )
                status = refused.status
            else:
                audit_setup(
                    request,
                    AuditAction.CREATE,
                    account,
                    location=location,
                    changed=["first_name", "last_name", "email", "roles", "locations", "resource"],
                    step="invite",
                    invitation_sent=sent,
                )
                if sent:
                    messages.success(
                        request, f"{account.email} is invited: the e-mail with their link is sent."
                    )
                else:
                    messages.error(
                        request,
                        f"The account of {account.email} is made, but the invitation could not "
                        "be sent: send it again below.",
                    )
                return redirect("setup-account", location.pk, account.pk)
    return render_setup(
        request,
        "staff/setup/account_invite.html",
        location,
        section=SECTION,
        form=form,
        status=status,
    )


@require_http_methods(["GET", "POST"])
@never_cache
@setup_required
def account_edit(request: HttpRequest, location: Location, account_id: int) -> HttpResponse:
    account = _account(request, location, account_id)
    profile = account.staff_profile
    scope = locations_for(request.user)
    scope_ids = location_ids(request.user)
    form = AccountForm(
        request.POST if request.method == "POST" else None,
        initial={
            "roles": account_roles(account),
            "locations": [place.pk for place in profile.locations.all() if place.pk in scope_ids],
            "resource": profile.resource_id,
        },
        location=location,
        scope=scope,
        profile=profile,
    )
    status = 200
    if request.method == "GET":
        audit(request, AuditAction.VIEW, account, location_id=location.pk, setup=True)
    if request.method == "POST":
        status = 400
        if form.is_valid():
            data = form.cleaned_data
            try:
                changed = staff_account_update(
                    account=account,
                    roles=data["roles"],
                    locations=list(data["locations"]),
                    scope=scope_ids,
                    resource=data["resource"],
                    by=request.user,
                )
            except BookingError as refused:
                form.add_error(
                    refused.field if refused.field in form.fields else None, refused.message
                )
                status = refused.status
            else:
                if changed:
                    audit_setup(
                        request, AuditAction.UPDATE, account, location=location, changed=changed
                    )
                    messages.success(request, f"{account.get_full_name()}'s account is saved.")
                else:
                    messages.info(request, "Nothing to save: the account is as it was.")
                if (
                    not staff_accounts_at(location, viewer=request.user)
                    .filter(pk=account.pk)
                    .exists()
                ):
                    return redirect(_list_or_home(request, location))
                return redirect("setup-account", location.pk, account.pk)
    return render_setup(
        request,
        "staff/setup/account.html",
        location,
        section=SECTION,
        form=form,
        row=_row(account, scope_ids),
        is_self=account.pk == request.user.pk,
        status=status,
    )


def _list_or_home(request: HttpRequest, location: Location) -> str:
    """Where to go once an account left this location: its list, unless the administrator took
    themselves off it."""
    # Asked afresh: the user's locations are cached on them from before the change.
    user = request.user
    if user.is_superuser or location.staff_profiles.filter(user__pk=user.pk or 0).exists():
        return reverse("setup-accounts", args=[location.pk])
    return reverse("setup-home")


@require_POST
@setup_required
def account_active(request: HttpRequest, location: Location, account_id: int) -> HttpResponse:
    """Deactivate (``active=0``) or reactivate (``active=1``) an account."""
    account = _account(request, location, account_id)
    back = redirect("setup-account", location.pk, account.pk)
    if request.POST.get("active") == "1":
        if not account.is_active:
            staff_account_reactivate(account=account)
            audit_setup(
                request,
                AuditAction.UPDATE,
                account,
                location=location,
                changed=["is_active"],
                step="reactivate",
            )
        messages.success(request, f"{account.get_full_name()} can sign in again.")
        return back
    try:
        revoked = staff_account_deactivate(account=account, by=request.user)
    except BookingError as refused:
        messages.error(request, refused.message)
        return back
    audit_setup(
        request,
        AuditAction.UPDATE,
        account,
        location=location,
        changed=["is_active"],
        step="deactivate",
        tokens_revoked=revoked,
    )
    messages.success(
        request,
        f"{account.get_full_name()} is deactivated: signed out everywhere, and their API tokens "
        "no longer work.",
    )
    return back


@require_POST
@setup_required
def account_resend(request: HttpRequest, location: Location, account_id: int) -> HttpResponse:
    """Send the invitation again, with a new link (the earlier ones stop working)."""
    account = _account(request, location, account_id)
    try:
        staff_account_invitation_send(account=account, invited_by=request.user)
    except InvitationNotSent as failed:
        messages.error(request, failed.message)
    except BookingError as refused:
        messages.error(request, refused.message)
    else:
        audit_setup(
            request, AuditAction.UPDATE, account, location=location, step="invitation_resent"
        )
        messages.success(request, f"A new invitation is sent to {account.email}.")
    return redirect("setup-account", location.pk, account.pk)


class WelcomePasswordForm(SetPasswordForm, DeskForm):
    """The new password, twice, with the error summary of the staff pages."""


class WelcomeView(PasswordResetConfirmView):
    """The invitation's link: an invited staff member chooses their password, then signs in.

    Only an active staff account that has no password yet is welcomed: the page is not a way to
    reset the password of an account that has one."""

    template_name = "staff/invite_set_password.html"
    form_class = WelcomePasswordForm
    success_url = reverse_lazy("staff-login")
    title = "Choose your password"

    def get_user(self, uidb64: str) -> Any:
        user = super().get_user(uidb64)
        if (
            user is None
            or not user.is_active
            or user.has_usable_password()
            or not StaffProfile.objects.filter(user=user).exists()
        ):
            return None
        return user

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        audit(self.request, AuditAction.UPDATE, self.user, user=self.user, step="password_set")
        messages.success(
            self.request,
            f"Your password is set. Sign in with {self.user.get_username()} and your new password.",
        )
        return response


welcome = WelcomeView.as_view()
