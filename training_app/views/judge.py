"""The blind judging page: a prompt and two answers side by side, a verdict by button or key, the next pair; a
prompt of one's own answered by both models on a worker (the page polls); and the tallies the comparison page shows.
Nothing on the page says which model wrote which answer."""

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from datasets_app.curation import selectors as dataset_selectors
from datasets_app.errors import Conflict
from datasets_app.views.common import role_errors_are_403, safe_next
from training_app import selectors
from training_app.forms import VotesToPairsForm
from training_app.judging.preferences import VoteOutcome, preference_targets, preferences_from_votes
from training_app.judging.services import (
    PROMPT_MAX,
    REWRITE_MAX,
    AlreadyJudged,
    Matchup,
    NotJudgeable,
    Tally,
    ab_ask,
    ab_item_get,
    ab_next,
    ab_tallies,
    ab_vote,
    matchup_get,
)
from training_app.models import ABItem, ABStatus, ABVote, RunStatus, TrainingRun
from training_app.views import display

PAGE = "training_app/judge.html"
PAIR = "training_app/partials/judge_pair.html"


def _wants_fragment(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true" and request.headers.get("HX-History-Restore-Request") != "true"


def _judge_url(matchup: Matchup) -> str:
    return f"{reverse('training-judge', args=[matchup.run.pk])}?against={matchup.against_param}"


def _opponent_label(matchup: Matchup) -> str:
    if matchup.against is not None:
        return f"run {matchup.against.pk}"
    short, _ = display.model_label(matchup.run.base_model)
    return f"the base model ({short})"


def _pair_context(request: HttpRequest, matchup: Matchup, **extra: Any) -> dict[str, Any]:
    """What the pair fragment shows: `item` (ready to vote on), `waiting` (a typed prompt being answered), or
    neither (nothing left); `note` and `problem` report the last action."""
    judged = ABVote.objects.filter(user=request.user, item__pair=matchup.pair).count()
    return {"run": matchup.run, "against": matchup.against_param, "judged": judged, "prompt_max": PROMPT_MAX,
            "rewrite_max": REWRITE_MAX, **extra}  # fmt: skip


def _render_pair(request: HttpRequest, matchup: Matchup, *, status: int = 200, **extra: Any) -> HttpResponse:
    context = _pair_context(request, matchup, **extra)
    if "item" not in context and "waiting" not in context:
        context["item"] = ab_next(user=request.user, matchup=matchup)
    if _wants_fragment(request):
        return render(request, PAIR, context)  # htmx swaps 2xx answers only: a problem is said inside
    return render(request, PAGE, {**context, **_page_context(matchup)}, status=status)


def _page_context(matchup: Matchup) -> dict[str, Any]:
    return {"matchup": matchup, "opponent": _opponent_label(matchup), "dataset": matchup.run.snapshot.dataset}


def _matchup(request: HttpRequest, pk: int, against: str | None) -> Matchup | HttpResponse:
    """The two models to judge, or the page saying why they cannot be (a 404 propagates for runs not seen)."""
    run = selectors.run_get(user=request.user, pk=pk)
    try:
        return matchup_get(user=request.user, run=run, against=against or "base")
    except NotJudgeable as error:
        context = {"run": run, "problem": " ".join(error.messages), "status_label": display.status_label(run)}
        return render(request, PAGE, context, status=409)
    except ValidationError as error:
        context = {"run": run, "problem": " ".join(error.messages)}
        return render(request, PAGE, context, status=409 if isinstance(error, Conflict) else 400)


@login_required
@require_GET
def judge(request: HttpRequest, pk: int) -> HttpResponse:
    """`?against=base` (the default) or `?against=<run id>`: the next pair to judge for this person."""
    matchup = _matchup(request, pk, request.GET.get("against"))
    if isinstance(matchup, HttpResponse):
        return matchup
    return _render_pair(request, matchup)


@login_required
@require_POST
def judge_vote(request: HttpRequest, pk: int) -> HttpResponse:
    """A verdict (and perhaps a rewrite) on the item shown, then the next pair; without htmx, back to the page."""
    matchup = _matchup(request, pk, request.POST.get("against"))
    if isinstance(matchup, HttpResponse):
        return matchup
    token, rewrite = request.POST.get("token", ""), request.POST.get("rewrite", "")
    try:
        ab_vote(user=request.user, token=token, choice=request.POST.get("choice", ""), rewrite=rewrite)
    except AlreadyJudged as error:
        return _render_pair(request, matchup, note=f"Not counted: {' '.join(error.messages)}.")
    except ValidationError as error:
        item = ab_item_get(user=request.user, token=token)
        return _render_pair(request, matchup, item=item, rewrite=rewrite, problem=" ".join(error.messages), status=400)
    if not _wants_fragment(request):
        return redirect(_judge_url(matchup))
    return _render_pair(request, matchup, note="Vote saved.")


@login_required
@require_POST
def judge_ask(request: HttpRequest, pk: int) -> HttpResponse:
    """A prompt the person typed: both models answer it on a worker, and the fragment polls until they have."""
    matchup = _matchup(request, pk, request.POST.get("against"))
    if isinstance(matchup, HttpResponse):
        return matchup
    try:
        item = ab_ask(user=request.user, matchup=matchup, prompt=request.POST.get("prompt", ""))
    except AlreadyJudged as error:
        problem = f"Your prompt was not sent: {' '.join(error.messages)}."
        return _render_pair(request, matchup, problem=problem, status=409)
    except ValidationError as error:
        return _render_pair(
            request, matchup, problem="Your prompt was not sent: " + " ".join(error.messages), status=400
        )
    if not _wants_fragment(request):
        return redirect(_judge_url(matchup))
    return _item_fragment(request, matchup, item)


@login_required
@require_GET
def judge_item(request: HttpRequest, pk: int, token: str) -> HttpResponse:
    """The poll of a typed prompt: still answering, its pair once ready, or why it failed (then the next pair)."""
    matchup = _matchup(request, pk, request.GET.get("against"))
    if isinstance(matchup, HttpResponse):
        return matchup
    return _item_fragment(request, matchup, ab_item_get(user=request.user, token=token))


def _item_fragment(request: HttpRequest, matchup: Matchup, item: ABItem) -> HttpResponse:
    if item.status == ABStatus.READY:
        return _render_pair(request, matchup, item=item, note="Both models have answered your prompt.")
    if item.status == ABStatus.FAILED:
        return _render_pair(request, matchup, problem=f"Your prompt could not be answered: {item.error}")
    return _render_pair(request, matchup, waiting=item)


# --- the comparison page's summary, and its votes made into preference pairs


def ab_summary_context(*, user: Any, runs: list[TrainingRun]) -> dict[str, Any]:
    """The comparison page's blind judgement table; for a lead of the first run's workspace, its rows of that
    workspace get "Make preference pairs" (into one of its preference datasets, chosen once for the table)."""
    rows = ab_summary_rows(runs)
    workspace = runs[0].snapshot.dataset.workspace
    lead = bool(rows) and dataset_selectors.can_review(user=user, workspace=workspace)
    targets = preference_targets(workspace_id=workspace.pk) if lead else None
    for row in rows:
        row["pairs"] = lead and row["run"].snapshot.dataset.workspace_id == workspace.pk
    return {
        "ab_rows": rows,
        "pairs_lead": lead,
        "pairs_form": VotesToPairsForm(datasets=targets) if targets is not None and targets.exists() else None,
        "pairs_workspace": workspace,
    }


def ab_summary_rows(runs: list[TrainingRun]) -> list[dict[str, Any]]:
    """The first run against each other run, then each run against its base model: votes, win rate, interval, and
    where to judge (one query for every tally). Only runs that succeeded, of the first run's workspace, are judged."""
    judgeable = [run for run in runs if run.status == "succeeded"]
    first = runs[0]
    matchups = []
    if first in judgeable:
        workspace = first.snapshot.dataset.workspace_id
        others = [run for run in judgeable[1:] if run.snapshot.dataset.workspace_id == workspace and run != first]
        matchups += [Matchup(run=first, against=other) for other in others]
    matchups += [Matchup(run=run, against=None) for run in judgeable]
    return [
        _summary_row(matchup, tally) for matchup, tally in zip(matchups, ab_tallies(matchups=matchups), strict=True)
    ]


def _summary_row(matchup: Matchup, tally: Tally) -> dict[str, Any]:
    interval = tally.interval
    return {
        "run": matchup.run, "against": matchup.against, "opponent": _opponent_label(matchup), "tally": tally,
        "win_rate": _percent(tally.win_rate), "interval": [_percent(value) for value in interval] if interval else None,
        "judge_url": _judge_url(matchup), "key": matchup.pair,
    }  # fmt: skip


def _percent(value: float | None) -> str:
    return f"{value * 100:.0f}%" if value is not None else "—"


@login_required
@require_POST
@role_errors_are_403
def judge_preference_pairs(request: HttpRequest, pk: int) -> HttpResponse:
    """ "Make preference pairs" (leads): the blind votes on the run against `against` become pairs of the chosen
    preference dataset; back to the page it came from (`next`) with the counts."""
    run = selectors.run_get(user=request.user, pk=pk)
    workspace = run.snapshot.dataset.workspace
    if not dataset_selectors.can_review(user=request.user, workspace=workspace):
        raise PermissionDenied("making preference pairs from votes needs the lead role")
    back = safe_next(request, reverse("training-run", args=[run.pk]))
    form = VotesToPairsForm(request.POST, datasets=preference_targets(workspace_id=workspace.pk))
    if not form.is_valid():
        problems = "; ".join(message for errors in form.errors.values() for message in errors)
        messages.error(request, f"No pairs were made: {problems}")
        return redirect(back)
    dataset = form.cleaned_data["dataset"]
    try:
        outcome = preferences_from_votes(
            user=request.user, dataset=dataset, run=run, against=form.cleaned_data["against"] or "base"
        )
    except ValidationError as error:
        messages.error(request, "No pairs were made: " + " ".join(error.messages))
        return redirect(back)
    messages.success(request, votes_message(outcome, dataset.name))
    return redirect(back)


def votes_message(outcome: VoteOutcome, dataset: str) -> str:
    def count(n: int, noun: str) -> str:
        return f"{n} {noun}{'' if n == 1 else 's'}"

    skipped = [
        (outcome.already, "already made"),
        (outcome.duplicates, "already in the dataset"),
        (outcome.ties, "tie" if outcome.ties == 1 else "ties"),
        (outcome.both_bad, "both bad without a rewrite"),
        (outcome.unusable, "with the same text on both sides"),
    ]
    said = "; ".join(f"{n} {what}" for n, what in skipped if n)
    return (
        f"Made {count(outcome.created, 'preference pair')} in {dataset} from {count(outcome.votes, 'vote')}, "
        f"submitted for review{f' (skipped: {said})' if said else ''}."
    )


def run_votes_context(*, user: Any, run: TrainingRun) -> dict[str, Any]:
    """The run page's "Make preference pairs" from the votes against the base model: for leads, once a run that
    succeeded has such votes (one query), with the workspace's preference datasets to choose from."""
    workspace = run.snapshot.dataset.workspace
    if run.status != RunStatus.SUCCEEDED or not dataset_selectors.can_review(user=user, workspace=workspace):
        return {}
    votes = ABVote.objects.filter(item__pair=Matchup(run=run, against=None).pair).count()
    if not votes:
        return {}
    targets = preference_targets(workspace_id=workspace.pk)
    return {"base_votes": votes, "pairs_form": VotesToPairsForm(datasets=targets) if targets.exists() else None}
