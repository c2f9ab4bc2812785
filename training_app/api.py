"""REST API for snapshots, training runs, their metrics, logs, artifacts and the playground."""

from django.http.response import HttpResponseBase
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from datasets_app.api.common import id_param, job_accepted
from datasets_app.api.serializers import JobAcceptedSerializer
from datasets_app.curation import selectors as dataset_selectors
from datasets_app.models import Job
from project.api_schema import ID_DIGITS, error, id_parameter
from project.downloads import PRESIGNED_REDIRECT, stored_file_response
from training_app import selectors, services
from training_app.comparison import MAX_RUNS, run_comparison, run_ids_from_query, snapshot_diff
from training_app.exports import FORMATS, NoModel, merged_export_start
from training_app.failures import failures_send
from training_app.models import TrainingRun
from training_app.preflight.report import Preflight, TokenizerMissing, pair_tokens, run_preflight
from training_app.serializers import (
    RUN_CREATE,
    CompareRunSerializer,
    ComparisonSerializer,
    GenerateSerializer,
    LogSerializer,
    MetricSerializer,
    PairTokensQuerySerializer,
    PairTokensSerializer,
    PlaygroundQueuedSerializer,
    PlaygroundSerializer,
    PreflightQuerySerializer,
    PreflightSerializer,
    RunCreateSerializer,
    RunDetailSerializer,
    RunSerializer,
    SendFailuresResultSerializer,
    SendFailuresSerializer,
    SnapshotCreateSerializer,
    SnapshotDiffSerializer,
    SnapshotSerializer,
)
from training_app.snapshots import snapshot_create


class DatasetSnapshotsView(APIView):
    @extend_schema(responses=SnapshotSerializer(many=True))
    def get(self, request: Request, pk: int) -> Response:
        dataset = dataset_selectors.dataset_get(user=request.user, pk=pk)
        return Response(SnapshotSerializer(dataset.versions.all(), many=True).data)

    @extend_schema(
        request=SnapshotCreateSerializer,
        responses={
            201: SnapshotSerializer,
            409: error(
                409,
                "The dataset has fewer than 2 approved training pairs, or it refuses training pairs that repeat "
                "an evaluation prompt and has some.",
            ),
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        """Freeze the dataset's approved pairs with a seeded train/validation split (leads)."""
        dataset = dataset_selectors.dataset_get(user=request.user, pk=pk)
        serializer = SnapshotCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        snapshot = snapshot_create(dataset=dataset, user=request.user, **serializer.validated_data)
        return Response(SnapshotSerializer(snapshot).data, status=status.HTTP_201_CREATED)


class SnapshotDetailView(APIView):
    @extend_schema(responses=SnapshotSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(SnapshotSerializer(selectors.snapshot_get(user=request.user, pk=pk)).data)


class SnapshotDownloadView(APIView):
    @extend_schema(responses={(200, "application/jsonl"): OpenApiTypes.BINARY, 302: PRESIGNED_REDIRECT})
    def get(self, request: Request, pk: int) -> HttpResponseBase:
        """The frozen rows as JSONL: ref (example id), split, system, prompt, response, history, tags."""
        snapshot = selectors.snapshot_get(user=request.user, pk=pk)
        name = f"{snapshot.dataset.name}-v{snapshot.number}.jsonl"
        return stored_file_response(snapshot.file.name, name, "application/jsonl")


class SnapshotDiffView(APIView):
    @extend_schema(responses=SnapshotDiffSerializer)
    def get(self, request: Request, pk: int, other: int) -> Response:
        """The training pairs added, removed and changed from snapshot `pk` to snapshot `other` (matched by pair)."""
        before = selectors.snapshot_get(user=request.user, pk=pk)
        after = selectors.snapshot_get(user=request.user, pk=other)
        diff = snapshot_diff(before=before, after=after)
        body = {"before": before.pk, "after": after.pk, "added": diff.added, "removed": diff.removed,
                "changed": diff.changed, "counts": diff.counts, "truncated": diff.truncated}  # fmt: skip
        return Response(SnapshotDiffSerializer(body).data)


class RunListView(APIView):
    @extend_schema(
        parameters=[id_parameter("dataset", "Only runs on this dataset.")], responses=RunSerializer(many=True)
    )
    def get(self, request: Request) -> Response:
        runs = selectors.run_list(user=request.user, dataset_id=id_param(request, "dataset"))[:200]
        return Response(RunSerializer(runs, many=True).data)

    @extend_schema(
        request=RUN_CREATE,
        responses={
            201: RunSerializer,
            404: error(404, "No such snapshot or dataset among yours."),
            409: error(409, "On a dataset: it cannot be snapshot (too few approved pairs, or refused overlap)."),
        },
    )
    def post(self, request: Request) -> Response:
        """Start a fine-tuning run (leads): on a snapshot, or on a fresh snapshot of a dataset."""
        run = services.run_create(user=request.user, **_run_arguments(request))
        return Response(RunSerializer(run).data, status=status.HTTP_201_CREATED)


def _run_arguments(request: Request) -> dict:
    """The body of POST /api/runs/, validated, with its snapshot or dataset looked up among the user's."""
    serializer = RunCreateSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    data = dict(serializer.validated_data)
    if "snapshot" in data:
        data["snapshot"] = selectors.snapshot_get(user=request.user, pk=data["snapshot"])
    else:
        data["dataset"] = dataset_selectors.dataset_get(user=request.user, pk=data["dataset"])
    if data.get("init_run") is not None:
        init_run = selectors.run_list(user=request.user).filter(pk=data["init_run"]).first()
        if init_run is None:
            raise ValidationError({"init_run": [f"no run {data['init_run']} among yours"]})
        data["init_run"] = init_run
    return data


class RunPreflightView(APIView):
    @extend_schema(
        request=RUN_CREATE,
        parameters=[PreflightQuerySerializer],
        responses={
            200: PreflightSerializer,
            404: error(404, "No such snapshot or dataset among yours."),
            409: error(409, "The base model's tokenizer is not prepared on this machine yet."),
        },
    )
    def post(self, request: Request) -> Response:
        """Check a run before starting it (leads): the body of POST /api/runs/; nothing is saved or queued.

        Every pair tokenized as training will (the base model's chat template, labels and max_seq_len): its tokens,
        how many are trained and masked, whether it is truncated; totals, steps, an estimated training time and
        warnings. `limit` and `offset` page the list of pairs; the totals always cover every pair. 409 when the
        base model's tokenizer is not prepared on this machine yet.
        """
        query = PreflightQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        try:
            report = run_preflight(user=request.user, **_run_arguments(request))
        except TokenizerMissing as error:
            return Response({"detail": str(error)}, status=status.HTTP_409_CONFLICT)
        return Response(PreflightSerializer(preflight_answer(report, **query.validated_data)).data)


def preflight_answer(report: Preflight, *, limit: int, offset: int, order: str) -> dict:
    pairs = report.pairs
    if order == "longest":
        pairs = sorted(pairs, key=lambda pair: (-pair.full_tokens, pair.example or 0))
    return {
        "dataset": report.dataset.pk, "snapshot": report.snapshot.pk if report.snapshot else None,
        "base_model": report.base_model, "method": report.config.method,
        "objective": report.config.objective, "max_seq_len": report.config.max_seq_len,
        "validation_fraction": report.validation_fraction,
        "totals": {**report.totals.as_dict(), "steps": report.steps, "steps_per_epoch": report.steps_per_epoch,
                   "epochs": report.config.epochs},
        "splits": {split: totals.as_dict() for split, totals in report.splits.items()},
        "estimate": report.estimate.as_dict() if report.estimate else None,
        "warnings": [warning.as_dict() for warning in report.warnings],
        "sampled": report.sampled, "count": len(pairs), "offset": offset, "limit": limit,
        "pairs": [pair.as_dict() for pair in pairs[offset : offset + limit]],
    }  # fmt: skip


class PreflightPairView(APIView):
    @extend_schema(
        parameters=[PairTokensQuerySerializer],
        responses={
            200: PairTokensSerializer,
            404: error(404, "No such pair or snapshot among yours."),
            409: error(409, "The base model's tokenizer is not prepared on this machine yet."),
        },
    )
    def get(self, request: Request) -> Response:
        """One pair's tokens as training will see them (leads): each piece of text with its kind, `trained`,
        `masked` or `cut` (by truncation); joined, the pieces are the conversation as the chat template renders it.

        The pair as it is now, or as frozen in `snapshot`; `base_model` and `max_seq_len` as in the run's body.
        """
        query = PairTokensQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        data = dict(query.validated_data)
        if "snapshot" in data:
            data["snapshot"] = selectors.snapshot_get(user=request.user, pk=data["snapshot"])
        try:
            found = pair_tokens(user=request.user, **data)
        except TokenizerMissing as error:
            return Response({"detail": str(error)}, status=status.HTTP_409_CONFLICT)
        answer = {
            **found.counts.as_dict(), "base_model": found.base_model, "max_seq_len": found.max_seq_len,
            "pieces": [{"text": text, "kind": kind} for text, kind in found.pieces],
        }  # fmt: skip
        return Response(PairTokensSerializer(answer).data)


RUN_IDS = {
    "type": "array",
    "items": {"type": "integer", "minimum": 1, "maximum": 10**ID_DIGITS - 1},
    "minItems": 2,
    "maxItems": MAX_RUNS,
    "uniqueItems": True,
}


class RunCompareView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "runs",
                RUN_IDS,
                required=True,
                explode=False,
                description="Two to ten different run ids, comma-separated; the first is the baseline.",
            )
        ],
        responses={200: ComparisonSerializer, 404: error(404, "A run not among yours.")},
    )
    def get(self, request: Request) -> Response:
        """Runs side by side: metrics, the prompts they were all scored on, and what flipped from the first to the last."""
        run_ids = run_ids_from_query(request.query_params.getlist("runs"))
        comparison = run_comparison(user=request.user, run_ids=run_ids)
        # The metrics and prompts go out as built (ComparisonSerializer documents them): a serializer per prompt
        # would cost 10,000 prompts most of a second.
        body = {"runs": CompareRunSerializer(comparison.runs, many=True).data, "same_eval_set": comparison.same_eval_set,
                "unshared": comparison.unshared, "metrics": comparison.metrics, "prompts": comparison.prompts,
                "flips": comparison.flips}  # fmt: skip
        return Response(body)


class RunDetailView(APIView):
    @extend_schema(responses=RunDetailSerializer)
    def get(self, request: Request, pk: int) -> Response:
        """Status, progress, latest metrics, the before/after evaluation and every evaluated prompt."""
        return Response(RunDetailSerializer(selectors.run_get(user=request.user, pk=pk)).data)


class RunMetricsView(APIView):
    @extend_schema(responses=MetricSerializer(many=True))
    def get(self, request: Request, pk: int) -> Response:
        run = selectors.run_get(user=request.user, pk=pk)
        return Response(MetricSerializer(run.metrics.order_by("step", "id"), many=True).data)


class RunLogsView(APIView):
    @extend_schema(
        parameters=[id_parameter("after", "Only lines after this one (a log line's id).")],
        responses=LogSerializer(many=True),
    )
    def get(self, request: Request, pk: int) -> Response:
        run = selectors.run_get(user=request.user, pk=pk)
        after = id_param(request, "after")
        lines = run.logs.all() if after is None else run.logs.filter(id__gt=after)
        return Response(LogSerializer(lines.order_by("id")[:1000], many=True).data)


class RunCancelView(APIView):
    @extend_schema(request=None, responses=RunSerializer)
    def post(self, request: Request, pk: int) -> Response:
        """Stop a run: a queued one at once, a running one within a few seconds (metrics so far are kept)."""
        run = services.run_cancel(run=selectors.run_get(user=request.user, pk=pk), user=request.user)
        return Response(RunSerializer(run).data)


class RunSendFailuresView(APIView):
    @extend_schema(
        request=SendFailuresSerializer,
        responses={
            200: SendFailuresResultSerializer,
            202: OpenApiResponse(
                JobAcceptedSerializer, description="Queued: a worker rewords the prompts (follow job_url)."
            ),
            404: error(404, "No such run, or no such dataset among yours."),
            409: error(
                409,
                "The run has not succeeded, a chosen prompt is not one of its failures, the dataset is of another "
                "workspace, or no generator is configured to reword the prompts.",
            ),
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        """Make a draft training pair of each failed evaluated prompt, for annotators to finish (leads).

        Reworded by a generator on a worker (202 with the job), or as is with `"paraphrase": false` (200). Prompts
        already sent to the dataset are skipped; with nothing left to send the answer is 200 with the counts.
        """
        run = selectors.run_get(user=request.user, pk=pk)
        workspace = run.snapshot.dataset.workspace
        serializer = SendFailuresSerializer(data=request.data, context={"request": request, "workspace": workspace})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        outcome = failures_send(
            run=run, user=request.user, item_ids=data.get("items"), dataset=data.get("dataset"),
            paraphrase=data["paraphrase"], generator=data.get("generator") or None,
        )  # fmt: skip
        if isinstance(outcome, Job):
            return job_accepted(request, outcome)
        return Response(SendFailuresResultSerializer(outcome.as_dict()).data)


class RunArtifactView(APIView):
    @extend_schema(
        responses={
            (200, "application/zip"): OpenApiTypes.BINARY,
            302: PRESIGNED_REDIRECT,
            404: error(404, "No such run among yours, or it has no artifact (it has not succeeded)."),
        }
    )
    def get(self, request: Request, pk: int) -> HttpResponseBase:
        """The LoRA adapter (or full weights), tokenizer, run config and snapshot hash, as a zip."""
        return _artifact_response(selectors.run_get(user=request.user, pk=pk))


def _artifact_response(run: TrainingRun) -> HttpResponseBase:
    if not run.artifact:
        raise NotFound("this run has no artifact (it has not succeeded)")
    return stored_file_response(run.artifact.name, f"instructory-run-{run.pk}.zip", "application/zip")


class RunExportView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "format", str, enum=list(FORMATS), description="adapter (the artifact zip, default) or merged"
            )
        ],
        responses={
            (200, "application/zip"): OpenApiTypes.BINARY,
            302: PRESIGNED_REDIRECT,
            202: JobAcceptedSerializer,
            400: error(400, "An unknown format."),
            404: error(404, "No such run among yours, or it has no trained model (it has not succeeded)."),
        },
    )
    def get(self, request: Request, pk: int) -> HttpResponseBase:
        """The run's model as a zip: `adapter` is the artifact; `merged` a Hugging Face folder with the LoRA merged
        into the base weights (safetensors, tokenizer, chat template, generation config), loadable by
        `AutoModelForCausalLM.from_pretrained`, vLLM or llama.cpp's converter.

        A worker builds the merged model once: until it is built the answer is 202 with the job to poll (the first
        request starts it); then GET again for the zip.
        """
        run = selectors.run_get(user=request.user, pk=pk)
        kind = request.query_params.get("format", "adapter")
        if kind not in FORMATS:
            raise ValidationError({"format": [f"must be one of {', '.join(FORMATS)}, not {kind!r}"]})
        if kind == "adapter":
            return _artifact_response(run)
        try:
            built = merged_export_start(run=run, user=request.user)
        except NoModel as error:
            raise NotFound(str(error)) from error
        if isinstance(built, Job):
            response = job_accepted(request, built)
            response["Retry-After"] = "5"
            return response
        name = f"instructory-run-{run.pk}-merged.zip"
        return stored_file_response(built, name, "application/zip")


class RunGenerateView(APIView):
    @extend_schema(
        request=GenerateSerializer,
        responses={202: PlaygroundQueuedSerializer, 409: error(409, "The run has not succeeded.")},
    )
    def post(self, request: Request, pk: int) -> Response:
        """Queue one prompt for the base and the fine-tuned model; answers at once with the URL to poll.

        A worker generates both greedy answers; GET the URL until its status is succeeded or failed.
        """
        run = selectors.run_get(user=request.user, pk=pk)
        serializer = GenerateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        ask = services.playground_ask(run=run, user=request.user, **serializer.validated_data)
        url = reverse("api-playground", args=[ask.pk])
        return Response(
            PlaygroundQueuedSerializer({"id": ask.pk, "status": ask.status, "url": url}).data,
            status=status.HTTP_202_ACCEPTED,
            headers={"Location": url},
        )


class PlaygroundDetailView(APIView):
    @extend_schema(responses=PlaygroundSerializer)
    def get(self, request: Request, pk: int) -> Response:
        """A playground request: queued, running, succeeded (with both answers) or failed (with the error)."""
        return Response(PlaygroundSerializer(selectors.playground_get(user=request.user, pk=pk)).data)


class BaseModelsView(APIView):
    @extend_schema(
        responses=inline_serializer(
            "BaseModel", {"name": serializers.CharField(), "label": serializers.CharField()}, many=True
        )
    )
    def get(self, request: Request) -> Response:
        from django.conf import settings

        return Response(
            [{"name": name, "label": spec.get("label", name)} for name, spec in settings.BASE_MODELS.items()]
        )
