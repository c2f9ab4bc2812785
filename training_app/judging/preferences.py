"""Blind votes into preference pairs: the winner's answer chosen over the loser's, a voter's rewrite chosen over both.

A tie, and "both bad" without a rewrite, say nothing about which answer is better: they make no pair. Each pair
links back to its vote (VotePair), once per vote, target dataset and rejected side, so making pairs from the same
votes again creates nothing new, even from two requests at once. The pairs are written by the curation services,
as every other path writes pairs, and arrive submitted: a person already compared the answers, so there is nothing
to finish, but a lead reviews them before a snapshot trains on them.
"""

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.http import Http404
from django.urls import reverse

from datasets_app.curation.content import normalize
from datasets_app.curation.limits import TAGS_MAX
from datasets_app.curation.origins import Origin
from datasets_app.curation.selectors import role_require
from datasets_app.curation.services import example_create
from datasets_app.errors import Conflict, DuplicateExample
from datasets_app.models import Dataset, DatasetKind, Example, ExampleSplit, ExampleStatus, Role
from training_app.judging.services import matchup_get
from training_app.models import ABChoice, ABItem, ABVote, EvalItem, TrainingRun, VotePair, VoteSide
from training_app.snapshots import snapshot_rows


def vote_source(vote: ABVote) -> str:
    return f"vote:{vote.pk}"


def run_tag(run: TrainingRun) -> str:
    """The tag of pairs made from votes on a run's answers (as its failures' drafts are tagged)."""
    return f"from-run:{run.pk}"


@dataclass
class VoteOutcome:
    votes: int = 0  # the votes on these two models, by anyone
    created: int = 0
    already: int = 0  # made from these votes before
    duplicates: int = 0  # the dataset already had the same pair (another voter's same verdict): linked to it
    ties: int = 0  # ties without a rewrite
    both_bad: int = 0  # "both bad" without a rewrite
    unusable: int = 0  # the chosen and the rejected answer were the same text, or one was empty
    example_ids: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "votes": self.votes, "created": self.created, "already": self.already, "duplicates": self.duplicates,
            "ties": self.ties, "both_bad": self.both_bad, "unusable": self.unusable, "examples": self.example_ids,
        }  # fmt: skip


def preference_targets(*, workspace_id: int) -> Any:
    """The datasets pairs from votes may go to: the preference datasets of the run's workspace."""
    return Dataset.objects.filter(workspace_id=workspace_id, kind=DatasetKind.PREFERENCE).order_by("name")


@transaction.atomic
def preferences_from_votes(
    *, user: AbstractBaseUser, dataset: Dataset, run: TrainingRun, against: str = "base"
) -> VoteOutcome:
    """Make preference pairs in `dataset` (leads of its workspace; a preference dataset) from every vote on `run`
    against `against` ("base" or another run's id), by anyone. Votes already made into pairs there are skipped."""
    role_require(user=user, workspace=dataset.workspace, role=Role.LEAD)
    if dataset.kind != DatasetKind.PREFERENCE:
        raise Conflict(
            {"dataset": [f"{dataset.name!r} is a dataset of kind {dataset.get_kind_display()}: pairs from votes go "
                         "into a dataset of kind Preference pairs (chosen and rejected answers)"]}
        )  # fmt: skip
    if run.snapshot.dataset.workspace_id != dataset.workspace_id:
        raise Http404(f"run: no run {run.pk} in the workspace of {dataset.name!r}")
    matchup = matchup_get(user=user, run=run, against=against)
    votes = list(
        ABVote.objects.filter(item__pair=matchup.pair)
        .select_related("item__run__snapshot")
        .order_by("created_at", "id")
    )
    made = set(VotePair.objects.filter(dataset=dataset, vote__in=votes).values_list("vote_id", "rejected"))
    outcome = VoteOutcome(votes=len(votes))
    context = _Context(run)
    for vote in votes:
        sides = verdict_sides(vote)
        if not sides:
            outcome.ties += vote.choice == ABChoice.TIE
            outcome.both_bad += vote.choice == ABChoice.BOTH_BAD
        for chosen, rejected in sides:
            if (vote.pk, rejected) in made:
                outcome.already += 1
            else:
                _make(vote, chosen, rejected, dataset=dataset, user=user, context=context, outcome=outcome)
    return outcome


def verdict_sides(vote: ABVote) -> list[tuple[str, str]]:
    """(chosen side, rejected side) of each pair a vote makes: a rewrite over both answers, whatever the verdict;
    else the winner over the loser; nothing for a tie or "both bad"."""
    if vote.rewrite.strip():
        return [(VoteSide.REWRITE, VoteSide.A), (VoteSide.REWRITE, VoteSide.B)]
    if vote.choice == ABChoice.A:
        return [(VoteSide.A, VoteSide.B)]
    if vote.choice == ABChoice.B:
        return [(VoteSide.B, VoteSide.A)]
    return []


def side_text(vote: ABVote, side: str) -> str:
    return {VoteSide.A: vote.item.a_output, VoteSide.B: vote.item.b_output, VoteSide.REWRITE: vote.rewrite}[side]


def _make(
    vote: ABVote,
    chosen: str,
    rejected: str,
    *,
    dataset: Dataset,
    user: AbstractBaseUser,
    context: "_Context",
    outcome: VoteOutcome,
) -> None:
    """One pair and its link; a pair another request made meanwhile (the unique link) is counted as made before."""
    chosen_text, rejected_text = side_text(vote, chosen), side_text(vote, rejected)
    if not chosen_text.strip() or not rejected_text.strip() or normalize(chosen_text) == normalize(rejected_text):
        outcome.unusable += 1
        return
    try:
        with transaction.atomic():  # a savepoint: losing the race below takes the new pair back with it
            example, new = _pair(vote, chosen_text, rejected_text, dataset=dataset, user=user, context=context)
            VotePair.objects.create(
                vote=vote, dataset=dataset, example=example, chosen=chosen, rejected=rejected, created_by=user
            )
    except IntegrityError:
        outcome.already += 1
    except ValidationError:  # an answer over the pair limits: no pair, like the same text on both sides
        outcome.unusable += 1
    else:
        if new:
            outcome.created += 1
            outcome.example_ids.append(example.pk)
        else:
            outcome.duplicates += 1


def _pair(
    vote: ABVote, chosen: str, rejected: str, *, dataset: Dataset, user: AbstractBaseUser, context: "_Context"
) -> tuple[Example, bool]:
    """The new pair, or the same pair the dataset already holds (False)."""
    system_prompt, history, tags = context.asked(vote.item)
    try:
        example = example_create(
            dataset=dataset, user=user, prompt=vote.item.prompt, response=chosen, rejected=rejected,
            system_prompt=system_prompt, history=history, tags=tags, source=vote_source(vote),
            status=ExampleStatus.SUBMITTED, split=ExampleSplit.TRAIN,
        )  # fmt: skip
    except DuplicateExample as duplicate:
        return duplicate.existing, False
    return example, True


class _Context:
    """How a judged prompt was asked: an evaluation prompt with its evaluation pair's system prompt and earlier turns
    (and its tags, so blocked:/allowed: carry over), a typed prompt with the usual system prompt of the run's
    training pairs (training_app/judging/execution.py asks it so). Each run's evaluated prompts and each snapshot
    are read at most once."""

    def __init__(self, run: TrainingRun) -> None:
        self.tag = run_tag(run)
        self.evaluated: dict[int, dict[str, Example | None]] = {}
        self.usual: dict[int, str] = {}

    def asked(self, item: ABItem) -> tuple[str, list[dict[str, str]], list[str]]:
        evaluated = None if item.typed else self._evaluated(item.run_id).get(item.prompt)
        if evaluated is None:
            return self._usual_system_prompt(item.run), [], [self.tag]
        tags = [name for name in dict.fromkeys(evaluated.tags) if name != self.tag][: TAGS_MAX - 1]
        return evaluated.system_prompt, list(evaluated.history), [*tags, self.tag]

    def _evaluated(self, run_id: int) -> dict[str, Example | None]:
        """{evaluated prompt: its evaluation pair (None once deleted)}, the first occurrence of a prompt asked twice."""
        if run_id not in self.evaluated:
            items = EvalItem.objects.filter(run_id=run_id).select_related("example").order_by("-id")
            self.evaluated[run_id] = {item.prompt: item.example for item in items}
        return self.evaluated[run_id]

    def _usual_system_prompt(self, run: TrainingRun) -> str:
        if run.snapshot_id not in self.usual:
            rows = [row.system for row in snapshot_rows(run.snapshot) if row.split == "train"]
            self.usual[run.snapshot_id] = Counter(rows).most_common(1)[0][0] if rows else ""
        return self.usual[run.snapshot_id]


# --- reads: what a pair came from


def _model_label(item: ABItem, side: str) -> str:
    name = item.a_model if side == VoteSide.A else item.b_model
    kind, _, value = name.partition(":")
    return f"run {value}'s fine-tuned model" if kind == "run" else f"the base model ({value})"


def _side_label(link: VotePair, side: str) -> str:
    if side == VoteSide.REWRITE:
        return "the voter's own rewrite"
    return f"{VoteSide(side).label}, by {_model_label(link.vote.item, side)}"


def vote_origin(*, example: Example) -> Origin | None:
    """The blind vote (or votes) a preference pair was made from, for its editor (settings.PAIR_ORIGINS)."""
    links = list(VotePair.objects.select_related("vote__item", "vote__user").filter(example_id=example.pk)[:11])
    if not links:
        return None
    link, item = links[0], links[0].vote.item
    voter = link.vote.user.get_username() if link.vote.user else "a former member"
    facts = [
        ("Prompt", item.prompt),
        ("Verdict", f"{link.vote.get_choice_display()} (by {voter})"),
        ("Chosen", _side_label(link, link.chosen)),
        ("Rejected", _side_label(link, link.rejected)),
        *_more_votes(links),
    ]
    url = f"{reverse('training-run', args=[item.run_id])}"
    return Origin(title=f"From a blind vote on run {item.run_id}'s answers", url=url, facts=tuple(facts))


def _more_votes(links: list[VotePair]) -> Iterator[tuple[str, str]]:
    if len(links) > 1:
        more = f"{len(links) - 1}{'+' if len(links) > 10 else ''}"
        yield ("Other votes", f"{more} other vote(s) gave the same verdict on the same answers")
