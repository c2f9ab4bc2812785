"""Workspaces, memberships, datasets and the prompt/response pairs they hold."""

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connections, models
from django.db.models import F

HISTORY_ROLES = ("system", "user", "assistant")


class TimeStamped(models.Model):
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class Dispatched(models.Model):
    """A row whose Celery task goes through the outbox (datasets_app/jobs/outbox.py): sent, and sent again while queued."""

    dispatched_at = models.DateTimeField(
        null=True, blank=True, help_text="When its task last reached the broker; null until a send succeeded."
    )
    dispatch_count = models.PositiveIntegerField(default=0, help_text="How many sends of its task reached the broker.")

    class Meta:
        abstract = True


class Role(models.TextChoices):
    ANNOTATOR = "annotator", "Annotator"
    LEAD = "lead", "Lead"
    ADMIN = "admin", "Admin"


# What each role may do; a higher rank includes every lower one.
ROLE_RANK = {Role.ANNOTATOR: 1, Role.LEAD: 2, Role.ADMIN: 3}


class Workspace(TimeStamped):
    # Unique per creator, not site-wide: a site-wide check would tell anyone the names other teams use.
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    default_base_model = models.CharField(max_length=100, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="Membership", related_name="workspaces")

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["created_by", "name"], name="unique_workspace_name_per_creator")]

    def __str__(self) -> str:
        return self.name


class Membership(TimeStamped):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.ANNOTATOR)

    class Meta:
        ordering = ["workspace", "user"]
        constraints = [models.UniqueConstraint(fields=["workspace", "user"], name="unique_membership")]

    def __str__(self) -> str:
        return f"{self.user} in {self.workspace} as {self.role}"

    def allows(self, role: str) -> bool:
        return ROLE_RANK[Role(self.role)] >= ROLE_RANK[Role(role)]


class InvitationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    ACCEPTED = "accepted", "Accepted"
    DECLINED = "declined", "Declined"
    REVOKED = "revoked", "Revoked"


class Invitation(TimeStamped):
    """A workspace admin's offer of a role to a username; the Membership exists only once that user accepts.

    Kept by username rather than by user, so that inviting a name no one has is indistinguishable, to
    the admin, from inviting someone who exists: the same row, the same answers, the same list.
    """

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="invitations")
    username = models.CharField(max_length=150)
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.ANNOTATOR)
    status = models.CharField(max_length=20, choices=InvitationStatus.choices, default=InvitationStatus.PENDING)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    expires_at = models.DateTimeField()
    responded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "username"],
                condition=models.Q(status="pending"),
                name="unique_pending_invitation",
            )
        ]
        indexes = [models.Index(fields=["username", "status"], name="invitation_username_status")]

    def __str__(self) -> str:
        return f"{self.username} to {self.workspace} as {self.role} ({self.status})"


class DatasetKind(models.TextChoices):
    GENERAL = "general", "General"
    GUARDRAIL = "guardrail", "Guardrail"
    MCQ = "mcq", "Multiple-choice questions"
    PREFERENCE = "preference", "Preference pairs"


class TemplateKind(models.TextChoices):
    GUARDRAIL = "guardrail", "Guardrail"
    MCQ = "mcq", "Multiple-choice questions"


class Template(TimeStamped):
    """A few decisions (topics, a refusal pattern, an MCQ format) that generate many consistent pairs.

    `spec` holds the kind's settings; `datasets_app.blueprints.specs` parses and checks it.
    """

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="templates")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=TemplateKind.choices)
    description = models.TextField(blank=True)
    spec = models.JSONField(default=dict)
    version = models.PositiveIntegerField(default=1, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["workspace", "name"]
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="unique_template_name_in_workspace")]

    def __str__(self) -> str:
        return self.name


class Dataset(TimeStamped):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="datasets")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=20, choices=DatasetKind.choices, default=DatasetKind.GENERAL)
    guidelines = models.TextField(blank=True, help_text="Markdown shown to annotators beside the editor.")
    template = models.ForeignKey(
        Template,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="datasets",
        help_text="The template whose validator checks this dataset's pairs.",
    )
    require_valid = models.BooleanField(
        default=False, help_text="Refuse to approve pairs that fail the template's validator."
    )
    refuse_eval_overlap = models.BooleanField(
        default=False,
        help_text="Refuse snapshots in which a training pair's prompt repeats or nearly repeats an evaluation pair's.",
    )
    linted_at = models.DateTimeField(
        null=True, blank=True, help_text="When every pair was last checked together (duplicates included)."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["workspace", "name"]
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="unique_dataset_name_in_workspace")]

    def __str__(self) -> str:
        return self.name

    @property
    def is_preference(self) -> bool:
        """Its pairs have a chosen (`response`) and a rejected answer."""
        return self.kind == DatasetKind.PREFERENCE


class ExampleStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    SUBMITTED = "submitted", "Submitted"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"


class ExampleSplit(models.TextChoices):
    """Which set a pair belongs to: training pairs are trained on, evaluation pairs only ever score a run."""

    TRAIN = "train", "Training set"
    EVAL = "eval", "Evaluation set"


def validate_history(value: object) -> None:
    """Earlier turns: a list of {role, content} with a known role and text content; an assistant turn may carry
    "weight": 0 (context only, not trained on) or 1 (trained on, as without a weight: OpenAI's per-message weight)."""
    if not isinstance(value, list):
        raise ValidationError("history must be a list of {role, content} turns.")
    for index, turn in enumerate(value):
        if not isinstance(turn, dict) or not {"role", "content"} <= set(turn) <= {"role", "content", "weight"}:
            raise ValidationError(
                f"history[{index}] must be an object with 'role' and 'content' (and, on an assistant turn, 'weight')."
            )
        if turn["role"] not in HISTORY_ROLES:
            raise ValidationError(
                f"history[{index}].role is {turn['role']!r}; expected one of {', '.join(HISTORY_ROLES)}."
            )
        if not isinstance(turn["content"], str):
            raise ValidationError(f"history[{index}].content must be text.")
        if "weight" in turn:
            validate_weight(turn["weight"], turn["role"], f"history[{index}].weight")


def validate_weight(weight: object, role: object, name: str) -> None:
    """A history turn's weight: 0 or 1, on an assistant turn only."""
    if role != "assistant":
        raise ValidationError(f"{name} is only allowed on an assistant turn (this turn is the {role}'s).")
    if type(weight) is not int or weight not in (0, 1):
        raise ValidationError(f"{name} must be 0 or 1 (0: context only, 1: trained on), got {weight!r}.")


def validate_tags(value: object) -> None:
    if not isinstance(value, list) or not all(isinstance(tag, str) and tag.strip() for tag in value):
        raise ValidationError("tags must be a list of non-empty strings.")


def blank_text_errors(*, status: str, prompt: str, response: str, rejected: str | None = None) -> dict[str, str]:
    """A pair past draft needs a prompt and a response, and a preference pair (`rejected` not None) a rejected one."""
    if status == ExampleStatus.DRAFT:
        return {}
    texts = [("prompt", prompt), ("response", response), *([("rejected", rejected)] if rejected is not None else [])]
    return {name: "may not be blank once submitted." for name, text in texts if not text.strip()}


class Unstaged(models.Expression):
    """True for a pair outside every id range an import is still writing (ImportStage), e.g. `filter(Unstaged())`;
    `Unstaged("examples__id")` reaches the pairs through a join.

    Plain SQL around the id column, so it costs a query microseconds to build, and the database one comparison
    a row while nothing is staged: the subqueries that do not depend on the row run once a query.
    """

    output_field = models.BooleanField()
    conditional = True

    def __init__(self, id_path: str = "id") -> None:
        super().__init__()
        self.id = F(id_path)

    def get_source_expressions(self) -> list:
        return [self.id]

    def set_source_expressions(self, expressions: list) -> None:
        (self.id,) = expressions

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list]:
        pk, params = compiler.compile(self.id)
        stage = ImportStage._meta.db_table
        # A table name and a compiled column: no user input.
        sql = (
            f"(NOT EXISTS (SELECT 1 FROM {stage}) OR {pk} < (SELECT MIN(first_id) FROM {stage}) OR NOT EXISTS"  # noqa: S608
            f" (SELECT 1 FROM {stage} AS staged WHERE staged.first_id <= {pk} AND {pk} <= staged.last_id))"
        )
        return sql, params


class ExampleManager(models.Manager["Example"]):
    """Pairs as readers see them. On SQLite an import writes its pairs in short committed batches into an id
    range no reader sees (ImportStage) until one quick final commit; on PostgreSQL it is one transaction."""

    def get_queryset(self) -> models.QuerySet["Example"]:
        queryset = super().get_queryset()
        if connections[self.db].vendor == "sqlite":
            queryset = queryset.filter(Unstaged())
        return queryset


class Example(models.Model):
    """One prompt/response pair, optionally with a system prompt and earlier turns."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="examples")
    system_prompt = models.TextField(blank=True)
    prompt = models.TextField(blank=True)
    response = models.TextField(blank=True)
    # Preference datasets: `response` is the chosen answer and this the rejected one; blank in other kinds.
    rejected = models.TextField(blank=True)
    history = models.JSONField(default=list, blank=True, validators=[validate_history])
    status = models.CharField(max_length=20, choices=ExampleStatus.choices, default=ExampleStatus.DRAFT)
    split = models.CharField(max_length=10, choices=ExampleSplit.choices, default=ExampleSplit.TRAIN)
    tags = models.JSONField(default=list, blank=True, validators=[validate_tags])
    source = models.CharField(max_length=255, default="manual")
    content_hash = models.CharField(max_length=32, db_index=True, editable=False)
    version = models.PositiveIntegerField(default=1, editable=False)
    review_comment = models.TextField(blank=True)
    # Lint findings, refreshed on save and by a whole-dataset lint: [{code, field, line, message, related}].
    problems = models.JSONField(default=list, blank=True, editable=False)
    problem_count = models.PositiveIntegerField(default=0, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # Every read goes through this manager, so staged pairs stay hidden; `_base_manager` (deletes, cascades) sees all.
    objects = ExampleManager()

    class Meta:
        ordering = ["dataset", "id"]
        indexes = [
            models.Index(fields=["dataset", "status", "id"], name="example_dataset_status"),
            models.Index(fields=["dataset", "updated_at"], name="example_dataset_updated"),
            models.Index(fields=["dataset", "content_hash"], name="example_dataset_hash"),
            models.Index(fields=["dataset", "problem_count"], name="example_dataset_problems"),
            # the evaluation set is usually small: counted and listed over this index without reading the rest
            models.Index(fields=["dataset", "split", "id"], name="example_dataset_split"),
        ]

    def __str__(self) -> str:
        return self.prompt[:60] or f"Example {self.pk}"

    def clean(self) -> None:
        blank = blank_text_errors(status=self.status, prompt=self.prompt, response=self.response)
        if blank:
            raise ValidationError(blank)


class ExampleRevision(models.Model):
    """One change to an example: who, when, and the fields before and after."""

    class Action(models.TextChoices):
        CREATE = "create", "Created"
        EDIT = "edit", "Edited"
        STATUS = "status", "Status changed"
        RESTORE = "restore", "Restored"
        SPLIT = "split", "Moved"

    example = models.ForeignKey(Example, on_delete=models.CASCADE, related_name="revisions")
    version = models.PositiveIntegerField()
    action = models.CharField(max_length=20, choices=Action.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    before = models.JSONField(default=dict)
    after = models.JSONField(default=dict)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["example", "version", "id"]
        indexes = [models.Index(fields=["example", "version"], name="revision_example_version")]

    def __str__(self) -> str:
        return f"{self.example_id} v{self.version} {self.action}"


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class Job(TimeStamped, Dispatched):
    """A background job on a dataset (an import, a generation); the row is the source of truth, not the broker."""

    class Kind(models.TextChoices):
        IMPORT = "import", "Import"
        GENERATE = "generate", "Generate from template"
        DRAFT = "draft", "Draft responses"
        LINT = "lint", "Check dataset"
        FAILURES = "failures", "Failures to drafts"
        EXPORT = "export", "Merged model export"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    task = models.CharField(max_length=200, blank=True, help_text="The Celery task that runs it, by name.")
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="jobs")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=20, choices=JobStatus.choices, default=JobStatus.QUEUED)
    params = models.JSONField(default=dict, blank=True)
    file = models.FileField(upload_to="jobs/%Y/%m/%d/", blank=True, max_length=500)
    phase = models.CharField(max_length=40, blank=True)
    progress = models.FloatField(default=0.0, help_text="0 to 1")
    result = models.JSONField(default=dict, blank=True)
    problems = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="job_status_heartbeat")]

    def __str__(self) -> str:
        return f"{self.kind} job {self.pk} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in (JobStatus.SUCCEEDED, JobStatus.FAILED)


class ImportStage(TimeStamped):
    """The ids of an import's pairs that are written but not yet visible (SQLite; see ExampleManager).

    The import reserves first_id..last_id, writes its pairs there in short committed batches, and deletes
    this row in the commit that ends it (its job's end too). An import that fails, or whose job ended without
    it (a killed worker, a sweep), is `discarding`: its pairs are deleted in short batches, then this row.
    """

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="+")
    # SET_NULL, not CASCADE: losing this row would show the pairs; a stage without a job is swept once quiet.
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    first_id = models.BigIntegerField()
    last_id = models.BigIntegerField()
    discarding = models.BooleanField(default=False)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"import into {self.dataset_id}: ids {self.first_id}-{self.last_id}"


class ExampleLease(TimeStamped):
    """A short claim on a pair handed out by a work queue, so two people never get the same item at once.

    Stored in the database (not a process's memory) so every web server sees the same claims; a lease
    simply stops counting once `expires_at` passes, so a closed browser tab frees its item on its own.
    """

    example = models.OneToOneField(Example, on_delete=models.CASCADE, related_name="lease")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    expires_at = models.DateTimeField()

    class Meta:
        ordering = ["expires_at", "id"]
        indexes = [models.Index(fields=["user", "expires_at"], name="lease_user_expires")]

    def __str__(self) -> str:
        return f"example {self.example_id} held by {self.user_id} until {self.expires_at:%H:%M:%S}"
