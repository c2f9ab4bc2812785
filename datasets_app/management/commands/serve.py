"""Serve the web app, Celery workers (default and training queues) and Celery beat until Ctrl+C, restarting whichever dies."""

import os
import signal
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from datasets_app.demo import DEMO_USERS

# A child that exits is restarted, after a longer delay each time it exits within STABLE_AFTER_S of starting;
# the fifth such exit in a row stops everything rather than serve half an app.
RESTART_DELAYS_S = (0.5, 1.0, 2.0, 4.0)
GIVE_UP_AFTER = len(RESTART_DELAYS_S) + 1
STABLE_AFTER_S = 60.0
STOP_TIMEOUT_S = 20.0


class Child:
    """One supervised process, in a process group of its own so that its leftovers can be ended with it."""

    def __init__(self, name: str, argv: list[str]) -> None:
        self.name, self.argv = name, argv
        self.process: subprocess.Popen | None = None
        self.started_at = self.restart_at = 0.0
        self.quick_exits = 0

    def start(self) -> None:
        self.process = subprocess.Popen(self.argv, start_new_session=True)
        self.started_at = time.monotonic()

    def kill_group(self) -> None:
        """End what the process left behind (a prefork pool child still training, gunicorn workers)."""
        if self.process is not None:
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)


def describe_exit(code: int) -> str:
    if code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


class Command(BaseCommand):
    help = (
        "Run gunicorn on 127.0.0.1:8000, two Celery workers and Celery beat; restart any that dies; Ctrl+C stops all."
    )

    def add_arguments(self, parser) -> None:  # type: ignore[no-untyped-def]
        parser.add_argument("--bind", default="127.0.0.1:8000")

    def handle(self, *args: object, **options: str) -> None:
        bin_dir = Path(sys.executable).parent
        web = [str(bin_dir / "gunicorn"), "project.wsgi", "--bind", options["bind"], "--workers", "2", "--threads", "4"]
        celery = [str(bin_dir / "celery"), "-A", "project"]
        schedule = settings.CELERY_BEAT_SCHEDULE_FILENAME
        log = ["--loglevel", "info"]
        children = [
            Child("web server", [*web, "--access-logfile", "-"]),
            # Two workers, as in production: a long training run never holds up imports, checks and the sweeps.
            Child("worker", [*celery, "worker", "-Q", "default", "-n", "default@%h", "--concurrency", "2", *log]),
            Child("trainer", [*celery, "worker", "-Q", "training", "-n", "training@%h", "--concurrency", "1", *log]),
            # Beat only enqueues the sweeps and a worker runs them, so a killed worker is swept once one is back.
            Child("beat", [*celery, "beat", "--schedule", schedule, "--loglevel", "info"]),
        ]
        stopping: list[int] = []
        # Ctrl+C reaches serve alone (each child has a session of its own), and so does a closed terminal's SIGHUP.
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, lambda number, frame: stopping.append(number))
        for child in children:
            child.start()
        self._print_banner(options["bind"])
        failed: Child | None = None
        try:
            while not stopping and failed is None:
                failed = self._supervise(children)
                time.sleep(0.2)
        finally:
            self._stop(children)
        if failed is not None:
            raise CommandError(
                f"the {failed.name} exited {GIVE_UP_AFTER} times in a row, each within {STABLE_AFTER_S:.0f} s of "
                "starting, so everything was stopped; its output above may say why."
            )

    def _supervise(self, children: list[Child]) -> Child | None:
        """Restart exited children when their delay is up; the child that keeps exiting, if one does."""
        now = time.monotonic()
        for child in children:
            if child.process is None:
                if now >= child.restart_at:
                    child.start()
                    self.stderr.write(f"serve: started the {child.name} again (pid {child.process.pid})")
                continue
            code = child.process.poll()
            if code is None:
                continue
            child.kill_group()
            ran = now - child.started_at
            child.quick_exits = child.quick_exits + 1 if ran < STABLE_AFTER_S else 0
            message = f"serve: the {child.name} (pid {child.process.pid}) {describe_exit(code)} after {ran:.0f} s"
            if child.quick_exits >= GIVE_UP_AFTER:
                self.stderr.write(message)
                return child
            delay = RESTART_DELAYS_S[max(child.quick_exits - 1, 0)]
            self.stderr.write(f"{message}; restarting it in {delay:g} s")
            child.process, child.restart_at = None, now + delay
        return None

    def _print_banner(self, bind: str) -> None:
        lines = [f"Instructory is running at http://{bind}/", "Demo logins (username / password):"]
        lines += [f"  {user['username']:<10} / {user['password']:<18} {user['about']}" for user in DEMO_USERS]
        lines.append("Press Ctrl+C to stop the web server, the worker and beat.")
        self.stdout.write(self.style.SUCCESS("\n".join(lines)))

    def _stop(self, children: list[Child]) -> None:
        running = [child for child in children if child.process is not None and child.process.poll() is None]
        for child in running:
            child.process.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for child in running:
            with suppress(subprocess.TimeoutExpired):
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))  # type: ignore[union-attr]
        for child in children:
            child.kill_group()
            if child.process is not None:
                child.process.wait()
