"""Admin pages; staff who are not superusers see only their own workspaces' rows."""

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from datasets_app.curation.limits import pair_text_errors
from datasets_app.models import Dataset, Example, ExampleRevision, Invitation, Membership, Workspace


class WorkspaceScopedAdmin(admin.ModelAdmin):
    workspace_path = "workspace"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        rows = super().get_queryset(request)
        if request.user.is_superuser:
            return rows
        return rows.filter(**{f"{self.workspace_path}__memberships__user": request.user}).distinct()

    def formfield_for_foreignkey(self, db_field, request: HttpRequest, **kwargs):  # type: ignore[no-untyped-def]
        # Keep staff from attaching rows to another workspace by typing its id.
        if not request.user.is_superuser:
            scoped = {
                "workspace": Workspace.objects.filter(memberships__user=request.user),
                "dataset": Dataset.objects.filter(workspace__memberships__user=request.user),
                "example": Example.objects.filter(dataset__workspace__memberships__user=request.user),
            }
            if db_field.name in scoped:
                kwargs["queryset"] = scoped[db_field.name]
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ("name", "created_by", "created_at")
    search_fields = ("name", "description")

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        rows = super().get_queryset(request)
        return rows if request.user.is_superuser else rows.filter(memberships__user=request.user).distinct()


@admin.register(Membership)
class MembershipAdmin(WorkspaceScopedAdmin):
    list_display = ("user", "workspace", "role", "created_at")
    list_filter = ("role",)
    search_fields = ("user__username", "workspace__name")
    raw_id_fields = ("user", "workspace")


@admin.register(Invitation)
class InvitationAdmin(WorkspaceScopedAdmin):
    list_display = ("username", "workspace", "role", "status", "invited_by", "expires_at")
    list_filter = ("status", "role")
    search_fields = ("username", "workspace__name")
    raw_id_fields = ("workspace", "invited_by")
    readonly_fields = ("responded_at", "created_at", "updated_at")


@admin.register(Dataset)
class DatasetAdmin(WorkspaceScopedAdmin):
    list_display = ("name", "workspace", "kind", "created_by", "updated_at")
    list_filter = ("kind",)
    search_fields = ("name", "description", "workspace__name")
    raw_id_fields = ("workspace", "created_by")


class ExampleAdminForm(forms.ModelForm):
    """The admin is a write path too: the same text caps as everywhere (curation/limits.py)."""

    class Meta:
        model = Example
        fields = "__all__"  # noqa: DJ007 - the admin's own field list decides what is shown

    def clean(self) -> dict:
        cleaned = super().clean() or {}
        errors = pair_text_errors(
            prompt=cleaned.get("prompt") or "", response=cleaned.get("response") or "",
            system_prompt=cleaned.get("system_prompt") or "",
            history=cleaned.get("history") if isinstance(cleaned.get("history"), list) else [],
            tags=cleaned.get("tags") if isinstance(cleaned.get("tags"), list) else [],
        )  # fmt: skip
        for field, message in errors.items():
            self.add_error(field if field in self.fields else field.partition("[")[0], message)
        return cleaned


@admin.register(Example)
class ExampleAdmin(WorkspaceScopedAdmin):
    form = ExampleAdminForm
    workspace_path = "dataset__workspace"
    list_display = ("id", "dataset", "short_prompt", "status", "source", "version", "updated_at")
    list_filter = ("status", "dataset__kind")
    search_fields = ("prompt", "response", "source")
    readonly_fields = ("content_hash", "version", "created_at", "updated_at")
    raw_id_fields = ("dataset", "created_by", "updated_by")

    @admin.display(description="prompt")
    def short_prompt(self, example: Example) -> str:
        return example.prompt[:80]

    # Pairs are made and edited through the services (checked, hashed, linted, versioned, with a revision);
    # a form here would write around all of that.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(ExampleRevision)
class ExampleRevisionAdmin(WorkspaceScopedAdmin):
    workspace_path = "example__dataset__workspace"
    list_display = ("example", "version", "action", "user", "created_at")
    list_filter = ("action",)
    search_fields = ("example__prompt", "user__username", "comment")
    raw_id_fields = ("example", "user")

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # history is immutable
