"""Snapshots: a dataset's approved pairs frozen into an immutable file: the training pairs with a seeded
train/validation split, and the evaluation pairs (split "eval"), which runs are scored on and never train on."""

import hashlib
import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.files import File
from django.db import transaction
from django.db.models import Max, QuerySet

from datasets_app.curation.selectors import role_require
from datasets_app.errors import Conflict
from datasets_app.lint.overlap import Overlap
from datasets_app.lint.report import eval_overlaps
from datasets_app.models import Dataset, DatasetKind, Example, ExampleSplit, ExampleStatus, Role
from training_app.models import DatasetVersion

# What eval_hash covers (what scores a run), and "rejected" when a row has one.
EVAL_CONTENT = ("system", "prompt", "response", "history", "tags")


@dataclass(frozen=True)
class SnapshotRow:
    ref: int | None
    split: str
    system: str
    prompt: str
    response: str
    history: list
    tags: list
    rejected: str = ""  # preference snapshots: the rejected answer (`response` is the chosen one)

    @property
    def blocked(self) -> bool:
        return any(tag.startswith("blocked:") for tag in self.tags)


def _stratum(kind: str, tags: list[str]) -> str:
    """Guardrail snapshots keep blocked and allowed prompts in both splits."""
    if kind == DatasetKind.GUARDRAIL:
        return "blocked" if any(tag.startswith("blocked:") for tag in tags) else "allowed"
    return "all"


def _order_key(seed: int, content_hash: str) -> str:
    return hashlib.blake2b(f"{seed}:{content_hash}".encode(), digest_size=8).hexdigest()


def split_ids(rows: list[tuple[int, str, list[str]]], *, kind: str, seed: int, fraction: float) -> set[int]:
    """Ids chosen for validation: per stratum a seeded `fraction` (at least one when the stratum has two or more)."""
    strata: dict[str, list[tuple[str, int]]] = {}
    for pk, digest, tags in rows:
        strata.setdefault(_stratum(kind, tags), []).append((_order_key(seed, digest), pk))
    chosen: set[int] = set()
    for members in strata.values():
        members.sort()
        count = max(1, round(len(members) * fraction)) if len(members) >= 2 else 0
        chosen.update(pk for _, pk in members[:count])
    return chosen


def _approved(dataset: Dataset) -> QuerySet[Example]:
    return dataset.examples.filter(status=ExampleStatus.APPROVED).order_by("id")


def _split(
    dataset: Dataset, approved: QuerySet[Example], *, validation_fraction: float, seed: int
) -> tuple[int, set[int]]:
    """How many training pairs a snapshot of `approved` holds, and the ids its seeded split puts in validation."""
    if not 0 < validation_fraction < 1:
        raise ValidationError({"validation_fraction": "must be between 0 and 1"})
    keys = list(approved.filter(split=ExampleSplit.TRAIN).values_list("id", "content_hash", "tags"))
    if len(keys) < 2:
        raise Conflict(
            {"dataset": f"needs at least 2 approved pairs in its training set to snapshot; it has {len(keys)}"}
        )
    return len(keys), split_ids(keys, kind=dataset.kind, seed=seed, fraction=validation_fraction)


def _overlaps(dataset: Dataset, approved: QuerySet[Example]) -> list[Overlap]:
    """The training pairs that repeat an evaluation prompt; refused when the dataset says so."""
    overlaps = eval_overlaps(examples=approved)
    if overlaps and dataset.refuse_eval_overlap:
        raise Conflict({"dataset": overlap_refusal(overlaps)})
    return overlaps


@transaction.atomic
def snapshot_create(
    *, dataset: Dataset, user: AbstractBaseUser | None, validation_fraction: float = 0.1, seed: int = 42
) -> DatasetVersion:
    """Freeze the approved pairs now; later edits to the dataset never change this snapshot.

    Counts the training pairs that repeat an evaluation prompt (eval_overlap), and refuses the snapshot for them
    when the dataset says so (refuse_eval_overlap).
    """
    if user is not None:
        role_require(user=user, workspace=dataset.workspace, role=Role.LEAD)
    approved = _approved(dataset)
    n_training, validation = _split(dataset, approved, validation_fraction=validation_fraction, seed=seed)
    overlaps = _overlaps(dataset, approved)
    digest, evaluation = hashlib.sha256(), []
    with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as spool:
        for row in _rows(approved, validation):
            line = (json.dumps(row, ensure_ascii=False) + "\n").encode()
            digest.update(line)
            spool.write(line)
            if row["split"] == ExampleSplit.EVAL:
                evaluation.append(_content_digest(row))
        spool.seek(0)
        number = (dataset.versions.aggregate(top=Max("number"))["top"] or 0) + 1
        version = DatasetVersion(
            dataset=dataset, number=number, created_by=user, content_hash=digest.hexdigest(), seed=seed,
            validation_fraction=validation_fraction, n_train=n_training - len(validation), n_validation=len(validation),
            n_eval=len(evaluation), eval_hash=eval_hash(evaluation), eval_overlap=len(overlaps), kind=dataset.kind,
        )  # fmt: skip
        version.file.save(f"dataset-{dataset.pk}-v{number}.jsonl", File(spool), save=False)
    version.save()
    return version


def overlap_refusal(overlaps: list[Overlap]) -> str:
    """Why a dataset that refuses overlap cannot be snapshot, naming how many pairs and a few of them."""
    count = len(overlaps)
    named = ", ".join(f"#{found.pk} (evaluation pair #{found.eval_pk})" for found in overlaps[:5])
    return (
        f"{count} approved training pair{'' if count == 1 else 's'} repeat{'s' if count == 1 else ''} or nearly "
        f"repeat{'s' if count == 1 else ''} an evaluation pair's prompt ({named}{', ...' if count > 5 else ''}); "
        "edit them or move them to the evaluation set, or allow overlap in the dataset's checks"
    )


def _rows(approved, validation: set[int]) -> Iterator[dict]:  # type: ignore[no-untyped-def]
    fields = ("id", "split", "system_prompt", "prompt", "response", "history", "tags", "rejected")
    rows = approved.values_list(*fields).iterator(chunk_size=2000)
    for pk, split, system, prompt, response, history, tags, rejected in rows:
        if split == ExampleSplit.TRAIN:
            split = "validation" if pk in validation else "train"
        row = {"ref": pk, "split": split, "system": system, "prompt": prompt, "response": response,
               "history": history, "tags": tags}  # fmt: skip
        if rejected:  # only preference pairs have one; other snapshots' files stay as they were
            row["rejected"] = rejected
        yield row


def _content_digest(row: dict) -> str:
    content = {name: row[name] for name in EVAL_CONTENT}
    if row.get("rejected"):
        content["rejected"] = row["rejected"]
    return hashlib.sha256(json.dumps(content, ensure_ascii=False, sort_keys=True).encode()).hexdigest()


def eval_hash(digests: list[str]) -> str:
    """One hash of the evaluation pairs' content, whatever their order or ids: two snapshots score runs on the same
    pairs exactly when it is equal. Empty without evaluation pairs (runs are then scored on their validation split,
    which differs from snapshot to snapshot)."""
    if not digests:
        return ""
    return hashlib.sha256("".join(sorted(digests)).encode()).hexdigest()


def snapshot_draft(
    *, dataset: Dataset, validation_fraction: float = 0.1, seed: int = 42
) -> tuple[int, int, Iterator[SnapshotRow]]:
    """What a snapshot made now would hold, with the same seeded split, nothing saved: its count of training pairs,
    of those that repeat an evaluation prompt, and its rows streamed (evaluation rows too). Refuses what
    snapshot_create refuses."""
    approved = _approved(dataset)
    total, validation = _split(dataset, approved, validation_fraction=validation_fraction, seed=seed)
    overlaps = _overlaps(dataset, approved)
    return total, len(overlaps), (SnapshotRow(**row) for row in _rows(approved, validation))


def snapshot_stream(version: DatasetVersion) -> Iterator[SnapshotRow]:
    """The frozen rows one at a time, read from storage (on whichever machine asks)."""
    with version.file.open("rb") as handle:
        for line in handle:
            if line.strip():
                yield SnapshotRow(**json.loads(line))


def snapshot_rows(version: DatasetVersion) -> list[SnapshotRow]:
    """The frozen rows, read back from storage (on whichever machine runs the training)."""
    return list(snapshot_stream(version))
