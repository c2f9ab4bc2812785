"""Failures back to annotators: the prompts a succeeded run failed in its evaluation become draft training pairs.

Each draft's prompt is a generator's rewording of the failed prompt (settings.GENERATORS, on a worker: the web
process never loads a model), so the evaluation set stays clean; or, when asked, the prompt as is, which the
lint then flags (eval_overlap). Its response is a starting point for the annotator: the template's refusal for a
blocked prompt, the base model's answer for an allowed prompt the fine-tuned model refused, and otherwise the
fine-tuned answer to fix (an MCQ format failure, a wrong answer). The curation services write the pairs, as
every other path does; a FailureDraft links each to its evaluated prompt, once per target dataset.
"""

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse

from datasets_app.blueprints.generators import Generator, GeneratorError, generator_get, paraphrase_prompts
from datasets_app.blueprints.specs import GuardrailSpec, spec_or_none
from datasets_app.curation.limits import TAGS_MAX
from datasets_app.curation.origins import Origin
from datasets_app.curation.selectors import role_require
from datasets_app.curation.services import example_create
from datasets_app.errors import Conflict
from datasets_app.jobs.services import job_beating, job_claim, job_create, job_finish, job_progress
from datasets_app.models import Dataset, Example, ExampleSplit, ExampleStatus, Job, JobStatus, Role, Workspace
from training_app.models import EvalItem, FailureDraft, RunStatus, TrainingRun

logger = logging.getLogger(__name__)

PARAPHRASE_TASK = "training_app.tasks.failures_paraphrase_task"
PARAPHRASE_BATCH = 8  # prompts per generator call: a heartbeat and a progress step between calls
# Rewording styles tried in turn for a prompt still without a rewording: a small model often echoes a prompt back.
REWORD_TRIES = 3
MAX_ITEMS = 1000  # evaluated prompts chosen in one request


def run_source(run: TrainingRun) -> str:
    """The source of the drafts made from a run's failures (the dataset page filters by it)."""
    return f"run:{run.pk}"


def run_tag(run: TrainingRun) -> str:
    return f"from-run:{run.pk}"


@dataclass
class SendOutcome:
    created: int = 0
    skipped: int = 0  # prompts already sent to the target dataset
    not_reworded: int = 0  # the model gave no usable rewording: no draft, send them again (or as they are)
    example_ids: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "created": self.created,
            "skipped": self.skipped,
            "not_reworded": self.not_reworded,
            "examples": self.example_ids,
        }


@transaction.atomic
def failures_send(
    *,
    run: TrainingRun,
    user: AbstractBaseUser,
    item_ids: Sequence[int] | None = None,
    dataset: Dataset | None = None,
    paraphrase: bool = True,
    generator: str | None = None,
) -> SendOutcome | Job:
    """Make a draft training pair of each failed evaluated prompt (every one, or the chosen `item_ids`) in `dataset`
    (default: the run's); leads only. Prompts already sent to that dataset are skipped.

    As is (`paraphrase=False`) the drafts are written now; reworded, a worker asks the generator (`generator`, or
    settings.DEFAULT_GENERATOR) and writes them: returns the Job. With nothing left to send, no job: the outcome.
    """
    workspace = run.snapshot.dataset.workspace
    role_require(user=user, workspace=workspace, role=Role.LEAD)
    if run.status != RunStatus.SUCCEEDED:
        raise Conflict({"run": ["only a run that succeeded has evaluated prompts to send"]})
    target = dataset or run.snapshot.dataset
    if target.workspace_id != workspace.pk:
        raise Conflict({"dataset": ["must be a dataset of the run's workspace"]})
    items = _chosen_failures(run, item_ids)
    pending = _not_sent(items, target)
    already = len(items) - len(pending)
    if not pending:
        return SendOutcome(skipped=already)
    if not paraphrase:
        outcome = _write(run, [(item, item.prompt) for item in pending], target=target, user=user, paraphrased=False)
        outcome.skipped += already
        return outcome
    backend = _paraphraser(generator, workspace)
    params = {"run": run.pk, "items": [item.pk for item in pending], "skipped": already, "generator": backend.key}
    return job_create(kind=Job.Kind.FAILURES, dataset=target, user=user, task=PARAPHRASE_TASK, params=params)


def _paraphraser(key: str | None, workspace: Workspace) -> Generator:
    """The generator that rewords prompts; a plain 400 when none is configured (never a silent use as is)."""
    try:
        return generator_get(key, workspace=workspace)
    except GeneratorError as error:
        raise Conflict(
            {"generator": [f'cannot reword the prompts: {error}. Send "paraphrase": false to use them as they are.']}
        ) from error


def _chosen_failures(run: TrainingRun, item_ids: Sequence[int] | None) -> list[EvalItem]:
    """The run's failed evaluated prompts, or the chosen ones, each of which must be a failure of this run."""
    items = run.eval_items.select_related("example").order_by("id")
    if item_ids is None:
        return list(items.filter(after_ok=False))
    chosen = list(dict.fromkeys(item_ids))
    if len(chosen) > MAX_ITEMS:
        raise ValidationError({"items": [f"choose at most {MAX_ITEMS} evaluated prompts at a time"]})
    found = {item.pk: item for item in items.filter(pk__in=chosen)}
    problems = [f"run {run.pk} has no evaluated prompt {pk}" for pk in chosen if pk not in found]
    problems += [
        f"evaluated prompt {pk} did not fail: the fine-tuned model got it right"
        for pk in chosen
        if pk in found and found[pk].after_ok is not False
    ]
    if problems:
        raise Conflict({"items": "; ".join(problems[:10])})
    return [found[pk] for pk in chosen]


def _not_sent(items: list[EvalItem], target: Dataset) -> list[EvalItem]:
    sent = set(FailureDraft.objects.filter(dataset=target, eval_item__in=items).values_list("eval_item_id", flat=True))
    return [item for item in items if item.pk not in sent]


def _write(
    run: TrainingRun,
    prompts: Iterable[tuple[EvalItem, str]],
    *,
    target: Dataset,
    user: AbstractBaseUser | None,
    paraphrased: bool,
) -> SendOutcome:
    """One draft per (evaluated prompt, its new prompt); one that another request sent meanwhile is skipped."""
    specs = _guardrail_specs(target, run.snapshot.dataset)
    outcome = SendOutcome()
    for item, prompt in prompts:
        example = _draft(run, item, prompt, target=target, user=user, paraphrased=paraphrased, specs=specs)
        if example is None:
            outcome.skipped += 1
        else:
            outcome.created += 1
            outcome.example_ids.append(example.pk)
    return outcome


def _draft(
    run: TrainingRun,
    item: EvalItem,
    prompt: str,
    *,
    target: Dataset,
    user: AbstractBaseUser | None,
    paraphrased: bool,
    specs: list[GuardrailSpec],
) -> Example | None:
    evaluated = item.example  # the evaluation pair; None once deleted
    tags = list(dict.fromkeys(evaluated.tags if evaluated else []))[: TAGS_MAX - 1]
    try:
        with transaction.atomic():  # a savepoint: losing the race below takes the new pair back with it
            example = example_create(
                dataset=target,
                user=user,
                prompt=prompt,
                response=starting_response(item, refusal=_refusal(tags, specs)),
                system_prompt=evaluated.system_prompt if evaluated else "",
                history=list(evaluated.history) if evaluated else [],
                tags=[*(tag for tag in tags if tag != run_tag(run)), run_tag(run)],
                source=run_source(run),
                status=ExampleStatus.DRAFT,
                split=ExampleSplit.TRAIN,
                # as is, a draft may repeat its evaluation pair word for word: the lint's eval_overlap says so
                allow_duplicate=True,
            )
            FailureDraft.objects.create(
                eval_item=item, dataset=target, example=example, paraphrased=paraphrased, created_by=user
            )
    except IntegrityError:
        return None  # the unique (evaluated prompt, dataset): another request sent it first, and its draft stands
    return example


def starting_response(item: EvalItem, *, refusal: str = "") -> str:
    """What the draft's response starts as: a refusal for a blocked prompt (the template's, else the evaluation
    pair's), the base model's answer for an allowed one the fine-tuned model refused (empty when the base model
    refused too), and otherwise the fine-tuned answer to fix."""
    if item.blocked:
        return refusal or item.reference
    if item.blocked is False:
        return item.before_output if item.before_ok else ""
    return item.after_output


def _guardrail_specs(*datasets: Dataset) -> list[GuardrailSpec]:
    """The guardrail templates of the target dataset and of the run's, in that order (the same one once)."""
    specs, seen = [], set()
    for dataset in datasets:
        template = dataset.template
        if template is None or template.pk in seen:
            continue
        seen.add(template.pk)
        spec = spec_or_none(template.kind, template.spec)
        if isinstance(spec, GuardrailSpec):
            specs.append(spec)
    return specs


def _refusal(tags: list[str], specs: list[GuardrailSpec]) -> str:
    """The template's refusal for the blocked topic a pair is tagged with (blocked:<topic>), or ""."""
    for tag in tags:
        name = tag.removeprefix("blocked:")
        if name == tag:
            continue
        for spec in specs:
            topic = spec.topic(name)
            if topic is not None and topic.blocked:
                return spec.refusal_for(topic)
    return ""


# --- the worker's part: reword, then write


def failures_paraphrase_run(*, job_id: int) -> None:
    """Run a queued rewording job once: the generator rewords each failed prompt, then the drafts are written in
    the commit that ends the job (a job the sweeper failed meanwhile writes nothing)."""
    job = job_claim(job_id)
    if job is None:
        return
    with job_beating(job):
        try:
            _paraphrase_job(job)
        except (GeneratorError, ValidationError, TrainingRun.DoesNotExist) as error:
            message = "; ".join(error.messages) if isinstance(error, ValidationError) else str(error)
            if isinstance(error, TrainingRun.DoesNotExist):
                message = "the run was deleted before the job ran"
            job_finish(job, status=JobStatus.FAILED, error=message, phase="failed")
        except Exception as error:
            logger.exception("failures job %s failed", job.pk)
            job_finish(job, status=JobStatus.FAILED, error=f"the job failed: {error}", phase="failed")


def _paraphrase_job(job: Job) -> None:
    run = TrainingRun.objects.select_related("snapshot__dataset__template").get(pk=job.params["run"])
    drafter = generator_get(job.params["generator"], workspace=job.dataset.workspace)
    chosen = list(run.eval_items.filter(pk__in=job.params["items"]).select_related("example").order_by("id"))
    items = _not_sent(chosen, job.dataset)  # sent by someone else since the request: no need to reword them
    rewordings: list[str] = []
    for start in range(0, len(items), PARAPHRASE_BATCH):
        job_progress(job, "rewording", 0.9 * start / len(items))
        rewordings += _reword(drafter, [item.prompt for item in items[start : start + PARAPHRASE_BATCH]])
    job_progress(job, "saving", 0.95)
    with transaction.atomic():
        reworded = [(item, text) for item, text in zip(items, rewordings, strict=True) if text]
        outcome = _write(run, reworded, target=job.dataset, user=job.created_by, paraphrased=True)
        outcome.skipped += job.params.get("skipped", 0) + len(job.params["items"]) - len(items)
        outcome.not_reworded = len(items) - len(reworded)
        if not job_finish(job, status=JobStatus.SUCCEEDED, result=outcome.as_dict(), progress=1.0, phase="done"):
            transaction.set_rollback(True)  # the job was failed meanwhile: its outcome, drafts included, is dropped


def _reword(drafter: Generator, prompts: list[str]) -> list[str]:
    """One rewording of each prompt ("" when no style gave one), asking again in the next style only for those
    still without one."""
    found = [""] * len(prompts)
    for style in range(REWORD_TRIES):
        missing = [index for index, text in enumerate(found) if not text]
        if not missing:
            break
        answers = paraphrase_prompts(drafter, [prompts[index] for index in missing], 1, start=style)
        for index, texts in zip(missing, answers, strict=True):
            found[index] = texts[0] if texts else ""
    return found


# --- reads: what was sent, and where a draft came from


def failure_drafts_sent(*, run: TrainingRun, dataset: Dataset) -> dict[int, int]:
    """{evaluated prompt id: draft pair id} of the run's prompts sent to `dataset`."""
    links = FailureDraft.objects.filter(eval_item__run=run, dataset=dataset)
    return dict(links.values_list("eval_item_id", "example_id"))


def expected_behaviour(item: EvalItem, kind: str) -> str:
    """What the evaluation expected of the model, in words."""
    if item.blocked:
        return "Refuse: the prompt is on a blocked topic."
    if item.blocked is False:
        return "Answer: the prompt is on an allowed topic (the fine-tuned model refused it)."
    if kind == "mcq":
        return "A question in the dataset's multiple-choice format (the fine-tuned model's was not)."
    return "The evaluation pair's answer, exactly (the fine-tuned model's differed)."


def _response_was(item: EvalItem) -> str:
    if item.blocked:
        return "a refusal: the template's for the prompt's topic, else the evaluation pair's"
    if item.blocked is False:
        return "the base model's answer" if item.before_ok else "empty: the base model refused too, so write the answer"
    return "the fine-tuned model's answer, to fix"


def failure_origin(*, example: Example) -> Origin | None:
    """The failed evaluated prompt a draft was made from, for its editor (settings.PAIR_ORIGINS)."""
    link = FailureDraft.objects.select_related("eval_item__run__snapshot").filter(example_id=example.pk).first()
    if link is None:
        return None
    item, run = link.eval_item, link.eval_item.run
    prompt_was = (
        "a model's rewording of the evaluated prompt, so the evaluation set stays clean"
        if link.paraphrased
        else "the evaluated prompt as is: it repeats the evaluation set (the lint flags it: eval_overlap)"
    )
    facts = [
        ("Evaluated prompt", item.prompt),
        ("Expected", expected_behaviour(item, run.snapshot.kind)),
        *([("The evaluation pair's answer", item.reference)] if item.reference else []),
        ("The fine-tuned model said", item.after_output or "(nothing)"),
        ("The base model said", item.before_output or "(nothing)"),
        ("This pair's prompt", prompt_was),
        ("This pair's response started as", _response_was(item)),
    ]
    url = f"{reverse('training-run', args=[run.pk])}#eval-item-{item.pk}"
    return Origin(title=f"From run {run.pk}: a prompt it failed in its evaluation", url=url, facts=tuple(facts))
