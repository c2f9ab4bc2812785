"""The broker down, then back: how long a submission takes while the broker is down, and how soon the work starts after.

    .venv/bin/python bench/outage_bench.py [--down 5]                                     # SQLite
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/outage_bench.py   # PostgreSQL

Uses a throwaway database like bench/import_bench.py, and a Redis of its own on a free port (keeping nothing on disk).
A worker and beat run the whole time, as in production, with the default DISPATCH_INTERVAL_S (set it to try
another). The broker is stopped; three whole-dataset checks and a large import are submitted through the API (each
answers 202 with its job queued); after --down seconds (the worker's reconnect attempts space out as an outage
lasts, up to 30 s apart) the broker is started again, and the bench prints when each job was claimed by the
worker, counted from the broker's return. Then the time one submission takes against a broker that accepts
connections and never answers (BROKER_TIMEOUT_S bounds it).
"""

import argparse
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.train_bench import use_throwaway_database  # noqa: E402


def timed(post) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    response = post()
    return time.perf_counter() - started, response


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--down", type=float, default=5.0, help="seconds the broker stays down after the submissions")
    args = parser.parse_args()
    vendor = use_throwaway_database()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    from tests.worker import RedisServer

    broker = RedisServer()
    os.environ["CELERY_BROKER_URL"] = broker.url  # the web side (this process), the worker and beat alike
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.core.management import call_command

    from datasets_app.curation.services import dataset_create, example_create, workspace_create
    from datasets_app.models import Job
    from tests.api_client import client_for
    from tests.worker import BeatProcess, WorkerProcess, wait_for, web_broker

    call_command("migrate", verbosity=0)
    settings.LINT_SYNC_MAX, settings.IMPORT_ASYNC_BYTES = 0, 100
    lead = get_user_model().objects.create_user("bench-lead")
    workspace = workspace_create(name="Bench", user=lead)
    datasets = [dataset_create(workspace=workspace, user=lead, name=f"Set {n}") for n in range(4)]
    for dataset in datasets:
        example_create(dataset=dataset, user=lead, prompt="How long do I bake bread?", response="About 40 minutes.")
    api = client_for(lead)
    pairs = "\n".join(f'{{"prompt": "Question {n}?", "response": "Answer {n}."}}' for n in range(1000)).encode()

    broker.start()
    schedule = Path(tempfile.mkdtemp(prefix="instructory-beat-")) / "schedule"
    print(
        f"broker down, then back after {args.down:g} s ({vendor}; DISPATCH_INTERVAL_S={settings.DISPATCH_INTERVAL_S:g})"
    )
    with WorkerProcess("default"), BeatProcess(schedule):
        broker.stop()
        jobs = []
        for dataset in datasets[:3]:
            took, response = timed(lambda dataset=dataset: api.post(f"/api/datasets/{dataset.pk}/lint/"))
            jobs.append(response.json()["id"])
            print(f"  POST /api/datasets/{{id}}/lint/ answered {response.status_code} in {took:.2f} s (broker refused)")
        upload = SimpleUploadedFile("pairs.jsonl", pairs)
        took, response = timed(lambda: api.post(f"/api/datasets/{datasets[3].pk}/import/", {"file": upload}))
        jobs.append(response.json()["job"])
        print(f"  POST /api/datasets/{{id}}/import/ answered {response.status_code} in {took:.2f} s (broker refused)")
        assert not Job.objects.filter(pk__in=jobs).exclude(status="queued", dispatched_at=None).exists()
        time.sleep(args.down)

        broker.start()
        back = time.time()
        wait_for(lambda: not Job.objects.filter(pk__in=jobs, finished_at=None).exists(), timeout=300, interval=0.1)
        for job in Job.objects.filter(pk__in=jobs).order_by("pk"):
            print(
                f"  {job.kind} job: {job.status}, claimed {job.started_at.timestamp() - back:.1f} s after the broker"
                f" was back, finished at {job.finished_at.timestamp() - back:.1f} s (sends: {job.dispatch_count})"
            )

    with socket.socket() as hung:  # accepts connections (the kernel does), never answers
        hung.bind(("127.0.0.1", 0))
        hung.listen(16)
        with web_broker(f"redis://127.0.0.1:{hung.getsockname()[1]}/0"):
            dataset = dataset_create(workspace=workspace, user=lead, name="Hung")
            example_create(dataset=dataset, user=lead, prompt="Why?", response="Because.")
            took, response = timed(lambda: api.post(f"/api/datasets/{dataset.pk}/lint/"))
            print(
                f"  POST /api/datasets/{{id}}/lint/ answered {response.status_code} in {took:.2f} s "
                f"(a broker that never answers; BROKER_TIMEOUT_S={settings.BROKER_TIMEOUT_S:g})"
            )
    broker.stop()


if __name__ == "__main__":
    main()
