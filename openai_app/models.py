"""Workspace API keys and the files uploaded through the OpenAI-compatible API (/v1/)."""

from django.conf import settings
from django.db import models

from datasets_app.models import Role, TimeStamped, Workspace


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


class FileFormat(models.TextChoices):
    CHAT = "chat", "Chat (messages)"
    PREFERENCE = "preference", "Preference (input, preferred and non-preferred output)"


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
