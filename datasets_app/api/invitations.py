"""REST API for invitations: admins invite a username and revoke pending invitations; the invited user lists
theirs and accepts or declines. Only an acceptance makes a member."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from datasets_app.api.serializers import (
    InvitationSerializer,
    InviteSerializer,
    MyInvitationSerializer,
)
from datasets_app.curation import invitations, selectors
from datasets_app.models import Role
from project.api_schema import error, errors

NO_INVITATION = error(404, "No such invitation (or not yours, answered, or lapsed).")


def _workspace(request: Request, pk: int):  # type: ignore[no-untyped-def]
    return get_object_or_404(selectors.workspace_list(user=request.user), pk=pk)


class WorkspaceInvitationsView(APIView):
    @extend_schema(responses={200: InvitationSerializer(many=True), **errors(403)})
    def get(self, request: Request, pk: int) -> Response:
        """The workspace's pending invitations (admins only)."""
        pending = invitations.invitation_list_for_workspace(workspace=_workspace(request, pk), by=request.user)
        return Response(InvitationSerializer(pending, many=True).data)

    @extend_schema(request=InviteSerializer, responses={201: InvitationSerializer, **errors(409)})
    def post(self, request: Request, pk: int) -> Response:
        """Invite a username with a role (admins only). The answer is the same whether or not anyone has that
        name; the user becomes a member only by accepting. Inviting again while pending renews it."""
        workspace = _workspace(request, pk)
        selectors.role_require(user=request.user, workspace=workspace, role=Role.ADMIN)
        serializer = InviteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        invitation = invitations.invitation_create(workspace=workspace, by=request.user, **serializer.validated_data)
        return Response(InvitationSerializer(invitation).data, status=status.HTTP_201_CREATED)


class WorkspaceInvitationDetailView(APIView):
    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int, invitation: int) -> Response:
        """Revoke a pending invitation (admins only)."""
        found = invitations.invitation_get_for_workspace(
            workspace=_workspace(request, pk), by=request.user, pk=invitation
        )
        invitations.invitation_revoke(invitation=found, by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MyInvitationsView(APIView):
    @extend_schema(responses=MyInvitationSerializer(many=True))
    def get(self, request: Request) -> Response:
        """Your pending invitations: which workspace, which role, from whom, until when."""
        return Response(MyInvitationSerializer(invitations.invitation_list_for_user(user=request.user), many=True).data)


class InvitationAcceptView(APIView):
    @extend_schema(
        request=None,
        responses={
            200: inline_serializer(
                "Joined",
                {
                    "workspace": serializers.IntegerField(),
                    "username": serializers.CharField(),
                    "role": serializers.CharField(),
                },
            ),
            404: NO_INVITATION,
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        """Accept one of your invitations: you become a member of its workspace with its role."""
        invitation = invitations.invitation_get_for_user(user=request.user, pk=pk)
        membership = invitations.invitation_accept(invitation=invitation, user=request.user)
        return Response(
            {"workspace": membership.workspace_id, "username": request.user.get_username(), "role": membership.role}
        )


class InvitationDeclineView(APIView):
    @extend_schema(
        request=None,
        responses={
            204: None,
            404: NO_INVITATION,
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        """Decline one of your invitations."""
        invitation = invitations.invitation_get_for_user(user=request.user, pk=pk)
        invitations.invitation_decline(invitation=invitation, user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
