"""A Celery app with one task that naps, for the worker that ``test_redis_outage`` runs for real.

Its broker settings are the project's own: the URL comes from the test, and the transport is
whatever ``config.celery`` makes of a ``redis://`` URL (``config.broker``), unless
``NAPPING_TRANSPORT`` names another one to compare with.
"""

import os
import time
from pathlib import Path

from celery import Celery

from config.celery import app as project

app = Celery("napping")
app.conf.update(
    broker_url=os.environ["NAPPING_BROKER_URL"],
    broker_transport=os.environ.get("NAPPING_TRANSPORT") or None,
    broker_transport_options=project.conf.broker_transport_options,
    broker_connection_retry_on_startup=True,
    task_acks_late=project.conf.task_acks_late,
    worker_prefetch_multiplier=project.conf.worker_prefetch_multiplier,
    task_ignore_result=True,
)


@app.task(name="napping.nap")
def nap(seconds: float, marker: str) -> None:
    Path(f"{marker}.started").touch()
    time.sleep(seconds)
    Path(f"{marker}.done").touch()
