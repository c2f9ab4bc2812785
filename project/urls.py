from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, register_converter
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from datasets_app.api import blueprints as blueprint_api
from datasets_app.api import curation as curation_api
from datasets_app.api import imports as import_api
from datasets_app.api import invitations as invitation_api
from datasets_app.api import lint as lint_api
from openai_app.api import chat as v1_chat
from openai_app.api import files as v1_files
from openai_app.api import jobs as v1_jobs
from openai_app.api import keys as key_api
from openai_app.api import models as v1_models
from project.api_schema import ID_DIGITS
from training_app import api as training_api
from training_app.judging import api as judging_api


class IdConverter:
    """Row ids: digits that fit a 64-bit integer column (a longer number is a 404, not a database error)."""

    regex = f"[0-9]{{1,{ID_DIGITS}}}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(IdConverter, "id")

api = [
    path("auth/token/", curation_api.TokenView.as_view(), name="api-token"),
    path("workspaces/", curation_api.WorkspaceListView.as_view(), name="api-workspaces"),
    path("workspaces/<id:pk>/", curation_api.WorkspaceDetailView.as_view(), name="api-workspace"),
    path("workspaces/<id:pk>/members/", curation_api.WorkspaceMembersView.as_view(), name="api-workspace-members"),
    path(
        "workspaces/<id:pk>/invitations/",
        invitation_api.WorkspaceInvitationsView.as_view(),
        name="api-workspace-invitations",
    ),
    path(
        "workspaces/<id:pk>/invitations/<id:invitation>/",
        invitation_api.WorkspaceInvitationDetailView.as_view(),
        name="api-workspace-invitation",
    ),
    path("workspaces/<id:pk>/api-keys/", key_api.WorkspaceApiKeysView.as_view(), name="api-workspace-api-keys"),
    path(
        "workspaces/<id:pk>/api-keys/<id:key>/",
        key_api.WorkspaceApiKeyDetailView.as_view(),
        name="api-workspace-api-key",
    ),
    path("invitations/", invitation_api.MyInvitationsView.as_view(), name="api-invitations"),
    path("invitations/<id:pk>/accept/", invitation_api.InvitationAcceptView.as_view(), name="api-invitation-accept"),
    path("invitations/<id:pk>/decline/", invitation_api.InvitationDeclineView.as_view(), name="api-invitation-decline"),
    path("datasets/", curation_api.DatasetListView.as_view(), name="api-datasets"),
    path("datasets/<id:pk>/", curation_api.DatasetDetailView.as_view(), name="api-dataset"),
    path("datasets/<id:pk>/examples/", curation_api.DatasetExamplesView.as_view(), name="api-dataset-examples"),
    path("datasets/<id:pk>/import/", import_api.DatasetImportView.as_view(), name="api-dataset-import"),
    path("datasets/<id:pk>/export/", curation_api.DatasetExportView.as_view(), name="api-dataset-export"),
    path("datasets/<id:pk>/lint/", lint_api.DatasetLintView.as_view(), name="api-dataset-lint"),
    path("examples/<id:pk>/", curation_api.ExampleDetailView.as_view(), name="api-example"),
    path("examples/<id:pk>/status/", curation_api.ExampleStatusView.as_view(), name="api-example-status"),
    path("examples/<id:pk>/revisions/", curation_api.ExampleRevisionsView.as_view(), name="api-example-revisions"),
    path("jobs/<id:pk>/", import_api.JobDetailView.as_view(), name="api-job"),
    path("datasets/<id:pk>/draft-responses/", blueprint_api.DatasetDraftView.as_view(), name="api-dataset-draft"),
    path("templates/", blueprint_api.TemplateListView.as_view(), name="api-templates"),
    path("templates/<id:pk>/", blueprint_api.TemplateDetailView.as_view(), name="api-template"),
    path("templates/<id:pk>/preview/", blueprint_api.TemplatePreviewView.as_view(), name="api-template-preview"),
    path("templates/<id:pk>/generate/", blueprint_api.TemplateGenerateView.as_view(), name="api-template-generate"),
    path(
        "templates/<id:pk>/generate-preferences/",
        blueprint_api.TemplateGeneratePreferencesView.as_view(),
        name="api-template-generate-preferences",
    ),
    path("generators/", blueprint_api.GeneratorListView.as_view(), name="api-generators"),
    path("datasets/<id:pk>/snapshots/", training_api.DatasetSnapshotsView.as_view(), name="api-dataset-snapshots"),
    path("snapshots/<id:pk>/", training_api.SnapshotDetailView.as_view(), name="api-snapshot"),
    path("snapshots/<id:pk>/download/", training_api.SnapshotDownloadView.as_view(), name="api-snapshot-download"),
    path("snapshots/<id:pk>/diff/<id:other>/", training_api.SnapshotDiffView.as_view(), name="api-snapshot-diff"),
    path("base-models/", training_api.BaseModelsView.as_view(), name="api-base-models"),
    path("runs/", training_api.RunListView.as_view(), name="api-runs"),
    path("runs/preflight/", training_api.RunPreflightView.as_view(), name="api-run-preflight"),
    path("runs/preflight/pair/", training_api.PreflightPairView.as_view(), name="api-run-preflight-pair"),
    path("runs/compare/", training_api.RunCompareView.as_view(), name="api-run-compare"),
    path("runs/<id:pk>/", training_api.RunDetailView.as_view(), name="api-run"),
    path("runs/<id:pk>/metrics/", training_api.RunMetricsView.as_view(), name="api-run-metrics"),
    path("runs/<id:pk>/logs/", training_api.RunLogsView.as_view(), name="api-run-logs"),
    path("runs/<id:pk>/cancel/", training_api.RunCancelView.as_view(), name="api-run-cancel"),
    path("runs/<id:pk>/send-failures/", training_api.RunSendFailuresView.as_view(), name="api-run-send-failures"),
    path("runs/<id:pk>/artifact/", training_api.RunArtifactView.as_view(), name="api-run-artifact"),
    path("runs/<id:pk>/export/", training_api.RunExportView.as_view(), name="api-run-export"),
    path("runs/<id:pk>/generate/", training_api.RunGenerateView.as_view(), name="api-run-generate"),
    path("playground/<id:pk>/", training_api.PlaygroundDetailView.as_view(), name="api-playground"),
    path("runs/<id:pk>/ab/next/", judging_api.ABNextView.as_view(), name="api-run-ab-next"),
    path("runs/<id:pk>/ab/summary/", judging_api.ABSummaryView.as_view(), name="api-run-ab-summary"),
    path("ab-items/<slug:token>/", judging_api.ABItemView.as_view(), name="api-ab-item"),
    path("ab-votes/", judging_api.ABVoteView.as_view(), name="api-ab-votes"),
    path(
        "datasets/<id:pk>/preferences-from-votes/",
        judging_api.PreferencesFromVotesView.as_view(),
        name="api-dataset-preferences-from-votes",
    ),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
]

# The OpenAI-compatible API: OpenAI's paths (no trailing slash), API keys only, OpenAI's error shape.
v1 = [
    path("models", v1_models.ModelListView.as_view(), name="v1-models"),
    path("models/<path:model>", v1_models.ModelDetailView.as_view(), name="v1-model"),
    path("fine_tuning/jobs", v1_jobs.JobListView.as_view(), name="v1-jobs"),
    path("fine_tuning/jobs/<str:job_id>", v1_jobs.JobDetailView.as_view(), name="v1-job"),
    path("fine_tuning/jobs/<str:job_id>/cancel", v1_jobs.JobCancelView.as_view(), name="v1-job-cancel"),
    path("fine_tuning/jobs/<str:job_id>/events", v1_jobs.JobEventsView.as_view(), name="v1-job-events"),
    path("fine_tuning/jobs/<str:job_id>/checkpoints", v1_jobs.JobCheckpointsView.as_view(), name="v1-job-checkpoints"),
    path("files", v1_files.FileListView.as_view(), name="v1-files"),
    path("files/<str:file_id>", v1_files.FileDetailView.as_view(), name="v1-file"),
    path("files/<str:file_id>/content", v1_files.FileContentView.as_view(), name="v1-file-content"),
    path("chat/completions", v1_chat.ChatCompletionsView.as_view(), name="v1-chat-completions"),
]

urlpatterns = [
    path("", include("datasets_app.urls")),
    path("training/", include("training_app.urls")),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/", include(api)),
    path("v1/", include(v1)),
    path("", include("openai_app.urls")),
]

handler404 = "project.api_errors.not_found"
handler500 = "project.api_errors.server_error"
