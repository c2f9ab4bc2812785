"""Lint speed and memory: the whole-dataset report (per-pair checks, duplicates, near duplicates) at two sizes.

    .venv/bin/python bench/lint_bench.py [--rows 10000 100000] [--smoke]                # SQLite
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/lint_bench.py   # PostgreSQL

Uses a throwaway database like bench/import_bench.py. Each dataset gets pairs of made-up text (a 3,000-word
vocabulary, skewed like real text) with 1% repeated prompts, 1% near copies (one word of the prompt changed) and 0.5%
leftover placeholders. Prints the time of the report, of storing it (dataset_lint_refresh: first run, then
a second run with nothing to change), of reading the stored report back (what GET .../lint/ does), and the
report's peak Python memory (tracemalloc, measured in a
separate run since tracing slows Python down). --smoke: the same at 200 and 1,000 pairs.
"""

import argparse
import json
import os
import random
import sys
import time
import tracemalloc
from itertools import accumulate
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.import_bench import temp_folder, use_bench_database  # noqa: E402

VOCABULARY = [f"word{n}" for n in range(3000)]
# Word n is picked with weight 1/(n+1) (Zipf-like), so common words repeat as they do in real text.
CUMULATIVE = list(accumulate(1 / (n + 1) for n in range(len(VOCABULARY))))


def sentence(rng: random.Random, low: int, high: int) -> list[str]:
    return rng.choices(VOCABULARY, cum_weights=CUMULATIVE, k=rng.randint(low, high))


def write_file(path: Path, rows: int, seed: int = 11) -> None:
    rng = random.Random(seed)
    made: list[tuple[list[str], list[str]]] = []
    with path.open("w", encoding="utf-8") as out:
        for n in range(rows):
            roll = rng.random()
            if made and roll < 0.01:  # the same prompt again, another answer
                prompt, response = list(rng.choice(made)[0]), sentence(rng, 10, 60)
            elif made and roll < 0.02:  # a near copy: one word of the prompt changed
                prompt, response = (list(part) for part in rng.choice(made))
                prompt[rng.randrange(len(prompt))] = rng.choice(VOCABULARY)
            else:
                prompt, response = sentence(rng, 6, 20), sentence(rng, 10, 60)
                made.append((prompt, response))
            placeholder = " about {topic}" if roll > 0.995 else ""
            record = {"prompt": " ".join(prompt) + placeholder + "?", "response": " ".join(response) + f" ({n})."}
            out.write(json.dumps(record) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--smoke", action="store_true", help="a quick run of the same code: 200 and 1,000 pairs")
    args = parser.parse_args()
    vendor = use_bench_database()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    run(vendor, [200, 1000] if args.smoke else args.rows)


def run(vendor: str, sizes: list[int]) -> None:
    from django.contrib.auth import get_user_model

    from datasets_app.curation.services import dataset_create, workspace_create
    from datasets_app.imports.services import dataset_import
    from datasets_app.lint.report import dataset_lint_refresh, dataset_lint_report, dataset_lint_stored

    user = get_user_model().objects.create_user("bench")
    workspace = workspace_create(name="Bench", user=user)
    folder = temp_folder("instructory-lint-bench-")
    print(f"database: {vendor}")
    print("| pairs | report | peak memory | store (first / nothing changed) | read the stored report |")
    print("|---|---|---|---|---|")
    found = []
    for rows in sizes:
        path = folder / f"pairs-{rows}.jsonl"
        write_file(path, rows)
        dataset = dataset_create(workspace=workspace, user=user, name=f"lint-{rows}")
        with path.open("rb") as stream:
            dataset_import(dataset=dataset, user=user, stream=stream, filename=path.name, on_duplicate="keep")
        start = time.perf_counter()
        report = dataset_lint_report(dataset=dataset)
        report_s = time.perf_counter() - start
        start = time.perf_counter()
        dataset_lint_refresh(dataset=dataset, user=user)
        first_s = time.perf_counter() - start
        start = time.perf_counter()
        dataset_lint_refresh(dataset=dataset, user=user)
        again_s = time.perf_counter() - start
        start = time.perf_counter()
        dataset_lint_stored(dataset=dataset).as_dict()
        stored_s = time.perf_counter() - start
        tracemalloc.start()
        dataset_lint_report(dataset=dataset)
        peak_mb = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
        print(
            f"| {rows:,} | {report_s:.2f} s ({rows / report_s:,.0f} pairs/s) | {peak_mb:.1f} MB "
            f"| {first_s:.2f} s / {again_s:.2f} s | {stored_s:.3f} s |",
            flush=True,
        )
        counts = ", ".join(f"{code} {n:,}" for code, n in report.counts.items() if n)
        found.append(f"{rows:,} pairs: found {counts}; {len(report.near_duplicates):,} near-duplicate pairs")
    print("\n".join(found))


if __name__ == "__main__":
    main()
