"""The broker down, then back: how long a submission takes while the broker is down, and how soon the work starts after.

    .venv/bin/python bench/outage_bench.py [--down 5] [--smoke]                           # SQLite
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/outage_bench.py   # PostgreSQL

Uses a throwaway database like bench/import_bench.py, and a Redis of its own on a free port (keeping nothing on disk).
A worker and beat run the whole time, as in production, with the default DISPATCH_INTERVAL_S (set it to try
another). The broker is stopped; three whole-dataset checks and a large import are submitted through the API (each
answers 202 with its job queued); after --down seconds (the worker's reconnect attempts space out as an outage
lasts, up to 30 s apart) the broker is started again, and the bench prints when each job was claimed by the
worker, counted from the broker's return. Then the time one submission takes against a broker that accepts
connections and never answers (BROKER_TIMEOUT_S bounds it). --smoke: the same with the broker down 0.5 s, an import
of 100 pairs, and unless set otherwise DISPATCH_INTERVAL_S=2 and BROKER_TIMEOUT_S=0.5.
"""

import argparse
import os
import socket
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.import_bench import temp_folder, use_bench_database  # noqa: E402


def timed(post) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    response = post()
    return time.perf_counter() - started, response


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--down", type=float, default=5.0, help="seconds the broker stays down after the submissions")
    parser.add_argument("--smoke", action="store_true", help="a quick run of the same code: down 0.5 s, 100 pairs")
    args = parser.parse_args()
    down, pairs_count = (0.5, 100) if args.smoke else (args.down, 1000)
    if args.smoke:  # read by this process, the worker and beat alike
        os.environ.setdefault("DISPATCH_INTERVAL_S", "2")
        os.environ.setdefault("BROKER_TIMEOUT_S", "0.5")
    vendor = use_bench_database()
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
    pairs = "\n".join(f'{{"prompt": "Question {n}?", "response": "Answer {n}."}}' for n in range(pairs_count)).encode()

    broker.start()
    schedule = temp_folder("instructory-beat-") / "schedule"
    print(f"broker down, then back after {down:g} s ({vendor}; DISPATCH_INTERVAL_S={settings.DISPATCH_INTERVAL_S:g})")
    print("| submission or job | answer | time |")
    print("|---|---|---|")
    with WorkerProcess("default"), BeatProcess(schedule):
        broker.stop()
        jobs = []
        for dataset in datasets[:3]:
            took, response = timed(lambda dataset=dataset: api.post(f"/api/datasets/{dataset.pk}/lint/"))
            jobs.append(response.json()["id"])
            print(f"| POST /api/datasets/{{id}}/lint/, broker refusing | {response.status_code} | {took:.2f} s |")
        upload = SimpleUploadedFile("pairs.jsonl", pairs)
        took, response = timed(
            lambda: api.post(f"/api/datasets/{datasets[3].pk}/import/", {"file": upload}, format="multipart")
        )
        jobs.append(response.json()["job"])
        print(f"| POST /api/datasets/{{id}}/import/, broker refusing | {response.status_code} | {took:.2f} s |")
        assert not Job.objects.filter(pk__in=jobs).exclude(status="queued", dispatched_at=None).exists()
        time.sleep(down)

        broker.start()
        back = time.time()
        wait_for(lambda: not Job.objects.filter(pk__in=jobs, finished_at=None).exists(), timeout=300, interval=0.1)
        for job in Job.objects.filter(pk__in=jobs).order_by("pk"):
            print(
                f"| {job.kind} job, after the broker was back | {job.status} (sends: {job.dispatch_count}) "
                f"| claimed at {job.started_at.timestamp() - back:.1f} s, finished at {job.finished_at.timestamp() - back:.1f} s |"
            )

    with socket.socket() as hung:  # accepts connections (the kernel does), never answers
        hung.bind(("127.0.0.1", 0))
        hung.listen(16)
        with web_broker(f"redis://127.0.0.1:{hung.getsockname()[1]}/0"):
            dataset = dataset_create(workspace=workspace, user=lead, name="Hung")
            example_create(dataset=dataset, user=lead, prompt="Why?", response="Because.")
            took, response = timed(lambda: api.post(f"/api/datasets/{dataset.pk}/lint/"))
            print(
                f"| POST /api/datasets/{{id}}/lint/, broker never answers "
                f"(BROKER_TIMEOUT_S={settings.BROKER_TIMEOUT_S:g}) | {response.status_code} | {took:.2f} s |"
            )
    broker.stop()


if __name__ == "__main__":
    main()
