"""/v1/files: upload (multipart `file` and `purpose`), list, retrieve, download and delete fine-tuning files."""

from django.core.exceptions import ValidationError
from django.http.response import HttpResponseBase
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from datasets_app.imports.uploads import bound_uploads, too_large_message, upload_refusal, upload_was_cut
from openai_app import files
from openai_app.api.common import V1View, page
from openai_app.api.errors import OpenAIError, file_not_found
from openai_app.models import ApiFile
from project.downloads import stored_file_response

LIST_MAX = 10_000  # OpenAI's largest `limit`


def file_object(file: ApiFile) -> dict:
    return {
        "id": file.public_id,
        "object": "file",
        "bytes": file.size,
        "created_at": int(file.created_at.timestamp()),
        "filename": file.filename,
        "purpose": file.purpose,
        "status": "processed",
        "status_details": None,
        "expires_at": None,
    }


class FileListView(V1View):
    parser_classes = [MultiPartParser]

    def initial(self, request: Request, *args: object, **kwargs: object) -> None:
        """After the key is checked (a bearer key reads no body), before anything reads the body: an upload over
        IMPORT_MAX_BYTES is refused by its declared size, unread, and what is read is bounded."""
        super().initial(request, *args, **kwargs)
        if request.method == "POST":
            refused = upload_refusal(request._request)
            if refused is not None:
                status_code, message = refused
                code = "file_too_large" if status_code == 413 else "length_required"
                raise OpenAIError(message, status_code=status_code, param="file", code=code)
            bound_uploads(request._request)

    def get(self, request: Request) -> Response:
        """The workspace's files, newest first (`order=asc` for oldest first), `limit` at a time after `after`."""
        params = request.query_params
        purpose = params.get("purpose") or None
        order = params.get("order", "desc")
        if order not in ("asc", "desc"):
            raise OpenAIError("order must be asc or desc", param="order")
        limit = _limit(params.get("limit"))
        found = files.file_list(workspace=self.access(request).workspace, purpose=purpose)
        found = found.order_by(*(("created_at", "id") if order == "asc" else ("-created_at", "-id")))
        after = params.get("after")
        if after:
            cursor = files.file_get(workspace=self.access(request).workspace, file_id=after)
            if cursor is None:
                raise file_not_found(after)
            found = found.filter(files.after(cursor, ascending=order == "asc"))
        rows = list(found[: limit + 1])
        data = [file_object(row) for row in rows[:limit]]
        extra = {"first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None}
        return Response(page(data, **extra, has_more=len(rows) > limit))

    def post(self, request: Request) -> Response:
        """Upload a fine-tuning file: checked line by line first; a bad one answers 400 and nothing is stored."""
        upload = request.FILES.get("file")
        if upload is None:
            if upload_was_cut(request._request):
                raise OpenAIError(too_large_message(), status_code=413, param="file", code="file_too_large")
            raise OpenAIError("Send the file as the multipart field `file`.", param="file")
        purpose = request.data.get("purpose")
        if not purpose:
            raise OpenAIError("Send `purpose` (fine-tune).", param="purpose")
        try:
            row = files.file_create(access=self.access(request), upload=upload, purpose=purpose)
        except files.InvalidFile as error:
            raise OpenAIError(" ".join(error.messages), param="file", code="invalid_file_format") from error
        except ValidationError as error:
            field, messages = next(iter(error.message_dict.items()))
            raise OpenAIError(f"{field}: {' '.join(messages)}", param=field) from error
        return Response(file_object(row))


class FileDetailView(V1View):
    def get(self, request: Request, file_id: str) -> Response:
        return Response(file_object(_file(request, file_id)))

    def delete(self, request: Request, file_id: str) -> Response:
        found = _file(request, file_id)
        files.file_delete(access=self.access(request), file=found)
        return Response({"id": found.public_id, "object": "file", "deleted": True})


class FileContentView(V1View):
    def get(self, request: Request, file_id: str) -> HttpResponseBase:
        found = _file(request, file_id)
        return stored_file_response(found.file.name, found.filename, "application/octet-stream", as_attachment=False)


def _file(request: Request, file_id: str) -> ApiFile:
    found = files.file_get(workspace=request.auth.workspace, file_id=file_id)
    if found is None:
        raise file_not_found(file_id)
    return found


def _limit(value: str | None) -> int:
    if value is None:
        return LIST_MAX
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= LIST_MAX:
        raise OpenAIError(f"limit must be a whole number from 1 to {LIST_MAX}", param="limit")
    return int(value)
