"""Runs side by side (their metrics, the evaluated prompts each passed or failed, which of them flipped) and what
changed between two snapshots' pairs. Reads only; runs and snapshots come scoped to the user by the selectors."""

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.http import Http404

from training_app.models import DatasetVersion, EvalItem, RunMetric, TrainingRun
from training_app.selectors import User, run_list

MAX_RUNS = 10
MAX_ID_DIGITS = 18
DIFF_LIST_MAX = 1000  # pairs listed per kind of change (the counts are always complete)


@dataclass(frozen=True)
class ComparedMetric:
    name: str
    label: str
    better: str  # "higher" or "lower"
    percent: bool
    source: str  # where a run keeps it: "after" (evaluation["after"]) or "summary"
    key: str  # its key there


# The task metrics of the evaluation after training (a run has those of its dataset's kind), then the final losses of
# training. evaluation["after"]["val_loss"] is the loss on the evaluated prompts, hence its own name here.
METRICS = [
    ComparedMetric("preference_accuracy", "Preference accuracy (chosen above rejected)", "higher", True, "after", "preference_accuracy"),
    ComparedMetric("refusal_rate", "Refusal rate on blocked prompts", "higher", True, "after", "refusal_rate"),
    ComparedMetric("over_refusal_rate", "Over-refusal rate on allowed prompts", "lower", True, "after", "over_refusal_rate"),
    ComparedMetric("valid_rate", "Valid questions", "higher", True, "after", "valid_rate"),
    ComparedMetric("exact_match", "Exact match", "higher", True, "after", "exact_match"),
    ComparedMetric("token_f1", "Token F1", "higher", True, "after", "token_f1"),
    ComparedMetric("eval_loss", "Loss on the evaluated prompts", "lower", False, "after", "val_loss"),
    ComparedMetric("train_loss", "Final training loss", "lower", False, "summary", "final_loss"),
    ComparedMetric("val_loss", "Final validation loss", "lower", False, "summary", "val_loss"),
]  # fmt: skip
METRIC_BY_NAME = {metric.name: metric for metric in METRICS}


def run_ids_from_query(values: list[str]) -> list[int]:
    """`?runs=3,5` (or `?runs=3&runs=5`, as a form sends it): the ids in the order given, each once."""
    ids: list[int] = []
    for part in (part for value in values if value for part in value.split(",")):
        if not part.isascii() or not part.isdigit() or len(part) > MAX_ID_DIGITS or int(part) == 0:
            raise ValidationError({"runs": f"'{part[:40]}' is not a run id"})
        if int(part) in ids:
            raise ValidationError({"runs": f"run {part} is given twice"})
        ids.append(int(part))
    if len(ids) < 2:
        raise ValidationError({"runs": "give two or more different runs to compare, e.g. ?runs=3,5"})
    if len(ids) > MAX_RUNS:
        raise ValidationError({"runs": f"at most {MAX_RUNS} runs can be compared at once (got {len(ids)})"})
    return ids


def comparison_runs(*, user: User, run_ids: list[int]) -> list[TrainingRun]:
    """The runs in the order asked; any the user cannot see is a 404, exactly like one that does not exist."""
    found = {run.pk: run for run in run_list(user=user).filter(pk__in=run_ids)}
    if len(found) != len(run_ids):
        raise Http404("No TrainingRun matches the given query.")
    return [found[pk] for pk in run_ids]


@dataclass
class Comparison:
    runs: list[TrainingRun]
    same_eval_set: bool
    metrics: list[dict[str, Any]]
    prompts: list[dict[str, Any]]
    unshared: int
    flips: dict[str, int]


def run_comparison(*, user: User, run_ids: list[int]) -> Comparison:
    """Compare runs on the prompts they were all scored on (two queries, however many prompts).

    Prompts are matched by their text; when the runs' evaluation sets differ (or a run has none) only the prompts
    they share are compared, and `unshared` counts the others. A flip is a prompt that failed in the first run and
    passed in the last ("fixed"), or the other way round ("broken"); flipped prompts come first.
    """
    runs = comparison_runs(user=user, run_ids=run_ids)
    hashes = {run.snapshot.eval_hash for run in runs}
    prompts, unshared = _matched_prompts(runs)
    order = {"fixed": 0, "broken": 1, None: 2}
    prompts.sort(key=lambda prompt: order[prompt["flip"]])  # stable: otherwise the first run's order
    return Comparison(
        runs=runs,
        same_eval_set=len(hashes) == 1 and "" not in hashes,
        metrics=_metrics(runs),
        prompts=prompts,
        unshared=unshared,
        flips={kind: sum(1 for prompt in prompts if prompt["flip"] == kind) for kind in ("fixed", "broken")},
    )


def _metrics(runs: list[TrainingRun]) -> list[dict[str, Any]]:
    rows = []
    for metric in METRICS:
        stored = [(run.evaluation.get("after") or {}) if metric.source == "after" else run.summary for run in runs]
        if not any(metric.key in values for values in stored):
            continue  # not a metric of these runs' kinds
        values = [values.get(metric.key) for values in stored]
        rows.append({"name": metric.name, "label": metric.label, "values": values, "better": metric.better})
    return rows


def _matched_prompts(runs: list[TrainingRun]) -> tuple[list[dict[str, Any]], int]:
    """The prompts every run was scored on, in the first run's order, and how many others there were."""
    fields = ("run_id", "example_id", "prompt", "reference", "blocked", "after_output", "after_ok")
    by_run: dict[int, dict[tuple[str, int], tuple]] = {run.pk: {} for run in runs}
    asked: dict[int, Counter[str]] = {run.pk: Counter() for run in runs}
    for row in EvalItem.objects.filter(run__in=[run.pk for run in runs]).order_by("run_id", "id").values_list(*fields):
        run_id, prompt = row[0], row[2]
        by_run[run_id][(prompt, asked[run_id][prompt])] = row  # a prompt asked twice: matched occurrence by occurrence
        asked[run_id][prompt] += 1
    keys = [set(items) for items in by_run.values()]
    shared = set.intersection(*keys)
    prompts = []
    for key in by_run[runs[0].pk]:
        if key not in shared:
            continue
        rows = [by_run[run.pk][key] for run in runs]
        passed = [row[6] for row in rows]
        prompts.append(
            {
                "prompt": key[0],
                "expected": rows[0][3],
                "blocked": rows[0][4],
                "outputs": [row[5] for row in rows],
                "passed": passed,
                "example": _first_known([row[1] for row in rows]),
                "flip": _flip(passed[0], passed[-1]),
            }
        )
    return prompts, len(set.union(*keys)) - len(shared)


def _first_known(examples: list[int | None]) -> int | None:
    """The pair a prompt was scored on: the first run's, unless that pair was deleted since."""
    for example in examples:
        if example is not None:
            return example
    return None


def _flip(first: bool | None, last: bool | None) -> str | None:
    if first is False and last is True:
        return "fixed"
    if first is True and last is False:
        return "broken"
    return None


def run_loss_curves(*, runs: list[TrainingRun]) -> dict[int, dict[str, list[list[float]]]]:
    """Each run's training loss per step and validation loss per epoch, as [step, loss] points (one query)."""
    curves: dict[int, dict[str, list[list[float]]]] = {run.pk: {"train": [], "val": []} for run in runs}
    metrics = RunMetric.objects.filter(run__in=list(curves)).order_by("run_id", "step", "id")
    for run_id, step, loss, val_loss in metrics.values_list("run_id", "step", "loss", "val_loss"):
        if loss is not None:
            curves[run_id]["train"].append([step, loss])
        if val_loss is not None:
            curves[run_id]["val"].append([step, val_loss])
    return curves


# --- snapshot diff

TRAINING_SPLITS = ("train", "validation")
COMPARED_FIELDS = ("system", "prompt", "response", "history", "tags")


@dataclass
class SnapshotDiff:
    """Training pairs added, removed and changed from one snapshot to another, matched by the pair they were frozen
    from (`ref`). Moving a pair between the train and validation splits is not a change; a pair moved to or from the
    evaluation set is removed from or added to the training pairs. The evaluation set's own changes are counted."""

    added: list[dict[str, Any]] = field(default_factory=list)
    removed: list[dict[str, Any]] = field(default_factory=list)
    changed: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)
    truncated: bool = False


def snapshot_diff(*, before: DatasetVersion, after: DatasetVersion, limit: int = DIFF_LIST_MAX) -> SnapshotDiff:
    """What changed in the pairs from `before` to `after`: at most `limit` pairs listed per kind, every one counted.

    Reads each file once, keeping a digest and the place in the file of each of `before`'s pairs, then reads back
    only the lines it lists; so two large snapshots fit in memory.
    """
    diff = SnapshotDiff()
    counts = {part: {"added": 0, "removed": 0, "changed": 0, "unchanged": 0} for part in ("training", "eval")}
    with before.file.open("rb") as old_file:
        old = {(_part(row), _key(row)): (_digest(row), offset) for offset, row in _rows_at(old_file)}
        changed: list[tuple[int, dict[str, Any]]] = []  # (where it was in `before`, the row now)
        seen: set[tuple[str, Any]] = set()
        with after.file.open("rb") as new_file:
            for _, row in _rows_at(new_file):
                part, key = _part(row), _key(row)
                seen.add((part, key))
                found = old.get((part, key))
                kind = "added" if found is None else "unchanged" if found[0] == _digest(row) else "changed"
                counts[part][kind] += 1
                if part == "training" and kind == "added":
                    _listed(diff, diff.added, row, limit)
                elif part == "training" and kind == "changed":
                    _listed(diff, changed, (found[1], row), limit)  # type: ignore[index]
        gone = sorted((offset, part) for (part, key), (_, offset) in old.items() if (part, key) not in seen)
        for _, part in gone:
            counts[part]["removed"] += 1
        for offset in [offset for offset, part in gone if part == "training"]:
            _listed(diff, diff.removed, _row_at(old_file, offset), limit)
        for offset, new in changed:
            row = _row_at(old_file, offset)
            fields = [name for name in COMPARED_FIELDS if row.get(name) != new.get(name)]
            diff.changed.append({"ref": row["ref"], "changed_fields": fields, "before": row, "after": new})
    diff.counts = {**counts["training"], "eval": counts["eval"]}
    return diff


def _listed(diff: SnapshotDiff, rows: list, row: Any, limit: int) -> None:
    if len(rows) < limit:
        rows.append(row)
    else:
        diff.truncated = True


def _rows_at(handle: Any) -> Iterator[tuple[int, dict[str, Any]]]:
    """Each row of a snapshot file with the offset of its line."""
    offset = 0
    for line in handle:
        if line.strip():
            yield offset, json.loads(line.decode())  # a str skips json's guessing of the bytes' encoding
        offset += len(line)


def _row_at(handle: Any, offset: int) -> dict[str, Any]:
    handle.seek(offset)
    return json.loads(handle.readline().decode())


def _part(row: dict[str, Any]) -> str:
    return "training" if row["split"] in TRAINING_SPLITS else "eval"


def _key(row: dict[str, Any]) -> Any:
    """The pair a row was frozen from; a row without one is known by its content."""
    return row["ref"] if row.get("ref") is not None else f"content:{_digest(row)}"


def _digest(row: dict[str, Any]) -> int:
    """Equal for equal content (within one process: Python's hash, 64 bits; it is never stored)."""
    fields = (
        row.get("system"),
        row.get("prompt"),
        row.get("response"),
        repr(row.get("history")),
        repr(row.get("tags")),
    )
    return hash(fields)
