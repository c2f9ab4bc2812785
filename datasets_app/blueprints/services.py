"""Templates: create and edit them, preview what they generate, generate pairs, and have a model draft responses.

Model work (drafting, paraphrasing) only ever runs on a worker: the web process never loads a model.
A model draft longer than PAIR_TEXT_MAX_CHARS is cut to that length (the job's result counts them as
"cut"; the pair stays a draft for an annotator to check), so one runaway answer does not lose the batch.
"""

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from datasets_app.blueprints.generators import ChatRequest, Generator, GeneratorError, generator_get, paraphrase_prompts
from datasets_app.blueprints.plans import Plan, PlannedPair, guardrail_pairs, guardrail_preference_pairs, mcq_pairs
from datasets_app.blueprints.specs import GuardrailSpec, SpecError, parse_spec
from datasets_app.curation.content import normalize
from datasets_app.curation.limits import pair_text_max, texts_require
from datasets_app.curation.selectors import role_require
from datasets_app.curation.services import example_update, examples_bulk_create
from datasets_app.errors import BulkInvalid, Conflict, StaleVersion
from datasets_app.jobs.services import job_beating, job_claim, job_create, job_finish, job_progress
from datasets_app.models import (
    Dataset,
    DatasetKind,
    Example,
    ExampleStatus,
    Job,
    JobStatus,
    Role,
    Template,
    TemplateKind,
    Workspace,
)

logger = logging.getLogger(__name__)
DRAFT_BATCH = 8
DRAFT_MAX_NEW_TOKENS = 256
MAX_DRAFT_SELECTION = 500


# --- templates


def _checked_spec(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    try:
        return parse_spec(kind, spec).to_dict()
    except SpecError as error:
        raise ValidationError({"spec": error.problems}) from error


@transaction.atomic
def template_create(
    *, workspace: Workspace, user: AbstractBaseUser, name: str, kind: str, spec: dict[str, Any], description: str = ""
) -> Template:
    """A new template (leads only); its spec is checked and stored in normal form."""
    role_require(user=user, workspace=workspace, role=Role.LEAD)
    texts_require(name=name, description=description)
    template = Template(
        workspace=workspace,
        name=name.strip(),
        kind=kind,
        description=description,
        spec=_checked_spec(kind, spec),
        created_by=user,
        updated_by=user,
    )
    _save_unique(template)
    return template


@transaction.atomic
def template_update(*, template: Template, user: AbstractBaseUser, expected_version: int, **fields: Any) -> Template:
    """Edit a template's name, description or spec; refuses a stale version so no one's edit is lost."""
    role_require(user=user, workspace=template.workspace, role=Role.LEAD)
    locked = Template.objects.select_for_update().get(pk=template.pk)
    if locked.version != expected_version:
        raise StaleVersion(current=locked)
    texts_require(**{name: value for name, value in fields.items() if name in ("name", "description")})
    if "spec" in fields:
        fields["spec"] = _checked_spec(locked.kind, fields["spec"])
    if "name" in fields:
        fields["name"] = fields["name"].strip()
    for name, value in fields.items():
        setattr(locked, name, value)
    locked.version += 1
    locked.updated_by = user
    _save_unique(locked)
    return locked


def _save_unique(template: Template) -> None:
    template.full_clean(exclude=["workspace", "spec"], validate_constraints=False)
    try:
        with transaction.atomic():
            template.save()
    except IntegrityError as error:
        raise Conflict({"name": [f"this workspace already has a template named {template.name!r}"]}) from error


@transaction.atomic
def template_delete(*, template: Template, user: AbstractBaseUser) -> None:
    """Delete a template; pairs it generated stay, datasets it checked lose their validator."""
    role_require(user=user, workspace=template.workspace, role=Role.LEAD)
    template.delete()


# --- what a template generates


def template_plan(
    *, template: Template, dataset: Dataset | None = None, paraphrases: int | None = None, preference: bool = False
) -> Plan:
    """What generating would create (`preference`: preference pairs, from a guardrail template), marking prompts the
    dataset already has; no model is called."""
    spec = parse_spec(template.kind, template.spec)
    if not isinstance(spec, GuardrailSpec):
        pairs = mcq_pairs(spec)
    else:
        pairs = guardrail_preference_pairs(spec) if preference else guardrail_pairs(spec)
    if dataset is not None:
        pairs = _mark_existing(dataset, pairs)
    default = spec.paraphrases if isinstance(spec, GuardrailSpec) else 0
    return Plan(pairs=pairs, paraphrases=default if paraphrases is None else paraphrases)


def _mark_existing(dataset: Dataset, pairs: list[PlannedPair]) -> list[PlannedPair]:
    """Marks pairs whose system prompt and prompt the dataset already holds (case and spacing aside).

    One streamed pass over the dataset's prompts: normalized text has no index to look it up by.
    """
    rows = Example.objects.filter(dataset=dataset).values_list("system_prompt", "prompt")
    seen = {_key(system, prompt) for system, prompt in rows.iterator(chunk_size=5000)}
    marked = []
    for pair in pairs:
        key = _key(pair.system_prompt, pair.prompt)
        marked.append(replace(pair, exists=key in seen))
        seen.add(key)
    return marked


def _key(system_prompt: str, prompt: str) -> tuple[str, str]:
    return normalize(system_prompt), normalize(prompt)


# --- generating pairs


@dataclass
class GenerateOutcome:
    created: int
    skipped: int
    drafted: int = 0
    paraphrased: int = 0
    cut: int = 0  # drafts cut to PAIR_TEXT_MAX_CHARS
    example_ids: list[int] = field(default_factory=list)
    refused: int | None = None  # preference pairs only: model drafts that refused, so their pair lacks contrast

    def as_dict(self) -> dict[str, Any]:
        counts = {
            "created": self.created,
            "skipped": self.skipped,
            "drafted": self.drafted,
            "paraphrased": self.paraphrased,
            "cut": self.cut,
        }
        return counts if self.refused is None else {**counts, "refused": self.refused}


def template_generate(
    *,
    template: Template,
    dataset: Dataset,
    user: AbstractBaseUser,
    generator: str | None = None,
    paraphrases: int | None = None,
    preference: bool = False,
) -> GenerateOutcome | Job:
    """Generate the template's pairs into a dataset: now when no model is needed and the pairs are few,
    else as a job on a worker (returns the Job). Prompts the dataset already has are skipped.

    `generator` names a backend in settings.GENERATORS to draft responses (and paraphrase seeds);
    without one, pairs that need a response are created as empty drafts for annotators to write.
    `preference`: a guardrail template's preference pairs into a preference dataset (plans.py says which side
    the model drafts); other datasets take the supervised pairs.
    """
    _check_target(template=template, dataset=dataset, user=user, preference=preference)
    if generator is not None:
        _backend(generator, template.workspace)  # an unknown backend is refused now, not on the worker
    plan = template_plan(
        template=template, dataset=dataset, paraphrases=paraphrases if generator else 0, preference=preference
    )
    if generator is None and len(plan.new) <= settings.GENERATE_SYNC_MAX:
        return _generate_now(template=template, dataset=dataset, user=user, plan=plan, preference=preference)
    params = {"template": template.pk, "generator": generator, "paraphrases": plan.paraphrases}
    return _job_create(
        kind=Job.Kind.GENERATE,
        dataset=dataset,
        user=user,
        params={**params, "preference": True} if preference else params,
    )


def _backend(key: str | None, workspace: Workspace) -> Generator:
    try:
        return generator_get(key, workspace=workspace)
    except GeneratorError as error:
        raise ValidationError({"generator": [str(error)]}) from error


def template_generate_now(*, template: Template, dataset: Dataset, user: AbstractBaseUser) -> GenerateOutcome:
    """Generate without a model, in this process, however many pairs (seeding a demo, scripts)."""
    _check_target(template=template, dataset=dataset, user=user)
    plan = template_plan(template=template, dataset=dataset, paraphrases=0)
    return _generate_now(template=template, dataset=dataset, user=user, plan=plan)


def _check_target(*, template: Template, dataset: Dataset, user: AbstractBaseUser, preference: bool = False) -> None:
    role_require(user=user, workspace=template.workspace, role=Role.LEAD)
    if dataset.workspace_id != template.workspace_id:
        raise ValidationError({"dataset": ["the dataset must be in the template's workspace"]})
    if preference and template.kind != TemplateKind.GUARDRAIL:
        raise Conflict({"template": ["preference pairs come from a guardrail template (refusals against answers)"]})
    if preference != (dataset.kind == DatasetKind.PREFERENCE):
        wanted = "a dataset of kind Preference pairs" if preference else "another kind (use Generate preference pairs)"
        kind = dataset.get_kind_display()
        raise Conflict({"dataset": [f"{dataset.name!r} is a dataset of kind {kind}: these pairs go into {wanted}"]})


def _job_create(*, kind: str, dataset: Dataset, user: AbstractBaseUser, params: dict[str, Any]) -> Job:
    from datasets_app.blueprints.tasks import generate_job_task

    return job_create(kind=kind, dataset=dataset, user=user, task=generate_job_task.name, params=params)


@transaction.atomic
def _generate_now(
    *,
    template: Template,
    dataset: Dataset,
    user: AbstractBaseUser,
    plan: Plan,
    drafter: Generator | None = None,
    drafted: Sequence[str] = (),
    paraphrased: int = 0,
    preference: bool = False,
) -> GenerateOutcome:
    """Write the plan's new pairs in one transaction (all or nothing) and link the dataset to the template."""
    fitted = [_fit(answer) for answer in drafted]
    answers = iter(text for text, _ in fitted)
    pairs = [pair.filled(next(answers)) if pair.drafted and drafter else pair for pair in plan.new]
    items = [_item(template, pair, drafter if pair.drafted else None) for pair in pairs]
    try:
        created, skipped = examples_bulk_create(dataset=dataset, user=user, items=items)
    except BulkInvalid as invalid:
        raise ValidationError({"spec": _too_long(invalid, items)}) from invalid
    if dataset.template_id is None:
        Dataset.objects.filter(pk=dataset.pk).update(template=template, updated_at=timezone.now())
    return GenerateOutcome(
        created=len(created),
        skipped=len(plan.pairs) - len(plan.new) + skipped,
        drafted=len(drafted),
        paraphrased=paraphrased,
        cut=sum(1 for _, cut in fitted if cut),
        example_ids=[example.pk for example in created],
        refused=sum(1 for pair in pairs if drafter and pair.refused()) if preference else None,
    )


def _fit(answer: str) -> tuple[str, bool]:
    """A model's answer within PAIR_TEXT_MAX_CHARS, and whether it had to be cut."""
    cap = pair_text_max()
    return (answer[:cap], True) if len(answer) > cap else (answer, False)


def _too_long(invalid: BulkInvalid, items: list[dict[str, Any]]) -> list[str]:
    """What generating refused, pair by pair (a spec whose texts make pairs over the caps)."""
    messages = [
        f"the pair for {items[index]['prompt'][:60]!r}: {field}: {' '.join(errors)}"
        for index, problems in sorted(invalid.problems.items())
        for field, errors in problems.items()
    ]
    return messages[:10] + ([f"and {len(messages) - 10} more"] if len(messages) > 10 else [])


def _item(template: Template, pair: PlannedPair, drafter: Generator | None) -> dict[str, Any]:
    # Template-written responses (refusals) go to review; model drafts stay drafts for an annotator to check.
    return {
        "prompt": pair.prompt,
        "response": pair.response,
        "rejected": pair.rejected,
        "system_prompt": pair.system_prompt,
        "tags": list(pair.tags),
        "status": ExampleStatus.SUBMITTED if pair.ready(by_model=drafter is not None) else ExampleStatus.DRAFT,
        "source": drafter.source if drafter else f"template:{template.name}"[:255],
    }


def generate_job_run(*, job_id: int) -> None:
    """Run a queued generation or drafting job once; progress and the outcome go to the job row."""
    job = job_claim(job_id)
    if job is None:
        return
    with job_beating(job):
        try:
            result = _draft_job(job) if job.kind == Job.Kind.DRAFT else _generate_job(job).as_dict()
        except (GeneratorError, ValidationError, SpecError, Template.DoesNotExist) as error:
            job_finish(job, status=JobStatus.FAILED, error=_message(error), phase="failed")
        except Exception as error:
            logger.exception("%s job %s failed", job.kind, job.pk)
            job_finish(job, status=JobStatus.FAILED, error=f"the job failed: {error}", phase="failed")
        else:
            job_finish(job, status=JobStatus.SUCCEEDED, result=result, progress=1.0, phase="done")


def _message(error: Exception) -> str:
    if isinstance(error, ValidationError):
        return "; ".join(error.messages)
    if isinstance(error, Template.DoesNotExist):
        return "the template was deleted before the job ran"
    return str(error)


def _generate_job(job: Job) -> GenerateOutcome:
    template = Template.objects.get(pk=job.params["template"])
    key, paraphrases = job.params.get("generator"), job.params.get("paraphrases", 0)
    preference = bool(job.params.get("preference"))
    drafter = generator_get(key, workspace=job.dataset.workspace) if key else None
    plan = template_plan(
        template=template, dataset=job.dataset, paraphrases=paraphrases if drafter else 0, preference=preference
    )
    paraphrased = 0
    if drafter and plan.paraphrases:
        job_progress(job, "paraphrasing", 0.0)
        plan, paraphrased = _with_paraphrases(job.dataset, plan, drafter)
    requests = [pair.request() for pair in plan.new if pair.drafted]
    drafted = _draft_all(job, drafter, requests) if drafter else []
    job_progress(job, "saving", 0.95)
    return _generate_now(
        template=template,
        dataset=job.dataset,
        user=job.created_by,
        plan=plan,
        drafter=drafter,
        drafted=drafted,
        paraphrased=paraphrased,
        preference=preference,
    )


def _with_paraphrases(dataset: Dataset, plan: Plan, drafter: Generator) -> tuple[Plan, int]:
    """Adds model rewordings of each new seed prompt; a blocked seed's rewordings get its refusal."""
    seeds = plan.new
    rewordings = paraphrase_prompts(drafter, [pair.prompt for pair in seeds], plan.paraphrases)
    extra = [replace(pair, prompt=text) for pair, texts in zip(seeds, rewordings, strict=True) for text in texts]
    pairs = _mark_existing(dataset, [*plan.pairs, *extra])
    added = sum(1 for pair in pairs[len(plan.pairs) :] if not pair.exists)
    return Plan(pairs=pairs, paraphrases=plan.paraphrases), added


def _draft_all(job: Job, drafter: Generator, requests: list[ChatRequest]) -> list[str]:
    answers: list[str] = []
    for start in range(0, len(requests), DRAFT_BATCH):
        job_progress(job, "drafting", 0.9 * start / max(len(requests), 1))
        answers += drafter.generate(requests[start : start + DRAFT_BATCH], max_new_tokens=DRAFT_MAX_NEW_TOKENS)
    return answers


# --- drafting responses for existing prompts


def draft_responses_start(
    *, dataset: Dataset, user: AbstractBaseUser, example_ids: Iterable[int] | None = None, generator: str | None = None
) -> Job:
    """Queue a model to draft responses for the dataset's drafts that lack one (or the chosen ones); leads only."""
    role_require(user=user, workspace=dataset.workspace, role=Role.LEAD)
    backend = _backend(generator, dataset.workspace)
    ids = _draft_candidates(dataset, example_ids)
    if not ids:
        raise Conflict({"examples": ["no draft without a response was chosen"]})
    return _job_create(
        kind=Job.Kind.DRAFT, dataset=dataset, user=user, params={"generator": backend.key, "examples": ids}
    )


def _draft_candidates(dataset: Dataset, example_ids: Iterable[int] | None) -> list[int]:
    examples = dataset.examples.filter(status=ExampleStatus.DRAFT, response__regex=r"^\s*$")
    if example_ids is not None:
        chosen = list(example_ids)
        if len(chosen) > MAX_DRAFT_SELECTION:
            raise ValidationError({"examples": [f"choose at most {MAX_DRAFT_SELECTION} pairs at a time"]})
        examples = examples.filter(pk__in=chosen)
    return list(examples.order_by("id").values_list("id", flat=True)[:MAX_DRAFT_SELECTION])


def _draft_job(job: Job) -> dict[str, Any]:
    drafter = generator_get(job.params["generator"], workspace=job.dataset.workspace)
    examples = list(Example.objects.filter(pk__in=job.params["examples"], dataset=job.dataset).order_by("id"))
    drafted, skipped, cut = 0, 0, 0
    for start in range(0, len(examples), DRAFT_BATCH):
        job_progress(job, "drafting", start / max(len(examples), 1))
        batch = examples[start : start + DRAFT_BATCH]
        requests = [ChatRequest(e.prompt, e.system_prompt, tuple(e.history)) for e in batch]
        answers = drafter.generate(requests, max_new_tokens=DRAFT_MAX_NEW_TOKENS)
        for example, answer in zip(batch, answers, strict=True):
            text, was_cut = _fit(answer)
            if _fill_draft(example, text, drafter, job.created_by):
                drafted += 1
                cut += was_cut
            else:
                skipped += 1
    return {"drafted": drafted, "skipped": skipped, "cut": cut}


@transaction.atomic
def _fill_draft(example: Example, answer: str, drafter: Generator, user: AbstractBaseUser) -> bool:
    """Writes a drafted response unless someone wrote one (or changed the pair) while the model worked."""
    current = Example.objects.select_for_update().filter(pk=example.pk).first()
    if current is None or current.version != example.version or current.response.strip() or not answer.strip():
        return False
    try:
        example_update(
            example=current, user=user, expected_version=current.version, response=answer, source=drafter.source
        )
    except (StaleVersion, ValidationError):
        return False
    return True
