"""A real Celery worker process for tests, on whatever broker and database the suite is configured for."""

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from tests.chat_server import API_KEY

READY_TIMEOUT_S = 90


def database_url() -> str:
    """The URL of the test database this process is using, so the worker opens the same one."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{db['NAME']}"


class WorkerProcess:
    def __init__(
        self, queues: str, env: dict[str, str] | None = None, args: list[str] | None = None, name: str = ""
    ) -> None:
        env = {**os.environ, **(env or {}), "DATABASE_URL": database_url(), "PYTHONUNBUFFERED": "1"}
        self.log: list[str] = []
        self.ready = threading.Event()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "project",
                "worker",
                "-Q",
                queues,
                "--pool",
                "solo",
                "--loglevel",
                "info",
                "--without-gossip",
                "--without-mingle",
                "-n",
                f"{name or f'test-{os.getpid()}-{queues}'}@%h",
                *(args or []),
            ],
            cwd=Path(settings.BASE_DIR),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        if not self.ready.wait(READY_TIMEOUT_S):
            self.stop()
            raise RuntimeError("Celery worker did not start:\n" + "".join(self.log[-40:]))

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.log.append(line)
            if " ready." in line:
                self.ready.set()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _purge_queues() -> None:
    from project.celery import app

    with app.connection_for_write() as conn:
        for queue in ("default", "training"):
            conn.default_channel.queue_purge(queue)


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, django_db_blocker, chat_server):
    """One worker on both queues for the whole session; tests using it need transactional_db.

    Its "openai" generator backend is the test suite's chat server.
    """
    chat = {
        "INSTRUCTORY_OPENAI_BASE_URL": chat_server.base_url,
        "INSTRUCTORY_OPENAI_API_KEY": API_KEY,
        "INSTRUCTORY_OPENAI_MODEL": "test-chat-model",
    }
    with django_db_blocker.unblock():
        _purge_queues()
        worker = WorkerProcess("default,training", env=chat)
    yield worker
    worker.stop()


def wait_for(predicate, timeout: float = 60, interval: float = 0.2):
    """Poll until predicate() is truthy; returns its value or fails with the time waited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")
