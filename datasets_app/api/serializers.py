"""REST representations of workspaces, datasets, examples and jobs."""

from django.contrib.auth import get_user_model
from rest_framework import serializers

from datasets_app.curation.selectors import membership_get
from datasets_app.models import HISTORY_ROLES, Dataset, Example, ExampleStatus, Job, Workspace


class WorkspaceSerializer(serializers.ModelSerializer):
    role = serializers.SerializerMethodField(help_text="Your role here: annotator, lead or admin.")

    class Meta:
        model = Workspace
        fields = ["id", "name", "description", "default_base_model", "role", "created_at", "updated_at"]
        read_only_fields = ["default_base_model"]

    def get_role(self, workspace: Workspace) -> str | None:
        membership = membership_get(user=self.context["request"].user, workspace=workspace)
        return membership.role if membership else None


class MemberSerializer(serializers.Serializer):
    username = serializers.CharField()
    role = serializers.ChoiceField(choices=["annotator", "lead", "admin"])

    def validate_username(self, value: str) -> object:
        user = get_user_model().objects.filter(username=value).first()
        if user is None:
            raise serializers.ValidationError(f"no user named {value!r}")
        return user


class DatasetSerializer(serializers.ModelSerializer):
    workspace = serializers.PrimaryKeyRelatedField(queryset=Workspace.objects.all())
    counts = serializers.SerializerMethodField(help_text="Pairs by status, and the total.")

    class Meta:
        model = Dataset
        fields = [
            "id", "workspace", "name", "description", "kind", "guidelines", "template", "require_valid", "counts",
            "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = ["template", "require_valid"]
        validators = []  # name uniqueness is checked by the service, per workspace

    def get_counts(self, dataset: Dataset) -> dict[str, int]:
        counts = {status: getattr(dataset, f"n_{status}", None) for status in ExampleStatus.values}
        if None in counts.values():
            counts = {status: dataset.examples.filter(status=status).count() for status in ExampleStatus.values}
        return {**counts, "total": sum(counts.values())}


class DatasetUpdateSerializer(serializers.ModelSerializer):
    class Meta:
        model = Dataset
        fields = ["name", "description", "kind", "guidelines", "template", "require_valid"]
        validators = []
        extra_kwargs = {"template": {"help_text": "A template of the same workspace whose validator checks the pairs."}}


class TurnSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=HISTORY_ROLES)
    content = serializers.CharField(allow_blank=True, trim_whitespace=False)


class ExampleSerializer(serializers.ModelSerializer):
    history = TurnSerializer(many=True, required=False)
    tags = serializers.ListField(child=serializers.CharField(max_length=200), required=False)
    prompt = serializers.CharField(allow_blank=True, trim_whitespace=False)
    response = serializers.CharField(allow_blank=True, trim_whitespace=False, required=False, default="")
    system_prompt = serializers.CharField(allow_blank=True, trim_whitespace=False, required=False, default="")
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    updated_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Example
        fields = [
            "id", "dataset", "system_prompt", "prompt", "response", "history", "tags", "status", "source",
            "review_comment", "content_hash", "version", "created_by", "updated_by", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = [
            "dataset",
            "status",
            "review_comment",
            "content_hash",
            "version",
            "created_at",
            "updated_at",
        ]
        extra_kwargs = {"source": {"required": False}}


class ExampleCreateSerializer(ExampleSerializer):
    status = serializers.ChoiceField(choices=["draft", "submitted"], default="draft", required=False)

    class Meta(ExampleSerializer.Meta):
        read_only_fields = ["dataset", "review_comment", "content_hash", "version", "created_at", "updated_at"]


class ExampleUpdateSerializer(serializers.Serializer):
    system_prompt = serializers.CharField(allow_blank=True, trim_whitespace=False, required=False)
    prompt = serializers.CharField(allow_blank=True, trim_whitespace=False, required=False)
    response = serializers.CharField(allow_blank=True, trim_whitespace=False, required=False)
    history = TurnSerializer(many=True, required=False)
    tags = serializers.ListField(child=serializers.CharField(max_length=200), required=False)
    version = serializers.IntegerField(required=False, help_text="The version you loaded; or send If-Match.")


class StatusActionSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=["submit", "approve", "reject", "reopen"])
    comment = serializers.CharField(required=False, allow_blank=True, default="")


class ImportSerializer(serializers.Serializer):
    file = serializers.FileField(allow_empty_file=True)
    format = serializers.ChoiceField(
        choices=["pairs", "csv", "alpaca", "sharegpt", "openai", "parquet"], required=False
    )
    on_duplicate = serializers.ChoiceField(choices=["skip", "keep"], default="skip", required=False)
    status = serializers.ChoiceField(choices=["draft", "submitted", "approved"], default="draft", required=False)


class JobSerializer(serializers.ModelSerializer):
    dataset = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        model = Job
        fields = [
            "id", "kind", "dataset", "status", "phase", "progress", "params", "result", "problems", "error",
            "created_at", "started_at", "finished_at",
        ]  # fmt: skip
