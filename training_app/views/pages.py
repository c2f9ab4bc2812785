"""The runs dashboard, the new-run form, the run page (with its live JSON) and the playground."""

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from datasets_app.curation import selectors as dataset_selectors
from datasets_app.models import Dataset, Job
from datasets_app.views.common import role_errors_are_403
from training_app import selectors, services
from training_app.exports import NoModel, merged_export_start
from training_app.failures import SendOutcome, failure_drafts_sent, failures_send
from training_app.forms import AS_IS, RunForm, SendFailuresForm
from training_app.ml.config import is_adapter_method, is_quantized_method
from training_app.models import PREFERENCE_OBJECTIVES, RunStatus, TrainingRun
from training_app.views import display
from training_app.views.judge import run_votes_context

DASHBOARD_LIMIT = 100
LOG_TAIL = 50
MAX_ID_DIGITS = 18
LIVE_PREFERENCE_METRICS = ("reward_margin", "reward_accuracy", "logp_chosen", "logp_rejected")


def _id(value: str | None) -> int | None:
    """A row id from a query string, or None for anything else (a huge number is not a database error)."""
    return int(value) if value and value.isdigit() and len(value) <= MAX_ID_DIGITS else None


def _wants_fragment(request: HttpRequest) -> bool:
    """An htmx swap asks for the fragment; htmx restoring history (Back) asks for the whole page."""
    return request.headers.get("HX-Request") == "true" and request.headers.get("HX-History-Restore-Request") != "true"


def _row(run: TrainingRun) -> dict[str, Any]:
    short, full = display.model_label(run.base_model)
    return {
        "run": run,
        "status_label": display.status_label(run),
        "timing": display.timing_text(run),
        "model_short": short,
        "model_full": full,
        "dataset_url": display.dataset_url(run.snapshot.dataset_id),
        "key_metric": display.key_metric_text(selectors.key_metric(run)),
        "progress_pct": f"{run.progress * 100:.0f}",
    }


@login_required
@require_GET
def run_dashboard(request: HttpRequest) -> HttpResponse:
    """Every run the user can see, newest first; while any is queued or running, htmx refreshes the list every 2 s."""
    dataset_id = _id(request.GET.get("dataset"))
    runs = list(selectors.run_list(user=request.user, dataset_id=dataset_id)[: DASHBOARD_LIMIT + 1])
    context = {
        "rows": [_row(run) for run in runs[:DASHBOARD_LIMIT]],
        "more": len(runs) > DASHBOARD_LIMIT,
        "active": any(not run.finished for run in runs),
        "dataset_id": dataset_id,
        "poll_query": f"?dataset={dataset_id}" if dataset_id else "",
    }
    if _wants_fragment(request):
        response = render(request, "training_app/partials/run_list.html", context)
    else:
        context["datasets"] = dataset_selectors.dataset_list(user=request.user).order_by("workspace__name", "name")
        context["can_start"] = selectors.trainable_dataset_list(user=request.user).exists()
        response = render(request, "training_app/dashboard.html", context)
    patch_vary_headers(response, ["HX-Request"])
    return response


def _initial_from(request: HttpRequest) -> dict[str, Any]:
    """?dataset= preselects a dataset; ?from=<run> copies that run's settings ("run it again, but ...")."""
    initial: dict[str, Any] = {}
    source_id = _id(request.GET.get("from"))
    if source_id is not None:
        source = selectors.run_get(user=request.user, pk=source_id)
        hyperparameters = dict(source.hyperparameters)
        if isinstance(hyperparameters.get("lora_target_modules"), list):
            hyperparameters["lora_target_modules"] = ", ".join(hyperparameters["lora_target_modules"])
        initial.update(
            hyperparameters,
            dataset=source.snapshot.dataset_id,
            base_model=source.base_model,
            method=source.method,
            objective=source.objective,
            init_run=source.init_run_id,
            validation_fraction=source.snapshot.validation_fraction,
        )
    init_id = _id(request.GET.get("init_run"))
    if init_id is not None:  # "Continue from this run": its base model, preference tuning next
        start = selectors.run_get(user=request.user, pk=init_id)
        initial.update(init_run=start.pk, base_model=start.base_model, method="lora")
    dataset_id = _id(request.GET.get("dataset"))
    if dataset_id is not None:
        initial["dataset"] = dataset_id
        dataset = dataset_selectors.dataset_list(user=request.user).filter(pk=dataset_id).first()
        if dataset is not None and dataset.workspace.default_base_model and source_id is None:
            initial["base_model"] = dataset.workspace.default_base_model
    return initial


def run_form_sources(request: HttpRequest) -> dict[str, QuerySet]:
    """What the new-run form accepts (the service decides the rest) and offers: datasets and runs to start from."""
    return {
        "visible": dataset_selectors.dataset_list(user=request.user),
        "trainable": selectors.trainable_dataset_list(user=request.user),
        "visible_runs": selectors.run_list(user=request.user),
        "startable_runs": selectors.startable_run_list(user=request.user),
    }


@login_required
@require_http_methods(["GET", "POST"])
@role_errors_are_403
def run_new(request: HttpRequest) -> HttpResponse:
    """The new-run form (leads): a fresh snapshot of the chosen dataset, then a queued run; errors sit by their fields."""
    trainable = selectors.trainable_dataset_list(user=request.user)
    if not trainable.exists():
        raise PermissionDenied("starting a run needs the lead role in a workspace")
    sources = run_form_sources(request)
    if request.method == "GET":
        form = RunForm(**sources, initial=_initial_from(request))
        return render(request, "training_app/run_new.html", {"form": form})
    form = RunForm(request.POST, **sources)
    if form.is_valid():
        try:
            run = services.run_create(
                user=request.user,
                dataset=form.cleaned_data["dataset"],
                base_model=form.cleaned_data["base_model"],
                method=form.cleaned_data["method"],
                objective=form.cleaned_data["objective"],
                init_run=form.cleaned_data["init_run"],
                hyperparameters=form.hyperparameters(),
                validation_fraction=form.cleaned_data["validation_fraction"],
            )
        except ValidationError as error:
            form.add_service_errors(error)
        else:
            messages.success(request, f"Run {run.pk} is queued; it starts when a training worker is free.")
            return redirect("training-run", pk=run.pk)
    return render(request, "training_app/run_new.html", {"form": form}, status=400)


@login_required
@require_GET
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """Status, live progress, chart and log; once finished, the evaluation, every evaluated prompt and the artifact."""
    run = selectors.run_get(user=request.user, pk=pk)
    dataset = run.snapshot.dataset
    sent = failure_drafts_sent(run=run, dataset=dataset)
    items = [
        {
            "item": item,
            "url": display.example_url(item.example_id) if item.example_id else "",
            "draft_url": display.example_url(sent[item.pk]) if item.pk in sent else "",
            "draft_id": sent.get(item.pk),
        }
        for item in selectors.eval_item_list(run=run)
    ]
    is_lead = dataset_selectors.can_review(user=request.user, workspace=dataset.workspace)
    failed = [entry for entry in items if entry["item"].after_ok is False]
    can_send = is_lead and run.status == RunStatus.SUCCEEDED and bool(failed)
    targets = _send_targets(request, run) if can_send else Dataset.objects.none()
    logs = selectors.run_log_tail(run=run, limit=LOG_TAIL)
    short, full = display.model_label(run.base_model)
    context = {
        "run": run,
        "snapshot": run.snapshot,
        "dataset": dataset,
        "dataset_url": display.dataset_url(run.snapshot.dataset_id),
        "live": display.live_state(run),
        "attempts": display.attempt_rows(run),
        "model_short": short,
        "model_full": full,
        "is_lead": is_lead,
        "can_send": can_send,
        "send_form": SendFailuresForm(
            datasets=targets, workspace=run.snapshot.dataset.workspace, initial={"dataset": dataset.pk}
        ),
        "n_failed": len(failed),
        "n_unsent": sum(1 for entry in failed if not entry["draft_id"]),
        "can_cancel": run.status in (RunStatus.QUEUED, RunStatus.RUNNING) and not run.cancel_requested,
        "evaluation_rows": display.evaluation_rows(run.evaluation),
        "evaluation_counts": display.evaluation_counts(run.evaluation),
        "evaluation_source": display.evaluation_source(run.evaluation),
        "items": items,
        "passed_before": sum(1 for entry in items if entry["item"].before_ok),
        "passed_after": sum(1 for entry in items if entry["item"].after_ok),
        "logs": logs,
        "last_log_id": logs[-1].pk if logs else 0,
        "log_tail": LOG_TAIL,
        "hyperparameters": [
            (name, ", ".join(map(str, value)) if isinstance(value, list) else value)
            for name, value in sorted(run.hyperparameters.items())
        ],
        "summary": run.summary,
        "train_duration": display.duration(run.summary.get("train_seconds")),
        "preference": run.objective in PREFERENCE_OBJECTIVES,
        "before_label": "Starting model" if run.init_run_id else _base_label(run),
        "can_continue": run.status == RunStatus.SUCCEEDED and is_adapter_method(run.method) and bool(run.artifact),
        **run_votes_context(user=request.user, run=run),
    }
    return render(request, "training_app/run_detail.html", context)


def _base_label(run: TrainingRun) -> str:
    # A qlora run is scored against the base it trained over: the 4-bit one.
    return "Base model (4-bit)" if is_quantized_method(run.method) else "Base model"


def _send_targets(request: HttpRequest, run: TrainingRun) -> QuerySet[Dataset]:
    """Datasets a run's failures may go to: those of its workspace."""
    workspace = run.snapshot.dataset.workspace
    return dataset_selectors.dataset_list(user=request.user, workspace=workspace).order_by("name")


@login_required
@require_POST
@role_errors_are_403
def run_send_failures(request: HttpRequest, pk: int) -> HttpResponse:
    """Failed evaluated prompts (all, or a row's) become draft pairs: as is now, or reworded by a worker (job page)."""
    run = selectors.run_get(user=request.user, pk=pk)
    if not dataset_selectors.can_review(user=request.user, workspace=run.snapshot.dataset.workspace):
        raise PermissionDenied("sending failures to annotators needs the lead role")
    back = f"{reverse('training-run', args=[run.pk])}#eval-items"
    form = SendFailuresForm(
        request.POST, datasets=_send_targets(request, run), workspace=run.snapshot.dataset.workspace
    )
    if not form.is_valid():
        messages.error(request, "Nothing was sent: " + "; ".join(m for errors in form.errors.values() for m in errors))
        return redirect(back)
    data = form.cleaned_data
    try:
        outcome = failures_send(
            run=run, user=request.user, item_ids=[data["item"]] if data["item"] else None, dataset=data["dataset"],
            paraphrase=data["prompts"] != AS_IS, generator=None if data["prompts"] == AS_IS else data["prompts"],
        )  # fmt: skip
    except ValidationError as error:
        messages.error(request, "Nothing was sent: " + "; ".join(error.messages))
        return redirect(back)
    if isinstance(outcome, Job):
        return redirect("job", pk=outcome.pk)
    messages.success(request, _sent_message(outcome, data["dataset"].name))
    return redirect(back)


def _sent_message(outcome: SendOutcome, dataset: str) -> str:
    created = f"{outcome.created} draft pair{'' if outcome.created == 1 else 's'}"
    skipped = f"; {outcome.skipped} already sent" if outcome.skipped else ""
    return f"Created {created} in {dataset} for annotators to finish (Next draft to finish){skipped}."


@login_required
@require_GET
def run_live(request: HttpRequest, pk: int) -> JsonResponse:
    """The run page's poll: status and progress, plus the metrics and log lines written since the ids it last saw."""
    run = selectors.run_get(user=request.user, pk=pk)
    metrics = selectors.run_metric_list(run=run, after_id=_id(request.GET.get("metrics_after")) or 0)
    logs = selectors.run_log_tail(run=run, after_id=_id(request.GET.get("logs_after")) or 0, limit=LOG_TAIL)
    return JsonResponse(
        {
            **display.live_state(run),
            "metrics": [
                {
                    "id": m.pk,
                    "step": m.step,
                    "epoch": m.epoch,
                    "loss": m.loss,
                    "val_loss": m.val_loss,
                    **{name: getattr(m, name) for name in LIVE_PREFERENCE_METRICS},
                }
                for m in metrics.only("id", "step", "epoch", "loss", "val_loss", *LIVE_PREFERENCE_METRICS)
            ],  # fmt: skip
            "logs": [{"id": line.pk, "line": line.line, "time": display.clock(line.created_at)} for line in logs],
        }
    )


@login_required
@require_POST
@role_errors_are_403
def run_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    run = services.run_cancel(run=selectors.run_get(user=request.user, pk=pk), user=request.user)
    if run.status == RunStatus.CANCELLED:
        messages.success(request, f"Run {run.pk} is cancelled.")
    elif run.cancel_requested and not run.finished:
        messages.success(request, f"Run {run.pk} stops within a few seconds; the metrics so far are kept.")
    else:
        messages.info(request, f"Run {run.pk} had already finished ({run.get_status_display().lower()}).")
    return redirect("training-run", pk=run.pk)


@login_required
@require_POST
def run_export_merged(request: HttpRequest, pk: int) -> HttpResponse:
    """The merged model: its download when built, else the page of the job building it (started if none is)."""
    run = selectors.run_get(user=request.user, pk=pk)
    try:
        built = merged_export_start(run=run, user=request.user)
    except NoModel as error:
        messages.error(request, str(error))
        return redirect("training-run", pk=run.pk)
    if isinstance(built, Job):
        return redirect("job", pk=built.pk)
    return redirect(reverse("api-run-export", args=[run.pk]) + "?format=merged")


@login_required
@require_GET
def playground(request: HttpRequest, pk: int) -> HttpResponse:
    """A prompt answered by the base and the fine-tuned model side by side (a worker generates; the page polls)."""
    run = selectors.run_get(user=request.user, pk=pk)
    short, _ = display.model_label(run.base_model)
    context = {
        "run": run,
        "dataset": run.snapshot.dataset,
        "model_short": short,
        "ready": run.status == RunStatus.SUCCEEDED,
        "status_label": display.status_label(run),
        "history": selectors.playground_list(run=run, user=request.user),
        "generate_url": reverse("api-run-generate", args=[run.pk]),
    }
    return render(request, "training_app/playground.html", context)
