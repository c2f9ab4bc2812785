"""What the API views of every feature share: query and header parsing, the 202 for queued jobs, error lists."""

import re

from django.http import QueryDict
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from datasets_app.api.serializers import JobAcceptedSerializer, JobSerializer
from datasets_app.models import Job
from project.api_schema import ID_DIGITS

ETAG = r'(W/)?"?([0-9]{1,18})"?'  # the ETag a response carries ("3"), as If-Match sends it back
IF_MATCH = OpenApiParameter(
    "If-Match",
    {"type": "string", "pattern": f"^{ETAG}$"},
    OpenApiParameter.HEADER,
    description='The ETag you loaded, e.g. "3" (or send "version" in the body). A stale one gets 412.',
)


def id_param(request: Request, name: str) -> int | None:
    """A query filter that names a row, e.g. `?workspace=`: its id, or None when not given (400 when not an id)."""
    if name not in request.query_params:
        return None
    value = request.query_params[name]
    if not value.isascii() or not value.isdigit() or len(value) > ID_DIGITS:
        raise ValidationError({name: f"must be the id of a {name}"})
    return int(value)


def choice_param(params: QueryDict, name: str, choices: list[str], default: str | None = None) -> str | None:
    """A query parameter that takes one of `choices`: `default` when not given, 400 for anything else."""
    if name not in params:
        return default
    value = params[name]
    if value not in choices:
        raise ValidationError({name: f"must be one of {', '.join(choices)}"})
    return value


JOB_ACCEPTED = OpenApiResponse(JobAcceptedSerializer, description="Queued as a job on a worker: follow job_url.")


def job_accepted(request: Request, job: Job) -> Response:
    """202 for work queued on a worker: the job, its URL in `job_url` and in the Location header."""
    url = request.build_absolute_uri(reverse("api-job", args=[job.pk]))
    return Response(
        {**JobSerializer(job).data, "job_url": url}, status=status.HTTP_202_ACCEPTED, headers={"Location": url}
    )


def indexed_errors(errors: object) -> list[tuple[int, object]]:
    """A list serializer's errors as (index, errors) pairs, whichever shape DRF gives them in."""
    pairs = errors.items() if isinstance(errors, dict) else enumerate(errors)  # type: ignore[attr-defined]
    return [(int(index), errs) for index, errs in pairs if errs]


def flatten_errors(errors: object, prefix: str = "") -> list[tuple[str, str]]:
    """Nested serializer errors as (field path, message) pairs, e.g. ("history[0].role", '"robot" is not a valid choice.')."""
    if isinstance(errors, dict):
        return [pair for key, value in errors.items() for pair in flatten_errors(value, _join(prefix, key))]
    if isinstance(errors, list) and errors and all(isinstance(item, str) for item in errors):
        return [(prefix, " ".join(errors))]
    if isinstance(errors, list):
        return [
            pair for index, value in enumerate(errors) for pair in flatten_errors(value, f"{prefix}[{index}]") if value
        ]
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
    version = if_match(request)
    if version is None:
        raise PreconditionRequired()
    return version


def if_match(request: Request) -> int | None:
    header = request.headers.get("If-Match")
    if header is None:
        version = request.data.get("version") if isinstance(request.data, dict) else None
        return version if isinstance(version, int) else None
    found = re.fullmatch(ETAG, header.strip())
    if found is None:
        raise ParseError('If-Match must be the ETag you got, e.g. "3"')
    return int(found[2])
