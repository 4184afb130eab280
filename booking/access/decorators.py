"""The staff-only page decorator: signed in as staff, with the permission the page needs."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseBase

from booking.access.roles import is_staff_member


def staff_required(
    permission: str | None = None,
) -> Callable[[Callable[..., HttpResponseBase]], Callable[..., HttpResponseBase]]:
    """A staff page: signed-in staff only (others go to the sign-in page), optionally with a
    permission (403 without it)."""

    def decorate(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if not is_staff_member(request.user):
                # LOGIN_URL is a URL name: redirect_to_login resolves it and quotes ``next``.
                return redirect_to_login(request.get_full_path())
            if permission is not None and not request.user.has_perm(permission):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return wrapped

    return decorate
