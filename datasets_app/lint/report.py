"""The whole-dataset lint report: every pair's problems, plus same-prompt duplicates and near duplicates.

Computed by streaming the dataset (read-only), stored on the pairs ("Check dataset"), and read back fast.
"""

import re
from array import array
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from datasets_app.curation.selectors import role_require
from datasets_app.lint.checks import CODES, lint_rules, pair_problems, problem
from datasets_app.lint.duplicates import SamePrompt, Sketches, jaccard, shingles
from datasets_app.lint.overlap import EvalOverlap, Overlap
from datasets_app.models import Dataset, Example, ExampleSplit, Role

NEAR_THRESHOLD = 0.8
BATCH = 1000
PROGRESS_EVERY = 5000
MAX_LISTED = 1000  # problems and near duplicates listed by as_dict(); counts are always complete
Progress = Callable[[str, float], None]
_PAIR_FIELDS = (
    "id", "prompt", "response", "system_prompt", "history", "tags", "status", "version", "split", "rejected",
)  # fmt: skip


@dataclass
class LintReport:
    """Every problem of a dataset by pair, and the near-duplicate pairs ({a, b, similarity}, a < b)."""

    checked: int = 0
    linted_at: datetime | None = None  # when the whole dataset was last checked; None if never
    by_example: dict[int, list[dict]] = field(default_factory=dict)
    near_duplicates: list[dict] = field(default_factory=list)
    ids: array = field(default_factory=lambda: array("q"))  # every pair linted, in id order ...
    versions: array = field(default_factory=lambda: array("q"))  # ... and its version then

    def add(self, pk: int, found: list[dict]) -> None:
        if found:
            self.by_example.setdefault(pk, []).extend(found)

    def version_of(self, pk: int) -> int | None:
        """The pair's version when it was linted; None if it was not."""
        index = bisect_left(self.ids, pk)
        return self.versions[index] if index < len(self.ids) and self.ids[index] == pk else None

    @property
    def counts(self) -> dict[str, int]:
        counted = Counter(item["code"] for found in self.by_example.values() for item in found)
        return {code: counted[code] for code in CODES}

    @property
    def problems(self) -> list[dict]:
        return [{"example": pk, **item} for pk in sorted(self.by_example) for item in self.by_example[pk]]

    def as_dict(self, limit: int = MAX_LISTED) -> dict[str, Any]:
        """For the API: complete counts, and at most `limit` problems and near duplicates."""
        problems = list(islice(self.problems, limit + 1))
        return {
            "checked": self.checked,
            "linted_at": self.linted_at,
            "pairs_with_problems": len(self.by_example),
            "counts": self.counts,
            "problems": problems[:limit],
            "near_duplicates": self.near_duplicates[:limit],
            "truncated": len(problems) > limit or len(self.near_duplicates) > limit,
        }


def dataset_lint_report(
    *, dataset: Dataset, threshold: float = NEAR_THRESHOLD, progress: Progress | None = None
) -> LintReport:
    """Lint every pair of a dataset, streamed; adds same-prompt duplicates and near duplicates (within the training
    set and within the evaluation set) and training pairs that repeat an evaluation prompt. Read-only.

    `progress`, if given, hears (phase, fraction done) every PROGRESS_EVERY pairs.
    """
    rules = lint_rules(workspace=dataset.workspace, template=dataset.template, preference=dataset.is_preference)
    report, prompts, sketches = LintReport(), SamePrompt(), Sketches(threshold)
    evaluation = Example.objects.filter(dataset=dataset, split=ExampleSplit.EVAL).values_list("id", "prompt")
    overlap = EvalOverlap(evaluation.iterator(chunk_size=2000), threshold=threshold)
    in_eval = set(evaluation.values_list("id", flat=True))
    total = dataset.examples.count() if progress else 0
    rows = Example.objects.filter(dataset=dataset).order_by("id").values_list(*_PAIR_FIELDS)
    for pk, prompt, response, system_prompt, history, tags, status, version, split, rejected in rows.iterator(
        chunk_size=2000
    ):
        report.checked += 1
        if progress and report.checked % PROGRESS_EVERY == 0:
            progress("checking", 0.8 * min(report.checked / total, 1.0))
        report.ids.append(pk)
        report.versions.append(version)
        report.add(pk, pair_problems(prompt=prompt, response=response, system_prompt=system_prompt,
                                     history=history, tags=tags, status=status, rules=rules,
                                     rejected=rejected))  # fmt: skip
        prompts.add(pk, prompt, answers(response, rejected), group=split)
        sketches.add(pk, prompt, answers(response, rejected))
        if split == ExampleSplit.TRAIN:
            overlap.add(pk, prompt)
    for pk, related, message in prompts.found():
        report.add(pk, [problem("duplicate", message, field="prompt", related=related)])
    if progress:
        progress("comparing", 0.8)
    for found in overlap.overlaps():
        report.add(found.pk, [problem("eval_overlap", found.message, field="prompt", related=found.eval_pk)])
    repeats = prompts.repeats()  # reported once, as duplicates, not again as near duplicates
    candidates = [
        (a, b)
        for a, b in sketches.candidates()
        if a not in repeats and b not in repeats and (a in in_eval) == (b in in_eval)  # across sets: eval_overlap
    ]
    for a, b, similarity in _confirmed(dataset, candidates, threshold):
        report.near_duplicates.append({"a": a, "b": b, "similarity": round(similarity, 3)})
        message = f"{similarity:.0%} similar to pair #{{}} (prompt and response)"
        report.add(a, [problem("near_duplicate", message.format(b), related=b)])
        report.add(b, [problem("near_duplicate", message.format(a), related=a)])
    return report


def answers(response: str, rejected: str) -> str:
    """What duplicates compare after the prompt: the response, or a preference pair's two answers."""
    return f"{response}\n\x1f{rejected}" if rejected else response


def eval_overlaps(*, examples: QuerySet[Example], threshold: float = NEAR_THRESHOLD) -> list[Overlap]:
    """The training pairs among `examples` whose prompt repeats, or nearly repeats, an evaluation pair's among them."""
    evaluation = examples.filter(split=ExampleSplit.EVAL).values_list("id", "prompt")
    overlap = EvalOverlap(evaluation.iterator(chunk_size=2000), threshold=threshold)
    if overlap:
        training = examples.filter(split=ExampleSplit.TRAIN).order_by("id").values_list("id", "prompt")
        for pk, prompt in training.iterator(chunk_size=2000):
            overlap.add(pk, prompt)
    return overlap.overlaps()


_SIMILAR = re.compile(r"^(\d+)% similar")


def dataset_lint_stored(*, dataset: Dataset) -> LintReport:
    """What saves and the last whole-dataset check stored, read back without linting again (fast at any size)."""
    report = LintReport(checked=dataset.examples.count(), linted_at=dataset.linted_at)
    rows = dataset.examples.filter(problem_count__gt=0).order_by("id").values_list("id", "problems")
    for pk, found in rows.iterator(chunk_size=2000):
        report.add(pk, found)
        for item in found:
            similar = _SIMILAR.match(item["message"]) if item["code"] == "near_duplicate" else None
            if similar and item["related"] and pk < item["related"]:
                pair = {"a": pk, "b": item["related"], "similarity": int(similar.group(1)) / 100}
                report.near_duplicates.append(pair)
    return report


def _confirmed(
    dataset: Dataset, candidates: list[tuple[int, int]], threshold: float
) -> Iterator[tuple[int, int, float]]:
    """The candidates whose exact Jaccard similarity reaches the threshold, fetched a block at a time."""
    for start in range(0, len(candidates), BATCH):
        block = candidates[start : start + BATCH]
        texts = _shingles_of(dataset, {pk for pair in block for pk in pair})
        for a, b in block:
            similarity = jaccard(texts[a], texts[b])
            if similarity >= threshold:
                yield a, b, similarity


def _shingles_of(dataset: Dataset, ids: Iterable[int]) -> dict[int, set[str]]:
    wanted, found = sorted(ids), {}
    for start in range(0, len(wanted), 500):  # SQLite allows only so many parameters per query
        rows = dataset.examples.filter(pk__in=wanted[start : start + 500]).values_list(
            "id", "prompt", "response", "rejected"
        )
        found.update({pk: shingles(prompt, answers(response, rejected)) for pk, prompt, response, rejected in rows})
    return found


# --- storing the findings


def dataset_lint_refresh(*, dataset: Dataset, user: AbstractBaseUser, progress: Progress | None = None) -> LintReport:
    """Lint the whole dataset and store each pair's problems and the time of the check (any member may).

    Writes only the rows whose problems changed, in batches, without a new version or updated_at;
    a pair saved while the lint ran keeps what its save stored.
    """
    role_require(user=user, workspace=dataset.workspace, role=Role.ANNOTATOR)
    report = dataset_lint_report(dataset=dataset, progress=progress)
    changed: list[int] = []
    stored = dataset.examples.order_by("id").values_list("id", "problems")
    for pk, problems in stored.iterator(chunk_size=2000):
        if report.version_of(pk) is not None and problems != report.by_example.get(pk, []):
            changed.append(pk)
        if len(changed) == BATCH:
            _store(changed, report)
            changed = []
            if progress:
                progress("storing", 0.9)
    _store(changed, report)
    report.linted_at = dataset.linted_at = timezone.now()
    Dataset.objects.filter(pk=dataset.pk).update(linted_at=report.linted_at)
    return report


@transaction.atomic
def _store(ids: list[int], report: LintReport) -> None:
    current = Example.objects.select_for_update().filter(pk__in=ids).values_list("id", "version")
    unchanged = [pk for pk, version in current if report.version_of(pk) == version]
    rows = [Example(pk=pk, problems=report.by_example.get(pk, [])) for pk in unchanged]
    for row in rows:
        row.problem_count = len(row.problems)
    Example.objects.bulk_update(rows, ["problems", "problem_count"], batch_size=BATCH)
