"""Downloads of stored files (snapshots, run artifacts, API files): streamed from the storage in chunks, or, with
STORAGE_DOWNLOAD_REDIRECT on S3, a redirect to a short-lived presigned URL so the bytes skip the web server."""

import inspect

from django.conf import settings
from django.core.files.storage import default_storage
from django.http import FileResponse, HttpResponseRedirect
from django.utils.http import content_disposition_header
from drf_spectacular.utils import OpenApiResponse

# How the API schema describes the redirect a download answers with when STORAGE_DOWNLOAD_REDIRECT is on.
PRESIGNED_REDIRECT = OpenApiResponse(
    description="With STORAGE_DOWNLOAD_REDIRECT on S3 storage: the file is at the `Location` URL, presigned and valid "
    "for S3_URL_EXPIRE_S seconds, and answers with the same file name and content type."
)


def stored_file_response(
    stored_name: str, filename: str, content_type: str, as_attachment: bool = True
) -> FileResponse | HttpResponseRedirect:
    """The stored file `stored_name` as a download named `filename`; never read whole into memory (S3's backend
    spools a large object to a temporary file, FileResponse sends it in chunks)."""
    if settings.STORAGE_DOWNLOAD_REDIRECT and _presigns(default_storage):
        parameters = {
            "ResponseContentDisposition": content_disposition_header(as_attachment, filename),
            "ResponseContentType": content_type,
        }
        return HttpResponseRedirect(default_storage.url(stored_name, parameters=parameters))
    return FileResponse(
        default_storage.open(stored_name, "rb"),
        as_attachment=as_attachment,
        filename=filename,
        content_type=content_type,
    )


def _presigns(storage: object) -> bool:
    """Whether the storage signs URLs with response headers (django-storages' S3); the file system does not."""
    url = getattr(storage, "url", None)
    return url is not None and "parameters" in inspect.signature(url).parameters
