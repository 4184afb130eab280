import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("chairside")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def _webhook_sweep(sender: Celery, **kwargs: object) -> None:
    # Beside the settings' schedule: events due (new, or a retry's time come) go out within half
    # a minute even when the sweep queued after their change could not be.
    sender.add_periodic_task(
        30.0, sender.signature("notifications.tasks.deliver_webhooks"), name="deliver-due-webhooks"
    )
