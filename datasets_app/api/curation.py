"""REST API for workspaces, members, datasets, examples, their revisions and exports, and API tokens."""

from datetime import UTC

from django.http import QueryDict, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle
from rest_framework.views import APIView

from datasets_app.api.common import (
    IF_MATCH,
    choice_param,
    expected_version,
    flatten_errors,
    id_param,
    if_match,
    indexed_errors,
)
from datasets_app.api.serializers import (
    CREATED_PAIRS,
    NEW_PAIR,
    STATUS_ACTION,
    DatasetSerializer,
    DatasetUpdateSerializer,
    ExampleCreateSerializer,
    ExampleSerializer,
    ExampleUpdateSerializer,
    MemberSerializer,
    StatusActionSerializer,
    WorkspaceSerializer,
)
from datasets_app.curation import selectors, services
from datasets_app.curation.exports import dataset_export
from datasets_app.errors import BulkInvalid, NotAMember
from datasets_app.formats import (
    EXPORT_CONTENT_TYPES,
    EXPORT_EXTENSIONS,
    EXPORT_FORMATS,
    PREFERENCE_FORMATS,
    kind_mismatch,
)
from datasets_app.imports.uploads import safe_filename
from datasets_app.models import ExampleSplit, ExampleStatus, Role
from project.api_schema import DuplicateSerializer, OneOrMany, error, errors, id_parameter

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

    def get_page_size(self, request: Request) -> int:
        """`?page_size=` from 1 to 1000 (anything else is a 400, where DRF would quietly use 100)."""
        value = request.query_params.get(self.page_size_query_param)
        if value is None:
            return self.page_size
        if not (value.isascii() and value.isdigit() and len(value) <= 4 and 1 <= int(value) <= self.max_page_size):
            raise ValidationError({"page_size": f"must be a whole number from 1 to {self.max_page_size}"})
        return int(value)

    def get_schema_operation_parameters(self, view: APIView) -> list[dict]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {"type": "integer", "minimum": 1, "maximum": self.max_page_size}
        return parameters


# --- workspaces


class WorkspaceListView(generics.ListCreateAPIView):
    serializer_class = WorkspaceSerializer
    pagination_class = None

    @extend_schema(responses={201: WorkspaceSerializer, **errors(409)})
    def post(self, request: Request, *args: object, **kwargs: object) -> Response:
        return super().post(request, *args, **kwargs)

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

    @extend_schema(
        request=MemberSerializer,
        responses={
            200: MemberSerializer,
            404: error(404, "No such workspace among yours, or no member by that name."),
            409: error(409, "The workspace would be left without an admin."),
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        """Change a member's role (workspace admins only). People join by invitation (/invitations/).

        A name that is not a member's gets the same 404 whether or not anyone has it."""
        workspace = get_object_or_404(selectors.workspace_list(user=request.user), pk=pk)
        selectors.role_require(user=request.user, workspace=workspace, role=Role.ADMIN)
        serializer = MemberSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        username = serializer.validated_data["username"]
        member = selectors.member_list(workspace=workspace).filter(user__username=username).first()
        try:
            if member is None:
                raise NotAMember(username)
            membership = services.membership_set(
                workspace=workspace, user=member.user, role=serializer.validated_data["role"], by=request.user
            )
        except NotAMember:
            raise NotFound(f"no member named {username!r} in this workspace") from None
        return Response({"username": username, "role": membership.role}, status=status.HTTP_200_OK)


# --- datasets


class DatasetListView(generics.ListCreateAPIView):
    serializer_class = DatasetSerializer
    pagination_class = None

    @extend_schema(parameters=[id_parameter("workspace", "Only this workspace's datasets.")])
    def get(self, request: Request, *args: object, **kwargs: object) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self):  # type: ignore[no-untyped-def]
        datasets = selectors.dataset_list_with_counts(user=self.request.user)
        workspace = id_param(self.request, "workspace")
        return datasets if workspace is None else datasets.filter(workspace_id=workspace)

    @extend_schema(responses={201: DatasetSerializer, **errors(409)})
    def post(self, request: Request, *args: object, **kwargs: object) -> Response:
        return super().post(request, *args, **kwargs)

    def perform_create(self, serializer: DatasetSerializer) -> None:
        data = serializer.validated_data
        workspace = data.pop("workspace")  # one the user belongs to: the field sees no other
        serializer.instance = services.dataset_create(workspace=workspace, user=self.request.user, **data)


class DatasetDetailView(APIView):
    @extend_schema(responses=DatasetSerializer)
    def get(self, request: Request, pk: int) -> Response:
        dataset = selectors.dataset_get(user=request.user, pk=pk)
        return Response(DatasetSerializer(dataset, context={"request": request}).data)

    @extend_schema(request=DatasetUpdateSerializer, responses={200: DatasetSerializer, **errors(409)})
    def patch(self, request: Request, pk: int) -> Response:
        dataset = selectors.dataset_get(user=request.user, pk=pk)
        serializer = DatasetUpdateSerializer(data=request.data, partial=True, context={"request": request})
        serializer.is_valid(raise_exception=True)
        dataset = services.dataset_update(dataset=dataset, user=request.user, **serializer.validated_data)
        return Response(DatasetSerializer(dataset, context={"request": request}).data)

    @extend_schema(
        responses={204: None, 409: error(409, "Fine-tuning runs use the dataset; the detail says how many.")}
    )
    def delete(self, request: Request, pk: int) -> Response:
        services.dataset_delete(dataset=selectors.dataset_get(user=request.user, pk=pk), user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- examples

EXAMPLE_FILTERS = [
    OpenApiParameter("status", str, enum=ExampleStatus.values),
    OpenApiParameter(
        "split", str, enum=ExampleSplit.values, description="train: the training set; eval: the evaluation set."
    ),
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


def _filters(params: QueryDict) -> dict:
    chosen: dict = {name: params.get(name) or None for name in ("tag", "search", "source", "author")}
    chosen["status"] = choice_param(params, "status", ExampleStatus.values)
    chosen["split"] = choice_param(params, "split", ExampleSplit.values)
    if "updated_after" in params:
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
        request=OneOrMany(NEW_PAIR, MAX_BULK),
        responses={
            201: CREATED_PAIRS,
            409: OpenApiResponse(DuplicateSerializer, "The dataset already has this pair (one pair sent)."),
        },
        description="One object, or a list of up to 10,000 (all or nothing; duplicates are skipped unless on_duplicate=keep).",
    )
    def post(self, request: Request, pk: int) -> Response:
        dataset = selectors.dataset_get(user=request.user, pk=pk)
        keep = choice_param(request.query_params, "on_duplicate", ["skip", "keep"], "skip") == "keep"
        if isinstance(request.data, list):
            return self._create_many(request, dataset, keep)
        serializer = ExampleCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        example = services.example_create(
            dataset=dataset, user=request.user, prompt=data["prompt"], response=data["response"], system_prompt=data["system_prompt"],
            history=data.get("history", []), tags=data.get("tags", []), source=data.get("source", "manual"),
            status=data.get("status", "draft"), split=data.get("split", ExampleSplit.TRAIN), allow_duplicate=keep,
            rejected=data.get("rejected", ""),
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
                for n, errs in indexed_errors(serializer.errors)
                for f, m in flatten_errors(errs)
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


class ExampleDetailView(APIView):
    @extend_schema(responses=ExampleSerializer)
    def get(self, request: Request, pk: int) -> Response:
        example = selectors.example_get(user=request.user, pk=pk)
        return Response(ExampleSerializer(example).data, headers={"ETag": f'"{example.version}"'})

    @extend_schema(
        request=ExampleUpdateSerializer,
        responses={200: ExampleSerializer, **errors(409, 412, 428)},
        parameters=[IF_MATCH],
    )
    def patch(self, request: Request, pk: int) -> Response:
        example = selectors.example_get(user=request.user, pk=pk)
        expected = expected_version(request)
        serializer = ExampleUpdateSerializer(data=request.data)  # every field is optional; each turn is whole
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
    @extend_schema(
        request=STATUS_ACTION,
        responses={200: ExampleSerializer, **errors(409, 412)},
        parameters=[IF_MATCH],
    )
    def post(self, request: Request, pk: int) -> Response:
        """Submit (annotators), approve or reject with a comment (leads), or reopen a pair."""
        example = selectors.example_get(user=request.user, pk=pk)
        serializer = StatusActionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        example = services.example_set_status(
            example=example, user=request.user, expected_version=if_match(request), **serializer.validated_data
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


# --- export


EXPORT_JSON = {"type": "array", "items": {"type": "object"}, "description": "alpaca and sharegpt: one JSON array."}


class DatasetExportView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "format",
                str,
                enum=list(dict.fromkeys((*EXPORT_FORMATS, *PREFERENCE_FORMATS))),
                description="Default: pairs (JSONL), or for a preference dataset trl (JSONL). A preference dataset "
                "exports as trl, trl_chat, openai_preference or parquet (prompt, chosen, rejected columns); any other "
                "dataset as the rest.",
            ),
            OpenApiParameter(
                "status",
                {"type": "array", "items": {"type": "string", "enum": ExampleStatus.values}},
                style="form",
                explode=False,
                description="Comma-separated statuses to include, e.g. approved,submitted. Default: all.",
            ),
        ],
        responses={
            (200, media_type): EXPORT_JSON if media_type == "application/json" else OpenApiTypes.BINARY
            for media_type in sorted(set(EXPORT_CONTENT_TYPES.values()))
        },
    )
    def get(self, request: Request, pk: int) -> StreamingHttpResponse:
        """Download the dataset, streamed in constant memory."""
        dataset = selectors.dataset_get(user=request.user, pk=pk)
        known = list(dict.fromkeys((*EXPORT_FORMATS, *PREFERENCE_FORMATS)))
        fmt = choice_param(request.query_params, "format", known, "trl" if dataset.is_preference else "pairs")
        mismatch = kind_mismatch(fmt, preference=dataset.is_preference)
        if mismatch is not None:
            raise ValidationError({"format": mismatch})
        statuses = [s for s in request.query_params.get("status", "").split(",") if s]
        unknown = set(statuses) - set(ExampleStatus.values)
        if unknown:
            raise ValidationError(
                {"status": f"unknown status {', '.join(sorted(unknown))}; expected {', '.join(ExampleStatus.values)}"}
            )
        response = StreamingHttpResponse(
            dataset_export(dataset=dataset, fmt=fmt, statuses=statuses), content_type=EXPORT_CONTENT_TYPES[fmt]
        )
        filename = safe_filename(dataset.name, "dataset")
        response["Content-Disposition"] = f'attachment; filename="{filename}.{EXPORT_EXTENSIONS[fmt]}"'
        return response
