"""What every /v1/ view shares: API-key authentication, OpenAI's error shape, lists in OpenAI's envelope."""

from collections.abc import Callable
from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import authentication, exceptions, negotiation
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.views import APIView

from openai_app.api import errors
from openai_app.keys import KeyAccess, key_access

MAX_SECRET_CHARS = 200  # longer than any key; a longer header is not looked up


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <key>`: the request acts as the key's creator, within the key's workspace and role
    (request.user is the creator, request.auth the KeyAccess). User tokens and sessions are not taken here."""

    def authenticate(self, request: Request) -> tuple[Any, KeyAccess] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        scheme, _, secret = header.partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or not secret:
            raise exceptions.AuthenticationFailed(
                "The Authorization header must be `Bearer <key>`, with a workspace API key."
            )
        access = key_access(secret=secret) if len(secret) <= MAX_SECRET_CHARS else None
        if access is None:
            raise exceptions.AuthenticationFailed(f"Incorrect API key provided: {_masked(secret)}.")
        return access.user, access

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


def _masked(secret: str) -> str:
    """Enough of a wrong key to tell which one it was, never all of it."""
    return f"{secret[:8]}***{secret[-4:]}" if len(secret) > 16 else "***"


class AnyAccept(negotiation.DefaultContentNegotiation):
    """/v1/ answers JSON (a file's content as bytes) whatever Accept says, as OpenAI does; clients send their own."""

    def select_renderer(
        self, request: Request, renderers: list[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        return renderers[0], renderers[0].media_type


@extend_schema(exclude=True)  # /v1/ follows OpenAI's API reference, not Instructory's schema
class V1View(APIView):
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [IsAuthenticated]
    renderer_classes = [JSONRenderer]
    content_negotiation_class = AnyAccept

    def get_exception_handler(self) -> Callable[[Exception, dict], Any]:
        return errors.exception_handler

    def access(self, request: Request) -> KeyAccess:
        return request.auth  # type: ignore[return-value]


def page(data: list[dict], **extra: Any) -> dict:
    """A list as OpenAI wraps one."""
    return {"object": "list", "data": data, **extra}
