"""A heartbeat that keeps beating while a job's body works, however long one phase (a write, a model load) takes."""

import logging
import threading
from types import TracebackType

from django.db import DatabaseError, close_old_connections, connection, models
from django.utils import timezone

logger = logging.getLogger(__name__)
BEAT_EVERY_S = 10.0


class Heartbeat(threading.Thread):
    """Writes `heartbeat_at` of one running row every few seconds, from its own thread and database connection.

    Use it as a context manager around the work. A beat that cannot be written (the database is busy) is
    retried at the next one; the sweeper's timeout is several beats long.
    """

    def __init__(self, model: type[models.Model], pk: int, *, every_s: float = BEAT_EVERY_S) -> None:
        super().__init__(daemon=True, name=f"heartbeat-{model._meta.label_lower}-{pk}")
        self.model, self.pk, self.every_s = model, pk, every_s
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.wait(self.every_s):
                self.beat()
        finally:
            connection.close()

    def beat(self) -> None:
        try:
            close_old_connections()
            self.model.objects.filter(pk=self.pk, status="running").update(heartbeat_at=timezone.now())
        except DatabaseError:
            logger.warning("could not write the heartbeat of %s %s; trying again", self.model.__name__, self.pk)

    def __enter__(self) -> "Heartbeat":
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stopped.set()
        self.join(timeout=30)
