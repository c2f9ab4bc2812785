"""HTML pages of the datasets app (the `id` path converter is registered by project/urls.py)."""

from django.urls import path

from datasets_app.views import editor, history, imports, pages

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
    path("examples/<id:pk>/", editor.example_detail, name="example"),
    path("examples/<id:pk>/history/", history.example_history, name="example-history"),
    path("examples/<id:pk>/restore/", history.example_restore, name="example-restore"),
    path("examples/<id:pk>/lease/", editor.lease_renew, name="example-lease"),
    path("jobs/<id:pk>/", imports.job_detail, name="job"),
]
