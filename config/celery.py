import os

from celery import Celery
from celery.schedules import crontab

from config import broker

broker.install()

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("chairside")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# The retention task lives beside the retention service (notifications.retention).
app.autodiscover_tasks(["notifications"], related_name="retention")


@app.on_after_configure.connect
def _webhook_sweep(sender: Celery, **kwargs: object) -> None:
    # Beside the settings' schedule: events due (new, or a retry's time come) go out within half
    # a minute even when the sweep queued after their change could not be.
    sender.add_periodic_task(
        30.0, sender.signature("notifications.tasks.deliver_webhooks"), name="deliver-due-webhooks"
    )


@app.on_after_configure.connect
def _retention(sender: Celery, **kwargs: object) -> None:
    # Once a day, at a quiet hour: rows past their period go in bounded batches, and the audit
    # log's partitions are created ahead and archived past the legal period.
    sender.add_periodic_task(
        crontab(hour=3, minute=17),
        sender.signature("notifications.retention.run_retention"),
        name="retention",
    )
