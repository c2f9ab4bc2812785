"""Workspace API keys, the files uploaded through the OpenAI-compatible API (/v1/), its fine-tuning jobs and chat
completions."""

from django.conf import settings
from django.db import models

from datasets_app.models import Dispatched, Role, TimeStamped, Workspace
from training_app.models import TrainingRun


class KeyRole(models.TextChoices):
    """The roles a key may act with; never admin (keys cannot manage members or keys)."""

    ANNOTATOR = Role.ANNOTATOR.value, Role.ANNOTATOR.label
    LEAD = Role.LEAD.value, Role.LEAD.label


class ApiKey(TimeStamped):
    """A secret that acts in one workspace for its creator, capped at `role` and at the creator's current role.

    Only a SHA-256 hash of the secret is kept; the secret is shown once, when the key is made.
    """

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=200)
    role = models.CharField(max_length=20, choices=KeyRole.choices, default=KeyRole.ANNOTATOR)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    secret_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=20, help_text="The secret's first characters, to recognise it by.")
    last_used_at = models.DateTimeField(null=True, blank=True, help_text="Updated at most once a minute.")
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["workspace", "-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


class FilePurpose(models.TextChoices):
    FINE_TUNE = "fine-tune", "Fine-tuning"
    FINE_TUNE_RESULTS = "fine-tune-results", "Fine-tuning results (written by a job, never uploaded)"


class FileFormat(models.TextChoices):
    CHAT = "chat", "Chat (messages)"
    PREFERENCE = "preference", "Preference (input, preferred and non-preferred output)"
    CSV = "csv", "CSV (a job's step metrics)"


class ApiFile(TimeStamped):
    """A file uploaded to /v1/files, checked on upload and kept through the storage API."""

    public_id = models.CharField(max_length=40, unique=True, help_text='The id clients see, "file-…".')
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="api_files")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="files")
    filename = models.CharField(max_length=255)
    purpose = models.CharField(max_length=20, choices=FilePurpose.choices)
    format = models.CharField(max_length=20, choices=FileFormat.choices)
    size = models.PositiveBigIntegerField(help_text="Bytes.")
    examples = models.PositiveIntegerField(help_text="How many training examples (lines) it holds.")
    file = models.FileField(upload_to="openai_files/%Y/%m/", max_length=500)

    class Meta:
        ordering = ["workspace", "-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.public_id} ({self.filename})"


class FineTuningJob(TimeStamped):
    """A fine-tuning job of /v1/fine_tuning/jobs: what OpenAI's job has and an Instructory run has not.

    The run is the job (its id is `ftjob-<run id>`, its status the run's); the files are kept by id, as the job
    still names them after they are deleted; their pairs are in the run's dataset.
    """

    run = models.OneToOneField(TrainingRun, on_delete=models.CASCADE, related_name="fine_tuning_job")
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="fine_tuning_jobs")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs")
    training_file = models.CharField(max_length=40, help_text='The training file\'s id, "file-…".')
    validation_file = models.CharField(max_length=40, blank=True)
    suffix = models.CharField(max_length=64, blank=True, help_text="Part of the fine-tuned model's name.")
    seed = models.BigIntegerField()
    learning_rate_multiplier = models.FloatField(help_text="The run's learning rate over the default one.")
    metadata = models.JSONField(null=True, blank=True)
    result_file = models.ForeignKey(
        ApiFile, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The CSV of step metrics, written when the run succeeds.",
    )  # fmt: skip

    class Meta:
        ordering = ["workspace", "-run_id"]

    def __str__(self) -> str:
        return f"ftjob-{self.run_id}"


class CompletionStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Generating"
    SUCCEEDED = "succeeded", "Answered"
    FAILED = "failed", "Failed"


class ChatCompletion(TimeStamped, Dispatched):
    """A /v1/chat/completions request, answered by a worker (the web process never loads a model).

    The worker writes the answer into `text` as it generates it (the text only grows), so a streamed request sends
    each new part as it appears; the row is the truth for the request's state, as for any job.
    """

    public_id = models.CharField(max_length=40, unique=True, help_text='The id clients see, "chatcmpl-…".')
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="chat_completions")
    api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="chat_completions"
    )
    model = models.CharField(max_length=300, help_text="The model as the request named it.")
    base_model = models.CharField(max_length=100)
    run = models.ForeignKey(
        TrainingRun, null=True, blank=True, on_delete=models.CASCADE, related_name="chat_completions",
        help_text="The run whose fine-tuned model answers; empty for a base model.",
    )  # fmt: skip
    messages = models.JSONField(help_text='[{"role", "content"}], content as plain text.')
    options = models.JSONField(
        default=dict, help_text="max_new_tokens, temperature, top_p, stop, seed (training_app.ml.chat.ChatOptions)."
    )
    status = models.CharField(max_length=20, choices=CompletionStatus.choices, default=CompletionStatus.QUEUED)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    text = models.TextField(blank=True)
    finish_reason = models.CharField(max_length=20, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    error_code = models.CharField(max_length=40, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "created_at"], name="chat_completion_status_created")]

    def __str__(self) -> str:
        return self.public_id

    @property
    def finished(self) -> bool:
        return self.status in (CompletionStatus.SUCCEEDED, CompletionStatus.FAILED)
