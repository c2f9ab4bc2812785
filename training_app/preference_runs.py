"""What a preference run (dpo, orpo) and a run that starts from another add to execution.py: the pairs with their
rejected answers, the starting model, and preference accuracy before and after training.

Only execution.py reaches this module (on a worker): it meets training_app.ml.
"""

from pathlib import Path
from typing import Any

from datasets_app.models import DatasetKind
from training_app.ml.data import ChatExample
from training_app.models import PREFERENCE_OBJECTIVES, TrainingRun
from training_app.snapshots import SnapshotRow

TASK_KINDS = ("guardrail", "mcq")


def is_preference(run: TrainingRun) -> bool:
    return run.objective in PREFERENCE_OBJECTIVES


def chat(row: SnapshotRow, *, preference: bool = False) -> ChatExample:
    """A snapshot row as the trainer takes it; a preference row keeps its rejected answer (response: the chosen)."""
    return ChatExample(
        prompt=row.prompt, response=row.response, system=row.system, history=row.history, ref=row.ref,
        rejected=(row.rejected or None) if preference else None,
    )  # fmt: skip


def task_kind(snapshot_kind: str, rows: list[SnapshotRow]) -> str:
    """Which task metrics score the evaluated prompts: the dataset's kind; for preference pairs the kind of the
    template they came from, read from their tags (a guardrail template tags them blocked:<topic>, allowed:<topic>),
    with the chosen answer as the reference."""
    if snapshot_kind != DatasetKind.PREFERENCE:
        return snapshot_kind
    if any(tag.startswith(("blocked:", "allowed:")) for row in rows for tag in row.tags):
        return "guardrail"
    return "general"


def init_artifact(run: TrainingRun) -> Path | None:
    """The run it starts from, unpacked from storage into this machine's model cache (as the playground does)."""
    if run.init_run_id is None:
        return None
    from training_app.execution import tuned_model_dir

    assert run.init_run is not None
    return tuned_model_dir(run.init_run)


def load_starting_model(source: Path, init_dir: Path | None, *, quantized: bool = False):  # type: ignore[no-untyped-def]
    """What training starts from: the base model (in 4-bit for qlora), or the earlier run's model (its adapter merged
    into the full-precision base)."""
    from training_app.ml.registry import load_model

    return load_model(source, adapter_dir=init_dir) if init_dir is not None else load_model(source, quantized=quantized)


def preference_scores(model, tokenizer, rows: list[SnapshotRow], max_len: int) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Preference accuracy on the evaluated pairs: the share whose chosen answer the model scores above the rejected
    one (summed answer log-probability), with each pair's verdict."""
    from training_app.ml.preference import preference_accuracy

    scored = [row for row in rows if row.rejected]
    if not scored:
        return {"accuracy": None, "n": 0, "correct": [None] * len(rows)}
    found = preference_accuracy(model, tokenizer, [chat(row, preference=True) for row in scored], max_len)
    verdicts = iter(found["correct"])
    correct = [bool(next(verdicts)) if row.rejected else None for row in rows]
    return {"accuracy": found["accuracy"], "n": found["n"], "correct": correct}


def add_preference(evaluation: dict[str, Any], scores: dict[str, Any]) -> None:
    """Put preference accuracy beside the task metrics of one side of the evaluation (before or after)."""
    evaluation["preference_accuracy"] = scores["accuracy"]
    evaluation["preference_pairs"] = scores["n"]
