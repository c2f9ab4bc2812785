"""Files uploaded through /v1/files: checked before anything is stored, kept through the storage API.

An upload is checked from the request's temporary file; only a good one is saved to storage, and if its row
cannot be written the stored file is deleted again, so a failed upload leaves nothing behind. Deleting a file
removes its row, then (once that commits) its stored bytes.
"""

import secrets
import string

from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import Q, QuerySet

from datasets_app.curation.limits import import_read_limits
from datasets_app.imports.uploads import safe_filename
from datasets_app.models import Role, Workspace
from openai_app.finetune_format import check_file
from openai_app.keys import KeyAccess
from openai_app.models import ApiFile, FilePurpose

ID_CHARS = string.ascii_letters + string.digits


class InvalidFile(ValidationError):
    """The file's content is not a valid fine-tuning file; the message names each line and field at fault."""


def new_file_id() -> str:
    return "file-" + "".join(secrets.choice(ID_CHARS) for _ in range(24))


# --- reads


def file_list(*, workspace: Workspace, purpose: str | None = None) -> QuerySet[ApiFile]:
    files = ApiFile.objects.filter(workspace=workspace)
    return files.filter(purpose=purpose) if purpose else files


def file_get(*, workspace: Workspace, file_id: str) -> ApiFile | None:
    return file_list(workspace=workspace).filter(public_id=file_id).first()


def after(cursor: ApiFile, *, ascending: bool) -> Q:
    """The files listed after `cursor` in (created_at, id) order, newest first unless `ascending`."""
    if ascending:
        return Q(created_at__gt=cursor.created_at) | Q(created_at=cursor.created_at, pk__gt=cursor.pk)
    return Q(created_at__lt=cursor.created_at) | Q(created_at=cursor.created_at, pk__lt=cursor.pk)


# --- writes


def file_create(*, access: KeyAccess, upload: UploadedFile, purpose: str) -> ApiFile:
    """Check and store a fine-tuning file (any key of the workspace). Raises ValidationError naming `purpose`, or
    InvalidFile naming the lines at fault; nothing is stored then."""
    access.require(Role.ANNOTATOR)
    if purpose != FilePurpose.FINE_TUNE:  # fine-tune-results files are written by jobs, never uploaded
        raise ValidationError({"purpose": [f"must be {FilePurpose.FINE_TUNE.value} (got {purpose[:40]!r})"]})
    upload.seek(0)
    checked = check_file(upload, import_read_limits())
    if checked.problems:
        raise InvalidFile({"file": [checked.message()]})
    filename = safe_filename(upload.name or "", "upload.jsonl")
    row = ApiFile(
        public_id=new_file_id(),
        workspace=access.workspace,
        created_by=access.user,
        api_key=access.key,
        filename=filename,
        purpose=purpose,
        format=checked.format,
        size=upload.size or 0,
        examples=checked.examples,
    )
    upload.seek(0)
    row.file.save(filename, upload, save=False)
    try:
        row.save()
    except BaseException:
        row.file.storage.delete(row.file.name)
        raise
    return row


@transaction.atomic
def file_delete(*, access: KeyAccess, file: ApiFile) -> None:
    """Delete a file (any key of the workspace): its row now, its stored bytes once that commits."""
    access.require(Role.ANNOTATOR)
    storage, name = file.file.storage, file.file.name
    ApiFile.objects.filter(pk=file.pk).delete()
    transaction.on_commit(lambda: storage.delete(name))
