"""Real Celery worker (and beat) processes for tests, on the suite's broker and database; and private Redis brokers
for tests that take a broker down and up again."""

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
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


class CeleryProcess:
    """A `celery -A project <args>` process on the test database; ready once its log says `ready_line`."""

    def __init__(self, args: list[str], ready_line: str, env: dict[str, str] | None = None) -> None:
        env = {**os.environ, **(env or {}), "DATABASE_URL": database_url(), "PYTHONUNBUFFERED": "1"}
        self.log: list[str] = []
        self.ready_line = ready_line
        self.ready = threading.Event()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "project", *args],
            cwd=Path(settings.BASE_DIR),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        if not self.ready.wait(READY_TIMEOUT_S):
            self.stop()
            raise RuntimeError(f"celery {args[0]} did not start:\n" + "".join(self.log[-40:]))

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.log.append(line)
            if self.ready_line in line:
                self.ready.set()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> "CeleryProcess":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class WorkerProcess(CeleryProcess):
    def __init__(
        self, queues: str, env: dict[str, str] | None = None, args: list[str] | None = None, name: str = ""
    ) -> None:
        node = f"{name or f'test-{os.getpid()}-{queues}'}@%h"
        base = ["worker", "-Q", queues, "--pool", "solo", "--loglevel", "info", "--without-gossip", "--without-mingle"]
        super().__init__([*base, "-n", node, *(args or [])], " ready.", env)


class BeatProcess(CeleryProcess):
    """Celery beat: sends the periodic tasks of CELERY_BEAT_SCHEDULE (the sweepers, the outbox's dispatchers)."""

    def __init__(self, schedule: Path, env: dict[str, str] | None = None) -> None:
        super().__init__(["beat", "--schedule", str(schedule), "--loglevel", "info"], "beat: Starting", env)


class RedisServer:
    """A Redis of the test's own on a free port, keeping nothing on disk: stopping it loses every message."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.env = {"CELERY_BROKER_URL": self.url}  # for the workers and beat processes on it
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen([*command, "--daemonize", "no"], stdout=subprocess.DEVNULL)
        wait_for(lambda: self.cli("ping") == "PONG", timeout=20, interval=0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def cli(self, *args: str) -> str:
        done = subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True, text=True, check=False)
        return done.stdout.strip()


@contextmanager
def web_broker(url: str) -> Iterator[None]:
    """This process (the web side: API requests, services) publishes to `url` meanwhile."""
    from project.celery import app

    def use(write_url: str | None) -> None:
        # Publishing reads broker_write_url; Celery's broker_url prefers $CELERY_BROKER_URL over any setting.
        app.conf.broker_write_url = write_url
        # The app finds the pools of the new URL in kombu's registry (where those of the old one stay, open).
        app._pool, app.amqp._producer_pool = None, None

    previous = app.conf.get("broker_write_url")
    use(url)
    try:
        yield
    finally:
        use(previous)


@pytest.fixture
def private_broker():
    """A Redis broker of the test's own (not started yet) that this process publishes to: the session's worker never
    sees its messages. Workers and beat the test starts on it get `private_broker.env`."""
    server = RedisServer()
    try:
        with web_broker(server.url):
            yield server
    finally:
        server.stop()


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
