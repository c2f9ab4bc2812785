"""Exporting a dataset as a stream of bytes in any export format, in constant memory."""

from collections.abc import Iterator

from datasets_app.formats import Record, write_records
from datasets_app.models import Dataset

CHUNK = 5000


def dataset_export(*, dataset: Dataset, fmt: str, statuses: list[str] | None = None) -> Iterator[bytes]:
    """The dataset's pairs in id order, written as `fmt`, a chunk at a time; a preference dataset's in one of the
    preference formats (UnknownFormat for a format of the other kind)."""
    examples = dataset.examples.order_by("id")
    if statuses:
        examples = examples.filter(status__in=statuses)
    fields = ("system_prompt", "prompt", "response", "history", "tags", "rejected")
    rows = examples.values_list(*fields).iterator(chunk_size=CHUNK)
    records = (Record(prompt=p, response=r, system=s, history=h, tags=t, rejected=x) for s, p, r, h, t, x in rows)
    return write_records(records, fmt, preference=dataset.is_preference)
