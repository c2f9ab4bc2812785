"""Import uploads are refused by their declared size before a byte of the body is read, and never spooled past
IMPORT_MAX_BYTES: the browser page and the API call these before anything parses the body.

Django reads a request body only up to its Content-Length, and reads nothing of a body that has none (a
chunked upload arrives empty under WSGI), so: a declared length over the limit is answered 413 unread; a body
without a length is answered 411 unread; and a body within its declared length goes through a handler that
stops the file at the limit (the form around it may add a little, ENVELOPE_BYTES). Checking after Django's
parser has run is too late: the CSRF check alone reads the whole body, which is why the browser page checks
before it (csrf_exempt, then csrf_protect inside) and the API before authentication.
"""

from django.conf import settings
from django.core.exceptions import SuspiciousFileOperation
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http import HttpRequest
from django.utils.text import get_valid_filename

ENVELOPE_BYTES = 64 * 1024  # multipart boundaries, part headers and the form's other fields around the file


def safe_filename(name: str, default: str) -> str:
    """`name` as a file name (letters, digits, - _ .), or `default` when nothing of it is left: Django refuses
    that case (SuspiciousFileOperation, a 400 page), and a name like "!!!" must not cost an upload or a download."""
    try:
        return get_valid_filename(name) or default
    except SuspiciousFileOperation:
        return default


def too_large_message() -> str:
    return f"the file is larger than the {settings.IMPORT_MAX_BYTES / 2**20:g} MB import limit"


LENGTH_REQUIRED = (
    "the upload did not say how large it is (no Content-Length); send the file from the import page, "
    "or with a client that sets Content-Length"
)


def upload_refusal(request: HttpRequest) -> tuple[int, str] | None:
    """(status, message) when an upload must be refused without reading its body: 413 when its declared length
    is over the limit, 411 when a body comes without a length; None when it may be read (boundedly)."""
    length = request.META.get("CONTENT_LENGTH") or ""
    if length.strip():
        if not length.strip().isdigit() or int(length) > settings.IMPORT_MAX_BYTES + ENVELOPE_BYTES:
            return 413, too_large_message()
        return None
    if request.META.get("HTTP_TRANSFER_ENCODING"):
        return 411, LENGTH_REQUIRED
    return None


class BoundedUploadHandler(FileUploadHandler):
    """First of the upload handlers: passes a file's data on to the next one until the file passes `limit`
    bytes, then stops the upload there (nothing after is read) and marks the request (`upload_was_cut`)."""

    def __init__(self, request: HttpRequest, limit: int) -> None:
        super().__init__(request)
        self.limit = limit

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        if start + len(raw_data) > self.limit:
            self.request._upload_cut = True  # type: ignore[union-attr]
            raise StopUpload(connection_reset=True)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None  # the next handler makes the file


def bound_uploads(request: HttpRequest) -> None:
    """Put the bounded handler first; call before anything reads request.POST or request.FILES."""
    request.upload_handlers.insert(0, BoundedUploadHandler(request, settings.IMPORT_MAX_BYTES))


def upload_was_cut(request: HttpRequest) -> bool:
    """Whether the bounded handler stopped a file at the limit (its form arrived without it)."""
    return getattr(request, "_upload_cut", False)
