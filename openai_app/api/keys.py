"""REST API (under /api/, with user tokens) for a workspace's API keys: admins list, create and revoke them."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from datasets_app.api.serializers import JsonTypes
from datasets_app.curation import selectors
from datasets_app.models import Role, Workspace
from openai_app import keys
from openai_app.models import ApiKey, KeyRole
from project.api_schema import error, errors


class ApiKeySerializer(serializers.ModelSerializer):
    created_by = serializers.SerializerMethodField()
    revoked = serializers.BooleanField(read_only=True)

    class Meta:
        model = ApiKey
        fields = ["id", "name", "role", "prefix", "created_by", "created_at", "last_used_at", "revoked", "revoked_at"]
        read_only_fields = fields

    def get_created_by(self, key: ApiKey) -> str | None:
        return key.created_by.get_username() if key.created_by else None


class NewApiKeySerializer(ApiKeySerializer):
    secret = serializers.CharField(
        read_only=True, help_text="The key itself, for `Authorization: Bearer`. Shown this once, never again."
    )

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "secret"]
        read_only_fields = fields


class ApiKeyCreateSerializer(JsonTypes, serializers.Serializer):
    name = serializers.CharField(max_length=200)
    role = serializers.ChoiceField(choices=KeyRole.choices, default=KeyRole.ANNOTATOR)


def _workspace(request: Request, pk: int) -> Workspace:
    return get_object_or_404(selectors.workspace_list(user=request.user), pk=pk)


class WorkspaceApiKeysView(APIView):
    @extend_schema(responses={200: ApiKeySerializer(many=True), **errors(403)})
    def get(self, request: Request, pk: int) -> Response:
        """The workspace's API keys, revoked ones too, without their secrets (admins only)."""
        found = keys.api_key_list(workspace=_workspace(request, pk), by=request.user)
        return Response(ApiKeySerializer(found, many=True).data)

    @extend_schema(request=ApiKeyCreateSerializer, responses={201: NewApiKeySerializer})
    def post(self, request: Request, pk: int) -> Response:
        """Make an API key for the OpenAI-compatible API under /v1/ (admins only). The answer holds the secret,
        the only time it is shown; only its hash is kept. The key acts as you, in this workspace only, with the
        lower of its role and yours."""
        workspace = _workspace(request, pk)
        selectors.role_require(user=request.user, workspace=workspace, role=Role.ADMIN)
        serializer = ApiKeyCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        key, secret = keys.api_key_create(workspace=workspace, by=request.user, **serializer.validated_data)
        key.secret = secret  # type: ignore[attr-defined]
        return Response(NewApiKeySerializer(key).data, status=status.HTTP_201_CREATED)


class WorkspaceApiKeyDetailView(APIView):
    @extend_schema(responses={204: None, 404: error(404, "No such key in this workspace (or not yours to see).")})
    def delete(self, request: Request, pk: int, key: int) -> Response:
        """Revoke a key (admins only): it stops working at once. Revoking a revoked key changes nothing."""
        found = keys.api_key_get(workspace=_workspace(request, pk), by=request.user, pk=key)
        keys.api_key_revoke(key=found, by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
