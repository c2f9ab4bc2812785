"""Blind A/B judgement: which two models a page judges, the next prompt to show a person, a typed prompt for a
worker to answer, a vote, and the tally. Which model wrote which side stays in the ABItem row."""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count
from django.http import Http404
from django.utils import timezone

from datasets_app.curation.selectors import role_require
from datasets_app.errors import Conflict
from datasets_app.jobs.outbox import dispatch_on_commit
from datasets_app.models import Role
from training_app.judging.stats import wilson_interval
from training_app.models import ABChoice, ABItem, ABStatus, ABVote, EvalItem, RunStatus, TrainingRun
from training_app.selectors import User, run_list

AB_TASK = "training_app.tasks.ab_answer_task"
PROMPT_MAX = 8000
REWRITE_MAX = 20000
MAX_ID_DIGITS = 18


class NotJudgeable(Conflict):
    """A run whose answers cannot be judged (it has not succeeded): a 409."""


class AlreadyJudged(Conflict):
    """The person has already voted on this item, or on this prompt for these two models: a 409."""


@dataclass(frozen=True)
class Matchup:
    """A run against the base model (`against` None) or against another run; `pair` names the two, unordered."""

    run: TrainingRun
    against: TrainingRun | None

    @property
    def me(self) -> str:
        return f"run:{self.run.pk}"

    @property
    def other(self) -> str:
        return f"run:{self.against.pk}" if self.against is not None else f"base:{self.run.base_model}"

    @property
    def pair(self) -> str:
        return "|".join(sorted((self.me, self.other)))

    @property
    def against_param(self) -> str:
        return str(self.against.pk) if self.against is not None else "base"


def prompt_hash(prompt: str) -> str:
    return hashlib.sha256(prompt.encode()).hexdigest()


def matchup_get(*, user: User, run: TrainingRun, against: str) -> Matchup:
    """The two models to judge: `run` (one the user sees) against "base" or another run id of its workspace.

    Any member of the run's workspace may judge. A run the user cannot see is a 404, exactly like a missing one; a
    run of another workspace, the run itself or a malformed value is a ValidationError naming `against`; a run that
    has not succeeded is NotJudgeable.
    """
    role_require(user=user, workspace=run.snapshot.dataset.workspace, role=Role.ANNOTATOR)
    _require_succeeded(run)
    value = against.strip()
    if value in ("", "base"):
        return Matchup(run=run, against=None)
    if not value.isdigit() or len(value) > MAX_ID_DIGITS:
        raise ValidationError({"against": f"expected 'base' or a run id, got '{value[:40]}'"})
    other = run_list(user=user).filter(pk=int(value)).first()
    if other is None:
        raise Http404(f"against: no run {value} that you can see")
    if other.pk == run.pk:
        raise Conflict({"against": "a run cannot be judged against itself: give 'base' or another run"})
    if other.snapshot.dataset.workspace_id != run.snapshot.dataset.workspace_id:
        raise Conflict({"against": f"run {other.pk} is in another workspace: judge runs of one workspace"})
    _require_succeeded(other)
    return Matchup(run=run, against=other)


def _require_succeeded(run: TrainingRun) -> None:
    if run.status != RunStatus.SUCCEEDED:
        raise NotJudgeable(
            f"run {run.pk} has not succeeded (it is {run.get_status_display().lower()}): "
            "only a run that succeeded has answers to judge"
        )


def _lock_person(user: User) -> None:
    """Serialize one person's picks (two tabs, a double refresh), so each gets the same item, not two."""
    get_user_model().objects.select_for_update().filter(pk=user.pk).first()


def _pending(user: User, matchup: Matchup) -> ABItem | None:
    unvoted = ABItem.objects.filter(user=user, pair=matchup.pair, status=ABStatus.READY, vote__isnull=True)
    return unvoted.order_by("created_at", "id").first()


@transaction.atomic
def ab_next(*, user: User, matchup: Matchup) -> ABItem | None:
    """The next evaluation prompt for this person and these two models, answers in random order; None when every
    prompt both models were scored on has been shown to them. An item shown but not voted on is given again (a
    reload must not use up prompts), so is a typed prompt answered since."""
    _lock_person(user)
    pending = _pending(user, matchup)
    if pending is not None:
        return pending
    seen = set(ABItem.objects.filter(user=user, pair=matchup.pair).values_list("prompt_hash", flat=True))
    left = [prompt for prompt in _shared_prompts(matchup) if prompt_hash(prompt) not in seen]
    if not left:
        return None
    prompt = secrets.choice(left)
    mine, theirs = _evaluated_answers(matchup, prompt)
    return _item_create(user, matchup, prompt, answers={matchup.me: mine, matchup.other: theirs})


def _shared_prompts(matchup: Matchup) -> list[str]:
    """The prompts both models answered in evaluation, once each: the run's (before and after training) against
    the base model, or the prompts both runs were scored on (matched by text)."""
    mine = _unique(EvalItem.objects.filter(run=matchup.run).order_by("id").values_list("prompt", flat=True))
    if matchup.against is None:
        return mine
    theirs = set(EvalItem.objects.filter(run=matchup.against).values_list("prompt", flat=True))
    return [prompt for prompt in mine if prompt in theirs]


def _unique(prompts: Any) -> list[str]:
    return list(dict.fromkeys(prompts))


def _evaluated_answers(matchup: Matchup, prompt: str) -> tuple[str, str]:
    """The run's answer to an evaluated prompt and the other model's (its first occurrence, if asked twice)."""
    mine = EvalItem.objects.filter(run=matchup.run, prompt=prompt).order_by("id").first()
    assert mine is not None  # noqa: S101 - the prompt came from this run's items, under the person's lock
    if matchup.against is None:
        return mine.after_output, mine.before_output
    theirs = EvalItem.objects.filter(run=matchup.against, prompt=prompt).order_by("id").first()
    return mine.after_output, theirs.after_output if theirs is not None else ""


def _item_create(
    user: User, matchup: Matchup, prompt: str, *, answers: dict[str, str] | None = None, typed: bool = False
) -> ABItem:
    """A new item with the two models on sides drawn at random; ready with `answers`, else queued for a worker."""
    sides = [matchup.me, matchup.other]
    if secrets.randbelow(2):
        sides.reverse()
    item = ABItem(
        token=secrets.token_urlsafe(16), user=user, run=matchup.run, against=matchup.against, pair=matchup.pair,
        prompt=prompt, prompt_hash=prompt_hash(prompt), typed=typed, a_model=sides[0], b_model=sides[1],
        status=ABStatus.READY if answers is not None else ABStatus.QUEUED,
    )  # fmt: skip
    if answers is not None:
        item.a_output, item.b_output = answers[sides[0]], answers[sides[1]]
    try:
        with transaction.atomic():
            item.save()
    except IntegrityError as error:  # shown to this person already (the person's lock makes this a bug, not a race)
        raise AlreadyJudged("this prompt has already been shown to you for these two models") from error
    return item


@transaction.atomic
def ab_ask(*, user: User, matchup: Matchup, prompt: str) -> ABItem:
    """Queue a prompt the person typed for both models; a worker answers (models never load in the web process).

    Asking again for a prompt not yet voted on gives the same item (a failed one is queued again); a prompt the
    person has already judged for these two models is AlreadyJudged.
    """
    if not prompt.strip():
        raise ValidationError({"prompt": "may not be blank"})
    if len(prompt) > PROMPT_MAX:
        raise ValidationError({"prompt": f"may be at most {PROMPT_MAX} characters long (got {len(prompt)})"})
    _lock_person(user)
    existing = ABItem.objects.filter(user=user, pair=matchup.pair, prompt_hash=prompt_hash(prompt)).first()
    if existing is None:
        item = _item_create(user, matchup, prompt, typed=True)
        dispatch_on_commit(item, AB_TASK)
        return item
    if ABVote.objects.filter(item=existing).exists():
        raise AlreadyJudged("you have already judged this prompt for these two models")
    if existing.status == ABStatus.FAILED:
        existing.status, existing.error, existing.started_at, existing.finished_at = ABStatus.QUEUED, "", None, None
        existing.save(update_fields=["status", "error", "started_at", "finished_at", "updated_at"])
        dispatch_on_commit(existing, AB_TASK)
    return existing


def ab_item_get(*, user: User, token: str) -> ABItem:
    """An item given to this user, on a run they still see; any other token is a 404."""
    found = None
    if user.is_authenticated and token:
        found = ABItem.objects.filter(token=token, user=user, run__in=run_list(user=user)).first()
    if found is None:
        raise Http404("no judging item with this token was given to you")
    return found


@transaction.atomic
def ab_vote(*, user: User, token: str, choice: str, rewrite: str = "") -> ABVote:
    """Record a person's verdict on an item given to them, once; a rewrite (their own better answer) may go with
    any choice."""
    if choice not in ABChoice.values:
        raise ValidationError({"choice": f"must be one of {', '.join(ABChoice.values)}"})
    if len(rewrite) > REWRITE_MAX:
        raise ValidationError({"rewrite": f"may be at most {REWRITE_MAX} characters long (got {len(rewrite)})"})
    item = ab_item_get(user=user, token=token)
    item = ABItem.objects.select_for_update().get(pk=item.pk)
    role_require(user=user, workspace=item.run.snapshot.dataset.workspace, role=Role.ANNOTATOR)
    if ABVote.objects.filter(item=item).exists():
        raise AlreadyJudged("you have already voted on these two answers")
    if item.status != ABStatus.READY:
        raise AlreadyJudged(f"these answers are not ready to judge (the prompt is {item.get_status_display().lower()})")
    return ABVote.objects.create(item=item, user=user, choice=choice, rewrite=rewrite.strip())


@dataclass(frozen=True)
class Tally:
    votes: int
    wins: int
    losses: int
    ties: int
    both_bad: int

    @property
    def decisive(self) -> int:
        return self.wins + self.losses

    @property
    def win_rate(self) -> float | None:
        return self.wins / self.decisive if self.decisive else None

    @property
    def interval(self) -> tuple[float, float] | None:
        return wilson_interval(self.wins, self.decisive)

    def as_dict(self) -> dict[str, Any]:
        interval = self.interval
        return {"votes": self.votes, "wins": self.wins, "losses": self.losses, "ties": self.ties,
                "both_bad": self.both_bad, "win_rate": self.win_rate,
                "interval": list(interval) if interval is not None else None}  # fmt: skip


def ab_tally(*, matchup: Matchup) -> Tally:
    """Every voter's votes on these two models, wins and losses from the point of view of the run (one query)."""
    return ab_tallies(matchups=[matchup])[0]


def ab_tallies(*, matchups: list[Matchup]) -> list[Tally]:
    """The tally of each matchup, in order, from one query however many there are (the comparison page's table)."""
    counts: dict[str, list[tuple[str, str, str, int]]] = {matchup.pair: [] for matchup in matchups}
    grouped = (
        ABVote.objects.filter(item__pair__in=list(counts))
        .values_list("item__pair", "choice", "item__a_model", "item__b_model")
        .annotate(n=Count("id"))
        .order_by()
    )
    for pair, choice, a_model, b_model, n in grouped:
        counts[pair].append((choice, a_model, b_model, n))
    return [_tally(matchup, counts[matchup.pair]) for matchup in matchups]


def _tally(matchup: Matchup, rows: list[tuple[str, str, str, int]]) -> Tally:
    """Wins are votes for the side the run's model was on, losses for the other model's side."""

    def picked(model: str) -> int:
        return sum(
            n
            for choice, a_model, b_model, n in rows
            if (choice == ABChoice.A and a_model == model) or (choice == ABChoice.B and b_model == model)
        )

    return Tally(
        votes=sum(row[3] for row in rows),
        wins=picked(matchup.me),
        losses=picked(matchup.other),
        ties=sum(n for choice, _, _, n in rows if choice == ABChoice.TIE),
        both_bad=sum(n for choice, _, _, n in rows if choice == ABChoice.BOTH_BAD),
    )


def ab_sweep(*, timeout: timedelta | None = None) -> int:
    """Fail typed prompts generating for longer than PLAYGROUND_TIMEOUT_S: their worker died or hung."""
    timeout = timeout if timeout is not None else timedelta(seconds=settings.PLAYGROUND_TIMEOUT_S)
    now = timezone.now()
    stale = ABItem.objects.filter(status=ABStatus.RUNNING, started_at__lt=now - timeout)
    return stale.update(
        status=ABStatus.FAILED,
        finished_at=now,
        updated_at=now,
        error=f"the worker answering this stopped (no answers after {int(timeout.total_seconds())} s): "
        "it was killed or its machine went away. Ask again.",
    )
