"""REST API for workspaces, datasets, examples, imports and exports."""

from datetime import UTC

from django.conf import settings
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils.dateparse import parse_datetime
from django.utils.text import get_valid_filename
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.exceptions import APIException, ParseError, ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle
from rest_framework.views import APIView

from datasets_app.curation import selectors, services
from datasets_app.curation.exports import dataset_export
from datasets_app.errors import BulkInvalid
from datasets_app.formats import EXPORT_CONTENT_TYPES, EXPORT_EXTENSIONS, EXPORT_FORMATS
from datasets_app.imports.services import ImportRejected, import_upload
from datasets_app.models import ExampleStatus, Job
from datasets_app.serializers import (
    DatasetSerializer,
    DatasetUpdateSerializer,
    ExampleCreateSerializer,
    ExampleSerializer,
    ExampleUpdateSerializer,
    ImportSerializer,
    JobSerializer,
    MemberSerializer,
    StatusActionSerializer,
    WorkspaceSerializer,
)

MAX_BULK = 10_000


class LoginThrottle(AnonRateThrottle):
    scope = "login"


class TokenView(ObtainAuthToken):
    """Exchange a username and password for an API token."""

    throttle_classes = [LoginThrottle]


class ExampleCursor(CursorPagination):
    ordering = "id"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


# --- workspaces


class WorkspaceListView(generics.ListCreateAPIView):
    serializer_class = WorkspaceSerializer
    pagination_class = None

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return selectors.workspace_list(user=self.request.user)

    def perform_create(self, serializer: WorkspaceSerializer) -> None:
        serializer.instance = services.workspace_create(
            name=serializer.validated_data["name"],
            description=serializer.validated_data.get("description", ""),
            user=self.request.user,
        )


class WorkspaceDetailView(generics.RetrieveAPIView):
    serializer_class = WorkspaceSerializer

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return selectors.workspace_list(user=self.request.user)


class WorkspaceMembersView(APIView):
    @extend_schema(responses=MemberSerializer(many=True))
    def get(self, request: Request, pk: int) -> Response:
        workspace = get_object_or_404(selectors.workspace_list(user=request.user), pk=pk)
        members = workspace.memberships.select_related("user").order_by("user__username")
        return Response([{"username": m.user.username, "role": m.role} for m in members])

    @extend_schema(request=MemberSerializer, responses=MemberSerializer)
    def post(self, request: Request, pk: int) -> Response:
        """Add a member or change their role (workspace admins only)."""
        workspace = get_object_or_404(selectors.workspace_list(user=request.user), pk=pk)
        serializer = MemberSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = serializer.validated_data["username"]
        membership = services.membership_set(
            workspace=workspace, user=user, role=serializer.validated_data["role"], by=request.user
        )
        return Response({"username": user.username, "role": membership.role}, status=status.HTTP_200_OK)


def workspace_param(request: Request) -> int | None:
    """The `?workspace=` filter of a list: a workspace id, or None when not given (400 when not an id)."""
    workspace = request.query_params.get("workspace")
    if not workspace:
        return None
    if not workspace.isdigit() or len(workspace) > 18:
        raise ValidationError({"workspace": "must be a workspace id"})
    return int(workspace)


def job_accepted(request: Request, job: Job) -> Response:
    """202 for work queued on a worker: the job, its URL in `job_url` and in the Location header."""
    url = request.build_absolute_uri(reverse("api-job", args=[job.pk]))
    return Response(
        {**JobSerializer(job).data, "job_url": url}, status=status.HTTP_202_ACCEPTED, headers={"Location": url}
    )


# --- datasets


class DatasetListView(generics.ListCreateAPIView):
    serializer_class = DatasetSerializer
    pagination_class = None

    @extend_schema(parameters=[OpenApiParameter("workspace", int, description="Only this workspace's datasets.")])
    def get(self, request: Request, *args: object, **kwargs: object) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self):  # type: ignore[no-untyped-def]
        datasets = selectors.dataset_list_with_counts(user=self.request.user)
        workspace = workspace_param(self.request)
        return datasets if workspace is None else datasets.filter(workspace_id=workspace)

    def perform_create(self, serializer: DatasetSerializer) -> None:
        data = serializer.validated_data
        workspace = get_object_or_404(selectors.workspace_list(user=self.request.user), pk=data.pop("workspace").pk)
        serializer.instance = services.dataset_create(workspace=workspace, user=self.request.user, **data)


class DatasetDetailView(APIView):
    @extend_schema(responses=DatasetSerializer)
    def get(self, request: Request, pk: int) -> Response:
        dataset = selectors.dataset_get(user=request.user, pk=pk)
        return Response(DatasetSerializer(dataset, context={"request": request}).data)

    @extend_schema(request=DatasetUpdateSerializer, responses=DatasetSerializer)
    def patch(self, request: Request, pk: int) -> Response:
        dataset = selectors.dataset_get(user=request.user, pk=pk)
        serializer = DatasetUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        dataset = services.dataset_update(dataset=dataset, user=request.user, **serializer.validated_data)
        return Response(DatasetSerializer(dataset, context={"request": request}).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        services.dataset_delete(dataset=selectors.dataset_get(user=request.user, pk=pk), user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- examples

EXAMPLE_FILTERS = [
    OpenApiParameter("status", str, enum=ExampleStatus.values),
    OpenApiParameter("tag", str, description="Pairs carrying exactly this tag."),
    OpenApiParameter("search", str, description="Full-text search over prompt and response; every word must match."),
    OpenApiParameter("source", str, description="Exact source, or a prefix ending in * (e.g. import:*)."),
    OpenApiParameter("author", str, description="Username of the pair's creator."),
    OpenApiParameter("updated_after", OpenApiTypes.DATETIME, description="ISO 8601 timestamp."),
    OpenApiParameter(
        "on_duplicate",
        str,
        enum=["skip", "keep"],
        description="POST only: what to do with pairs the dataset already has.",
    ),
]


def _filters(params: dict) -> dict:
    chosen: dict = {name: params.get(name) or None for name in ("status", "tag", "search", "source", "author")}
    if chosen["status"] and chosen["status"] not in ExampleStatus.values:
        raise ValidationError({"status": f"must be one of {', '.join(ExampleStatus.values)}"})
    if params.get("updated_after"):
        moment = _parse_moment(params["updated_after"])
        if moment is None:
            raise ValidationError(
                {"updated_after": "must be an ISO 8601 date-time with a time zone, e.g. 2026-01-31T12:00:00Z"}
            )
        chosen["updated_after"] = moment
    return chosen


def _parse_moment(text: str):  # type: ignore[no-untyped-def]
    try:
        moment = parse_datetime(text)
        # In UTC, so the database never sees an offset it cannot store (PostgreSQL allows at most 15:59).
        return moment.astimezone(UTC) if moment is not None and moment.tzinfo is not None else None
    except (ValueError, OverflowError):
        return None


class DatasetExamplesView(generics.GenericAPIView):
    pagination_class = ExampleCursor
    serializer_class = ExampleSerializer

    def get_queryset(self):  # type: ignore[no-untyped-def]
        dataset = selectors.dataset_get(user=self.request.user, pk=self.kwargs["pk"])
        return selectors.example_filter(dataset=dataset, **_filters(self.request.query_params)).select_related(
            "created_by", "updated_by"
        )

    @extend_schema(parameters=EXAMPLE_FILTERS[:-1], responses=ExampleSerializer(many=True))
    def get(self, request: Request, pk: int) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(ExampleSerializer(page, many=True).data)

    @extend_schema(
        parameters=EXAMPLE_FILTERS[-1:],
        request=ExampleCreateSerializer,
        responses={201: ExampleSerializer, 409: OpenApiResponse(description="The dataset already has this pair.")},
        description="One object, or a list of up to 10,000 (all or nothing; duplicates are skipped unless on_duplicate=keep).",
    )
    def post(self, request: Request, pk: int) -> Response:
        dataset = selectors.dataset_get(user=request.user, pk=pk)
        keep = request.query_params.get("on_duplicate", "skip") == "keep"
        if isinstance(request.data, list):
            return self._create_many(request, dataset, keep)
        serializer = ExampleCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        example = services.example_create(
            dataset=dataset, user=request.user, prompt=data["prompt"], response=data["response"], system_prompt=data["system_prompt"],
            history=data.get("history", []), tags=data.get("tags", []), source=data.get("source", "manual"),
            status=data.get("status", "draft"), allow_duplicate=keep,
        )  # fmt: skip
        return Response(
            ExampleSerializer(example).data, status=status.HTTP_201_CREATED, headers={"ETag": f'"{example.version}"'}
        )

    def _create_many(self, request: Request, dataset, keep: bool) -> Response:  # type: ignore[no-untyped-def]
        if not request.data:
            raise ValidationError({"detail": "the list is empty"})
        if len(request.data) > MAX_BULK:
            raise ValidationError({"detail": f"at most {MAX_BULK} pairs per request; got {len(request.data)}"})
        serializer = ExampleCreateSerializer(data=request.data, many=True)
        if not serializer.is_valid():
            problems = [
                {"record": n + 1, "field": f, "message": m}
                for n, errs in _indexed(serializer.errors)
                for f, m in _flatten(errs)
            ]
            return Response(
                {"detail": f"{len(problems)} problem(s); nothing was created", "problems": problems[:100]}, status=400
            )
        try:
            created, skipped = services.examples_bulk_create(
                dataset=dataset, user=request.user, items=serializer.validated_data, keep_duplicates=keep
            )
        except BulkInvalid as invalid:
            problems = [
                {"record": n + 1, "field": f, "message": " ".join(m)}
                for n, errs in invalid.problems.items()
                for f, m in errs.items()
            ]
            return Response(
                {"detail": f"{len(problems)} problem(s); nothing was created", "problems": problems[:100]}, status=400
            )
        body = {
            "created": len(created),
            "skipped_duplicates": skipped,
            "results": ExampleSerializer(created, many=True).data,
        }
        return Response(body, status=status.HTTP_201_CREATED)


def _indexed(errors: object) -> list[tuple[int, object]]:
    """A list serializer's errors as (index, errors) pairs, whichever shape DRF gives them in."""
    pairs = errors.items() if isinstance(errors, dict) else enumerate(errors)  # type: ignore[attr-defined]
    return [(int(index), errs) for index, errs in pairs if errs]


def _flatten(errors: object, prefix: str = "") -> list[tuple[str, str]]:
    """Nested serializer errors as (field path, message) pairs, e.g. ("history[0].role", '"robot" is not a valid choice.')."""
    if isinstance(errors, dict):
        return [pair for key, value in errors.items() for pair in _flatten(value, _join(prefix, key))]
    if isinstance(errors, list) and errors and all(isinstance(item, str) for item in errors):
        return [(prefix, " ".join(errors))]
    if isinstance(errors, list):
        return [pair for index, value in enumerate(errors) for pair in _flatten(value, f"{prefix}[{index}]") if value]
    return [(prefix, str(errors))]


def _join(prefix: str, key: object) -> str:
    if isinstance(key, int):
        return f"{prefix}[{key}]"
    return f"{prefix}.{key}" if prefix else str(key)


class PreconditionRequired(APIException):
    status_code = 428
    default_detail = 'send If-Match with the ETag you loaded (or "version" in the body)'
    default_code = "precondition_required"


def expected_version(request: Request) -> int:
    """The version the client loaded, which an edit must carry (428 without it)."""
    version = _if_match(request)
    if version is None:
        raise PreconditionRequired()
    return version


def _if_match(request: Request) -> int | None:
    header = request.headers.get("If-Match")
    if header is None:
        version = request.data.get("version") if isinstance(request.data, dict) else None
        return version if isinstance(version, int) else None
    value = header.strip().removeprefix("W/").strip('"')
    if not value.isdigit():
        raise ParseError('If-Match must be the ETag you got, e.g. "3"')
    return int(value)


class ExampleDetailView(APIView):
    @extend_schema(responses=ExampleSerializer)
    def get(self, request: Request, pk: int) -> Response:
        example = selectors.example_get(user=request.user, pk=pk)
        return Response(ExampleSerializer(example).data, headers={"ETag": f'"{example.version}"'})

    @extend_schema(
        request=ExampleUpdateSerializer,
        responses={200: ExampleSerializer, 412: OpenApiResponse(description="Stale: someone saved a newer version.")},
        parameters=[
            OpenApiParameter("If-Match", str, OpenApiParameter.HEADER, description='The ETag you loaded, e.g. "3".')
        ],
    )
    def patch(self, request: Request, pk: int) -> Response:
        example = selectors.example_get(user=request.user, pk=pk)
        expected = expected_version(request)
        serializer = ExampleUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        fields = {name: value for name, value in serializer.validated_data.items() if name != "version"}
        if "history" in fields:
            fields["history"] = [dict(turn) for turn in fields["history"]]
        example = services.example_update(example=example, user=request.user, expected_version=expected, **fields)
        return Response(ExampleSerializer(example).data, headers={"ETag": f'"{example.version}"'})

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        services.example_delete(example=selectors.example_get(user=request.user, pk=pk), user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ExampleStatusView(APIView):
    @extend_schema(request=StatusActionSerializer, responses=ExampleSerializer)
    def post(self, request: Request, pk: int) -> Response:
        """Submit (annotators), approve or reject with a comment (leads), or reopen a pair."""
        example = selectors.example_get(user=request.user, pk=pk)
        serializer = StatusActionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        example = services.example_set_status(
            example=example, user=request.user, expected_version=_if_match(request), **serializer.validated_data
        )
        return Response(ExampleSerializer(example).data, headers={"ETag": f'"{example.version}"'})


class ExampleRevisionsView(APIView):
    @extend_schema(
        responses=inline_serializer(
            "Revision",
            {
                "version": serializers.IntegerField(),
                "action": serializers.CharField(),
                "user": serializers.CharField(allow_null=True),
                "before": serializers.DictField(),
                "after": serializers.DictField(),
                "comment": serializers.CharField(),
                "created_at": serializers.DateTimeField(),
            },  # fmt: skip
            many=True,
        )
    )
    def get(self, request: Request, pk: int) -> Response:
        example = selectors.example_get(user=request.user, pk=pk)
        revisions = selectors.revision_list(example=example)
        return Response(
            [
                {
                    "version": r.version,
                    "action": r.action,
                    "user": r.user.username if r.user else None,
                    "before": r.before,
                    "after": r.after,
                    "comment": r.comment,
                    "created_at": r.created_at,
                }
                for r in revisions
            ]  # fmt: skip
        )


# --- import and export


class DatasetImportView(APIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        request={"multipart/form-data": ImportSerializer},
        responses={
            201: inline_serializer(
                "ImportResult",
                {
                    "created": serializers.IntegerField(),
                    "skipped_duplicates": serializers.IntegerField(),
                    "format": serializers.CharField(),
                },
            ),
            202: inline_serializer("ImportQueued", {"job": serializers.IntegerField(), "url": serializers.CharField()}),
            400: OpenApiResponse(
                description="Problems in the file, each with line or record, field and message; nothing was written."
            ),
            413: OpenApiResponse(description="The file is larger than the configured maximum."),
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        """Import a file (format detected from content unless given). Large files are imported by a worker: 202 and a job URL."""
        dataset = selectors.dataset_get(user=request.user, pk=pk)
        length = request.META.get("CONTENT_LENGTH") or "0"
        if length.isdigit() and int(length) > settings.IMPORT_MAX_BYTES + 64 * 1024:
            return _too_large()
        serializer = ImportSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        upload = data["file"]
        if upload.size > settings.IMPORT_MAX_BYTES:
            return _too_large()
        try:
            outcome = import_upload(
                dataset=dataset, user=request.user, upload=upload, fmt=data.get("format"),
                on_duplicate=data["on_duplicate"], status=data["status"],
            )  # fmt: skip
        except ImportRejected as rejected:
            detail = f"{len(rejected.problems)}{' or more' if rejected.more else ''} problem(s) in {upload.name}; nothing was imported"
            return Response({"detail": detail, "problems": rejected.problems}, status=status.HTTP_400_BAD_REQUEST)
        if isinstance(outcome, Job):
            return Response(
                {"job": outcome.pk, "url": reverse("api-job", args=[outcome.pk])}, status=status.HTTP_202_ACCEPTED
            )
        return Response(outcome.as_dict(), status=status.HTTP_201_CREATED)


def _too_large() -> Response:
    limit = settings.IMPORT_MAX_BYTES / (1024 * 1024)
    return Response(
        {"detail": f"the file is larger than the {limit:g} MB import limit"},
        status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    )


class JobDetailView(APIView):
    @extend_schema(responses=JobSerializer)
    def get(self, request: Request, pk: int) -> Response:
        """A background job's status, progress (0 to 1), result or problems."""
        return Response(JobSerializer(selectors.job_get(user=request.user, pk=pk)).data)


class DatasetExportView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("format", str, enum=list(EXPORT_FORMATS), description="Default: pairs (JSONL)."),
            OpenApiParameter(
                "status", str, description="Comma-separated statuses to include, e.g. approved,submitted. Default: all."
            ),
        ],
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY},
    )
    def get(self, request: Request, pk: int) -> StreamingHttpResponse:
        """Download the dataset, streamed in constant memory."""
        dataset = selectors.dataset_get(user=request.user, pk=pk)
        fmt = request.query_params.get("format") or "pairs"
        if fmt not in EXPORT_FORMATS:
            raise ValidationError({"format": f"must be one of {', '.join(EXPORT_FORMATS)}"})
        statuses = [s for s in (request.query_params.get("status") or "").split(",") if s]
        unknown = set(statuses) - set(ExampleStatus.values)
        if unknown:
            raise ValidationError(
                {"status": f"unknown status {', '.join(sorted(unknown))}; expected {', '.join(ExampleStatus.values)}"}
            )
        response = StreamingHttpResponse(
            dataset_export(dataset=dataset, fmt=fmt, statuses=statuses), content_type=EXPORT_CONTENT_TYPES[fmt]
        )
        filename = get_valid_filename(dataset.name) or "dataset"
        response["Content-Disposition"] = f'attachment; filename="{filename}.{EXPORT_EXTENSIONS[fmt]}"'
        return response
