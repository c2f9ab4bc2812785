"""REST API for importing a file into a dataset, and for following any background job (import, generate, draft, lint)."""

from django.conf import settings
from django.urls import reverse
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import APIException
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from datasets_app.api.serializers import ImportSerializer, JobSerializer
from datasets_app.curation import selectors
from datasets_app.imports.services import ImportRejected, import_upload
from datasets_app.imports.uploads import bound_uploads, too_large_message, upload_refusal, upload_was_cut
from datasets_app.models import Job
from project.api_schema import error, errors


class UploadRefused(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "upload_refused"

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code


class DatasetImportView(APIView):
    parser_classes = [MultiPartParser, FormParser]

    def initial(self, request: Request, *args: object, **kwargs: object) -> None:
        """Before authentication (a session login's CSRF check reads the body): refuse an upload by its declared
        size, unread, and bound what is read to IMPORT_MAX_BYTES (imports/uploads.py)."""
        refused = upload_refusal(request._request) if request.method == "POST" else None
        if refused is not None:
            raise UploadRefused(*refused)
        bound_uploads(request._request)
        super().initial(request, *args, **kwargs)

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
            400: error(400, "Problems in the file, each with line or record, field and message; nothing was written."),
            **errors(411),
            413: error(413, "The file is larger than IMPORT_MAX_BYTES; refused before it is read."),
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        """Import a file (format detected from content unless given). Large files are imported by a worker: 202 and a job URL."""
        dataset = selectors.dataset_get(user=request.user, pk=pk)
        data = request.data
        if upload_was_cut(request._request):
            return _too_large()
        serializer = ImportSerializer(data=data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        upload = data["file"]
        if upload.size > settings.IMPORT_MAX_BYTES:
            return _too_large()
        try:
            outcome = import_upload(
                dataset=dataset, user=request.user, upload=upload, fmt=data.get("format"),
                on_duplicate=data["on_duplicate"], status=data["status"], split=data["split"],
            )  # fmt: skip
        except ImportRejected as rejected:
            detail = f"{len(rejected.problems)}{' or more' if rejected.more else ''} problem(s) in {upload.name}; nothing was imported"
            return Response({"detail": detail, "problems": rejected.problems}, status=status.HTTP_400_BAD_REQUEST)
        if isinstance(outcome, Job):
            url = reverse("api-job", args=[outcome.pk])
            return Response({"job": outcome.pk, "url": url}, status=status.HTTP_202_ACCEPTED, headers={"Location": url})
        return Response(outcome.as_dict(), status=status.HTTP_201_CREATED)


def _too_large() -> Response:
    return Response({"detail": too_large_message()}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)


class JobDetailView(APIView):
    @extend_schema(responses=JobSerializer)
    def get(self, request: Request, pk: int) -> Response:
        """A background job's status, progress (0 to 1), result or problems."""
        return Response(JobSerializer(selectors.job_get(user=request.user, pk=pk)).data)
