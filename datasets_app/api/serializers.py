"""REST representations of workspaces, datasets, examples and jobs."""

from collections.abc import Callable

from django.core.validators import MaxLengthValidator
from django.db.models import QuerySet
from drf_spectacular.utils import PolymorphicProxySerializer
from rest_framework import serializers

from datasets_app.curation.limits import (
    HISTORY_MAX_TURNS,
    TAG_MAX_CHARS,
    TAGS_MAX,
    TEXT_MAX_CHARS,
    pair_text_errors,
    pair_text_max,
    too_long,
)
from datasets_app.curation.selectors import membership_get, template_list, workspace_list
from datasets_app.formats import IMPORT_FORMATS, PREFERENCE_FORMATS
from datasets_app.models import (
    HISTORY_ROLES,
    Dataset,
    Example,
    ExampleSplit,
    ExampleStatus,
    Invitation,
    Job,
    Role,
    Template,
    Workspace,
)


class TextCap(MaxLengthValidator):
    """A field validator: at most `limit` characters (a number, or a function read at validation time, so a
    changed setting counts), in the words every write path uses: "at most 100000 characters (got 250000)".
    A MaxLengthValidator, so the schema states the cap as maxLength."""

    requires_context = False

    def __init__(self, limit: int | Callable[[], int]) -> None:
        super().__init__(limit)

    def __call__(self, value: object) -> None:
        limit = self.limit_value() if callable(self.limit_value) else self.limit_value
        if isinstance(value, str) and len(value) > limit:
            raise serializers.ValidationError(too_long(len(value), limit))


def capped(name: str) -> dict[str, object]:
    """extra_kwargs for a model text field with a cap from limits.TEXT_MAX_CHARS."""
    return {"validators": [TextCap(TEXT_MAX_CHARS[name])]}


def pair_text(**kwargs: object) -> serializers.CharField:
    """A pair's text exactly as sent (no trimming), at most PAIR_TEXT_MAX_CHARS."""
    return serializers.CharField(allow_blank=True, trim_whitespace=False, validators=[TextCap(pair_text_max)], **kwargs)


def tags_field() -> serializers.ListField:
    return serializers.ListField(
        child=serializers.CharField(validators=[TextCap(TAG_MAX_CHARS)]), required=False, max_length=TAGS_MAX
    )


# The JSON value each field takes. DRF alone reads a body leniently (0 as "0", "5" as 5, 1 as true), as it would
# a form, where every value is text; in JSON a value of another type is a client's mistake.
JSON_TYPES: tuple[tuple[type[serializers.Field], tuple[type, ...], str], ...] = (
    (serializers.BooleanField, (bool,), "true or false"),
    (serializers.IntegerField, (int,), "a whole number"),
    (serializers.FloatField, (int, float), "a number"),
    (serializers.CharField, (str,), "text (a JSON string)"),
    (serializers.PrimaryKeyRelatedField, (int,), "an id (a whole number)"),
)


def json_type_error(field: serializers.Field, value: object) -> str | None:
    """Why `value`, read from JSON, is not the type `field` takes; None when it is (or DRF decides: null, lists)."""
    if isinstance(field, serializers.ListField) and isinstance(value, list):
        return next(filter(None, (json_type_error(field.child, item) for item in value)), None)
    for kind, types, word in JSON_TYPES:
        if isinstance(field, kind) and value is not None:
            fits = isinstance(value, types) and (bool in types or not isinstance(value, bool))
            return None if fits else f"must be {word}"
    return None


class JsonTypes:
    # A serializer mixin: every field of the JSON body must have its own JSON type. (A comment, not a docstring:
    # the schema would show a docstring as the description of every serializer that has none of its own.)

    def to_internal_value(self, data: object) -> object:
        if isinstance(data, dict):
            errors = {
                name: [message]
                for name, field in self.fields.items()  # type: ignore[attr-defined]
                if not field.read_only and name in data and (message := json_type_error(field, data[name]))
            }
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)  # type: ignore[misc]


class PairLimitsMixin:
    # After the fields: the caps that span fields (the number of earlier turns, a pair's text all together).
    # (A comment: a docstring would become the schema's description of every pair serializer.)

    def validate(self, attrs: dict) -> dict:
        history = attrs.get("history") or []
        errors = pair_text_errors(
            prompt=attrs.get("prompt", ""), response=attrs.get("response", ""),
            system_prompt=attrs.get("system_prompt", ""), history=history, rejected=attrs.get("rejected", ""),
        )  # fmt: skip
        if errors:
            raise serializers.ValidationError({field: [message] for field, message in errors.items()})
        return attrs


class WorkspaceSerializer(JsonTypes, serializers.ModelSerializer):
    role = serializers.SerializerMethodField(help_text="Your role here: annotator, lead or admin.")

    class Meta:
        model = Workspace
        fields = ["id", "name", "description", "default_base_model", "role", "created_at", "updated_at"]
        read_only_fields = ["default_base_model"]
        extra_kwargs = {"description": capped("description")}

    def get_role(self, workspace: Workspace) -> str | None:
        membership = membership_get(user=self.context["request"].user, workspace=workspace)
        return membership.role if membership else None


class MemberSerializer(JsonTypes, serializers.Serializer):
    username = serializers.CharField(max_length=TEXT_MAX_CHARS["username"])
    role = serializers.ChoiceField(choices=Role.choices)


class InviteSerializer(MemberSerializer):
    """Who to invite (any username: whether it exists is not told) and with which role."""


class InvitationSerializer(serializers.ModelSerializer):
    """A pending invitation as its workspace's admins see it."""

    invited_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = Invitation
        fields = ["id", "username", "role", "status", "invited_by", "created_at", "expires_at"]
        read_only_fields = fields


class InvitationWorkspaceSerializer(serializers.ModelSerializer):
    class Meta:
        model = Workspace
        fields = ["id", "name"]


class MyInvitationSerializer(serializers.ModelSerializer):
    """An invitation as the invited user sees it: which workspace, which role, from whom."""

    workspace = InvitationWorkspaceSerializer(read_only=True)
    invited_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = Invitation
        fields = ["id", "workspace", "role", "invited_by", "created_at", "expires_at"]
        read_only_fields = fields


class VisibleRelatedField(serializers.PrimaryKeyRelatedField):
    """The id of a row the requesting user can see. A missing id and someone else's get the same 400 and the
    same words, so ids cannot be probed; `visible(user=...)` is the selector that scopes the rows."""

    default_error_messages = {
        "does_not_exist": "no {noun} with this id among yours",
        "incorrect_type": "must be the id of a {noun}",
    }

    def __init__(self, *, visible: Callable[..., QuerySet], noun: str, **kwargs: object) -> None:
        self.visible, self.noun = visible, noun
        super().__init__(**kwargs)

    def get_queryset(self) -> QuerySet:
        request = self.context.get("request")
        user = getattr(request, "user", None)
        return self.visible(user=user) if user is not None else self.queryset.none()

    def to_internal_value(self, data: object) -> object:
        if isinstance(data, bool) or not isinstance(data, int | str) or not str(data).isdigit() or len(str(data)) > 18:
            self.fail("incorrect_type", noun=self.noun)
        found = self.get_queryset().filter(pk=int(data)).first()
        if found is None:
            self.fail("does_not_exist", noun=self.noun)
        return found


class DatasetSerializer(JsonTypes, serializers.ModelSerializer):
    workspace = VisibleRelatedField(queryset=Workspace.objects.all(), visible=workspace_list, noun="workspace")
    counts = serializers.SerializerMethodField(help_text="Pairs by status, and the total.")
    split_counts = serializers.SerializerMethodField(help_text="Pairs in the training set and in the evaluation set.")

    class Meta:
        model = Dataset
        fields = [
            "id", "workspace", "name", "description", "kind", "guidelines", "template", "require_valid",
            "refuse_eval_overlap", "counts", "split_counts", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = ["template", "require_valid", "refuse_eval_overlap"]
        validators = []  # name uniqueness is checked by the service, per workspace
        extra_kwargs = {"description": capped("description"), "guidelines": capped("guidelines")}

    def get_counts(self, dataset: Dataset) -> dict[str, int]:
        counts = {status: getattr(dataset, f"n_{status}", None) for status in ExampleStatus.values}
        if None in counts.values():
            counts = {status: dataset.examples.filter(status=status).count() for status in ExampleStatus.values}
        return {**counts, "total": sum(counts.values())}

    def get_split_counts(self, dataset: Dataset) -> dict[str, int]:
        total, in_eval = getattr(dataset, "n_total", None), getattr(dataset, "n_eval", None)
        if total is None or in_eval is None:
            total, in_eval = dataset.examples.count(), dataset.examples.filter(split=ExampleSplit.EVAL).count()
        return {ExampleSplit.TRAIN: total - in_eval, ExampleSplit.EVAL: in_eval}


class DatasetUpdateSerializer(JsonTypes, serializers.ModelSerializer):
    template = VisibleRelatedField(
        queryset=Template.objects.all(), visible=template_list, noun="template", required=False, allow_null=True,
        help_text="A template of the same workspace whose validator checks the pairs.",
    )  # fmt: skip

    class Meta:
        model = Dataset
        fields = ["name", "description", "kind", "guidelines", "template", "require_valid", "refuse_eval_overlap"]
        validators = []
        extra_kwargs = {
            "description": capped("description"),
            "guidelines": capped("guidelines"),
        }


class TurnSerializer(JsonTypes, serializers.Serializer):
    role = serializers.ChoiceField(choices=HISTORY_ROLES)
    content = pair_text()
    weight = serializers.IntegerField(
        min_value=0, max_value=1, required=False,
        help_text="Assistant turns only (OpenAI's weight): 1, as when left out, trains on the turn; 0 keeps it as "
        "context only. The pair's response is always trained on.",
    )  # fmt: skip
    # validate() below, as the schema says it (project/api_schema.py): the assistant's turn, or no weight
    # (a pattern, not an enum: the schema's enum naming would take an enum here for the role's own)
    schema_rules = {"anyOf": [{"properties": {"role": {"pattern": "^assistant$"}}}, {"not": {"required": ["weight"]}}]}

    def validate(self, attrs: dict) -> dict:
        if "weight" in attrs and attrs["role"] != "assistant":
            raise serializers.ValidationError(
                {"weight": [f"only allowed on an assistant turn, not a {attrs['role']} one"]}
            )
        return attrs


REJECTED_HELP = "Preference datasets only: the rejected answer (`response` is the chosen one). Blank in other kinds."


class ExampleSerializer(JsonTypes, PairLimitsMixin, serializers.ModelSerializer):
    history = TurnSerializer(many=True, required=False, max_length=HISTORY_MAX_TURNS)
    tags = tags_field()
    prompt = pair_text()
    response = pair_text(required=False, default="", help_text="The answer; in a preference dataset the chosen one.")
    rejected = pair_text(required=False, default="", help_text=REJECTED_HELP)
    system_prompt = pair_text(required=False, default="")
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    updated_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = Example
        fields = [
            "id", "dataset", "system_prompt", "prompt", "response", "rejected", "history", "tags", "status", "split",
            "source", "review_comment", "content_hash", "version", "created_by", "updated_by", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = [
            "dataset",
            "status",
            "split",
            "review_comment",
            "content_hash",
            "version",
            "created_at",
            "updated_at",
        ]
        extra_kwargs = {"source": {"required": False}}


class ExampleCreateSerializer(ExampleSerializer):
    status = serializers.ChoiceField(choices=["draft", "submitted"], default="draft", required=False)
    split = serializers.ChoiceField(
        choices=ExampleSplit.choices, default=ExampleSplit.TRAIN, required=False,
        help_text="train (the default) or eval: the dataset's evaluation set, which runs are scored on and never trained on.",
    )  # fmt: skip

    class Meta(ExampleSerializer.Meta):
        read_only_fields = ["dataset", "review_comment", "content_hash", "version", "created_at", "updated_at"]


class DraftPairSerializer(ExampleCreateSerializer):
    status = serializers.ChoiceField(choices=["draft"], required=False)


class SubmittedPairSerializer(ExampleCreateSerializer):
    status = serializers.ChoiceField(choices=["submitted"])
    prompt = serializers.CharField(validators=[TextCap(pair_text_max)], help_text="Not blank once submitted.")
    response = serializers.CharField(validators=[TextCap(pair_text_max)], help_text="Not blank once submitted.")


class PairsCreatedSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    skipped_duplicates = serializers.IntegerField(help_text="Pairs the dataset already had (on_duplicate=skip).")
    results = ExampleSerializer(many=True, help_text="The new pairs.")


# What the API answers for new pairs: the pair, or for a list the count and the pairs.
CREATED_PAIRS = PolymorphicProxySerializer(
    component_name="CreatedPairs",
    serializers=[ExampleSerializer, PairsCreatedSerializer],
    resource_type_field_name=None,
    many=False,
)


# What the API documents for a new pair (ExampleCreateSerializer checks it): a draft may leave its texts blank,
# a pair submitted at once may not.
NEW_PAIR = PolymorphicProxySerializer(
    component_name="NewPair",
    serializers=[DraftPairSerializer, SubmittedPairSerializer],
    resource_type_field_name=None,
)


class ExampleUpdateSerializer(JsonTypes, PairLimitsMixin, serializers.Serializer):
    system_prompt = pair_text(required=False)
    prompt = pair_text(required=False)
    response = pair_text(required=False)
    rejected = pair_text(required=False, help_text=REJECTED_HELP)
    history = TurnSerializer(many=True, required=False, max_length=HISTORY_MAX_TURNS)
    tags = tags_field()
    split = serializers.ChoiceField(
        choices=ExampleSplit.choices, required=False,
        help_text="Move the pair to the training set (train) or the dataset's evaluation set (eval).",
    )  # fmt: skip
    version = serializers.IntegerField(required=False, help_text="The version you loaded; or send If-Match.")


def comment_field(**kwargs: object) -> serializers.CharField:
    return serializers.CharField(validators=[TextCap(TEXT_MAX_CHARS["comment"])], **kwargs)


class StatusActionSerializer(JsonTypes, serializers.Serializer):
    action = serializers.ChoiceField(choices=["submit", "approve", "reject", "reopen"])
    comment = comment_field(required=False, allow_blank=True, default="")


class StatusChangeSerializer(JsonTypes, serializers.Serializer):
    action = serializers.ChoiceField(choices=["submit", "approve", "reopen"])
    comment = comment_field(required=False, allow_blank=True)


class RejectionSerializer(JsonTypes, serializers.Serializer):
    action = serializers.ChoiceField(choices=["reject"])
    comment = comment_field(help_text="What the annotator should fix.")


# What the API documents for a status change: a rejection needs a comment; the other actions take one if given.
STATUS_ACTION = PolymorphicProxySerializer(
    component_name="StatusAction",
    serializers=[StatusChangeSerializer, RejectionSerializer],
    resource_type_field_name=None,
)


class ImportSerializer(serializers.Serializer):
    file = serializers.FileField(allow_empty_file=True)
    format = serializers.ChoiceField(
        choices=list(dict.fromkeys((*IMPORT_FORMATS, "csv", *PREFERENCE_FORMATS))), required=False,
        help_text="Detected from the file when not given. A preference dataset takes trl, trl_chat, openai_preference "
        "or parquet (with chosen and rejected columns); any other dataset the rest.",
    )  # fmt: skip
    on_duplicate = serializers.ChoiceField(choices=["skip", "keep"], default="skip", required=False)
    status = serializers.ChoiceField(choices=["draft", "submitted", "approved"], default="draft", required=False)
    split = serializers.ChoiceField(
        choices=ExampleSplit.choices, default=ExampleSplit.TRAIN, required=False,
        help_text="Import the pairs into the training set (train) or the dataset's evaluation set (eval).",
    )  # fmt: skip


class JobSerializer(serializers.ModelSerializer):
    dataset = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        model = Job
        fields = [
            "id", "kind", "dataset", "status", "phase", "progress", "params", "result", "problems", "error",
            "created_at", "started_at", "finished_at",
        ]  # fmt: skip


class JobAcceptedSerializer(JobSerializer):
    """A job just queued, and where to follow it (also in the Location header)."""

    job_url = serializers.CharField(help_text="Poll this until the job has succeeded or failed.")

    class Meta(JobSerializer.Meta):
        fields = [*JobSerializer.Meta.fields, "job_url"]
