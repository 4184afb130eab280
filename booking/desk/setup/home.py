"""The setup start page: the admin's locations, and a superuser's way to add one."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponseBase
from django.shortcuts import redirect
from django.views.decorators.http import require_GET

from booking.desk.setup.base import render_setup, setup_required
from booking.desk.setup.new_location import needs_first_location


@require_GET
@setup_required
def setup_home(request: HttpRequest) -> HttpResponseBase:
    if needs_first_location(request.user):
        return redirect("setup-first-run")
    return render_setup(request, "staff/setup/home.html", None)
