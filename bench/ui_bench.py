"""Server time of the dataset page and of search with 1,000,000 pairs in one dataset.

    python bench/ui_bench.py [--rows 1000000] [--runs 21] [--reseed] [--seed-by-import [--no-statistics]] [--smoke]

Seeds a separate bench database (SQLite in var/uibench/; with DATABASE_URL set to PostgreSQL, also a
database named instructory_uibench, or --pg-database, on that server, created here) with raw batched inserts
(executemany on SQLite, COPY on PostgreSQL) and fresh statistics, or with --seed-by-import through the real
importer as a user's upload would (its automatic statistics refresh skipped with --no-statistics), then
requests each page through Django's test Client as a logged-in annotator and prints the median server time
of --runs requests, not counting a first warm-up request. The seeded databases are kept, so a second run
measures at once; --reseed starts them again. --smoke: the same with 2,000 pairs and 3 requests a page, in throwaway
databases (a temporary folder, and the PostgreSQL database $BENCH_DATABASE, default instructory_bench).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.import_bench import postgres_database, temp_folder  # noqa: E402

DATASET_NAME = "Support tickets (bench)"
BENCH_DB = "instructory_uibench"
TARGET_MS = 150
BATCH = 20_000
ANNOTATORS = [f"bench-annotator-{n}" for n in range(5)]

# Words with a known share of the pairs, so the searches below are of a known selectivity.
MARKERS = {"refund": 100, "chocolate": 1000}  # in one pair out of N
SYLLABLES = [
    "ka",
    "lo",
    "mi",
    "ne",
    "ra",
    "to",
    "su",
    "vi",
    "de",
    "po",
    "an",
    "el",
    "in",
    "or",
    "ta",
    "mu",
    "be",
    "ri",
    "sa",
    "co",
]
COMMON = [
    "the",
    "a",
    "to",
    "and",
    "of",
    "in",
    "is",
    "for",
    "you",
    "it",
    "that",
    "with",
    "on",
    "my",
    "can",
    "how",
    "do",
    "I",
    "what",
    "your",
    "this",
    "be",
    "are",
    "not",
    "have",
    "please",
    "order",
    "account",
    "help",
    "need",
    "want",
    "when",
    "will",
    "was",
    "get",
    "item",
    "time",
    "day",
    "problem",
    "issue",
    "thanks",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=21, help="requests per page; the first is not counted")
    parser.add_argument("--reseed", action="store_true", help="drop the bench data and seed it again")
    parser.add_argument("--seed-by-import", action="store_true", help="seed through the importer (one JSONL file)")
    parser.add_argument("--no-statistics", action="store_true", help="skip the import's statistics refresh")
    parser.add_argument("--pg-database", default=BENCH_DB, help="the PostgreSQL bench database's name")
    parser.add_argument("--postgres-only", action="store_true", help="with DATABASE_URL: skip SQLite")
    parser.add_argument("--smoke", action="store_true", help="a quick run of the same code in throwaway databases")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    var_dir = ROOT / "var" / "uibench"
    if args.smoke:
        args.rows, args.runs, args.reseed = 2000, 3, True
        args.pg_database = os.environ.get("BENCH_DATABASE", "instructory_bench")
        var_dir = temp_folder("instructory-uibench-")
    pg_url = os.environ.get("DATABASE_URL", "")
    targets = [] if args.postgres_only and pg_url else [("SQLite", {"DATABASE_URL": ""})]
    if pg_url.startswith(("postgres://", "postgresql://")):
        database = postgres_database(pg_url, name=args.pg_database, keep=not args.reseed)
        targets.append(("PostgreSQL", {"DATABASE_URL": database}))
    else:
        print("DATABASE_URL is not PostgreSQL: measuring SQLite only.")
    results = []
    for label, extra in targets:
        env = {
            # the bench's pages need no lasting key: the client logs in afresh on every run
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            **os.environ,
            **extra,
            "INSTRUCTORY_VAR_DIR": str(var_dir),
            "DJANGO_SETTINGS_MODULE": "project.settings",
            "LOG_LEVEL": "WARNING",
        }
        if not env["DATABASE_URL"]:
            del env["DATABASE_URL"]
        command = [sys.executable, __file__, "--child", "--rows", str(args.rows), "--runs", str(args.runs)]
        command += [flag for flag, on in (("--reseed", args.reseed), ("--seed-by-import", args.seed_by_import),
                                          ("--no-statistics", args.no_statistics)) if on]  # fmt: skip
        print(f"== {label}", flush=True)
        out = subprocess.run(command, env=env, check=True, stdout=subprocess.PIPE, text=True).stdout
        results.append((label, json.loads(out.strip().splitlines()[-1])))
    _report(results, args)


def _report(results: list[tuple[str, dict]], args: argparse.Namespace) -> None:
    print()
    print(f"{args.rows:,} pairs in one dataset; median of {args.runs} requests after a warm-up one (ms)")
    names = list(results[0][1]["pages"])
    width = max(len(name) for name in names)
    print(f"| {'page':<{width}} |" + "".join(f" {label:>10} |" for label, _ in results))
    print("|---|" + "---|" * len(results))
    for name in names:
        print(f"| {name:<{width}} |" + "".join(f" {result['pages'][name]:>10.1f} |" for _, result in results))
    for label, result in results:
        print(f"{label}: seeded in {result['seed_s']:.0f} s" if result["seed_s"] else f"{label}: seed reused")
    verdicts = [
        f"{label} {name}: {result['pages'][name]:.1f} ms"
        for label, result in results
        for name in ("dataset page", "search (1% of pairs)")
        if result["pages"][name] >= TARGET_MS
    ]
    print(f"target < {TARGET_MS} ms: " + ("met" if not verdicts else "MISSED: " + "; ".join(verdicts)))


# --- in the child process, with Django set up on the bench database


def _child(args: argparse.Namespace) -> None:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    seeded = _seed(rows=args.rows, reseed=args.reseed, by_import=args.seed_by_import, statistics=not args.no_statistics)
    seed_s = time.perf_counter() - started if seeded else 0.0
    print(json.dumps({"seed_s": seed_s, "pages": _measure(runs=args.runs)}))


def _seed(*, rows: int, reseed: bool, by_import: bool, statistics: bool) -> bool:
    from django.contrib.auth import get_user_model
    from django.db import connection

    from datasets_app.curation.services import dataset_create, membership_set, workspace_create
    from datasets_app.models import Dataset, Example

    dataset = Dataset.objects.filter(name=DATASET_NAME).first()
    if dataset is not None and not reseed and dataset.examples.count() == rows:
        return False
    if dataset is not None:
        with connection.cursor() as cursor:  # a bulk delete without Django's per-row cascade collection
            cursor.execute(f"DELETE FROM {Example._meta.db_table} WHERE dataset_id = %s", [dataset.pk])
        dataset.workspace.delete()
    users = get_user_model().objects
    lead = users.filter(username="bench-lead").first() or users.create_user("bench-lead")
    workspace = workspace_create(name="Bench workspace", user=lead)
    for name in ANNOTATORS:
        user = users.filter(username=name).first() or users.create_user(name)
        membership_set(workspace=workspace, user=user, role="annotator", by=None)
    dataset = dataset_create(workspace=workspace, user=lead, name=DATASET_NAME, guidelines="Be kind and brief.")
    author_ids = list(users.filter(username__in=ANNOTATORS).values_list("id", flat=True))
    print(f"seeding {rows:,} pairs ...", file=sys.stderr, flush=True)
    if by_import:
        _seed_by_import(dataset, lead, rows, statistics=statistics)
    elif connection.vendor == "postgresql":
        _seed_postgres(dataset, author_ids, rows)
    else:
        _seed_sqlite(dataset, author_ids, rows)
    return True


def _pairs(count: int):  # type: ignore[no-untyped-def]
    """(n, prompt, response, tags) of varied text, with the MARKERS words in a known share of the pairs."""
    rng = random.Random(42)
    vocabulary = COMMON + ["".join(rng.choices(SYLLABLES, k=rng.randint(2, 4))) for _ in range(4000)]
    weights = [1 / (rank + 1) for rank in range(len(vocabulary))]

    def sentence(words: int) -> str:
        return " ".join(rng.choices(vocabulary, weights, k=words)).capitalize()

    openers, subjects = [sentence(7) for _ in range(2003)], [sentence(6) for _ in range(1999)]
    answers = [". ".join(sentence(12) for _ in range(4)) + "." for _ in range(4999)]
    for n in range(count):
        prompt = f"{openers[n % 2003]} {subjects[(n // 2003) % 1999]}?"
        response = answers[n % 4999]
        if n % MARKERS["refund"] == 7:
            response += " We will refund the order."
        if n % MARKERS["chocolate"] == 3:
            prompt += " Is the chocolate gone?"
        tags = ["billing", "urgent"] if n % 50 == 1 else ["billing"] if n % 10 == 0 else []
        yield n, prompt, response, tags


def _rows(dataset, author_ids: list[int], count: int):  # type: ignore[no-untyped-def]
    """Database rows made by the pairs' row builder (hashed, linted), in the model's column order,
    statuses 40/30/25/5 % draft/submitted/approved/rejected, authors and times spread out."""
    from django.utils import timezone

    from datasets_app.curation.rows import PairBuilder, db_rows

    builder = PairBuilder(dataset=dataset, user=None)
    statuses = ["draft"] * 8 + ["submitted"] * 6 + ["approved"] * 5 + ["rejected"]
    start = timezone.now() - timedelta(days=90)
    step = timedelta(days=90) / count

    def built():  # type: ignore[no-untyped-def]
        for n, prompt, response, tags in _pairs(count):
            row = builder.row(
                prompt=prompt, response=response, tags=tags, status=statuses[n % 20], source="import:bench.jsonl"
            )
            row["created_at"] = row["updated_at"] = start + step * n
            row["created_by_id"] = row["updated_by_id"] = author_ids[n % len(author_ids)]
            yield row

    return db_rows(built())


def _seed_by_import(dataset, user, count: int, *, statistics: bool) -> None:  # type: ignore[no-untyped-def]
    """The pairs as one JSONL upload through the importer, as a user would import them (all drafts), then the
    statistics refresh a worker runs after a large import (unless `statistics` is off)."""

    from datasets_app.imports import services as imports

    imports.ANALYZE_MIN_ROWS = 10**12  # no worker here to queue it for: done below, as the worker would
    with tempfile.TemporaryFile() as upload:
        for _, prompt, response, tags in _pairs(count):
            upload.write(json.dumps({"prompt": prompt, "response": response, "tags": tags}).encode() + b"\n")
        upload.seek(0)
        started = time.perf_counter()
        imports.dataset_import(dataset=dataset, user=user, stream=upload, filename="bench.jsonl", on_duplicate="keep")
    print(f"imported in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    if statistics:
        started = time.perf_counter()
        imports.refresh_statistics()
        print(f"statistics refreshed in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)


def _seed_sqlite(dataset, author_ids: list[int], count: int) -> None:  # type: ignore[no-untyped-def]
    from django.db import connection, transaction

    from datasets_app.curation.rows import example_columns
    from datasets_app.models import Example

    columns = example_columns()
    search = importlib.import_module("datasets_app.migrations.0002_example_search")
    drop_triggers = [sql for sql in search.SQLITE_DOWN if sql.startswith("DROP TRIGGER")]
    triggers = [sql for sql in search.SQLITE_UP if sql.startswith("CREATE TRIGGER")]
    table = Example._meta.db_table
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"
    with transaction.atomic(), connection.cursor() as cursor:
        # Filling the full-text index once at the end is several times faster than a trigger per row.
        for statement in drop_triggers:
            cursor.execute(statement)
        batch = []
        for row in _rows(dataset, author_ids, count):
            batch.append(row)
            if len(batch) == BATCH:
                cursor.executemany(sql, batch)
                batch = []
        if batch:
            cursor.executemany(sql, batch)
        for statement in triggers:
            cursor.execute(statement)
        cursor.execute("INSERT INTO datasets_app_example_fts(datasets_app_example_fts) VALUES ('rebuild')")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def _seed_postgres(dataset, author_ids: list[int], count: int) -> None:  # type: ignore[no-untyped-def]
    from django.db import connection, transaction

    from datasets_app.curation.rows import example_columns
    from datasets_app.models import Example

    search = importlib.import_module("datasets_app.migrations.0013_example_search_vector")
    table = Example._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        # Building the GIN index once after COPY is much faster than updating it row by row.
        for statement in search.INDEX_DROP:
            cursor.execute(statement)
        with cursor.cursor.copy(f"COPY {table} ({', '.join(example_columns())}) FROM STDIN") as copy:
            for row in _rows(dataset, author_ids, count):
                copy.write_row(row)
    with connection.cursor() as cursor:  # after the commit: deferred foreign-key checks block CREATE INDEX before it
        for statement in search.INDEX_CREATE:
            cursor.execute(statement)
        cursor.execute(f"VACUUM ANALYZE {table}")


def _measure(*, runs: int) -> dict[str, float]:
    from django.contrib.auth import get_user_model
    from django.core.cache import cache
    from django.test import Client
    from django.urls import reverse

    from datasets_app.models import Dataset

    dataset = Dataset.objects.get(name=DATASET_NAME)
    ids = dataset.examples.order_by("id").values_list("id", flat=True)
    count = dataset.examples.count()
    deep = ids[int(count * 0.9)]
    url = reverse("dataset", args=[dataset.pk])
    pages = {
        "dataset page": url,
        "dataset page, counts not cached": url,
        "dataset page, 90% deep": f"{url}?after={deep}",
        "status filter (submitted)": f"{url}?status=submitted",
        "search (1% of pairs)": f"{url}?q=refund",
        "search (0.1% of pairs)": f"{url}?q=chocolate",
        "search (common word)": f"{url}?q=please",
        "tag filter (2%)": f"{url}?tag=urgent",
        "author filter": f"{url}?author={ANNOTATORS[2]}",
        "editor": reverse("example", args=[ids[min(1000, count - 1)]]),
    }
    client = Client()
    client.force_login(get_user_model().objects.get(username=ANNOTATORS[0]))
    medians = {}
    for name, page in pages.items():
        timings = []
        for _ in range(runs):
            if "not cached" in name:
                cache.clear()  # count a million pairs by status on every request, as a small dataset would
            started = time.perf_counter()
            response = client.get(page)
            timings.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (page, response.status_code)
        medians[name] = statistics.median(timings[1:])
        print(f"  {name:<28}{medians[name]:>8.1f} ms", file=sys.stderr, flush=True)
    return medians


if __name__ == "__main__":
    main()
