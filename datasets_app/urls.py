"""HTML pages of the datasets app (the `id` path converter is registered by project/urls.py)."""

from django.urls import path

from datasets_app.views import blueprints, editor, history, imports, lint, members, pages

urlpatterns = [
    path("", pages.home, name="home"),
    path("healthz", pages.healthz, name="healthz"),
    path("datasets/<id:pk>/", pages.dataset_detail, name="dataset"),
    path("datasets/<id:pk>/bulk/", pages.dataset_bulk, name="dataset-bulk"),
    path("datasets/<id:pk>/queue/<slug:queue>/", pages.dataset_queue, name="dataset-queue"),
    path("datasets/<id:pk>/new/", imports.example_new, name="example-new"),
    path("datasets/<id:pk>/import/", imports.dataset_import_page, name="dataset-import"),
    path("datasets/<id:pk>/preview/", editor.markdown_preview, name="markdown-preview"),
    path("datasets/<id:pk>/tokens/", editor.token_counts, name="token-counts"),
    path("datasets/<id:pk>/sides-diff/", editor.sides_diff, name="sides-diff"),
    path("examples/<id:pk>/", editor.example_detail, name="example"),
    path("examples/<id:pk>/history/", history.example_history, name="example-history"),
    path("examples/<id:pk>/restore/", history.example_restore, name="example-restore"),
    path("examples/<id:pk>/lease/", editor.lease_renew, name="example-lease"),
    path("jobs/<id:pk>/", imports.job_detail, name="job"),
    path("datasets/<id:pk>/lint/", lint.dataset_lint, name="dataset-lint"),
    path("datasets/<id:pk>/settings/", lint.dataset_settings, name="dataset-settings"),
    path("datasets/<id:pk>/delete/", lint.dataset_delete, name="dataset-delete"),
    path("datasets/<id:pk>/draft/", blueprints.dataset_draft, name="dataset-draft"),
    path("workspaces/<id:pk>/datasets/new/", pages.dataset_new, name="dataset-new"),
    path("workspaces/<id:pk>/members/", members.workspace_members, name="workspace-members"),
    path("workspaces/<id:pk>/members/invite/", members.workspace_invite, name="workspace-invite"),
    path("workspaces/<id:pk>/members/role/", members.workspace_role, name="workspace-role"),
    path("workspaces/<id:pk>/invitations/<id:invitation>/revoke/", members.invitation_revoke, name="invitation-revoke"),
    path("invitations/<id:pk>/accept/", members.invitation_accept, name="invitation-accept"),
    path("invitations/<id:pk>/decline/", members.invitation_decline, name="invitation-decline"),
    path("templates/", blueprints.template_list, name="templates"),
    path("workspaces/<id:pk>/templates/", blueprints.template_list, name="workspace-templates"),
    path("workspaces/<id:pk>/templates/new/", blueprints.template_new, name="template-new"),
    path("templates/<id:pk>/", blueprints.template_edit, name="template"),
    path("templates/<id:pk>/preview/", blueprints.template_preview, name="template-preview"),
    path("templates/<id:pk>/generate/", blueprints.template_generate, name="template-generate"),
    path(
        "templates/<id:pk>/generate-preferences/",
        blueprints.template_generate_preferences,
        name="template-generate-preferences",
    ),
    path("templates/<id:pk>/delete/", blueprints.template_delete, name="template-delete"),
]
