"""Records per second for writing and reading 100,000 pairs in each export format.

python bench/formats_bench.py [count] [--smoke]      # --smoke: 1,000 records
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from datasets_app.formats import EXPORT_FORMATS, Record, read_records, write_records  # noqa: E402


def sample(count: int) -> list[Record]:
    """Pairs of a typical size (a sentence of prompt, a paragraph of response), some with extras."""
    records = []
    for number in range(count):
        record = Record(
            prompt=f"Question {number}: how do I reverse a list in Python, keeping the original?",
            response=f"Answer {number}: use reversed(items) or items[::-1]; both leave it as is. " * 4,
        )
        if number % 10 == 0:
            record.system = "You are a concise assistant."
            record.tags = ["python", "lists"]
            record.history = [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello! What can I do for you?"},
            ]
        records.append(record)
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("count", type=int, nargs="?", default=100_000)
    parser.add_argument("--smoke", action="store_true", help="a quick run of the same code: 1,000 records")
    args = parser.parse_args()
    count = 1000 if args.smoke else args.count
    records = sample(count)
    print(f"{count:,} records")
    print(f"| {'format':<8} | {'write':>15} | {'read':>15} | {'size':>9} |")
    print("|---|---|---|---|")
    for fmt in EXPORT_FORMATS:
        started = time.perf_counter()
        data = b"".join(write_records(records, fmt))
        wrote = time.perf_counter() - started
        started = time.perf_counter()
        read = sum(1 for item in read_records(io.BytesIO(data)) if isinstance(item, Record))
        reading = time.perf_counter() - started
        assert read == count, (fmt, read)
        print(
            f"| {fmt:<8} | {count / wrote:>9,.0f} rec/s | {count / reading:>9,.0f} rec/s | {len(data) / 2**20:>5.1f} MiB |"
        )


if __name__ == "__main__":
    main()
