"""The messages of some visits, for the staff pages (booking's ``VISIT_MESSAGES`` setting names
:func:`visit_messages`), in one query whatever the number of visits."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from notifications.models import OutboundMessage


def visit_messages(appointment_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    found: dict[int, list[dict[str, Any]]] = defaultdict(list)
    if not appointment_ids:
        return {}
    rows = OutboundMessage.objects.filter(appointment_id__in=appointment_ids).order_by(
        "due_at", "id"
    )
    for message in rows:
        found[message.appointment_id].append(
            {
                "kind": message.kind,
                "kind_label": message.get_kind_display(),
                "channel": message.channel,
                "channel_label": message.get_channel_display(),
                "status": message.status,
                "status_label": message.get_status_display(),
                "due_at": message.due_at,
                "sent_at": message.sent_at,
                "detail": message.detail,
            }
        )
    return dict(found)
