from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import redis
from celery import current_app as celery_app
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Count, Min, Q
from django.utils import timezone

from notifications.models import MessageStatus, OutboundMessage

# Broker URLs whose default queue is a Redis list: its length is the work waiting for a worker.
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def outbox_status(*, now: datetime) -> dict[str, Any]:
    """The outbox's health at ``now``: what waits, what is late, what is stuck, what failed."""
    stale = now - timedelta(seconds=settings.OUTBOX_STALE_CLAIM_SECONDS)
    # Only pending and sending rows: the partial indexes on them keep this cheap however many
    # sent rows the table holds.
    due = Q(due_at__lte=now)
    open_rows = OutboundMessage.objects.filter(
        status__in=[MessageStatus.PENDING, MessageStatus.SENDING]
    ).aggregate(
        pending=Count("id", filter=Q(status=MessageStatus.PENDING)),
        due_unclaimed=Count("id", filter=Q(status=MessageStatus.PENDING) & due),
        sending=Count("id", filter=Q(status=MessageStatus.SENDING)),
        stale_claims=Count("id", filter=Q(status=MessageStatus.SENDING, claimed_at__lt=stale)),
        # Claimed but not sent is not delivered either: a batch lost with its worker is late.
        oldest_due=Min("due_at", filter=due),
    )
    oldest_due: datetime | None = open_rows.pop("oldest_due")
    failed = OutboundMessage.objects.filter(
        status=MessageStatus.FAILED, updated_at__gte=now - timedelta(hours=24)
    ).count()
    return {
        "now": now.isoformat(),
        **open_rows,
        "oldest_due_at": oldest_due.isoformat() if oldest_due else None,
        "oldest_due_lateness_seconds": int((now - oldest_due).total_seconds()) if oldest_due else 0,
        "failed_last_24h": failed,
        **_queue_depth(),
    }


def _queue_depth() -> dict[str, Any]:
    url = str(celery_app.conf.broker_url or "")
    if not url.startswith(REDIS_SCHEMES):
        # The filesystem broker of the embedded default: one machine, nothing to watch.
        return {"queue_depth": None}
    queue = celery_app.conf.task_default_queue
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        # Tasks are published without a priority, so they all wait in the queue's own list.
        depth = int(client.llen(queue))
    except redis.RedisError as exc:  # an unreachable broker is a reading, not a crash
        return {"queue_depth": None, "broker_error": f"{type(exc).__name__}: {exc}"}
    finally:
        client.close()
    return {"queue_depth": depth}


class Command(BaseCommand):
    """A probe for cron or a health check: prints the outbox's state as JSON and exits 1 when
    the oldest due message has waited longer than ``--max-lateness`` seconds."""

    help = "Print the outbox's state as JSON; exit 1 when due messages are later than allowed."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--max-lateness",
            type=int,
            default=300,
            metavar="SECONDS",
            help="exit 1 when a due message has waited longer than this (default 300)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        limit: int = options["max_lateness"]
        status = outbox_status(now=timezone.now())
        late = status["oldest_due_lateness_seconds"] > limit
        status |= {"max_lateness_seconds": limit, "status": "late" if late else "ok"}
        self.stdout.write(json.dumps(status, indent=2))
        if late:
            raise CommandError(
                f"the oldest due message is {status['oldest_due_lateness_seconds']} s late "
                f"(more than {limit} s): is beat running, and a worker?",
                returncode=1,
            )
