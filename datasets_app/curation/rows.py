"""The one place a pair's stored row is made: checked, hashed, linted, versioned, stamped with its authors.

Every path that creates pairs builds them with a `PairBuilder` (example_create, examples_bulk_create and so
template generation, the importer, bench scripts); every edit of a pair goes through `pair_refresh`. Both
check the fields with `pair_errors`, the single place a limit on what a pair may hold belongs. The importer
keeps its own fast batched writer, but takes its columns and their database form from `db_rows`, which reads
them off the model: there is no list of columns to keep in step by hand.
"""

import json
from collections.abc import Iterable, Iterator
from datetime import datetime
from operator import itemgetter
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import connections, models
from django.utils import timezone

from datasets_app.curation.content import content_hash
from datasets_app.curation.limits import pair_text_errors
from datasets_app.errors import Conflict
from datasets_app.lint.checks import LintRules, example_relint, lint_rules, pair_problems
from datasets_app.models import HISTORY_ROLES, Dataset, Example, ExampleSplit, ExampleStatus, blank_text_errors

STATUSES = frozenset(ExampleStatus.values)
SPLITS = frozenset(ExampleSplit.values)
SOURCE_MAX = Example._meta.get_field("source").max_length or 255
CHECKED_FIELDS = ("system_prompt", "prompt", "response", "rejected", "history", "tags", "status", "source", "split")
ONLY_PREFERENCE = "only the pairs of a preference dataset have a rejected answer; leave it blank"


def pair_errors(
    *,
    system_prompt: str,
    prompt: str,
    response: str,
    history: Any,
    tags: Any,
    status: str,
    source: str,
    split: str = ExampleSplit.TRAIN,
    rejected: str = "",
    preference: bool = False,
) -> dict[str, list[str]]:
    """What is wrong with a pair's fields, by field name ({} when nothing is); every write path asks here.

    The size caps (limits.py) come first: only lengths are read, before anything hashes, lints or stores the text.
    A pair of a preference dataset (`preference`) needs a rejected answer once submitted; any other keeps it blank.
    """
    text = {name: value if isinstance(value, str) else "" for name, value in
            (("prompt", prompt), ("response", response), ("system_prompt", system_prompt), ("rejected", rejected))}  # fmt: skip
    too_long = pair_text_errors(
        **text, history=history if isinstance(history, list) else [], tags=tags if isinstance(tags, list) else []
    )
    if too_long:
        return {name: [message] for name, message in too_long.items()}
    if (
        _plainly_valid(system_prompt, prompt, response, history, tags, status, source)
        and split in SPLITS
        and _sides_valid(rejected, status, preference=preference)
    ):
        return {}  # the common case, without Django's per-field machinery (the importer asks for every row)
    values = {"system_prompt": system_prompt, "prompt": prompt, "response": response, "rejected": rejected,
              "history": history, "tags": tags, "status": status, "source": source, "split": split}  # fmt: skip
    errors: dict[str, list[str]] = {}
    for name, value in values.items():
        try:
            Example._meta.get_field(name).clean(value, None)
        except ValidationError as error:
            errors[name] = error.messages
    if not errors and rejected and not preference:
        errors = {"rejected": [ONLY_PREFERENCE]}
    if not errors:
        blank = blank_text_errors(
            status=status, prompt=prompt, response=response, rejected=rejected if preference else None
        )
        errors = {name: [message] for name, message in blank.items()}
    return errors


def _sides_valid(rejected: Any, status: Any, *, preference: bool) -> bool:
    """A preference pair's rejected answer is text, not blank once submitted; any other pair has none."""
    if not preference:
        return rejected == ""
    return type(rejected) is str and (status == ExampleStatus.DRAFT or rejected.strip() != "")


def _plainly_valid(
    system_prompt: Any, prompt: Any, response: Any, history: Any, tags: Any, status: Any, source: Any
) -> bool:
    return (
        type(system_prompt) is str
        and type(prompt) is str
        and type(response) is str
        and status in STATUSES
        and type(source) is str
        and len(source) <= SOURCE_MAX
        and type(tags) is list
        and all(type(tag) is str and tag.strip() for tag in tags)
        and type(history) is list
        and all(
            isinstance(turn, dict)
            and turn.get("role") in HISTORY_ROLES
            and type(turn.get("content")) is str
            and (len(turn) == 2 or (len(turn) == 3 and turn["role"] == "assistant" and _weight_ok(turn.get("weight"))))
            for turn in history
        )
        and (status == ExampleStatus.DRAFT or (prompt.strip() != "" and response.strip() != ""))
    )


def _weight_ok(weight: Any) -> bool:
    return type(weight) is int and weight in (0, 1)  # not True or 1.0, which equal 1


def pair_hash(example: Example) -> str:
    return content_hash(
        prompt=example.prompt, response=example.response, system_prompt=example.system_prompt, history=example.history,
        rejected=example.rejected,
    )  # fmt: skip


class PairBuilder:
    """Builds the stored rows of new pairs in one dataset, by one user (None: the system), at one moment."""

    def __init__(
        self,
        *,
        dataset: Dataset,
        user: AbstractBaseUser | None,
        rules: LintRules | None = None,
        now: datetime | None = None,
    ) -> None:
        self.dataset = dataset
        self.user_id = user.pk if user is not None else None
        self.preference = dataset.is_preference
        self.rules = rules or lint_rules(
            workspace=dataset.workspace, template=dataset.template, preference=self.preference
        )
        self.now = now or timezone.now()
        # A field added to the model later gets its default here, so no write path leaves it out.
        self.others = [field for field in _fields() if field.attname not in _BUILT]

    def row(
        self,
        *,
        prompt: str,
        response: str = "",
        system_prompt: str = "",
        history: list[dict[str, str]] | None = None,
        tags: list[str] | None = None,
        status: str = ExampleStatus.DRAFT,
        source: str = "manual",
        split: str = ExampleSplit.TRAIN,
        rejected: str = "",
    ) -> dict[str, Any]:
        """A new pair's row ({attname: value}, no id); ValidationError (by field) when the fields are not acceptable."""
        history = [] if history is None else history
        tags = [] if tags is None else tags
        errors = pair_errors(
            system_prompt=system_prompt, prompt=prompt, response=response, history=history, tags=tags,
            status=status, source=source, split=split, rejected=rejected, preference=self.preference,
        )  # fmt: skip
        if errors:
            raise ValidationError(errors)
        problems = pair_problems(
            prompt=prompt, response=response, system_prompt=system_prompt, history=history, tags=tags,
            status=status, rules=self.rules, rejected=rejected,
        )  # fmt: skip
        row = {
            "dataset_id": self.dataset.pk, "system_prompt": system_prompt, "prompt": prompt, "response": response,
            "rejected": rejected, "history": history, "status": status, "split": split, "tags": tags, "source": source,
            "content_hash": content_hash(
                prompt=prompt, response=response, system_prompt=system_prompt, history=history, rejected=rejected
            ),
            "version": 1, "review_comment": "", "problems": problems, "problem_count": len(problems),
            "created_by_id": self.user_id, "updated_by_id": self.user_id, "created_at": self.now, "updated_at": self.now,
        }  # fmt: skip
        for field in self.others:
            row[field.attname] = field.get_default()
        return row

    def example(self, **fields: Any) -> Example:
        """The new pair as an unsaved Example (its dataset loaded, so nothing queries it again)."""
        example = Example(**self.row(**fields))
        example.dataset = self.dataset
        return example


_BUILT = frozenset(
    {"dataset_id", "system_prompt", "prompt", "response", "rejected", "history", "status", "split", "tags", "source",
     "content_hash", "version", "review_comment", "problems", "problem_count", "created_by_id", "updated_by_id", "created_at",
     "updated_at"}
)  # fmt: skip


def pair_refresh(
    example: Example, *, user: AbstractBaseUser, keep_cross: bool = False, rules: LintRules | None = None
) -> None:
    """After a change to a saved pair's fields: check them, rehash, relint, count a new version by `user`.

    Saves nothing; the caller saves and records the revision. `keep_cross` keeps duplicate findings (text unchanged).
    Fields that are fine in themselves but leave a pair past draft blank clash with its status (Conflict).
    """
    preference = example.dataset.is_preference
    errors = pair_errors(**{name: getattr(example, name) for name in CHECKED_FIELDS}, preference=preference)
    if errors:
        blank = blank_text_errors(
            status=example.status, prompt=example.prompt, response=example.response,
            rejected=example.rejected if preference else None,
        )  # fmt: skip
        if errors == {name: [message] for name, message in blank.items()}:
            raise Conflict(errors)
        raise ValidationError(errors)
    example.content_hash = pair_hash(example)
    example_relint(example, template=example.dataset.template, keep_cross=keep_cross, rules=rules)
    example.version += 1
    example.updated_by = user


# --- rows in the database's own form, for batched writers (executemany, COPY)


def _fields() -> list[models.Field]:
    return [field for field in Example._meta.concrete_fields if not field.primary_key]


def example_columns(*, with_id: bool = False) -> tuple[str, ...]:
    """The example table's columns in model order, the id first when asked: what `db_rows` yields values for."""
    fields = ([Example._meta.pk] if with_id else []) + _fields()
    return tuple(field.column for field in fields)


def db_rows(rows: Iterable[dict[str, Any]], *, with_id: bool = False, using: str = "default") -> Iterator[list[Any]]:
    """Built rows (`PairBuilder.row`, plus "id" when `with_id`) as value lists in `example_columns()` order, in the
    form the database stores: JSON as text, and on SQLite datetimes as text too."""
    fields = ([Example._meta.pk] if with_id else []) + _fields()
    connection = connections[using]
    values_of = itemgetter(*(field.attname for field in fields))
    json_at = [(index, field.encoder) for index, field in enumerate(fields) if isinstance(field, models.JSONField)]
    times_at = [index for index, field in enumerate(fields) if isinstance(field, models.DateTimeField)]
    if connection.vendor != "sqlite":
        times_at = []  # psycopg sends datetimes itself
    others = [(index, field) for index, field in enumerate(fields) if not _stored_as_is(field)]
    adapt_time = connection.ops.adapt_datetimefield_value
    last_time: Any = object()
    last_text = None
    for row in rows:
        values = list(values_of(row))
        for index, encoder in json_at:
            value = values[index]
            # most pairs have no history and no problems: no need to run the encoder for an empty list
            values[index] = "[]" if type(value) is list and not value else json.dumps(value, cls=encoder)
        for index in times_at:
            if values[index] is not last_time:  # a batch shares one timestamp: adapt it once
                last_time, last_text = values[index], adapt_time(values[index])
            values[index] = last_text
        for index, field in others:
            values[index] = field.get_db_prep_save(values[index], connection)
        yield values


_AS_IS = (models.CharField, models.TextField, models.IntegerField, models.BooleanField)  # AutoFields are IntegerFields


def _stored_as_is(field: models.Field) -> bool:
    if isinstance(field, (models.JSONField, models.DateTimeField, *_AS_IS)):
        return True  # JSON and datetimes are converted above
    return isinstance(field, models.ForeignKey) and isinstance(field.target_field, _AS_IS)


def build_db_rows(
    builder: PairBuilder, records: Iterable[dict[str, Any]], *, with_id: bool = False
) -> Iterator[list[Any]]:
    """Ready database rows for plain records ({prompt, response, ...}): for bench scripts and seeding."""
    return db_rows((builder.row(**record) for record in records), with_id=with_id)
