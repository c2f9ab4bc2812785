"""HTML pages for annotators and leads."""

from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from datasets_app.selectors import dataset_list_with_counts, workspace_list


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    datasets = dataset_list_with_counts(user=request.user).order_by("workspace__name", "name")
    workspaces = [
        {"workspace": ws, "datasets": [d for d in datasets if d.workspace_id == ws.pk]}
        for ws in workspace_list(user=request.user)
    ]
    return render(request, "datasets_app/home.html", {"workspaces": workspaces})


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """For load balancers: answers once the database does."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})
