"""Every /v1/ error in OpenAI's shape, {"error": {"message", "type", "param", "code"}}, with OpenAI's status codes,
so the official clients raise their usual exceptions (AuthenticationError, NotFoundError, BadRequestError, ...)."""

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response

from datasets_app.errors import Conflict, NotAllowed

INVALID_REQUEST = "invalid_request_error"
NO_KEY = (
    "You didn't provide an API key. Send it in the Authorization header as `Authorization: Bearer <key>`; "
    "a workspace admin makes keys on the workspace's API keys page."
)


class OpenAIError(exceptions.APIException):
    """An error answered exactly as given: status, message, and OpenAI's type, param and code."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int = status.HTTP_400_BAD_REQUEST,
        type: str = INVALID_REQUEST,
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = error_body(message, type=type, param=param, code=code)


def error_body(message: str, *, type: str = INVALID_REQUEST, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def model_not_found(model: str) -> OpenAIError:
    return OpenAIError(
        f"The model '{model}' does not exist or you do not have access to it.",
        status_code=status.HTTP_404_NOT_FOUND,
        param="model",
        code="model_not_found",
    )


def file_not_found(file_id: str) -> OpenAIError:
    return OpenAIError(f"No such File object: {file_id}", status_code=status.HTTP_404_NOT_FOUND, param="id")


def exception_handler(exc: Exception, context: dict) -> Response | None:
    """The /v1/ views' handler (their get_exception_handler); /api/ keeps project.api_errors'."""
    answer = _answer(exc)
    if answer is None:
        return None  # a server error: Django's 500 handler answers it (project.api_errors.server_error)
    status_code, body = answer
    headers = {}
    if status_code == status.HTTP_401_UNAUTHORIZED:
        headers["WWW-Authenticate"] = 'Bearer realm="api"'
    if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
        headers["Retry-After"] = str(int(exc.wait))
    return Response(body, status=status_code, headers=headers)


def _answer(exc: Exception) -> tuple[int, dict] | None:
    if isinstance(exc, OpenAIError):
        return exc.status_code, exc.body
    if isinstance(exc, exceptions.NotAuthenticated):
        return 401, error_body(NO_KEY)
    if isinstance(exc, exceptions.AuthenticationFailed):
        return 401, error_body(str(exc.detail), code="invalid_api_key")
    if isinstance(exc, NotAllowed | PermissionDenied | exceptions.PermissionDenied):
        return 403, error_body(str(exc) or "You are not allowed to do this.", code="insufficient_permissions")
    if isinstance(exc, Http404 | exceptions.NotFound):
        return 404, error_body(str(exc) or "Not found.")
    if isinstance(exc, Conflict):
        return 409, error_body(" ".join(exc.messages), code="conflict")
    if isinstance(exc, DjangoValidationError):
        pairs = (
            [(field, " ".join(msgs)) for field, msgs in exc.message_dict.items()] if hasattr(exc, "error_dict") else []
        )
        return 400, _invalid(pairs or [(None, " ".join(exc.messages))])
    if isinstance(exc, exceptions.ValidationError):
        return 400, _invalid(_drf_pairs(exc.detail))
    if isinstance(exc, exceptions.Throttled):
        return 429, error_body(str(exc.detail), type="requests", code="rate_limit_exceeded")
    if isinstance(exc, exceptions.APIException):  # parse errors, 405, 406, 411, 413, 415: the request's own fault
        code = exc.get_codes()
        return exc.status_code, error_body(str(exc.detail), code=code if isinstance(code, str) else None)
    return None


def _invalid(pairs: list[tuple[str | None, str]]) -> dict:
    """A 400 naming the first field at fault in `param` and every problem in the message."""
    param = pairs[0][0] if pairs and pairs[0][0] not in (None, "non_field_errors") else None
    message = "; ".join(f"{field}: {text}" if field and field != "non_field_errors" else text for field, text in pairs)
    return error_body(message or "The request is invalid.", param=param)


def _drf_pairs(detail: object, prefix: str = "") -> list[tuple[str | None, str]]:
    if isinstance(detail, dict):
        return [
            pair
            for key, value in detail.items()
            for pair in _drf_pairs(value, f"{prefix}.{key}" if prefix else str(key))
        ]
    if isinstance(detail, list):
        texts = [str(item) for item in detail if not isinstance(item, dict | list)]
        nested = [pair for item in detail if isinstance(item, dict | list) for pair in _drf_pairs(item, prefix)]
        return ([(prefix or None, " ".join(texts))] if texts else []) + nested
    return [(prefix or None, str(detail))]


def not_found(request: HttpRequest) -> JsonResponse:
    """A /v1/ path that names nothing, as OpenAI answers it."""
    return JsonResponse(error_body(f"Invalid URL ({request.method} {request.path})"), status=404)


def server_error(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        error_body("The server had an error while processing your request.", type="server_error"), status=500
    )
