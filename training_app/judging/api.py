"""REST API of blind A/B judgement: the next pair of answers, a typed prompt, a vote, the tally; and the votes made
into preference pairs.

Nothing a person judging receives names a model or a run: an item is its token, its prompt and two answers.
"""

from typing import Any

from django.http import Http404
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from datasets_app.api.serializers import JsonTypes
from datasets_app.curation.selectors import dataset_get, role_require
from datasets_app.models import Role
from project.api_schema import error
from training_app import selectors
from training_app.judging.preferences import preferences_from_votes
from training_app.judging.services import (
    PROMPT_MAX,
    REWRITE_MAX,
    Matchup,
    ab_ask,
    ab_item_get,
    ab_next,
    ab_tally,
    ab_vote,
    matchup_get,
)
from training_app.models import ABChoice, ABItem, ABStatus, ABVote

AGAINST = r"^(base|[1-9][0-9]{0,17})$"
AGAINST_HELP = "`base` (the run's base model, the default) or the id of another succeeded run of the same workspace."


def against_field() -> serializers.RegexField:
    return serializers.RegexField(AGAINST, default="base", max_length=20, help_text=AGAINST_HELP)


class AgainstQuerySerializer(serializers.Serializer):
    against = against_field()


class AskSerializer(JsonTypes, serializers.Serializer):
    prompt = serializers.CharField(max_length=PROMPT_MAX, help_text="Your own prompt, for both models to answer.")
    against = against_field()


class VoteSerializer(JsonTypes, serializers.Serializer):
    token = serializers.CharField(max_length=32, help_text="The item's token, from GET /api/runs/{id}/ab/next/.")
    choice = serializers.ChoiceField(
        choices=ABChoice.choices, help_text="a or b: that answer is better; tie; both_bad: neither is good."
    )
    rewrite = serializers.CharField(
        required=False, allow_blank=True, max_length=REWRITE_MAX, trim_whitespace=False,
        help_text="Your own better answer, kept for preference data; allowed with any choice.",
    )  # fmt: skip


class ABPairSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="Vote with this token.")
    prompt = serializers.CharField()
    a = serializers.CharField(help_text="Answer 1 (which model wrote it is drawn at random and not told).")
    b = serializers.CharField(help_text="Answer 2.")


class ABQueuedSerializer(serializers.Serializer):
    token = serializers.CharField()
    status = serializers.ChoiceField(choices=ABStatus.choices)
    url = serializers.CharField(help_text="Poll this until status is ready (with the answers) or failed.")


class ABItemSerializer(serializers.Serializer):
    token = serializers.CharField()
    status = serializers.ChoiceField(choices=ABStatus.choices, help_text="queued, running, ready or failed.")
    prompt = serializers.CharField()
    a = serializers.CharField(allow_null=True, help_text="Answer 1 once ready; null before.")
    b = serializers.CharField(allow_null=True, help_text="Answer 2 once ready; null before.")
    error = serializers.CharField(allow_null=True, help_text="Why it failed; null otherwise.")


class ABVotedSerializer(serializers.Serializer):
    token = serializers.CharField()
    choice = serializers.ChoiceField(choices=ABChoice.choices)
    rewrite = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()


class ABSummarySerializer(serializers.Serializer):
    votes = serializers.IntegerField(help_text="Every vote on these two models, by anyone.")
    wins = serializers.IntegerField(help_text="Votes for run {id}'s answer.")
    losses = serializers.IntegerField(help_text="Votes for the other model's answer.")
    ties = serializers.IntegerField()
    both_bad = serializers.IntegerField()
    win_rate = serializers.FloatField(allow_null=True, help_text="wins / (wins + losses); null without either.")
    interval = serializers.ListField(
        child=serializers.FloatField(), min_length=2, max_length=2, allow_null=True,
        help_text="95% Wilson score interval of win_rate, [low, high]; null without decisive votes.",
    )  # fmt: skip


def pair_body(item: ABItem) -> dict[str, str]:
    return {"token": item.token, "prompt": item.prompt, "a": item.a_output, "b": item.b_output}


def item_body(item: ABItem) -> dict[str, Any]:
    ready = item.status == ABStatus.READY
    return {
        "token": item.token, "status": item.status, "prompt": item.prompt,
        "a": item.a_output if ready else None, "b": item.b_output if ready else None,
        "error": item.error if item.status == ABStatus.FAILED else None,
    }  # fmt: skip


def _queried_matchup(request: Request, pk: int) -> Matchup:
    """The run (a 404 first, whatever the query) against `?against=`."""
    run = selectors.run_get(user=request.user, pk=pk)
    query = AgainstQuerySerializer(data=request.query_params.dict())
    query.is_valid(raise_exception=True)
    return matchup_get(user=request.user, run=run, against=query.validated_data["against"])


CONFLICT = error(
    409,
    "The run (or `against`) has not succeeded, `against` is the run itself or of another workspace; or the prompt "
    "was judged already.",
)


class ABNextView(APIView):
    @extend_schema(
        parameters=[AgainstQuerySerializer],
        responses={
            200: ABPairSerializer,
            204: OpenApiResponse(description="No prompts left to judge for these two models: type your own (POST)."),
            409: CONFLICT,
        },
    )
    def get(self, request: Request, pk: int) -> Response:
        """An evaluation prompt of the run with two models' answers in random order, blind (any workspace member).

        Against `base`: the run's answer after training and the base model's before it; against another run: a
        prompt both runs were scored on (matched by text), each run's answer. The same person is never shown the
        same prompt for the same two models twice (run 5 against 7 is the same two as 7 against 5); an item shown
        and not voted on yet is given again. 204 (no body) when no prompt is left.
        """
        item = ab_next(user=request.user, matchup=_queried_matchup(request, pk))
        if item is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(ABPairSerializer(pair_body(item)).data)

    @extend_schema(
        request=AskSerializer,
        responses={202: ABQueuedSerializer, 409: CONFLICT},
        parameters=[
            OpenApiParameter(
                "Location", str, OpenApiParameter.HEADER, response=[202], description="The item's URL to poll."
            )
        ],
    )
    def post(self, request: Request, pk: int) -> Response:
        """Your own prompt for both models; answers at once with the URL to poll while a worker generates.

        Asking again for a prompt you have not voted on gives the same item (a failed one is asked again); a prompt
        you already judged for these two models is a 409.
        """
        run = selectors.run_get(user=request.user, pk=pk)
        serializer = AskSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        matchup = matchup_get(user=request.user, run=run, against=data["against"])
        item = ab_ask(user=request.user, matchup=matchup, prompt=data["prompt"])
        url = reverse("api-ab-item", args=[item.token])
        body = ABQueuedSerializer({"token": item.token, "status": item.status, "url": url}).data
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": url})


class ABItemView(APIView):
    @extend_schema(responses=ABItemSerializer)
    def get(self, request: Request, token: str) -> Response:
        """A judging item given to you: queued, running, ready (with both answers) or failed (with the error)."""
        return Response(ABItemSerializer(item_body(ab_item_get(user=request.user, token=token))).data)


class ABVoteView(APIView):
    @extend_schema(
        request=VoteSerializer,
        responses={
            201: ABVotedSerializer,
            404: error(404, "No item with this token was given to you."),
            409: error(409, "You already voted on it, or its answers are not ready yet."),
        },
    )
    def post(self, request: Request) -> Response:
        """Your verdict on a pair of answers you were given: once per item. Which model wrote which side is kept
        with the vote (server side), with you and the time, for the tally and for preference data."""
        serializer = VoteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        vote: ABVote = ab_vote(user=request.user, **serializer.validated_data)
        body = {"token": vote.item.token, "choice": vote.choice, "rewrite": vote.rewrite, "created_at": vote.created_at}
        return Response(ABVotedSerializer(body).data, status=status.HTTP_201_CREATED)


class ABSummaryView(APIView):
    @extend_schema(parameters=[AgainstQuerySerializer], responses={200: ABSummarySerializer, 409: CONFLICT})
    def get(self, request: Request, pk: int) -> Response:
        """Every voter's votes on run {id} against `against`: wins and losses are run {id}'s; the win rate and its
        95% Wilson score interval are over the decisive votes (wins + losses)."""
        matchup = _queried_matchup(request, pk)
        return Response(ABSummarySerializer(ab_tally(matchup=matchup).as_dict()).data)


class VotesToPairsSerializer(JsonTypes, serializers.Serializer):
    run = serializers.IntegerField(
        min_value=1, max_value=2**63 - 1, help_text="The run whose blind votes to use (of the dataset's workspace)."
    )
    against = against_field()


class VotesToPairsResultSerializer(serializers.Serializer):
    votes = serializers.IntegerField(help_text="Every vote on the two models, by anyone.")
    created = serializers.IntegerField(help_text="New preference pairs (submitted, for a lead to review).")
    already = serializers.IntegerField(help_text="Pairs made from these votes before: not made again.")
    duplicates = serializers.IntegerField(
        help_text="Pairs the dataset already held word for word (another voter's same verdict): linked to the vote."
    )
    ties = serializers.IntegerField(help_text="Ties without a rewrite: no pair.")
    both_bad = serializers.IntegerField(help_text="Both bad without a rewrite: no pair.")
    unusable = serializers.IntegerField(
        help_text="Pairs whose chosen and rejected answers were the same text, or one was empty: not made."
    )
    examples = serializers.ListField(child=serializers.IntegerField(), help_text="The new pairs' ids.")


class PreferencesFromVotesView(APIView):
    @extend_schema(
        request=VotesToPairsSerializer,
        responses={
            200: VotesToPairsResultSerializer,
            404: error(404, "No such dataset among yours, or no such run in its workspace."),
            409: error(
                409,
                "The dataset is not of kind preference; the run (or `against`) has not succeeded, or `against` is "
                "the run itself or of another workspace.",
            ),
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        """Make preference pairs in dataset {id} from the blind votes on `run` against `against` (leads).

        A vote for one answer makes a pair with the winner's answer chosen and the loser's rejected; a rewrite is
        chosen over both answers (two pairs, whatever the verdict); ties, and "both bad" without a rewrite, make
        none. Each pair links back to its vote (source `vote:<id>`) and arrives submitted, for a lead to review.
        Votes made into pairs in this dataset before are skipped, so sending the same request twice adds nothing.
        """
        dataset = dataset_get(user=request.user, pk=pk)
        role_require(user=request.user, workspace=dataset.workspace, role=Role.LEAD)
        serializer = VotesToPairsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        run = selectors.run_list(user=request.user).filter(pk=data["run"]).first()
        if run is None:
            raise Http404(f"run: no run {data['run']} that you can see")
        outcome = preferences_from_votes(user=request.user, dataset=dataset, run=run, against=data["against"])
        return Response(VotesToPairsResultSerializer(outcome.as_dict()).data)
