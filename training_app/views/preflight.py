"""The New run page's Check step (htmx fragments): the run's preflight, and one pair's tokens by their part in training."""

from itertools import groupby
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from datasets_app.views.common import parse_id, role_errors_are_403
from training_app import selectors
from training_app.forms import RunForm
from training_app.preflight.estimate import MEASURED
from training_app.preflight.report import Preflight, TokenizerMissing, pair_tokens, run_preflight
from training_app.views import display
from training_app.views.pages import run_form_sources

LISTED_PAIRS = 50  # the longest pairs are listed: the ones a lead wants to look at
MERGE_OVER_TOKENS = 5000  # a longer pair shows runs of tokens of one kind, not every token (page size)


@login_required
@require_POST
@role_errors_are_403
def run_check(request: HttpRequest) -> HttpResponse:
    """The preflight of the run the form describes; problems with the form are listed instead."""
    trainable = selectors.trainable_dataset_list(user=request.user)
    if not trainable.exists():
        raise PermissionDenied("checking a run needs the lead role in a workspace")
    form = RunForm(request.POST, **run_form_sources(request))
    context: dict[str, Any] = {"form": form}
    if form.is_valid():
        try:
            report = run_preflight(
                user=request.user, dataset=form.cleaned_data["dataset"], base_model=form.cleaned_data["base_model"],
                method=form.cleaned_data["method"], objective=form.cleaned_data["objective"],
                init_run=form.cleaned_data["init_run"], hyperparameters=form.hyperparameters(),
                validation_fraction=form.cleaned_data["validation_fraction"],
            )  # fmt: skip
        except ValidationError as error:
            form.add_service_errors(error)
        except TokenizerMissing as error:
            context["problem"] = str(error)
        else:
            context.update(_report_context(report))
    context["errors"] = [
        (form.fields[name].label if name in form.fields else "", message)
        for name, messages in form.errors.items()
        for message in messages
    ]
    return render(request, "training_app/partials/preflight.html", context)


def _report_context(report: Preflight) -> dict[str, Any]:
    estimate = report.estimate
    assert estimate is not None
    longest = sorted(report.pairs, key=lambda pair: (-pair.full_tokens, pair.example or 0))[:LISTED_PAIRS]
    query = {"base_model": report.base_model, "max_seq_len": report.config.max_seq_len}
    return {
        "report": report,
        "train": report.splits["train"],
        "validation": report.splits["validation"],
        "estimate": estimate,
        "estimate_text": display.duration(estimate.seconds) or "0 s",
        "measured": estimate.basis == MEASURED,
        "pairs": [
            {
                "pair": pair,
                "url": display.example_url(pair.example) if pair.example else "",
                "tokens_url": f"{reverse('training-run-check-pair')}?{urlencode({**query, 'example': pair.example})}",
            }
            for pair in longest
        ],
    }


@login_required
@require_GET
@role_errors_are_403
def run_check_pair(request: HttpRequest) -> HttpResponse:
    """One pair's tokens, coloured trained, masked or cut, with the base model's chat template as training uses it."""
    example = parse_id(request.GET.get("example"))
    if example is None:
        raise Http404("no such pair")
    max_seq_len = request.GET.get("max_seq_len", "")
    context: dict[str, Any] = {}
    try:
        found = pair_tokens(
            user=request.user, example=example, base_model=request.GET.get("base_model", ""),
            max_seq_len=int(max_seq_len) if max_seq_len.isdigit() and len(max_seq_len) <= 9 else None,
        )  # fmt: skip
    except ValidationError as error:
        context["problems"] = error.messages
    except TokenizerMissing as error:
        context["problems"] = [str(error)]
    else:
        merged = len(found.pieces) > MERGE_OVER_TOKENS
        context.update(
            found=found,
            pieces=_runs(found.pieces) if merged else found.pieces,
            merged=merged,
            cut=found.counts.full_tokens - found.counts.tokens,
        )
    return render(request, "training_app/partials/pair_tokens.html", context)


def _runs(pieces: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Neighbouring tokens of one kind joined into one piece."""
    return [("".join(text for text, _ in run), kind) for kind, run in groupby(pieces, key=lambda piece: piece[1])]
