"""HTML pages of the OpenAI-compatible API: a workspace's API keys (the /v1/ paths are in project/urls.py)."""

from django.urls import path

from openai_app import views

urlpatterns = [
    path("workspaces/<id:pk>/api-keys/", views.api_keys, name="workspace-api-keys"),
    path("workspaces/<id:pk>/api-keys/new/", views.api_key_create, name="workspace-api-key-create"),
    path("workspaces/<id:pk>/api-keys/<id:key>/revoke/", views.api_key_revoke, name="workspace-api-key-revoke"),
]
