"""Import and export speed: 100,000 pairs through the REST API against a raw insert of the same rows.

    .venv/bin/python bench/import_bench.py [--rows 100000] [--smoke]                # SQLite
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/import_bench.py   # PostgreSQL

Uses a throwaway database (a temp SQLite file, or a database named $BENCH_DATABASE, default instructory_bench, on
the server). Prints rows/s for the API import and for a raw insert of the same rows (executemany on SQLite, COPY on
PostgreSQL) and their ratio, then the export speed, and the peak Python memory of import and export at
two file sizes to show that memory does not grow with the file. --smoke: the same with 1,000 rows.
"""

import argparse
import atexit
import json
import os
import random
import secrets
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WORDS = [
    "the",
    "a",
    "to",
    "of",
    "and",
    "egg",
    "pan",
    "heat",
    "salt",
    "boil",
    "minutes",
    "water",
    "oil",
    "garlic",
    "onion",
]


def temp_folder(prefix: str) -> Path:
    """A new temporary folder, removed when the bench exits (smoke runs in CI would pile them up)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def use_bench_database() -> str:
    """Point Django at a fresh database and var dir for the bench; returns its vendor. Set before Django starts."""
    os.environ["INSTRUCTORY_VAR_DIR"] = str(temp_folder("instructory-bench-"))
    os.environ.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(50))  # a throwaway database needs no lasting key
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        os.environ.pop("DATABASE_URL", None)
        return "sqlite"
    os.environ["DATABASE_URL"] = postgres_database(url, name=os.environ.get("BENCH_DATABASE", "instructory_bench"))
    return "postgresql"


def postgres_database(url: str, *, name: str, keep: bool = False) -> str:
    """The URL of database `name` on the server of `url`, created here (dropped first unless `keep`)."""
    import psycopg

    parts = urlsplit(url)
    admin = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and not keep:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        if not exists or not keep:
            conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(parts._replace(path=f"/{name}"))


def sentence(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high))).capitalize()


def write_file(path: Path, rows: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as out:
        for n in range(rows):
            record = {
                "prompt": f"{sentence(rng, 6, 20)} #{n}?",
                "response": sentence(rng, 10, 60) + ".",
                "tags": ["bench"],
            }
            out.write(json.dumps(record) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--smoke", action="store_true", help="a quick run of the same code: 1,000 rows")
    args = parser.parse_args()
    vendor = use_bench_database()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    settings.IMPORT_ASYNC_BYTES = 10**12  # measure the request itself, not a queue
    settings.IMPORT_MAX_BYTES = 10**12
    settings.ALLOWED_HOSTS = ["*"]
    call_command("migrate", verbosity=0)
    run(vendor, 1000 if args.smoke else args.rows)


def run(vendor: str, rows: int) -> None:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from rest_framework.test import APIClient

    from datasets_app.curation.exports import dataset_export
    from datasets_app.curation.services import dataset_create, workspace_create

    user = get_user_model().objects.create_user("bench")
    workspace = workspace_create(name="Bench", user=user)
    client = APIClient()
    client.force_authenticate(user)
    folder = temp_folder("instructory-bench-files-")
    big = folder / "pairs.jsonl"
    write_file(big, rows)
    size_mb = big.stat().st_size / 1e6
    print(f"database: {vendor} ({connection.settings_dict['NAME']}); file: {rows:,} pairs, {size_mb:.1f} MB")

    raw_dataset = dataset_create(workspace=workspace, user=user, name="raw")
    raw_s = raw_insert(big, raw_dataset, user)
    api_dataset = dataset_create(workspace=workspace, user=user, name="api")
    api_s = api_import(client, api_dataset.pk, big)
    assert api_dataset.examples.count() == rows, "the API import did not write every row"
    start = time.perf_counter()
    exported = sum(
        len(chunk) for chunk in client.get(f"/api/datasets/{api_dataset.pk}/export/?format=pairs").streaming_content
    )
    export_s = time.perf_counter() - start
    raw_way = "COPY" if vendor == "postgresql" else "executemany"
    print(
        f"raw insert ({raw_way}) {raw_s:.2f} s, API import {api_s:.2f} s, export {export_s:.2f} s ({exported / 1e6:.1f} MB)"
    )
    print("| database | raw insert | API import | API / raw | export (pairs JSONL) |")
    print("|---|---|---|---|---|")
    print(
        f"| {vendor} | {rows / raw_s:,.0f} rows/s | {rows / api_s:,.0f} rows/s | {raw_s / api_s:.2f} "
        f"| {rows / export_s:,.0f} rows/s |"
    )

    print("peak Python memory of the server side (tracemalloc), a tenth of the file against all of it:")
    small = folder / "small.jsonl"
    write_file(small, max(rows // 10, 1), seed=8)
    peak_mb(
        lambda: list(dataset_export(dataset=api_dataset, fmt="parquet", statuses=["rejected"]))
    )  # load pyarrow first
    print("| pairs | import | pairs JSONL export | parquet export |")
    print("|---|---|---|---|")
    for path, count in ((small, max(rows // 10, 1)), (big, rows)):
        dataset = dataset_create(workspace=workspace, user=user, name=f"memory-{count}")
        import_peak = peak_mb(lambda d=dataset, p=path: service_import(d, user, p))
        export_peaks = [
            peak_mb(lambda d=dataset, f=fmt: sum(1 for _ in dataset_export(dataset=d, fmt=f)))
            for fmt in ("pairs", "parquet")
        ]
        print(f"| {count:,} | {import_peak:.1f} MB | " + " | ".join(f"{peak:.1f} MB" for peak in export_peaks) + " |")


def service_import(dataset, user, path: Path) -> None:  # type: ignore[no-untyped-def]
    """What the import view runs once Django has spooled the upload to a temporary file."""
    from datasets_app.imports.services import dataset_import

    with path.open("rb") as stream:
        dataset_import(dataset=dataset, user=user, stream=stream, filename=path.name)


def raw_insert(path: Path, dataset, user) -> float:  # type: ignore[no-untyped-def]
    """The same rows, already built (curation.rows) and parsed, inserted in one transaction the fastest plain way;
    returns seconds."""
    from django.db import connection, transaction

    from datasets_app.curation.rows import PairBuilder, build_db_rows, example_columns
    from datasets_app.models import Example

    table = Example._meta.db_table
    columns = ", ".join(example_columns())
    records = (json.loads(line) for line in path.open(encoding="utf-8"))
    rows = list(build_db_rows(PairBuilder(dataset=dataset, user=user), records))
    start = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            placeholders = ", ".join(["%s"] * len(example_columns()))
            cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({placeholders})", rows)
    return time.perf_counter() - start


def api_import(client, dataset_id: int, path: Path) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    with path.open("rb") as handle:
        response = client.post(f"/api/datasets/{dataset_id}/import/", {"file": handle}, format="multipart")
    elapsed = time.perf_counter() - start
    assert response.status_code == 201, response.content[:500]
    return elapsed


def peak_mb(action) -> float:  # type: ignore[no-untyped-def]
    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


if __name__ == "__main__":
    main()
