from typing import Any

from django.contrib import admin
from django.db import transaction
from django.http import HttpRequest

from notifications.models import InboundMessage, OutboundMessage, ReminderRule
from notifications.services import reminder_rules_replan


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
        # Every future visit of the type follows the new rule, not just visits booked from now.
        transaction.on_commit(
            lambda: reminder_rules_replan(appointment_type_id=obj.appointment_type_id)
        )

    def delete_model(self, request: HttpRequest, obj: ReminderRule) -> None:
        type_id = obj.appointment_type_id
        super().delete_model(request, obj)
        transaction.on_commit(lambda: reminder_rules_replan(appointment_type_id=type_id))


@admin.register(OutboundMessage)
class OutboundMessageAdmin(admin.ModelAdmin[OutboundMessage]):
    list_display = ["appointment", "kind", "channel", "status", "due_at", "attempts", "sent_at"]
    list_filter = ["status", "channel", "kind"]
    readonly_fields = [f.name for f in OutboundMessage._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(InboundMessage)
class InboundMessageAdmin(admin.ModelAdmin[InboundMessage]):
    list_display = ["received_at", "from_phone", "action", "status"]
    list_filter = ["status", "action"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
