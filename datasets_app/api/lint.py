"""REST API for a dataset's lint: read the stored problems, or check every pair again and store them."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from datasets_app.api.common import JOB_ACCEPTED, job_accepted
from datasets_app.curation import selectors
from datasets_app.lint.checks import CODES
from datasets_app.lint.jobs import dataset_lint_start
from datasets_app.lint.report import MAX_LISTED, dataset_lint_stored
from datasets_app.models import Job


class LintProblemSerializer(serializers.Serializer):
    example = serializers.IntegerField(help_text="The pair with the problem.")
    code = serializers.ChoiceField(choices=CODES)
    field = serializers.CharField(help_text="prompt, response, system_prompt, history[n], or empty for the whole pair.")
    line = serializers.IntegerField(
        allow_null=True, help_text="1-based line within the field, when one line is at fault."
    )
    message = serializers.CharField()
    related = serializers.IntegerField(allow_null=True, help_text="The other pair, for duplicates.")


class NearDuplicateSerializer(serializers.Serializer):
    a = serializers.IntegerField()
    b = serializers.IntegerField()
    similarity = serializers.FloatField(help_text="Jaccard similarity of word 3-grams of prompt and response.")


class LintReportSerializer(serializers.Serializer):
    checked = serializers.IntegerField(help_text="Pairs in the dataset.")
    linted_at = serializers.DateTimeField(
        allow_null=True,
        help_text="When every pair was last checked together; null if never. Duplicates are found only then.",
    )
    pairs_with_problems = serializers.IntegerField()
    counts = serializers.DictField(child=serializers.IntegerField(), help_text=f"Problems by code: {', '.join(CODES)}.")
    problems = LintProblemSerializer(many=True, help_text=f"At most {MAX_LISTED}, by pair.")
    near_duplicates = NearDuplicateSerializer(many=True, help_text=f"At most {MAX_LISTED}.")
    truncated = serializers.BooleanField(help_text="More problems or near duplicates than listed.")


class DatasetLintView(APIView):
    @extend_schema(responses=LintReportSerializer)
    def get(self, request: Request, pk: int) -> Response:
        """The stored problems: each pair's from its last save, duplicates from the last whole-dataset check."""
        dataset = selectors.dataset_get(user=request.user, pk=pk)
        return Response(dataset_lint_stored(dataset=dataset).as_dict())

    @extend_schema(
        request=None,
        responses={
            200: LintReportSerializer,
            202: JOB_ACCEPTED,
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        """Check every pair (blank fields, placeholders, length, template format, duplicates) and store the problems."""
        dataset = selectors.dataset_get(user=request.user, pk=pk)
        outcome = dataset_lint_start(dataset=dataset, user=request.user)
        if isinstance(outcome, Job):
            return job_accepted(request, outcome)
        return Response(outcome.as_dict())
