"""The web tier under 50 concurrent annotators: gunicorn on PostgreSQL, requests/s per core and p95 per action.

    DATABASE_URL=postgres://... .venv/bin/python bench/web_bench.py [--rows 100000] [--annotators 50]
        [--seconds 60] [--web-cores 0] [--load-cores 1] [--no-statistics] [--smoke]

Seeds a throwaway database (bench/import_bench.py's: $BENCH_DATABASE, default instructory_bench, on the server
of DATABASE_URL; a temporary SQLite file without it) with a workspace, its annotators and one dataset of --rows
pairs imported THROUGH THE REAL IMPORT JOB, as a user's upload of that size runs on a worker (here in this
process): the job's own statistics refresh is all the ANALYZE there is (--no-statistics skips it, to show what
it is worth). Then prints each page's query count and server time through Django's test client (the profile),
starts gunicorn (project.wsgi, one process per web core, 4 threads each, as `manage.py serve` runs it) pinned
with taskset to --web-cores, pins this process (the load generator) to --load-cores, and lets --annotators
threads, each logged in through the login form (session and CSRF cookies), loop for --seconds: the dataset
page, the editor of one of their pairs, a save of an edit (the editor's form with its version token, as the
browser posts it), and a search. Prints per action requests/s, p50, p95 and errors, the total requests/s and
requests/s per web core, as Markdown tables. --smoke: 2,000 pairs, 5 annotators, 4 seconds.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from html.parser import HTMLParser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

from bench.chat_bench import free_port, wait_up  # noqa: E402
from bench.import_bench import use_bench_database  # noqa: E402
from bench.ui_bench import _pairs  # noqa: E402

PASSWORD = "bench-password-not-secret"  # noqa: S105 - throwaway users of a throwaway database
DATASET_NAME = "Support tickets (web bench)"
ACTIONS = ("dataset page", "editor", "save", "search")
SEARCHES = ["refund", "chocolate", "please", "order"]  # 1 %, 0.1 % and two common words (bench/ui_bench.py's text)
THREADS_PER_WORKER = 4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--annotators", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0, help="measured load, after a warm-up of 10 %%")
    parser.add_argument("--web-cores", default="0", help="CPU list for gunicorn (taskset -c syntax)")
    parser.add_argument("--load-cores", default="1", help="CPU list for this load generator")
    parser.add_argument("--no-statistics", action="store_true", help="skip the import job's statistics refresh")
    parser.add_argument("--smoke", action="store_true", help="2,000 pairs, 5 annotators, 4 seconds")
    args = parser.parse_args()
    if args.smoke:
        args.rows, args.annotators, args.seconds = 2000, 5, 4.0
    web_cores, load_cores = _cores(args.web_cores, args.load_cores)
    vendor = use_bench_database()
    if vendor == "postgresql":
        atexit.register(_drop_database, os.environ["DATABASE_URL"])  # 100,000 pairs are not worth keeping
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    dataset_id, pair_ids = _seed(rows=args.rows, annotators=args.annotators, statistics=not args.no_statistics)
    seed_s = time.perf_counter() - started
    print(f"{vendor}: {args.rows:,} pairs imported through the import job in {seed_s:.0f} s"
          f" ({'no statistics refresh' if args.no_statistics else 'with its statistics refresh'});"
          f" load average {_load()}", flush=True)  # fmt: skip
    _profile(dataset_id, pair_ids)
    from django.db import connections

    connections.close_all()  # gunicorn's workers open their own
    port = free_port()
    web = _gunicorn(port, web_cores)
    try:
        wait_up(port)
        if load_cores:
            os.sched_setaffinity(0, load_cores)
        where = f"web on core(s) {_cpus(web_cores)}" if web_cores else "web unpinned"
        where += f", load generator on core(s) {_cpus(load_cores)}" if load_cores else ", load generator unpinned"
        print(f"gunicorn: {len(web_cores or os.sched_getaffinity(0))} worker(s) x {THREADS_PER_WORKER} threads;"
              f" {where}; {os.cpu_count()} cores on this machine", flush=True)  # fmt: skip
        results, measured_s, web_cpu_s = _load_run(
            f"http://127.0.0.1:{port}", dataset_id, pair_ids, annotators=args.annotators, seconds=args.seconds,
            web_pid=web.pid,
        )  # fmt: skip
    finally:
        web.send_signal(signal.SIGTERM)
        try:
            web.wait(timeout=30)
        except subprocess.TimeoutExpired:
            web.kill()
    cores = len(web_cores or os.sched_getaffinity(0))
    _report(results, measured_s, args, cores=cores, vendor=vendor, web_cpu_s=web_cpu_s)
    print(f"planner statistics of the pairs table after the load: {_statistics()}")


def _drop_database(url: str) -> None:
    from urllib.parse import urlsplit, urlunsplit

    import psycopg
    from django.db import connections

    connections.close_all()
    parts = urlsplit(url)
    with psycopg.connect(urlunsplit(parts._replace(scheme="postgresql", path="/postgres")), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{parts.path.lstrip("/")}" WITH (FORCE)')


def _cores(web: str, load: str) -> tuple[set[int], set[int]]:
    """The two CPU sets, or empty ones (unpinned) where this machine cannot keep them apart."""
    available = os.sched_getaffinity(0)
    web_cores, load_cores = _parse_cpus(web) & available, _parse_cpus(load) & available
    if not web_cores or not load_cores or web_cores & load_cores or shutil.which("taskset") is None:
        print(f"cannot pin web to {web} and load to {load} apart on CPUs {_cpus(available)}: both unpinned")
        return set(), set()
    return web_cores, load_cores


def _parse_cpus(text: str) -> set[int]:
    cpus: set[int] = set()
    for part in text.split(","):
        low, _, high = part.partition("-")
        if low.strip().isdigit():
            cpus.update(range(int(low), int(high or low) + 1))
    return cpus


def _cpus(cpus: set[int]) -> str:
    return ",".join(str(cpu) for cpu in sorted(cpus))


def _load() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


# --- the data: users, a workspace, a dataset imported by the import job


def _seed(*, rows: int, annotators: int, statistics: bool) -> tuple[int, list[list[int]]]:
    """The dataset's id and, per annotator, the ids of the pairs they edit (apart, so no two edit the same)."""
    from django.contrib.auth import get_user_model
    from django.core.files.uploadedfile import UploadedFile

    from datasets_app.curation.services import dataset_create, membership_set, workspace_create
    from datasets_app.imports import services as imports

    users = get_user_model().objects
    lead = users.create_user("bench-lead", password=PASSWORD)
    workspace = workspace_create(name="Web bench workspace", user=lead)
    for n in range(annotators):
        user = users.create_user(f"annotator-{n}", password=PASSWORD)
        membership_set(workspace=workspace, user=user, role="annotator", by=None)
    dataset = dataset_create(workspace=workspace, user=lead, name=DATASET_NAME, guidelines="Be kind and brief.")
    if not statistics:
        imports.ANALYZE_MIN_ROWS = 10**12
    with tempfile.TemporaryFile() as file:
        for _, prompt, response, tags in _pairs(rows):
            file.write(json.dumps({"prompt": prompt, "response": response, "tags": tags}).encode() + b"\n")
        size = file.tell()
        file.seek(0)
        upload = UploadedFile(file, name="tickets.jsonl", content_type="application/jsonl", size=size)
        job = imports.import_job_create(
            dataset=dataset, user=lead, upload=upload, fmt=None, on_duplicate="keep", status="draft"
        )
    # what the worker runs for the job (the queued task finds it claimed and does nothing)
    imports.import_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "succeeded", (job.status, job.error)
    ids = list(dataset.examples.order_by("id").values_list("id", flat=True))
    assert len(ids) == rows, len(ids)
    spread = random.Random(3).sample(ids, min(len(ids), annotators * 20))
    return dataset.pk, [spread[n::annotators] for n in range(annotators)]


# --- the profile: queries and server time per page, through Django's test client


def _profile(dataset_id: int, pair_ids: list[list[int]]) -> None:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    url = reverse("dataset", args=[dataset_id])
    pages = {
        "dataset page": url,
        "editor": reverse("example", args=[pair_ids[0][0]]),
        **{f"search ({word})": f"{url}?q={word}" for word in SEARCHES},
    }
    client = Client()
    client.force_login(get_user_model().objects.get(username="annotator-0"))
    print(f"planner statistics of the pairs table: {_statistics()}")
    print()
    print("Each page once warm through Django's test client: queries, the slowest query and the server time (ms)")
    print("| page | queries | slowest query (ms) | server time (ms) |")
    print("|---|---|---|---|")
    for name, page in pages.items():
        client.get(page)  # warm: the cached counts, the templates
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            response = client.get(page)
            took = (time.perf_counter() - started) * 1000
        assert response.status_code == 200, (page, response.status_code)
        slowest = max(float(query["time"]) for query in queries.captured_queries) * 1000
        print(f"| {name} | {len(queries)} | {slowest:.1f} | {took:.1f} |", flush=True)


def _statistics() -> str:
    """When the pairs table was last analyzed, by whom (PostgreSQL), and the row count the planner believes."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return "SQLite (not refreshed by imports; its plans do not depend on them)"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT last_analyze, last_autoanalyze, (SELECT reltuples FROM pg_class WHERE relname = %s)"
            " FROM pg_stat_user_tables WHERE relname = %s",
            ["datasets_app_example", "datasets_app_example"],
        )
        manual, auto, rows = cursor.fetchone()
    said = f"ANALYZE at {manual:%H:%M:%S}" if manual else "no ANALYZE"
    said += f", autovacuum's at {auto:%H:%M:%S}" if auto else ", none by autovacuum yet"
    return f"{said}; the planner believes {max(rows, 0):,.0f} rows"


# --- the web server


def _gunicorn(port: int, cores: set[int]) -> subprocess.Popen:
    workers = len(cores or os.sched_getaffinity(0))
    command = [sys.executable, "-m", "gunicorn", "project.wsgi", "--bind", f"127.0.0.1:{port}"]
    command += ["--workers", str(workers), "--threads", str(THREADS_PER_WORKER), "--log-level", "warning"]
    if cores:
        command = ["taskset", "-c", _cpus(cores), *command]
    process = subprocess.Popen(command, cwd=ROOT, env=os.environ.copy())
    atexit.register(lambda: process.poll() is None and process.kill())
    return process


# --- the load: annotators as threads, each a logged-in browser session


class _Form(HTMLParser):
    """The fields of the form with id `form_id` as a browser would post them (inputs and textareas)."""

    def __init__(self, form_id: str) -> None:
        super().__init__()
        self.form_id, self.inside, self.fields = form_id, False, {}
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = dict(attrs)
        if tag == "form":
            self.inside = attr.get("id") == self.form_id
        elif self.inside and tag == "input" and attr.get("name") and attr.get("type") not in ("submit", "checkbox"):
            self.fields[attr["name"]] = attr.get("value") or ""
        elif self.inside and tag == "textarea" and attr.get("name"):
            self._textarea = attr["name"]
            self.fields[self._textarea] = ""

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.fields[self._textarea] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea":
            self._textarea = None
        elif tag == "form":
            self.inside = False


def _form(html: str, form_id: str) -> dict[str, str]:
    parser = _Form(form_id)
    parser.feed(html)
    fields = parser.fields
    for name in ("prompt", "response", "system_prompt"):  # Django renders a newline after <textarea>
        if name in fields and fields[name].startswith("\n"):
            fields[name] = fields[name][1:]
    return fields


class _Annotator(threading.Thread):
    def __init__(self, base: str, number: int, dataset_id: int, pair_ids: list[int], go: threading.Barrier,
                 stop: threading.Event) -> None:  # fmt: skip
        super().__init__(daemon=True)
        self.base, self.number, self.dataset_id, self.pair_ids = base, number, dataset_id, pair_ids
        self.go, self.stop = go, stop
        self.samples: list[tuple[str, float, float, bool]] = []  # (action, ended at, seconds, ok)
        self.failure = ""

    def run(self) -> None:
        import requests

        try:
            session = requests.Session()
            self._login(session)
            self.go.wait(timeout=600)  # everyone logged in: the load starts together
            rng = random.Random(self.number)
            while not self.stop.is_set():
                pair = rng.choice(self.pair_ids)
                self._timed("dataset page", lambda: session.get(f"{self.base}/datasets/{self.dataset_id}/"))
                editor = self._timed("editor", lambda: session.get(f"{self.base}/examples/{pair}/"))  # noqa: B023
                if editor is not None:
                    fields = _form(editor.text, "editor")
                    fields["response"] = fields.get("response", "").rstrip() + f" (edit {rng.randint(0, 10**6)})"
                    fields["intent"] = "save"
                    fields["csrfmiddlewaretoken"] = session.cookies.get("csrftoken", "")
                    self._timed(
                        "save",
                        lambda: session.post(f"{self.base}/examples/{pair}/", data=fields, allow_redirects=False),  # noqa: B023
                        expect=302,
                    )
                word = rng.choice(SEARCHES)
                self._timed("search", lambda: session.get(f"{self.base}/datasets/{self.dataset_id}/?q={word}"))  # noqa: B023
        except Exception as error:  # shown in the report, not lost in a thread
            self.failure = f"{type(error).__name__}: {error}"

    def _login(self, session) -> None:  # type: ignore[no-untyped-def]
        page = session.get(f"{self.base}/accounts/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert token, "no CSRF token on the login page"
        data = {"username": f"annotator-{self.number}", "password": PASSWORD, "csrfmiddlewaretoken": token.group(1)}
        answer = session.post(f"{self.base}/accounts/login/", data=data, allow_redirects=False)
        assert answer.status_code == 302, f"login: {answer.status_code}"

    def _timed(self, action: str, call, expect: int = 200):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        try:
            response = call()
            ok = response.status_code == expect
        except Exception:  # a refused or dropped connection is an error of the action
            response, ok = None, False
        ended = time.perf_counter()
        self.samples.append((action, ended, ended - started, ok))
        return response if ok else None


def _web_cpu_seconds(pid: int) -> float:
    """CPU time used so far by gunicorn: its master and its workers (not PostgreSQL's)."""
    import psutil

    master = psutil.Process(pid)
    total = 0.0
    for process in [master, *master.children(recursive=True)]:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def _load_run(
    base: str, dataset_id: int, pair_ids: list[list[int]], *, annotators: int, seconds: float, web_pid: int
) -> tuple[dict[str, list[tuple[float, bool]]], float, float]:
    """Every annotator's requests ended inside the measured window, per action: (seconds, ok); the window's length
    and the CPU seconds gunicorn used in it."""
    stop, go = threading.Event(), threading.Barrier(annotators + 1)
    threads = [_Annotator(base, n, dataset_id, pair_ids[n], go, stop) for n in range(annotators)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    go.wait(timeout=600)
    print(f"{annotators} annotators logged in through the login form in {time.perf_counter() - started:.1f} s")
    warm_up = max(1.0, seconds / 10)
    time.sleep(warm_up)
    window_start, cpu_start = time.perf_counter(), _web_cpu_seconds(web_pid)
    load_before = _load()
    time.sleep(seconds)
    window_end, cpu_end = time.perf_counter(), _web_cpu_seconds(web_pid)
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    failures = [f"annotator-{thread.number}: {thread.failure}" for thread in threads if thread.failure]
    if failures:
        raise RuntimeError("; ".join(failures))
    print(f"load average {load_before} at the start of the measured {seconds:.0f} s, {_load()} at its end")
    results: dict[str, list[tuple[float, bool]]] = {action: [] for action in ACTIONS}
    for thread in threads:
        for action, ended, took, ok in thread.samples:
            if window_start <= ended <= window_end:
                results[action].append((took, ok))
    return results, window_end - window_start, cpu_end - cpu_start


def _report(
    results: dict[str, list[tuple[float, bool]]], seconds: float, args: argparse.Namespace, *, cores: int, vendor: str,
    web_cpu_s: float,
) -> None:  # fmt: skip
    print()
    print(f"{args.annotators} annotators for {seconds:.0f} s against gunicorn on {vendor}, {args.rows:,} pairs;"
          f" {cores} web core(s)")  # fmt: skip
    print("| action | requests | requests/s | p50 (ms) | p95 (ms) | errors |")
    print("|---|---|---|---|---|---|")
    everything: list[tuple[float, bool]] = []
    for action, samples in results.items():
        everything += samples
        print(_row(action, samples, seconds))
    print(_row("all", everything, seconds))
    print()
    # On a shared machine the web core is not all gunicorn's: its CPU time per request says what a core of its own
    # would serve (PostgreSQL's CPU time not counted).
    print("| total requests/s | requests/s per web core | web core busy with gunicorn | gunicorn CPU ms per request"
          " | requests/s a free core would serve |")  # fmt: skip
    print("|---|---|---|---|---|")
    rate = len(everything) / seconds
    per_request = web_cpu_s * 1000 / max(len(everything), 1)
    print(f"| {rate:.1f} | {rate / cores:.1f} | {web_cpu_s / seconds / cores:.0%} | {per_request:.1f} |"
          f" {1000 / per_request if per_request else 0:.1f} |")  # fmt: skip


def _row(name: str, samples: list[tuple[float, bool]], seconds: float) -> str:
    times = sorted(took * 1000 for took, _ in samples) or [0.0]
    p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
    errors = sum(1 for _, ok in samples if not ok)
    return (
        f"| {name} | {len(samples)} | {len(samples) / seconds:.1f} | {statistics.median(times):.0f} | {p95:.0f} |"
        f" {errors} |"
    )


if __name__ == "__main__":
    main()
