"""REST API for snapshots, training runs, their metrics, logs, artifacts and the playground."""

from django.http import FileResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from datasets_app.api.common import id_param
from datasets_app.curation import selectors as dataset_selectors
from project.api_schema import error, id_parameter
from training_app import selectors, services
from training_app.serializers import (
    RUN_CREATE,
    GenerateSerializer,
    LogSerializer,
    MetricSerializer,
    PlaygroundQueuedSerializer,
    PlaygroundSerializer,
    RunCreateSerializer,
    RunDetailSerializer,
    RunSerializer,
    SnapshotCreateSerializer,
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
        responses={201: SnapshotSerializer, 409: error(409, "The dataset has fewer than 2 approved pairs.")},
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
    @extend_schema(responses={(200, "application/jsonl"): OpenApiTypes.BINARY})
    def get(self, request: Request, pk: int) -> FileResponse:
        """The frozen rows as JSONL: ref (example id), split, system, prompt, response, history, tags."""
        snapshot = selectors.snapshot_get(user=request.user, pk=pk)
        name = f"{snapshot.dataset.name}-v{snapshot.number}.jsonl"
        return FileResponse(
            snapshot.file.open("rb"), as_attachment=True, filename=name, content_type="application/jsonl"
        )


class RunListView(APIView):
    @extend_schema(
        parameters=[id_parameter("dataset", "Only runs on this dataset.")], responses=RunSerializer(many=True)
    )
    def get(self, request: Request) -> Response:
        runs = selectors.run_list(user=request.user, dataset_id=id_param(request, "dataset"))[:200]
        return Response(RunSerializer(runs, many=True).data)

    @extend_schema(
        request=RUN_CREATE,
        responses={201: RunSerializer, 404: error(404, "No such snapshot or dataset among yours.")},
    )
    def post(self, request: Request) -> Response:
        """Start a fine-tuning run (leads): on a snapshot, or on a fresh snapshot of a dataset."""
        serializer = RunCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        target = {}
        if "snapshot" in data:
            target["snapshot"] = selectors.snapshot_get(user=request.user, pk=data["snapshot"])
        else:
            target["dataset"] = dataset_selectors.dataset_get(user=request.user, pk=data["dataset"])
        run = services.run_create(
            user=request.user, base_model=data["base_model"], method=data["method"], hyperparameters=data["hyperparameters"],
            validation_fraction=data["validation_fraction"], **target,
        )  # fmt: skip
        return Response(RunSerializer(run).data, status=status.HTTP_201_CREATED)


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


class RunArtifactView(APIView):
    @extend_schema(
        responses={
            (200, "application/zip"): OpenApiTypes.BINARY,
            404: error(404, "No such run among yours, or it has no artifact (it has not succeeded)."),
        }
    )
    def get(self, request: Request, pk: int) -> FileResponse:
        """The LoRA adapter (or full weights), tokenizer, run config and snapshot hash, as a zip."""
        run = selectors.run_get(user=request.user, pk=pk)
        if not run.artifact:
            raise NotFound("this run has no artifact (it has not succeeded)")
        return FileResponse(run.artifact.open("rb"), as_attachment=True, filename=f"instructory-run-{run.pk}.zip")


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
