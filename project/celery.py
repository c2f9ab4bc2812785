"""The Celery app. Queues: `default` for imports and drafting, `training` for fine-tuning runs."""

import importlib
import logging
import os
import time

from celery import Celery
from celery.signals import celeryd_after_setup
from kombu import Queue
from kombu.transport import TRANSPORT_ALIASES

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
# CELERY_BROKER_URL=filesystem:// means kombu's filesystem transport with its races fixed (project/broker.py).
TRANSPORT_ALIASES["filesystem"] = "project.broker:Transport"

app = Celery("instructory")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = (Queue("default"), Queue("training"))
app.autodiscover_tasks()  # <app>.tasks: training_app.tasks
# datasets_app is grouped by feature; each feature keeps its tasks next to its services
app.autodiscover_tasks(
    [
        "datasets_app.curation",
        "datasets_app.imports",
        "datasets_app.lint",
        "datasets_app.blueprints",
        "datasets_app.jobs",
    ]
)

logger = logging.getLogger(__name__)


@celeryd_after_setup.connect
def import_training_stack(sender: str, instance, **kwargs) -> None:
    """A worker on the training queue imports torch, transformers and peft before its first run, not during it.

    This runs before the pool starts, so prefork children inherit the imported modules.
    """
    if "training" not in instance.app.amqp.queues.consume_from:
        return
    started = time.perf_counter()
    importlib.import_module("training_app.ml.train")
    importlib.import_module("peft")
    logger.info("Imported the training stack in %.1f s", time.perf_counter() - started)
