"""`manage.py serve` (what `make run` runs) keeps the app up when a worker is killed.

Serve runs on the suite's test database but on a filesystem broker and var folder of its own, with sweeps every
second and a short heartbeat timeout, so a killed worker's run is queued again within seconds instead of a minute.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import psutil
import pytest
from django.conf import settings
from rest_framework.authtoken.models import Token

from datasets_app.curation.services import example_create
from datasets_app.models import DatasetKind, ExampleStatus, Job, JobStatus
from tests.factories import DatasetFactory
from tests.training_app.conftest import FAST, TINY, guardrail_pairs
from tests.worker import database_url, wait_for
from training_app.models import RunStatus, TrainingRun

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

SWEEPS = {
    "RUN_SWEEP_INTERVAL_S": "1",
    "JOB_SWEEP_INTERVAL_S": "1",
    "RUN_HEARTBEAT_TIMEOUT_S": "10",  # a running run beats every 5 s
    "JOB_HEARTBEAT_TIMEOUT_S": "10",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Serve:
    """`manage.py serve` as a user starts it, with its output collected."""

    def __init__(self, var_dir) -> None:
        self.port = free_port()
        env = {
            **os.environ,
            **SWEEPS,
            "DATABASE_URL": database_url(),
            "INSTRUCTORY_VAR_DIR": str(var_dir),
            "DJANGO_SECRET_KEY": settings.SECRET_KEY,  # the suite's key: this var folder has no key file
            "MEDIA_ROOT": str(settings.MEDIA_ROOT),  # where the test's snapshots are
            "INSTRUCTORY_MODEL_CACHE": str(settings.MODEL_CACHE_DIR),
            "CELERY_BROKER_URL": "filesystem://",
            "CELERY_BROKER_DIR": str(var_dir / "broker"),
            "PYTHONUNBUFFERED": "1",
        }
        self.log: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--bind", f"127.0.0.1:{self.port}"],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.log.append(line)

    def text(self) -> str:
        return "".join(self.log)

    def children(self) -> dict[str, psutil.Process]:
        """Serve's own children by role: "web", "worker", "trainer" and "beat" (while they run)."""
        found = {}
        try:
            children = psutil.Process(self.process.pid).children()
        except psutil.NoSuchProcess:
            return found
        for child in children:
            try:
                argv = child.cmdline()
            except psutil.NoSuchProcess:
                continue
            if any(arg.endswith("gunicorn") for arg in argv):
                found["web"] = child
            elif "worker" in argv:
                found["trainer" if "training" in argv else "worker"] = child
            elif "beat" in argv:
                found["beat"] = child
        return found

    def api(self, method: str, path: str, token: str, body: dict | None = None) -> dict:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (a local URL)
            return json.loads(response.read())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def serve(transactional_db, tmp_path):
    started = Serve(tmp_path / "var")
    yield started
    started.stop()


@pytest.fixture
def training_dataset(workspace, lead):
    dataset = DatasetFactory(workspace=workspace, name="Medical guardrail", kind=DatasetKind.GUARDRAIL)
    for pair in guardrail_pairs():
        example_create(dataset=dataset, user=lead, status=ExampleStatus.APPROVED, **pair)
    return dataset


def test_a_killed_worker_is_restarted_its_run_is_resumed_and_new_work_runs(serve, training_dataset, lead):
    token = Token.objects.create(user=lead).key
    wait_for(lambda: {"web", "worker", "trainer", "beat"} <= set(serve.children()), timeout=30)
    long_run = {"dataset": training_dataset.pk, "base_model": TINY, "hyperparameters": {**FAST, "epochs": 60}}
    wait_for(lambda: _try(lambda: serve.api("GET", "/healthz", token)), timeout=60)
    run_id = serve.api("POST", "/api/runs/", token, long_run)["id"]
    wait_for(lambda: TrainingRun.objects.get(pk=run_id).step >= 1, timeout=180, interval=0.1)

    before = serve.children()
    before["trainer"].send_signal(signal.SIGKILL)

    wait_for(lambda: "started the trainer again" in serve.text(), timeout=30)
    after = serve.children()
    assert after["trainer"].pid != before["trainer"].pid
    assert {role: after[role].pid for role in ("web", "worker", "beat")} == {
        role: before[role].pid for role in ("web", "worker", "beat")
    }
    assert f"the trainer (pid {before['trainer'].pid}) was killed by SIGKILL" in serve.text()

    # the sweep, enqueued by beat and run by the default worker, takes the run from the killed trainer and queues
    # it again; the new trainer resumes it (attempt 2). Cancelled, it ends, and nothing is left running.
    wait_for(lambda: TrainingRun.objects.get(pk=run_id).attempt == 2, timeout=90)
    first = TrainingRun.objects.get(pk=run_id).attempts[0]
    assert first["outcome"] == "worker lost"
    assert "stopped responding (no heartbeat for 10 s)" in first["reason"]
    serve.api("POST", f"/api/runs/{run_id}/cancel/", token, {})
    wait_for(lambda: TrainingRun.objects.get(pk=run_id).status == RunStatus.CANCELLED, timeout=60)
    assert not TrainingRun.objects.filter(status=RunStatus.RUNNING).exists()
    assert not Job.objects.filter(status=JobStatus.RUNNING).exists()

    # and the new trainer takes new work
    short_run = {"dataset": training_dataset.pk, "base_model": TINY, "hyperparameters": FAST}
    new_id = serve.api("POST", "/api/runs/", token, short_run)["id"]
    wait_for(lambda: TrainingRun.objects.get(pk=new_id).finished, timeout=120)
    assert TrainingRun.objects.get(pk=new_id).status == RunStatus.SUCCEEDED

    # Ctrl+C (or SIGTERM) still stops the whole app
    serve.stop()
    assert serve.process.returncode == 0
    assert not any(process.is_running() for process in after.values())


def test_beat_keeps_enqueueing_sweeps_while_the_worker_keeps_dying_until_serve_stops_everything(serve, tmp_path):
    wait_for(lambda: {"web", "worker", "trainer", "beat"} <= set(serve.children()), timeout=30)
    # Beat is sending (a started process may still be importing Django on a busy machine): from now on it sends a
    # sweep every second while serve waits 0.5 + 1 + 2 + 4 s between the worker's restarts.
    wait_for(lambda: "Sending due task" in serve.text(), timeout=60)
    first = serve.children()
    killed: set[int] = set()

    def kill_each_new_worker() -> bool:
        worker = serve.children().get("worker")
        if worker is not None and worker.pid not in killed:
            killed.add(worker.pid)
            worker.send_signal(signal.SIGKILL)
        return serve.process.poll() is not None

    wait_for(kill_each_new_worker, timeout=60, interval=0.05)

    assert serve.process.returncode == 1
    assert len(killed) == 5
    assert serve.text().count("restarting it in") == 4
    assert "the worker exited 5 times in a row" in serve.text()
    assert "serve: the beat" not in serve.text()  # never restarted: one beat process throughout
    assert not any(process.is_running() for process in first.values())  # nothing is left serving half an app
    # the sweeps beat sent while no worker was running are still queued for the next worker
    sweeps = [json.loads(path.read_text())["headers"]["task"] for path in (tmp_path / "var/broker/queue").glob("*.msg")]
    assert sweeps.count("training_app.tasks.run_sweep_task") >= 3


def _try(call):
    """The call's value, or None while the web server is not listening yet."""
    try:
        return call()
    except urllib.error.URLError:
        return None
