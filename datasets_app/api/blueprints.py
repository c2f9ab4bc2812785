"""REST API for templates: CRUD, preview, generation, model drafting, and the generator backends."""

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from datasets_app.api.common import IF_MATCH, JOB_ACCEPTED, expected_version, id_param, job_accepted
from datasets_app.api.serializers import JsonTypes, TextCap, VisibleRelatedField, capped
from datasets_app.blueprints import services as blueprints
from datasets_app.blueprints.generators import generator_choices, generator_list
from datasets_app.blueprints.specs import default_spec
from datasets_app.curation import selectors
from datasets_app.curation.limits import TEXT_MAX_CHARS
from datasets_app.models import Dataset, Job, Template, Workspace
from project.api_schema import error, errors, id_parameter


class TemplateSerializer(JsonTypes, serializers.ModelSerializer):
    workspace = VisibleRelatedField(
        queryset=Workspace.objects.all(), visible=selectors.workspace_list, noun="workspace"
    )
    spec = serializers.JSONField(
        required=False, help_text="The kind's settings; see the README. Left out: a starting spec for the kind."
    )

    class Meta:
        model = Template
        fields = ["id", "workspace", "name", "kind", "description", "spec", "version", "created_at", "updated_at"]
        read_only_fields = ["version"]
        validators = []  # name uniqueness is checked by the service, per workspace
        extra_kwargs = {"description": capped("description")}


class TemplateUpdateSerializer(JsonTypes, serializers.Serializer):
    name = serializers.CharField(required=False, max_length=200)
    description = serializers.CharField(
        required=False, allow_blank=True, validators=[TextCap(TEXT_MAX_CHARS["description"])]
    )
    spec = serializers.JSONField(required=False)
    version = serializers.IntegerField(required=False, help_text="The version you loaded (or send If-Match).")


class PreviewRequestSerializer(JsonTypes, serializers.Serializer):
    dataset = serializers.IntegerField(
        required=False, min_value=1, max_value=2**63 - 1, help_text="Mark prompts this dataset already has."
    )
    paraphrases = serializers.IntegerField(required=False, min_value=0, max_value=5)


class PlannedPairSerializer(serializers.Serializer):
    prompt = serializers.CharField()
    response = serializers.CharField(help_text="Empty when a model drafts it.")
    system_prompt = serializers.CharField()
    tags = serializers.ListField(child=serializers.CharField())
    drafted = serializers.BooleanField(help_text="The response is for a model (or an annotator) to write.")
    exists = serializers.BooleanField(help_text="The dataset already has this prompt: generating skips it.")


class PreviewSerializer(serializers.Serializer):
    pairs = PlannedPairSerializer(many=True)
    new = serializers.IntegerField()
    existing = serializers.IntegerField()
    paraphrases = serializers.IntegerField(help_text="Model rewordings per seed prompt, added at generation time.")


# A stale client may name a fine-tuned model that was deleted since: say which, in words.
UNKNOWN_GENERATOR = {
    "invalid_choice": '"{input}" is not a generator of this workspace (see /api/generators/?workspace=<id>; '
    "a fine-tuned model may have been deleted, or its run did not succeed)."
}


class GeneratorChoice(JsonTypes, serializers.Serializer):
    # A request that may name a model backend: one of /api/generators/?workspace= (context["workspace"]), or null.

    generator = serializers.ChoiceField(
        choices=[], required=False, allow_null=True, error_messages=UNKNOWN_GENERATOR,
        help_text="A backend from /api/generators/?workspace=<id> (configured or fine-tuned); null: none.",
    )  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        workspace = self.context.get("workspace")
        self.fields["generator"].choices = [key for key, _ in generator_choices(workspace=workspace)]


class GenerateRequestSerializer(GeneratorChoice):
    dataset = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    paraphrases = serializers.IntegerField(required=False, min_value=0, max_value=5)


class GenerateResultSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    skipped = serializers.IntegerField()
    drafted = serializers.IntegerField()
    paraphrased = serializers.IntegerField()
    cut = serializers.IntegerField(help_text="Model drafts cut to PAIR_TEXT_MAX_CHARS.")


class PreferenceResultSerializer(GenerateResultSerializer):
    refused = serializers.IntegerField(
        help_text="Model drafts that were refusals: their pair (a draft) lacks the contrast until someone rewrites it."
    )


class DraftRequestSerializer(GeneratorChoice):
    examples = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=2**63 - 1), required=False, min_length=1,
        max_length=blueprints.MAX_DRAFT_SELECTION,
        help_text="Drafts without a response to fill; left out: all of the dataset's (up to 500).",
    )  # fmt: skip


class GeneratorSerializer(serializers.Serializer):
    key = serializers.CharField()
    label = serializers.CharField()
    kind = serializers.ChoiceField(
        choices=["base", "endpoint", "fine_tuned"],
        help_text="base: the local base model; endpoint: an OpenAI-compatible endpoint; fine_tuned: a model of the "
        "workspace (its key is the `ft:...` name /v1/models lists).",
    )


def _dataset_in(request: Request, template: Template, pk: int | None) -> Dataset | None:
    if pk is None:
        return None
    dataset = get_object_or_404(selectors.dataset_list(user=request.user), pk=pk)
    if dataset.workspace_id != template.workspace_id:
        raise ValidationError({"dataset": "must be a dataset of the template's workspace"})
    return dataset


class TemplateListView(APIView):
    @extend_schema(
        parameters=[id_parameter("workspace", "Only this workspace's templates.")],
        responses=TemplateSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        templates = selectors.template_list(user=request.user)
        workspace = id_param(request, "workspace")
        if workspace is not None:
            templates = templates.filter(workspace_id=workspace)
        return Response(TemplateSerializer(templates, many=True).data)

    @extend_schema(request=TemplateSerializer, responses={201: TemplateSerializer, **errors(409)})
    def post(self, request: Request) -> Response:
        """Create a template (leads)."""
        serializer = TemplateSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        template = blueprints.template_create(
            workspace=data["workspace"],
            user=request.user,
            name=data["name"],
            kind=data["kind"],
            description=data.get("description", ""),
            spec=data.get("spec") or default_spec(data["kind"]),
        )
        return Response(TemplateSerializer(template).data, status=status.HTTP_201_CREATED)


class TemplateDetailView(APIView):
    @extend_schema(responses=TemplateSerializer)
    def get(self, request: Request, pk: int) -> Response:
        template = selectors.template_get(user=request.user, pk=pk)
        return Response(TemplateSerializer(template).data, headers={"ETag": f'"{template.version}"'})

    @extend_schema(
        request=TemplateUpdateSerializer,
        responses={200: TemplateSerializer, **errors(409, 412, 428)},
        parameters=[IF_MATCH],
    )
    def patch(self, request: Request, pk: int) -> Response:
        """Edit a template (leads); send the version you loaded, as If-Match or in the body."""
        template = selectors.template_get(user=request.user, pk=pk)
        expected = expected_version(request)
        serializer = TemplateUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        fields = {name: value for name, value in serializer.validated_data.items() if name != "version"}
        template = blueprints.template_update(template=template, user=request.user, expected_version=expected, **fields)
        return Response(TemplateSerializer(template).data, headers={"ETag": f'"{template.version}"'})

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        blueprints.template_delete(template=selectors.template_get(user=request.user, pk=pk), user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TemplatePreviewView(APIView):
    @extend_schema(request=PreviewRequestSerializer, responses=PreviewSerializer)
    def post(self, request: Request, pk: int) -> Response:
        """What generating would create; nothing is written and no model is called."""
        template = selectors.template_get(user=request.user, pk=pk)
        serializer = PreviewRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        dataset = _dataset_in(request, template, serializer.validated_data.get("dataset"))
        plan = blueprints.template_plan(
            template=template, dataset=dataset, paraphrases=serializer.validated_data.get("paraphrases")
        )
        body = {
            "pairs": [vars(pair) for pair in plan.pairs],
            "new": len(plan.new),
            "existing": len(plan.pairs) - len(plan.new),
            "paraphrases": plan.paraphrases,
        }
        return Response(PreviewSerializer(body).data)


class TemplateGenerateView(APIView):
    @extend_schema(
        request=GenerateRequestSerializer,
        responses={
            201: GenerateResultSerializer,
            202: JOB_ACCEPTED,
            409: error(409, "The dataset is a preference dataset: use generate-preferences."),
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        """Generate the template's pairs into a dataset (leads); prompts it already has are skipped."""
        return _generate(request, pk, preference=False)


class TemplateGeneratePreferencesView(APIView):
    @extend_schema(
        request=GenerateRequestSerializer,
        responses={
            201: PreferenceResultSerializer,
            202: JOB_ACCEPTED,
            409: error(409, "The dataset is not a preference dataset, or the template is not a guardrail template."),
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        """Generate a guardrail template's preference pairs into a preference dataset (leads), as generating does.

        Per blocked seed prompt the refusal is chosen and a compliant answer the generator drafts is rejected; per
        allowed seed prompt the drafted answer is chosen and the refusal rejected. Without a generator the drafted
        side is left empty for annotators. Prompts the dataset already has are skipped.
        """
        return _generate(request, pk, preference=True)


def _generate(request: Request, pk: int, *, preference: bool) -> Response:
    template = selectors.template_get(user=request.user, pk=pk)
    serializer = GenerateRequestSerializer(data=request.data, context={"workspace": template.workspace})
    serializer.is_valid(raise_exception=True)
    data = serializer.validated_data
    outcome = blueprints.template_generate(
        template=template,
        dataset=_dataset_in(request, template, data["dataset"]),
        user=request.user,
        generator=data.get("generator") or None,
        paraphrases=data.get("paraphrases"),
        preference=preference,
    )
    if isinstance(outcome, Job):
        return job_accepted(request, outcome)
    return Response(outcome.as_dict(), status=status.HTTP_201_CREATED)


class DatasetDraftView(APIView):
    @extend_schema(
        request=DraftRequestSerializer,
        responses={202: JOB_ACCEPTED, 409: error(409, "None of the chosen pairs is a draft without a response.")},
    )
    def post(self, request: Request, pk: int) -> Response:
        """Have a model draft responses for drafts that lack one (leads); drafts are never approved automatically."""
        dataset = selectors.dataset_get(user=request.user, pk=pk)
        serializer = DraftRequestSerializer(data=request.data, context={"workspace": dataset.workspace})
        serializer.is_valid(raise_exception=True)
        job = blueprints.draft_responses_start(
            dataset=dataset,
            user=request.user,
            example_ids=serializer.validated_data.get("examples"),
            generator=serializer.validated_data.get("generator") or None,
        )
        return job_accepted(request, job)


class GeneratorListView(APIView):
    @extend_schema(
        parameters=[id_parameter("workspace", "Add this workspace's fine-tuned models (a workspace of yours).")],
        responses={200: GeneratorSerializer(many=True), 404: error(404, "No such workspace among yours.")},
    )
    def get(self, request: Request) -> Response:
        """The model backends that can draft responses (keys, labels and kinds; never their secrets): the configured
        ones, and with `workspace` that workspace's fine-tuned models."""
        workspace_id = id_param(request, "workspace")
        workspace = None
        if workspace_id is not None:
            workspace = get_object_or_404(selectors.workspace_list(user=request.user), pk=workspace_id)
        choices = generator_list(workspace=workspace)
        return Response(GeneratorSerializer([vars(choice) for choice in choices], many=True).data)
