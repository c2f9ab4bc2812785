"""The OpenAPI schema tells the whole truth: every operation lists the errors it can answer.

The errors every operation shares follow from the view itself (ApiSchema adds them); a view declares only
its own, e.g. `responses={204: None, **errors(409)}`. Every error body is JSON with at least a `detail`,
except 400, whose body names each field's problems.
"""

from dataclasses import dataclass

from django.core.validators import RegexValidator
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import force_instance
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, PolymorphicProxySerializer
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import AllowAny

ID_DIGITS = 18  # the `id` path converter's, and every id filter's, longest id
POLL = "The URL to poll until the work is done."
# Text a field refuses when blank must hold something once DRF trims whitespace (Python's, which counts
# \x1c-\x1f too). No text may hold a NUL either: the API description says so once, not every field.
NOT_BLANK = "[^\\s\\u001c-\\u001f\\u0085]"


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="What went wrong, in words for people.")


class StaleSerializer(ErrorSerializer):
    current_version = serializers.IntegerField(help_text="The version now stored; its ETag is in the ETag header.")


class DuplicateSerializer(ErrorSerializer):
    existing_id = serializers.IntegerField(help_text="The pair the dataset already has.")


INVALID = {
    "type": "object",
    "additionalProperties": True,
    "description": 'Each field\'s problems, e.g. {"name": ["This field may not be blank."]}; problems of the '
    'request as a whole under "non_field_errors" or "detail"; bulk requests and imports add "problems".',
}

ERRORS = {
    400: OpenApiResponse(INVALID, description="The request is invalid; nothing was changed."),
    401: OpenApiResponse(ErrorSerializer, description="No valid credentials: send `Authorization: Token <key>`."),
    403: OpenApiResponse(
        ErrorSerializer,
        description="Your role in the workspace does not allow this (or a browser session sent no CSRF token).",
    ),
    404: OpenApiResponse(
        ErrorSerializer, description="No such thing among yours (one in another workspace is answered the same)."
    ),
    409: OpenApiResponse(ErrorSerializer, description="It clashes with what is stored; nothing was changed."),
    411: OpenApiResponse(ErrorSerializer, description="The upload has no Content-Length; nothing of it was read."),
    412: OpenApiResponse(
        StaleSerializer, description="Stale: someone saved a newer version after you loaded it; nothing was changed."
    ),
    413: OpenApiResponse(ErrorSerializer, description="Too large; refused before it was read."),
    415: OpenApiResponse(ErrorSerializer, description="The body's Content-Type is not one this operation reads."),
    428: OpenApiResponse(
        ErrorSerializer, description='Send If-Match with the ETag you loaded (or "version" in the body).'
    ),
    429: OpenApiResponse(
        ErrorSerializer, description="Too many attempts; the `detail` says when to try again (see Retry-After)."
    ),
}


def errors(*codes: int) -> dict[int, OpenApiResponse]:
    """The shared error responses for `codes`, for a view's `extend_schema(responses={..., **errors(409)})`."""
    return {code: ERRORS[code] for code in codes}


def error(code: int, description: str) -> OpenApiResponse:
    """A shared error response worded for one operation, e.g. what its 409 clashes with."""
    return OpenApiResponse(ERRORS[code].response, description=description)


def id_parameter(name: str, description: str) -> OpenApiParameter:
    """A query filter that takes a row id (any other value is a 400)."""
    return OpenApiParameter(
        name, {"type": "integer", "minimum": 0, "maximum": 10**ID_DIGITS - 1}, description=description
    )


@dataclass(frozen=True)
class OneOrMany:
    """A request body that is one object or a list of 1 to `most` of them, for `extend_schema(request=...)`."""

    serializer: object
    most: int


class ApiSchema(AutoSchema):
    """drf-spectacular's schema, plus the errors that follow from the view: 400 for any request (a query with
    a NUL, a body that does not parse or validate), 401 where a login is needed, 403 for writes (roles, and
    CSRF for a browser session), 404 where the path names something, 415 where there is a body, 429 where a
    throttle applies."""

    def _get_response_bodies(self, direction: str = "response") -> dict:
        responses = super()._get_response_bodies(direction)
        for code in self._error_codes():
            responses.setdefault(str(code), self._get_response_for_code(ERRORS[code], str(code), direction=direction))
        return dict(sorted(responses.items()))

    def _get_request_for_media_type(self, serializer: object, direction: str = "request") -> tuple:
        if isinstance(serializer, OneOrMany):
            one, required = self._get_request_for_media_type(serializer.serializer, direction)
            many = {"type": "array", "items": one, "minItems": 1, "maxItems": serializer.most}
            return {"oneOf": [one, many]}, required
        schema, required = super()._get_request_for_media_type(serializer, direction)
        if isinstance(serializer, PolymorphicProxySerializer):  # one of several bodies: required if each has a field
            variants = (
                serializer.serializers.values() if isinstance(serializer.serializers, dict) else serializer.serializers
            )
            required = all(any(field.required for field in force_instance(each).fields.values()) for each in variants)
        return schema, required

    def _map_basic_serializer(self, serializer: serializers.Serializer, direction: str) -> dict:
        schema = super()._map_basic_serializer(serializer, direction)
        schema.update(getattr(serializer, "schema_rules", {}))  # what the serializer's validate() checks, said in JSON
        return schema

    def _map_serializer_field(self, field: serializers.Field, direction: str, bypass_extensions: bool = False) -> dict:
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        refuses_blank = isinstance(field, serializers.CharField) and not field.allow_blank and field.trim_whitespace
        own_pattern = any(isinstance(validator, RegexValidator) for validator in getattr(field, "validators", []))
        plain_text = schema.get("type") == "string" and not {"pattern", "format"} & schema.keys() and not own_pattern
        if direction == "request" and refuses_blank and plain_text:
            schema["pattern"] = NOT_BLANK
        if isinstance(field, serializers.ListSerializer) and schema.get("type") == "array":  # not mapped by spectacular
            bounds = {"minItems": field.min_length, "maxItems": field.max_length}
            schema.update({key: bound for key, bound in bounds.items() if bound is not None})
        return schema

    def _get_response_headers_for_code(self, status_code: str, direction: str = "response") -> dict:
        headers = super()._get_response_headers_for_code(status_code, direction)
        if status_code == "202":  # work queued: every 202 says where to follow it
            headers.setdefault("Location", {"schema": {"type": "string"}, "required": True, "description": POLL})
        return headers

    def _error_codes(self) -> list[int]:
        codes = [400]
        if not all(isinstance(permission, AllowAny) for permission in self.view.get_permissions()):
            codes.append(401)
        writes = self.method in ("POST", "PUT", "PATCH", "DELETE")
        if writes and any(isinstance(auth, SessionAuthentication) for auth in self.view.get_authenticators()):
            codes.append(403)
        if "{" in self.path:
            codes.append(404)
        if self._get_request_body() is not None:
            codes.append(415)
        if self.view.get_throttles():
            codes.append(429)
        return codes
