"""What every booking admin shares: rows scoped to the staff member's locations, and read-only
views of what only the services may change."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.contrib import admin
from django.db.models import Model, QuerySet
from django.http import HttpRequest

M = TypeVar("M", bound=Model)


class ScopedAdmin(admin.ModelAdmin[M]):
    """Rows at the signed-in staff member's locations only, as on the staff pages: the admin is
    no back door to another location's patients."""

    scope: Callable[[Any], QuerySet[Any]]

    def get_queryset(self, request: HttpRequest) -> QuerySet[M]:
        return super().get_queryset(request).filter(pk__in=self.scope(request.user).values("pk"))


class ReadOnlyAdmin(ScopedAdmin[M]):
    """Shown (within the staff member's locations), never added, changed or deleted through
    the admin."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
