"""Time of a run comparison at 1,000 evaluation prompts, and of a snapshot diff.

    .venv/bin/python bench/compare_bench.py [--prompts 1000 10000] [--pairs 2000] [--runs 11] [--smoke]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/compare_bench.py   # PostgreSQL

Uses a throwaway database like bench/import_bench.py. A general dataset gets --pairs approved training pairs and
the evaluation pairs; two snapshots differ by 5% of the training pairs (edited) and 1% new ones; two succeeded runs,
one on each, get an EvalItem per evaluation prompt (made-up answers, about half of them flipped) and a 500-step loss
curve, created directly. Prints the median server time (Django's test client, after a warm-up request; wall clock,
and the CPU time of the process) of GET /api/runs/compare/, of the comparison page (which also diffs the two
snapshots and draws the loss curves) and of GET /api/snapshots/{a}/diff/{b}/, with the number of queries of each.
--smoke: 20 prompts, 40 pairs, 3 requests.
"""

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.import_bench import sentence, use_bench_database  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, nargs="+", default=[1000])
    parser.add_argument("--pairs", type=int, default=2000, help="training pairs of the dataset")
    parser.add_argument("--runs", type=int, default=11, help="requests timed per figure (median)")
    parser.add_argument("--smoke", action="store_true", help="a quick run of the same code: 20 prompts, 40 pairs")
    args = parser.parse_args()
    if args.smoke:
        args.prompts, args.pairs, args.runs = [20], 40, 3
    vendor = use_bench_database()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    print(f"database: {vendor}; {args.pairs:,} training pairs; median of {args.runs} requests after a warm-up one")
    print("| evaluation prompts | compare API | compare page | snapshot diff API | queries (API / page / diff) |")
    print("|---|---|---|---|---|")
    for prompts in args.prompts:
        bench(prompts, args.pairs, args.runs)


def seed(prompts: int, pairs: int):  # type: ignore[no-untyped-def]
    """Two succeeded runs on two snapshots of one dataset, scored on the same `prompts` evaluation pairs."""
    from django.contrib.auth import get_user_model

    from datasets_app.curation.services import dataset_create, examples_bulk_create, workspace_create
    from datasets_app.models import Example
    from training_app.models import EvalItem, RunMetric, RunStatus, TrainingRun
    from training_app.snapshots import snapshot_create

    rng = random.Random(prompts)
    user = get_user_model().objects.create_user(f"bench-{prompts}")
    workspace = workspace_create(name=f"Bench {prompts}", user=user)
    dataset = dataset_create(workspace=workspace, user=user, name=f"compare-{prompts}", kind="general")

    def made(count: int, split: str, tag: str) -> list[dict]:
        return [
            {"prompt": f"{sentence(rng, 6, 20)} ({tag} {n})?", "response": sentence(rng, 10, 60) + ".",
             "status": "approved", "split": split}
            for n in range(count)
        ]  # fmt: skip

    examples_bulk_create(dataset=dataset, user=user, items=made(pairs, "train", "t"))
    evaluation, _ = examples_bulk_create(dataset=dataset, user=user, items=made(prompts, "eval", "e"))
    before = snapshot_create(dataset=dataset, user=None)
    trained = list(Example.objects.filter(dataset=dataset, split="train").order_by("id")[: max(1, pairs // 20)])
    for example in trained:
        example.response = f"{example.response} {sentence(rng, 3, 8)}."
    Example.objects.bulk_update(trained, ["response"])
    examples_bulk_create(dataset=dataset, user=user, items=made(max(1, pairs // 100), "train", "new"))
    after = snapshot_create(dataset=dataset, user=None)

    runs = []
    for snapshot, pass_rate in ((before, 0.4), (after, 0.6)):
        run = TrainingRun.objects.create(
            snapshot=snapshot, base_model="smollm2-tiny-random", created_by=user, status=RunStatus.SUCCEEDED,
            evaluation={"source": "eval_set", "before": {}, "after": {"exact_match": pass_rate, "token_f1": 0.5, "val_loss": 1.0}},
            summary={"final_loss": 1.0, "val_loss": 1.1},
        )  # fmt: skip
        EvalItem.objects.bulk_create(
            EvalItem(run=run, example=pair, prompt=pair.prompt, reference=pair.response,
                     after_output=sentence(rng, 10, 60) + ".", after_ok=rng.random() < pass_rate)
            for pair in evaluation
        )  # fmt: skip
        RunMetric.objects.bulk_create(RunMetric(run=run, step=step, loss=2 / step) for step in range(1, 501))
        runs.append(run)
    return user, runs


def timed(client, url: str, count: int) -> tuple[str, int]:  # type: ignore[no-untyped-def]
    """Median time (wall clock, and CPU time of this process: less swayed by a busy machine) of `count` requests
    after a warm-up one, and the queries of one."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    count = len(queries)  # now: the next request empties the log it reads
    assert response.status_code == 200, (url, response.status_code)
    timings, cpu = [], []
    for _ in range(count):
        start, start_cpu = time.perf_counter(), time.process_time()
        client.get(url)
        timings.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    return f"{statistics.median(timings):.1f} ms ({statistics.median(cpu):.0f} ms CPU)", count


def bench(prompts: int, pairs: int, count: int) -> None:
    from django.test import Client
    from django.urls import reverse

    user, (first, last) = seed(prompts, pairs)
    client = Client()
    client.force_login(user)
    query = f"?runs={first.pk},{last.pk}"
    api_ms, api_q = timed(client, f"{reverse('api-run-compare')}{query}", count)
    page_ms, page_q = timed(client, f"{reverse('training-compare')}{query}", count)
    diff_ms, diff_q = timed(client, reverse("api-snapshot-diff", args=[first.snapshot_id, last.snapshot_id]), count)
    print(f"| {prompts:,} | {api_ms} | {page_ms} | {diff_ms} | {api_q} / {page_q} / {diff_q} |", flush=True)


if __name__ == "__main__":
    main()
