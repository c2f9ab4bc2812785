"""Serve the web app and one Celery worker (with the periodic sweeper) until Ctrl+C."""

import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from datasets_app.demo import DEMO_USERS


class Command(BaseCommand):
    help = "Run gunicorn on 127.0.0.1:8000 and a Celery worker; Ctrl+C stops both."

    def add_arguments(self, parser) -> None:  # type: ignore[no-untyped-def]
        parser.add_argument("--bind", default="127.0.0.1:8000")

    def handle(self, *args: object, **options: str) -> None:
        bin_dir = Path(sys.executable).parent
        processes = [
            subprocess.Popen(
                [
                    str(bin_dir / "gunicorn"),
                    "project.wsgi",
                    "--bind",
                    options["bind"],
                    "--workers",
                    "2",
                    "--threads",
                    "4",
                    "--access-logfile",
                    "-",
                ]
            ),
            subprocess.Popen(
                [
                    str(bin_dir / "celery"),
                    "-A",
                    "project",
                    "worker",
                    "-Q",
                    "default,training",
                    "--concurrency",
                    "1",
                    "--beat",
                    "--schedule",
                    settings.CELERY_BEAT_SCHEDULE_FILENAME,
                    "--loglevel",
                    "info",
                ]
            ),
        ]
        self._print_banner(options["bind"])
        stopping: list[int] = []
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda number, frame: stopping.append(number))
        try:
            while not stopping and all(process.poll() is None for process in processes):
                time.sleep(0.5)
        finally:
            self._stop(processes)

    def _print_banner(self, bind: str) -> None:
        lines = [f"Instructory is running at http://{bind}/", "Demo logins (username / password):"]
        lines += [f"  {user['username']:<10} / {user['password']:<18} {user['about']}" for user in DEMO_USERS]
        lines.append("Press Ctrl+C to stop the web server and the worker.")
        self.stdout.write(self.style.SUCCESS("\n".join(lines)))

    def _stop(self, processes: list[subprocess.Popen]) -> None:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
