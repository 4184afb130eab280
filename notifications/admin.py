from typing import Any

from django.contrib import admin
from django.db import transaction
from django.http import HttpRequest

from booking.admin.base import AuditedAdmin
from notifications.models import InboundMessage, OutboundMessage, ReminderRule
from notifications.replan import reminder_rules_replan


@admin.register(ReminderRule)
class ReminderRuleAdmin(admin.ModelAdmin[ReminderRule]):
    list_display = [
        "appointment_type",
        "kind",
        "email",
        "sms",
        "offset_minutes",
        "local_time",
        "is_active",
    ]
    list_filter = ["appointment_type__location", "kind", "is_active"]

    def save_model(self, request: HttpRequest, obj: ReminderRule, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        # Every future visit of the type follows the new rule, not just visits booked from now;
        # a rule decides only its own kind's rows, so only those are re-planned (and, when the
        # edit moved the rule to another kind or type, the ones it left).
        changes = {(obj.appointment_type_id, obj.kind)}
        if change:
            before = (form.initial.get("appointment_type"), form.initial.get("kind"))
            if all(before):
                changes.add((int(before[0]), str(before[1])))
        transaction.on_commit(lambda: _replan(changes))

    def delete_model(self, request: HttpRequest, obj: ReminderRule) -> None:
        changes = {(obj.appointment_type_id, obj.kind)}
        super().delete_model(request, obj)
        transaction.on_commit(lambda: _replan(changes))


def _replan(changes: set[tuple[int, str]]) -> None:
    for appointment_type_id in {type_id for type_id, _ in changes}:
        kinds = {kind for type_id, kind in changes if type_id == appointment_type_id}
        reminder_rules_replan(appointment_type_id=appointment_type_id, kinds=kinds)


@admin.register(OutboundMessage)
class OutboundMessageAdmin(AuditedAdmin[OutboundMessage]):
    list_display = ["appointment", "kind", "channel", "status", "due_at", "attempts", "sent_at"]
    list_filter = ["status", "channel", "kind"]
    readonly_fields = [f.name for f in OutboundMessage._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(InboundMessage)
class InboundMessageAdmin(AuditedAdmin[InboundMessage]):
    list_display = ["received_at", "from_phone", "action", "status"]
    list_filter = ["status", "action"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
