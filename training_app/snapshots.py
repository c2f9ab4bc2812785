"""Snapshots: a dataset's approved pairs frozen into an immutable file with a seeded train/validation split."""

import hashlib
import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.files import File
from django.db import transaction
from django.db.models import Max

from datasets_app.curation.selectors import role_require
from datasets_app.errors import Conflict
from datasets_app.models import Dataset, DatasetKind, ExampleStatus, Role
from training_app.models import DatasetVersion


@dataclass(frozen=True)
class SnapshotRow:
    ref: int | None
    split: str
    system: str
    prompt: str
    response: str
    history: list
    tags: list

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


@transaction.atomic
def snapshot_create(
    *, dataset: Dataset, user: AbstractBaseUser | None, validation_fraction: float = 0.1, seed: int = 42
) -> DatasetVersion:
    """Freeze the approved pairs now; later edits to the dataset never change this snapshot."""
    if user is not None:
        role_require(user=user, workspace=dataset.workspace, role=Role.LEAD)
    if not 0 < validation_fraction < 1:
        raise ValidationError({"validation_fraction": "must be between 0 and 1"})
    approved = dataset.examples.filter(status=ExampleStatus.APPROVED).order_by("id")
    keys = list(approved.values_list("id", "content_hash", "tags"))
    if len(keys) < 2:
        raise Conflict({"dataset": f"needs at least 2 approved pairs to snapshot; it has {len(keys)}"})
    validation = split_ids(keys, kind=dataset.kind, seed=seed, fraction=validation_fraction)
    digest = hashlib.sha256()
    with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as spool:
        for line in _lines(approved, validation):
            digest.update(line)
            spool.write(line)
        spool.seek(0)
        number = (dataset.versions.aggregate(top=Max("number"))["top"] or 0) + 1
        version = DatasetVersion(
            dataset=dataset, number=number, created_by=user, content_hash=digest.hexdigest(), seed=seed,
            validation_fraction=validation_fraction, n_train=len(keys) - len(validation), n_validation=len(validation),
            kind=dataset.kind,
        )  # fmt: skip
        version.file.save(f"dataset-{dataset.pk}-v{number}.jsonl", File(spool), save=False)
    version.save()
    return version


def _lines(approved, validation: set[int]) -> Iterator[bytes]:  # type: ignore[no-untyped-def]
    fields = ("id", "system_prompt", "prompt", "response", "history", "tags")
    for pk, system, prompt, response, history, tags in approved.values_list(*fields).iterator(chunk_size=2000):
        row = {"ref": pk, "split": "validation" if pk in validation else "train", "system": system, "prompt": prompt,
               "response": response, "history": history, "tags": tags}  # fmt: skip
        yield (json.dumps(row, ensure_ascii=False) + "\n").encode()


def snapshot_rows(version: DatasetVersion) -> list[SnapshotRow]:
    """The frozen rows, read back from storage (on whichever machine runs the training)."""
    with version.file.open("rb") as handle:
        return [SnapshotRow(**json.loads(line)) for line in handle if line.strip()]
