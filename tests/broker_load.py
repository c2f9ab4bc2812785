"""A test-only task and a producer script for the filesystem broker tests (tests/test_broker.py).

The task leaves one byte per run in a file named after its message, so a message run twice shows as two bytes.
A worker imports it with `--include tests.broker_load`; `python -m tests.broker_load FOLDER PREFIX THREADS COUNT`
publishes THREADS x COUNT such messages from one process to the broker configured by the environment. Each carries
PADDING bytes of filler, as a task with a long argument would: the longer a message file takes to write, the likelier
a consumer of kombu's own transport reads it half-written.
"""

import os
import sys
import threading

from celery import shared_task

TASK = "tests.broker_load.mark"
PADDING = 100_000


@shared_task(name=TASK, queue="default")
def mark(folder: str, key: str, padding: str = "") -> None:
    with open(os.path.join(folder, key), "ab") as file:
        file.write(b"x")


def publish(folder: str, prefix: str, threads: int, count: int) -> None:
    from project.celery import app

    def send(thread: int) -> None:
        for number in range(count):
            app.send_task(TASK, args=[folder, f"{prefix}-{thread}-{number}", "x" * PADDING], queue="default")

    workers = [threading.Thread(target=send, args=(thread,)) for thread in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


if __name__ == "__main__":
    import django

    django.setup()
    publish(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
