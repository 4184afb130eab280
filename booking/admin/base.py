"""What every booking admin shares: every page showing patient data and every change made
through the admin audited, rows scoped to the staff member's locations, and read-only views of
what only the services may change."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from django.contrib import admin
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from booking.access.audit import audit
from booking.models import AuditAction, Patient

M = TypeVar("M", bound=Model)


def _context(response: HttpResponse, key: str) -> Any:
    """What a page the admin rendered shows under ``key``; None for a redirect or a refusal."""
    if not isinstance(response, TemplateResponse) or response.status_code != 200:
        return None
    return (response.context_data or {}).get(key)


class AuditedAdmin(admin.ModelAdmin[M]):
    """For models holding patient data: the list, an object's page, its history and its delete
    confirmation each leave a view :class:`~booking.models.AuditEvent` when they show rows, and
    additions, changes and deletions an event of their own, as on the staff pages and the API
    (every staff read and write of patient data is audited, README)."""

    def _audit_rows(self, request: HttpRequest, rows: Iterable[Model], **detail: Any) -> None:
        ids = [str(row.pk) for row in rows]
        audit(
            request,
            AuditAction.VIEW,
            object_type=f"{self.opts.model_name}_list",
            page="admin",
            ids=ids,
            count=len(ids),
            **detail,
        )

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        response = super().changelist_view(request, extra_context)
        changelist = _context(response, "cl")
        if changelist is not None:
            # Evaluated here, the page's rows are cached for the template: no second query.
            self._audit_rows(request, changelist.result_list)
        else:
            # An action's confirmation page (delete_selected) lists the rows it would act on.
            chosen = _context(response, "queryset")
            if chosen is not None:
                self._audit_rows(request, chosen, step=request.POST.get("action", ""))
        return response

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        response = super().changeform_view(request, object_id, form_url, extra_context)
        shown = _context(response, "original")  # None on the add form: no one's data yet
        if shown is not None:
            audit(request, AuditAction.VIEW, shown, page="admin")
        return response

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        response = super().history_view(request, object_id, extra_context)
        shown = _context(response, "object")
        if shown is not None:
            audit(request, AuditAction.VIEW, shown, page="admin_history")
        return response

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        response = super().delete_view(request, object_id, extra_context)
        shown = _context(response, "object")
        if shown is not None:
            audit(request, AuditAction.VIEW, shown, page="admin_delete")
        return response

    def log_addition(self, request: HttpRequest, obj: M, message: Any) -> Any:
        audit(request, AuditAction.CREATE, obj, page="admin", change=message)
        return super().log_addition(request, obj, message)

    def log_change(self, request: HttpRequest, obj: M, message: Any) -> Any:
        audit(request, AuditAction.UPDATE, obj, page="admin", change=message)
        return super().log_change(request, obj, message)

    def log_deletions(self, request: HttpRequest, queryset: QuerySet[M]) -> Any:
        for obj in queryset:
            if isinstance(obj, Patient):
                # The patient row goes: an event pointing at it would keep it (PROTECT).
                audit(
                    request,
                    AuditAction.DELETE,
                    object_type="patient",
                    object_id=str(obj.pk),
                    page="admin",
                )
            else:
                audit(request, AuditAction.DELETE, obj, page="admin")
        return super().log_deletions(request, queryset)


class ScopedAdmin(AuditedAdmin[M]):
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
