"""One place that turns service errors into HTTP answers, so no client input ends in a 500."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.defaults import page_not_found
from django.views.defaults import server_error as server_error_page
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from datasets_app.errors import Conflict, DuplicateExample, NotAllowed, StaleVersion
from openai_app.api import errors as v1_errors


def exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, NotAllowed):
        return Response({"detail": str(exc)}, status=status.HTTP_403_FORBIDDEN)
    if isinstance(exc, StaleVersion):
        return Response(
            {
                "detail": "someone saved this after you loaded it; reload and apply your change again",
                "current_version": exc.current.version,
            },
            status=status.HTTP_412_PRECONDITION_FAILED,
            headers={"ETag": f'"{exc.current.version}"'},
        )
    if isinstance(exc, DuplicateExample):
        return Response({"detail": exc.messages[0], "existing_id": exc.existing.pk}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, Conflict):
        return Response({"detail": " ".join(exc.messages)}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        return Response(detail, status=status.HTTP_400_BAD_REQUEST)
    return drf_exception_handler(exc, context)


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """A path that names nothing: JSON under /api/, like every other API answer (OpenAI's shape under /v1/); the
    page elsewhere."""
    if request.path.startswith("/v1/"):
        return v1_errors.not_found(request)
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=status.HTTP_404_NOT_FOUND)
    return page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """A server error: OpenAI's shape under /v1/ (its clients retry on it), Django's page elsewhere."""
    if request.path.startswith("/v1/"):
        return v1_errors.server_error(request)
    return server_error_page(request)
