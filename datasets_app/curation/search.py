"""Lookups that differ by database: full-text search (SQLite FTS5 or PostgreSQL tsvector) and tag filtering."""

import re

from django.db import connection
from django.db.models import QuerySet

from datasets_app.models import Example

FTS_TABLE = "datasets_app_example_fts"
# A generated column, to_tsvector('simple', prompt || ' ' || response), GIN-indexed (migration 0013); the model does
# not declare it, so no query but these reads it and no insert writes it.
PG_VECTOR = "datasets_app_example.search_vector"
_WORD = re.compile(r"\w+", re.UNICODE)


def fts5_query(text: str) -> str:
    """Each word a quoted FTS5 phrase (all must match), so user text can never be FTS syntax; the last is a prefix."""
    words = _WORD.findall(text)
    if not words:
        return ""
    quoted = [f'"{word}"' for word in words]
    quoted[-1] += "*"
    return " ".join(quoted)


def search_examples(examples: QuerySet[Example], text: str) -> QuerySet[Example]:
    """Examples whose prompt or response contain every word of `text`."""
    if not text.strip():
        return examples
    if connection.vendor == "postgresql":
        return examples.extra(where=[f"{PG_VECTOR} @@ plainto_tsquery('simple', %s)"], params=[text])  # noqa: S610
    query = fts5_query(text)
    if not query:
        return examples.none()
    return examples.extra(  # noqa: S610
        where=[f"datasets_app_example.id IN (SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH %s)"],  # noqa: S608 - constant table name
        params=[query],
    )


def with_tag(examples: QuerySet[Example], tag: str) -> QuerySet[Example]:
    """Examples carrying exactly this tag."""
    if connection.vendor == "postgresql":
        return examples.filter(tags__contains=[tag])
    return examples.extra(  # noqa: S610
        where=["EXISTS (SELECT 1 FROM json_each(datasets_app_example.tags) WHERE json_each.value = %s)"], params=[tag]
    )
