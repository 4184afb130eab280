"""The API's permission classes: who may call an endpoint at all. What a role may do with a
given visit is checked by the view once it knows what is asked, and the services check again;
every class here reads ``booking.access.roles``, so a 403 and a service's refusal agree."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission, DjangoModelPermissions
from rest_framework.request import Request

from booking.access.roles import VIEW, is_prescriber, is_staff_member


class ModelPermissions(DjangoModelPermissions):
    """Django's model permissions, reads included: plans are patient data."""

    perms_map = {
        **DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
    }


class Prescribes(BasePermission):
    message = "Only a prescriber can do this."

    def has_permission(self, request: Request, view: Any) -> bool:
        return is_prescriber(request.user)


class StaffMember(BasePermission):
    """Signed-in staff (a staff profile, or a superuser); what their role allows is checked by
    the view, once it knows what is asked."""

    message = "Sign in as a member of staff."

    def has_permission(self, request: Request, view: Any) -> bool:
        return is_staff_member(request.user)


class MaySeeCalendar(BasePermission):
    message = "You do not have permission to see the calendar."

    def has_permission(self, request: Request, view: Any) -> bool:
        return is_staff_member(request.user) and request.user.has_perm(VIEW)
