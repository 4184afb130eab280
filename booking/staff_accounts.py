"""Staff accounts: invited by e-mail, given roles and locations, linked to their calendar column,
deactivated when they leave.

An invited account has no password: its invitation carries a set-password link made with
Django's password-reset tokens (``default_token_generator``), which work once and for
``PASSWORD_RESET_TIMEOUT``. The link is opened by ``PasswordResetConfirmView`` (the staff
``welcome`` page), so no token code of our own exists to get wrong. The sign-in name is the
e-mail address.

Roles are the groups of ``booking.access.roles``; an administrator changes only the locations they
administer themselves (``scope``), and the account's other locations stay as they are.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.contrib.auth.tokens import default_token_generator
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from knox.models import AuthToken

from booking.access.roles import ROLE_PERMISSIONS, SETUP, Role, sync_roles
from booking.errors import BookingError, InvalidTransition
from booking.models import StaffProfile
from scheduling.models import Location, Resource, ResourceKind

logger = logging.getLogger(__name__)

# The roles an account may be given, in the order the pages list them.
ROLES: tuple[str, ...] = (Role.FRONT_DESK, Role.NURSE, Role.PRESCRIBER, Role.ADMIN)


class AccountRefused(BookingError):
    """The account change is refused: the message names the field it is about."""

    status = 422
    code = "account_refused"


class InvitationNotSent(BookingError):
    """The mail server did not take the invitation; the account stays, to be invited again."""

    status = 503
    code = "invitation_not_sent"


def staff_accounts_at(location: Location, *, viewer: Any) -> QuerySet[User]:
    """The staff accounts working at ``location``, as ``viewer`` may see them: a superuser's own
    account is reachable only by superusers (others get a 404, as if it did not exist)."""
    accounts = User.objects.filter(staff_profile__locations=location)
    if not viewer.is_superuser:
        accounts = accounts.exclude(is_superuser=True)
    return accounts.select_related("staff_profile__resource").prefetch_related(
        "groups", "staff_profile__locations"
    )


def account_roles(account: User) -> list[str]:
    """The roles of ``account`` (its groups that are roles), in :data:`ROLES` order."""
    names = {group.name for group in account.groups.all()}
    return [role for role in ROLES if role in names]


def linkable_resources(location: Location, *, profile: StaffProfile | None) -> QuerySet[Resource]:
    """The staff calendar columns at ``location`` an account may be linked to: those not linked
    to another account yet (and the account's own, wherever it is)."""
    free = Q(staff_profile__isnull=True)
    if profile is not None:
        free |= Q(staff_profile=profile)
    here = Resource.objects.at(location).filter(kind=ResourceKind.STAFF, is_active=True)
    own = (
        Q(pk=profile.resource_id)
        if profile is not None and profile.resource_id is not None
        else Q(pk__in=[])
    )
    return Resource.objects.filter(Q(pk__in=here.filter(free).values("pk")) | own).order_by(
        "name", "pk"
    )


def _role_groups(roles: Iterable[str]) -> list[Group]:
    wanted = set(roles)
    unknown = wanted - set(ROLES)
    if unknown or not wanted:
        raise AccountRefused("Choose at least one of the roles listed.", field="roles")
    groups = list(Group.objects.filter(name__in=wanted))
    if len(groups) < len(wanted):
        sync_roles()  # a database flushed since migrate lost the groups post_migrate made
        groups = list(Group.objects.filter(name__in=wanted))
    return groups


def _check_resource(resource: Resource | None, *, profile: StaffProfile | None) -> None:
    if resource is None:
        return
    if resource.kind != ResourceKind.STAFF:
        raise AccountRefused(
            "Choose a staff member's calendar, not a room or chair.", field="resource"
        )
    linked = StaffProfile.objects.filter(resource=resource)
    if profile is not None:
        linked = linked.exclude(pk=profile.pk)
    if linked.exists():
        raise AccountRefused(
            f"{resource.name}'s calendar is linked to another account already.", field="resource"
        )


def _check_locations(chosen: Collection[Location], scope: Collection[int]) -> None:
    outside = [place for place in chosen if place.pk not in set(scope)]
    if outside:
        raise AccountRefused(
            f"You do not administer {outside[0].name}: choose among your own locations.",
            field="locations",
        )


def _grants_setup(roles: Iterable[str]) -> bool:
    return any(SETUP in ROLE_PERMISSIONS.get(role, []) for role in roles)


def staff_account_invite(
    *,
    first_name: str,
    last_name: str,
    email: str,
    roles: Collection[str],
    locations: Collection[Location],
    scope: Collection[int],
    resource: Resource | None = None,
    invited_by: Any,
) -> tuple[User, bool]:
    """Create a staff account without a password and e-mail it a set-password link.

    ``locations`` must lie within ``scope`` (the inviting administrator's locations). An e-mail
    address already used by an account (as its address or sign-in name) is refused, and no
    second account is made. Returns the account and whether the invitation went out: when the
    mail server refused it, the account stays and can be invited again."""
    address = email.strip().lower()
    if not locations:
        raise AccountRefused("Choose at least one location.", field="locations")
    _check_locations(locations, scope)
    groups = _role_groups(roles)
    taken = User.objects.filter(Q(email__iexact=address) | Q(username__iexact=address))
    if taken.exists():
        raise AccountRefused(f"{address} is used by another account already.", field="email")
    try:
        with transaction.atomic():
            _check_resource(resource, profile=None)
            # The sign-in name is unique in the database: of two invitations of one address at
            # the same moment, the second fails here rather than making a second account.
            # No password given: an unusable one, until the invitation's link sets it.
            account = User.objects.create_user(
                username=address, email=address, first_name=first_name, last_name=last_name
            )
            account.groups.set(groups)
            profile = StaffProfile.objects.create(user=account, resource=resource)
            profile.locations.set(locations)
    except IntegrityError as exc:
        raise AccountRefused(
            f"{address} is used by another account already.", field="email"
        ) from exc
    try:
        staff_account_invitation_send(account=account, invited_by=invited_by)
    except InvitationNotSent:
        return account, False
    return account, True


def invitation_link(account: User) -> str:
    """The set-password link of ``account`` as it stands (any change of its password, sign-in or
    address ends it)."""
    uidb64 = urlsafe_base64_encode(force_bytes(account.pk))
    token = default_token_generator.make_token(account)
    return settings.PUBLIC_BASE_URL + reverse("staff-welcome", args=[uidb64, token])


def staff_account_invitation_send(*, account: User, invited_by: Any) -> None:
    """E-mail ``account`` a fresh set-password link. Only an active account that has not set its
    password yet is invited; each new invitation ends the links sent before it."""
    if not account.is_active:
        raise InvalidTransition("The account is deactivated: reactivate it first.")
    if account.has_usable_password():
        raise InvalidTransition("This account has set its password already.")
    # A new random unusable password changes the token's hash: the links sent before stop.
    account.set_unusable_password()
    account.save(update_fields=["password"])
    days = settings.PASSWORD_RESET_TIMEOUT // (24 * 60 * 60)
    context = {
        # No patient data, and the patients' neutral names of the locations (an e-mail is read
        # on the way and over shoulders).
        "first_name": account.first_name,
        "username": account.get_username(),
        "link": invitation_link(account),
        "valid_for": f"{days} days" if days > 1 else "24 hours",
        "places": sorted(place.public_name for place in account.staff_profile.locations.all()),
        "inviter": invited_by.get_full_name() if invited_by is not None else "",
    }
    template = "staff/email/invitation"
    email = EmailMultiAlternatives(
        subject=" ".join(render_to_string(f"{template}_subject.txt", context).split()),
        body=render_to_string(f"{template}.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[account.email],
    )
    email.attach_alternative(render_to_string(f"{template}.html", context), "text/html")
    try:
        email.send()
    except Exception as exc:  # SMTP, a socket, or a provider's API through anymail
        logger.warning("staff invitation to account %s not sent: %s", account.pk, exc)
        raise InvitationNotSent("The invitation could not be sent: try again later.") from exc


def staff_account_update(
    *,
    account: User,
    roles: Collection[str],
    locations: Collection[Location],
    scope: Collection[int],
    resource: Resource | None,
    by: Any,
) -> list[str]:
    """Change an account's roles, its locations within ``scope`` (the administrator's own; the
    others stay), and its linked calendar. An administrator cannot take away their own setup
    role. Returns the names of the fields that changed."""
    _check_locations(locations, scope)
    groups = _role_groups(roles)
    if account.pk == by.pk and not by.is_superuser and not _grants_setup(roles):
        raise AccountRefused(
            "You cannot take the Admin role from your own account: ask another administrator.",
            field="roles",
        )
    changed: list[str] = []
    with transaction.atomic():
        # Two administrators saving one account at once: one after the other, each merging
        # into the locations as the other left them.
        profile = StaffProfile.objects.select_for_update().get(user=account)
        _check_resource(resource, profile=profile)
        scoped = set(scope)
        before = set(profile.locations.values_list("pk", flat=True))
        after = {pk for pk in before if pk not in scoped} | {place.pk for place in locations}
        if not after:
            raise AccountRefused(
                "Choose at least one location (or deactivate the account).", field="locations"
            )
        if after != before:
            profile.locations.set(after)
            changed.append("locations")
        role_names = set(ROLES)
        kept = [g for g in account.groups.all() if g.name not in role_names]
        if {g.name for g in account.groups.all() if g.name in role_names} != set(roles):
            account.groups.set([*kept, *groups])
            changed.append("roles")
        if profile.resource_id != (resource.pk if resource is not None else None):
            profile.resource = resource
            profile.save(update_fields=["resource"])
            changed.append("resource")
    return changed


def staff_account_deactivate(*, account: User, by: Any) -> int:
    """Deactivate ``account``: it can no longer sign in, its open sessions stop at their next
    request (Django refuses an inactive user's session) and its API tokens are deleted. Returns
    the number of tokens revoked."""
    if account.pk == by.pk:
        raise AccountRefused("You cannot deactivate your own account.", field="is_active")
    with transaction.atomic():
        User.objects.filter(pk=account.pk).update(is_active=False)
        account.is_active = False
        revoked, _ = AuthToken.objects.filter(user=account).delete()
    return int(revoked)


def staff_account_reactivate(*, account: User) -> None:
    """Let ``account`` sign in again (with its own password, or once it sets one)."""
    User.objects.filter(pk=account.pk).update(is_active=True)
    account.is_active = True
