"""Reading never holds much more than one record's worth of a file, whatever the file says: a huge JSON
string, CSV cell or Parquet value is reported (with its field) without being read whole."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import pytest

from datasets_app.formats import Problem, ReadLimits, Record, read_records

LIMITS = ReadLimits(record_bytes=1 << 20)  # 1 MiB: a record past this is refused unread
HUGE = 20 << 20  # a 20 MB text, twenty times the limit


def _write(path: Path, *parts: bytes | tuple[bytes, int]) -> Path:
    """A file from byte strings and (piece, count) repeats, written without holding it in memory."""
    with path.open("wb") as out:
        for part in parts:
            if isinstance(part, tuple):
                piece, count = part
                for _ in range(count // len(piece)):
                    out.write(piece)
            else:
                out.write(part)
    return path


def _read_measured(path: Path, fmt: str) -> tuple[list[Record | Problem], int]:
    """Everything read from the file, and the peak memory Python allocated while reading it."""
    tracemalloc.start()
    try:
        with path.open("rb") as stream:
            items = list(read_records(stream, fmt, limits=LIMITS))
        return items, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _summary(items: list[Record | Problem]) -> list[tuple]:
    return [
        (item.position, item.field, item.message.split(":")[0]) if isinstance(item, Problem) else item.prompt
        for item in items
    ]


def test_a_jsonl_line_with_a_huge_response_is_refused_by_field_without_holding_it(tmp_path):
    path = _write(
        tmp_path / "big.jsonl",
        b'{"prompt": "first", "response": "ok"}\n',
        b'{"prompt": "second", "response": "',
        (b"a" * 65536, HUGE),
        b'"}\n{"prompt": "third", "response": "ok"}\n',
    )

    items, peak = _read_measured(path, "pairs")

    assert _summary(items) == ["first", (2, "response", "is over the limit"), "third"]
    assert "larger than 1.0 MB" in items[1].message
    assert peak < 4 << 20, f"{peak / 2**20:.1f} MB held for a 20 MB line"


def test_a_json_array_element_with_a_huge_string_is_refused_by_field_and_ends_the_read(tmp_path):
    path = _write(
        tmp_path / "big.json",
        b'[{"instruction": "first", "output": "ok"},\n {"instruction": "second", "output": "',
        (b"b" * 65536, HUGE),
        b'"}, {"instruction": "third", "output": "ok"}]',
    )

    items, peak = _read_measured(path, "alpaca")

    assert _summary(items) == ["first", (2, "output", "is over the limit")]
    assert "nothing after it was read" in items[1].message
    assert peak < 8 << 20, f"{peak / 2**20:.1f} MB held for a 20 MB element"


@pytest.mark.parametrize("newlines", [False, True], ids=["one-line cell", "cell over many lines"])
def test_a_csv_cell_of_megabytes_is_refused_by_its_column_without_holding_it(tmp_path, newlines):
    piece = b"c" * 1023 + (b"\n" if newlines else b"c")
    path = _write(
        tmp_path / "big.csv",
        b'prompt,response,tags\nfirst,ok,\nsecond,"',
        (piece, HUGE),
        b'",\nthird,ok,\n',
    )

    items, peak = _read_measured(path, "csv")

    assert _summary(items) == ["first", (3, "response", "is over the limit")]
    # the csv module keeps a cell as 4-byte characters: 4 MB for the 1 MiB it reads (80 MB for the whole cell)
    assert peak < 6 << 20, f"{peak / 2**20:.1f} MB held for a 20 MB cell"


def test_records_within_the_limit_read_as_before():
    lines = b"\n".join(json.dumps({"prompt": f"q{n}", "response": "r" * 100_000}).encode() for n in range(3))

    items = list(read_records(io.BytesIO(lines), "pairs", limits=LIMITS))

    assert [(item.prompt, len(item.response)) for item in items] == [(f"q{n}", 100_000) for n in range(3)]


# --- Parquet: a tiny file that decompresses to gigabytes


def _parquet(table, **options) -> bytes:  # type: ignore[no-untyped-def]
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(table, sink, **options)
    return sink.getvalue()


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    """2.5 KB of Parquet whose one response is 60 MB of a single repeated character (zstd)."""
    import pyarrow as pa

    path = tmp_path_factory.mktemp("bomb") / "bomb.parquet"
    path.write_bytes(_parquet(pa.table({"prompt": ["hi"], "response": ["a" * 60_000_000]}), compression="zstd"))
    return path


def test_a_tiny_parquet_file_with_a_huge_cell_is_refused_naming_the_column_and_row(bomb):
    assert bomb.stat().st_size < 4096

    with bomb.open("rb") as stream:
        (problem,) = read_records(stream, "parquet", limits=LIMITS)

    assert (problem.position, problem.unit, problem.field) == (1, "row", "response")
    assert "decompresses to 60000004 bytes" in problem.message


def test_refusing_the_parquet_bomb_allocates_nothing_like_its_decompressed_size(bomb):
    # In a fresh process, so that the peak resident size it reports is this read's alone.
    script = textwrap.dedent(
        f"""
        import resource
        from datasets_app.formats import ReadLimits, read_records
        import pyarrow.parquet  # loaded before the baseline: its own size is not the read's
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with open({str(bomb)!r}, "rb") as stream:
            items = list(read_records(stream, "parquet", limits=ReadLimits(record_bytes=1 << 20)))
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(len(items), items[0].field, (after - before) * 1024)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True, cwd=Path.cwd()
    )
    count, field, growth = done.stdout.split()

    assert (count, field) == ("1", "response")
    assert int(growth) < 16 << 20, f"the read grew the process by {int(growth) / 2**20:.0f} MB"


def test_a_parquet_file_that_decodes_past_the_budget_is_refused():
    import pyarrow as pa

    # 10,000 rows repeating one 2 KB answer: a small file, 20 MB once decoded.
    data = _parquet(pa.table({"prompt": ["q"] * 10_000, "response": ["x" * 2000] * 10_000}), compression="zstd")

    items = list(read_records(io.BytesIO(data), "parquet", limits=ReadLimits(decoded_bytes=4 << 20)))

    assert len(data) < 64 * 1024
    assert isinstance(items[-1], Problem)
    assert items[-1].message.startswith("decompresses to more than 4 MB")
    assert len(items) < 10_000


def test_a_parquet_file_with_more_rows_than_allowed_is_refused_before_reading():
    import pyarrow as pa

    data = _parquet(pa.table({"prompt": ["q"] * 1000, "response": ["r"] * 1000}))

    (problem,) = read_records(io.BytesIO(data), "parquet", limits=ReadLimits(records=999))

    assert problem.message == "has 1000 rows; at most 999 can be imported at once"


@pytest.mark.parametrize(
    "options",
    [{"compression": "snappy"}, {"compression": "zstd", "data_page_version": "2.0"}, {"use_dictionary": False}],
)
def test_ordinary_parquet_files_read_whole_in_bounded_batches(options):
    import pyarrow as pa

    rows = 25_000
    table = pa.table(
        {
            "prompt": [f"question {n} " * 20 for n in range(rows)],
            "response": [f"answer {n}" for n in range(rows)],
            "history": [[{"role": "user", "content": "hi 0"}, {"role": "assistant", "content": "yo"}]]
            + [[]] * (rows - 1),
        }
    )
    data = _parquet(table, row_group_size=10_000, **options)

    items = list(read_records(io.BytesIO(data), "parquet", limits=LIMITS))

    assert all(isinstance(item, Record) for item in items)
    assert [item.position for item in items] == list(range(1, rows + 1))
    assert (items[0].history[0]["content"], items[-1].response) == ("hi 0", f"answer {rows - 1}")
