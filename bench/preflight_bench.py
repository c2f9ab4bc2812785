"""Preflight speed: POST /api/runs/preflight/ on a dataset of 10,000 approved pairs, as the web process runs it.

    .venv/bin/python bench/preflight_bench.py [--pairs 10000] [--smoke]                          # SQLite
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/preflight_bench.py   # PostgreSQL

Uses a throwaway database like bench/import_bench.py, and this checkout's model cache (var/models, or
INSTRUCTORY_MODEL_CACHE); a base model not prepared there is prepared first by `manage.py prepare_models`, in its
own process, so this one stays like a web process (the script checks that torch never loads). The pairs are
English of mixed length made of the demo datasets' prompts and answer sentences (1 in 10 with a system prompt, 1 in
20 with earlier turns, 1 in 100 longer than max_seq_len). Prints the first request (which loads transformers and the tokenizer), the median of the next ones
with the token counts not cached, then of checks again with another max_seq_len (the counts of the same texts come
from the cache), the service alone, and what its time goes on: reading the rows and tokenizing them. The bench
process has a cache of its own in memory. `--smoke` runs 200 pairs, to check that the script works.
"""

import argparse
import functools
import json
import os
import random
import re
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.import_bench import use_bench_database  # noqa: E402

DEMO = ROOT / "datasets_app" / "demo_data"


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


@functools.cache
def demo_text() -> tuple[list[str], list[str]]:
    """The demo datasets' prompts, and the sentences of their answers."""
    prompts, sentences = [], []
    for name in ("guardrail_answers.jsonl", "mcq_answers.jsonl"):
        for line in (DEMO / name).read_text().splitlines():
            record = json.loads(line)
            prompts.append(record["prompt"])
            sentences += re.split(r"(?<=[.!?])\s+", record["response"])
    return prompts, sentences


def text(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choices(demo_text()[1], k=rng.randint(low, high)))


def pair(rng: random.Random, n: int) -> dict:
    record = {"prompt": f"{rng.choice(demo_text()[0])} ({n})", "response": text(rng, 1, 8)}
    if n % 100 == 99:  # longer than max_seq_len
        record["response"] = text(rng, 40, 60)
    if n % 10 == 3:
        record["system_prompt"] = "You are a concise assistant. " + text(rng, 1, 3)
    if n % 20 == 7:
        record["history"] = [
            {"role": "user", "content": rng.choice(demo_text()[0])},
            {"role": "assistant", "content": text(rng, 1, 4)},
        ]
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, nargs="+", default=[10_000])
    parser.add_argument("--base-model", default="smollm2-135m-instruct")
    parser.add_argument("--max-seq-len", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3, help="warm requests timed after the first")
    parser.add_argument("--smoke", action="store_true", help="200 pairs, one warm request: check the script works")
    args = parser.parse_args()
    if args.smoke:
        args.pairs, args.repeat = [200], 1
    os.environ.setdefault("INSTRUCTORY_MODEL_CACHE", str(ROOT / "var" / "models"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(50))  # a throwaway key for a throwaway database
    os.environ["CACHE_URL"] = "locmemcache://"  # cleared between requests; nobody else's cache
    prepare = [sys.executable, "manage.py", "prepare_models", args.base_model]
    subprocess.run(prepare, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)  # before the bench database is chosen
    vendor = use_bench_database()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    print(f"database: {vendor}; base model {args.base_model}, max_seq_len {args.max_seq_len}")
    for size in args.pairs:
        run(size, args)
    print(f"torch loaded in this process: {'torch' in sys.modules}")


def seed(size: int):  # type: ignore[no-untyped-def]
    from django.contrib.auth import get_user_model

    from datasets_app.curation.services import dataset_create, examples_bulk_create, workspace_create
    from datasets_app.models import ExampleStatus

    user = get_user_model().objects.create_user(f"bench-{size}")
    workspace = workspace_create(name=f"Bench {size}", user=user)
    dataset = dataset_create(workspace=workspace, user=user, name=f"preflight-{size}")
    rng = random.Random(5)
    for start in range(0, size, 2000):
        records = [pair(rng, n) for n in range(start, min(size, start + 2000))]
        examples_bulk_create(dataset=dataset, user=user, items=records, keep_duplicates=True)
    dataset.examples.update(status=ExampleStatus.APPROVED)
    return user, dataset


def run(size: int, args: argparse.Namespace) -> None:
    from django.conf import settings
    from django.core.cache import cache
    from rest_framework.test import APIClient

    from training_app.ml.data import token_lengths
    from training_app.preflight.report import _chat, base_tokenizer, run_preflight
    from training_app.snapshots import snapshot_draft

    settings.PREFLIGHT_MAX_PAIRS = max(settings.PREFLIGHT_MAX_PAIRS, size)
    user, dataset = seed(size)
    api = APIClient()
    api.force_authenticate(user)
    body = {"dataset": dataset.pk, "base_model": args.base_model, "hyperparameters": {"max_seq_len": args.max_seq_len}}

    cpu: list[float] = []  # CPU seconds of each uncached request (all threads): less sensitive to a busy machine

    def request(query: str = "", *, cached: bool = False, max_seq_len: int = args.max_seq_len) -> float:
        if not cached:
            cache.clear()
        data = {**body, "hyperparameters": {"max_seq_len": max_seq_len}}
        start, start_cpu = time.perf_counter(), time.process_time()
        response = api.post("/api/runs/preflight/" + query, data, format="json")
        assert response.status_code == 200, response.content[:500]
        if not cached:
            cpu.append(time.process_time() - start_cpu)
        return time.perf_counter() - start

    memory_before = rss_mb()
    first = request()
    memory_after = rss_mb()
    warm = statistics.median(request() for _ in range(args.repeat))
    every_pair = statistics.median(request(f"?limit={size}") for _ in range(args.repeat))
    again = statistics.median(request(cached=True, max_seq_len=256 + n) for n in range(args.repeat))
    service = []
    for _ in range(args.repeat):
        cache.clear()
        start = time.perf_counter()
        report = run_preflight(
            user=user, dataset=dataset, base_model=args.base_model, hyperparameters=body["hyperparameters"]
        )
        service.append(time.perf_counter() - start)
    start = time.perf_counter()
    rows = [row for row in snapshot_draft(dataset=dataset)[2] if row.split != "eval"]
    read_s = time.perf_counter() - start
    tokenizer, _ = base_tokenizer(args.base_model)
    start = time.perf_counter()
    token_lengths(tokenizer, [_chat(row) for row in rows])
    tokenize_s = time.perf_counter() - start

    totals = report.totals
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; {totals.tokens:,} tokens "
          f"({totals.trained_tokens:,} trained), {totals.truncated} truncated, {report.steps} steps")  # fmt: skip
    print("| pairs | first request | next requests (1,000 listed) | listing all | CPU-s | check again (cached) "
          "| service alone | reading rows | tokenizing | RSS added |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {size:,} | {first:.2f} s | {warm:.2f} s | {every_pair:.2f} s | {statistics.median(cpu[1:]):.2f} "
          f"| {again:.2f} s | {statistics.median(service):.2f} s | {read_s:.2f} s "
          f"| {tokenize_s:.2f} s ({size / tokenize_s:,.0f} pairs/s) | {memory_after - memory_before:.0f} MB |")  # fmt: skip


if __name__ == "__main__":
    main()
