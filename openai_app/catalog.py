"""The models /v1/models lists: the registry's base models and the workspace's fine-tuned ones.

A fine-tuned model is a succeeded training run of the workspace that still has its artifact. Its id is
`ft:<base model>:<workspace slug>:<suffix>:ftjob-<run id>`, as OpenAI names fine-tuned models; the suffix is
the one its fine-tuning job was given (empty for runs started elsewhere), and the slug follows the workspace's current name, so renaming a
workspace renames its models (the `ftjob-<run id>` part never changes). Deleting one removes the run's artifact
from storage; the run, its metrics and its evaluation stay on the dashboard.
"""

import re
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.db.models import QuerySet
from django.utils.text import slugify

from datasets_app.models import Workspace
from training_app.generation import FineTunedGenerator
from training_app.models import RunStatus, TrainingRun

OWNER = "instructory"
_JOB = re.compile(r"ftjob-([0-9]{1,18})")


@dataclass(frozen=True)
class ModelInfo:
    id: str
    created: int
    owned_by: str
    run: TrainingRun | None = None  # None for a base model

    def as_dict(self) -> dict:
        return {"id": self.id, "object": "model", "created": self.created, "owned_by": self.owned_by}


def workspace_slug(workspace: Workspace) -> str:
    return slugify(workspace.name)[:40].strip("-") or f"workspace-{workspace.pk}"


def job_id(run: TrainingRun) -> str:
    return f"ftjob-{run.pk}"


def job_run_id(value: str) -> int | None:
    """The run id of a job id, `ftjob-<run id>`, or None when it is not one."""
    found = _JOB.fullmatch(value)
    return int(found[1]) if found else None


def suffix_of(run: TrainingRun) -> str:
    try:
        return run.fine_tuning_job.suffix  # type: ignore[attr-defined]
    except ObjectDoesNotExist:
        return ""


def fine_tuned_name(run: TrainingRun, workspace: Workspace) -> str:
    return f"ft:{run.base_model}:{workspace_slug(workspace)}:{suffix_of(run)}:{job_id(run)}"


def _run_of(model: str) -> int | None:
    """The run id an `ft:...` name ends in, or None when it is not one."""
    if not model.startswith("ft:"):
        return None
    parts = model[3:].rsplit(":", 3)
    return job_run_id(parts[-1]) if len(parts) == 4 else None


def fine_tuned_runs(*, workspace: Workspace) -> QuerySet[TrainingRun]:
    """The workspace's runs that are models: succeeded, artifact kept; newest first."""
    runs = TrainingRun.objects.filter(snapshot__dataset__workspace=workspace, status=RunStatus.SUCCEEDED)
    return runs.exclude(artifact="").select_related("fine_tuning_job").order_by("-finished_at", "-id")


def model_list(*, workspace: Workspace) -> list[ModelInfo]:
    base = [ModelInfo(name, 0, OWNER) for name in settings.BASE_MODELS]
    return base + [_fine_tuned(run, workspace) for run in fine_tuned_runs(workspace=workspace)]


def model_get(*, workspace: Workspace, model: str) -> ModelInfo | None:
    """The model named `model` exactly as the list names it, or None."""
    if model in settings.BASE_MODELS:
        return ModelInfo(model, 0, OWNER)
    run_id = _run_of(model)
    run = fine_tuned_runs(workspace=workspace).filter(pk=run_id).first() if run_id is not None else None
    if run is None:
        return None
    info = _fine_tuned(run, workspace)
    return info if info.id == model else None


def _fine_tuned(run: TrainingRun, workspace: Workspace) -> ModelInfo:
    finished = run.finished_at or run.created_at
    return ModelInfo(fine_tuned_name(run, workspace), int(finished.timestamp()), workspace_slug(workspace), run)


def fine_tuned_generators(*, workspace: Workspace) -> list[FineTunedGenerator]:
    """The workspace's fine-tuned models as drafting generators (settings.GENERATOR_PROVIDERS), keyed by their
    `ft:...` names; a run whose base model left the registry is not offered."""
    return [
        FineTunedGenerator(
            key=name,
            config={
                "MODEL": name,
                "RUN": run.pk,
                "BASE_MODEL": run.base_model,
                "LABEL": f"{name} (fine-tuned, run {run.pk})",
            },
        )
        for run in fine_tuned_runs(workspace=workspace)
        if run.base_model in settings.BASE_MODELS
        for name in [fine_tuned_name(run, workspace)]
    ]
