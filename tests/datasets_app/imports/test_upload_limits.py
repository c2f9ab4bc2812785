"""Uploads over IMPORT_MAX_BYTES are refused by their declared size before the body is read, a body without a
length is not read at all, and no more than the limit ever reaches the handlers that spool a file. Raw requests
to a live server, so nothing in between (no test client) reads the body first."""

import socket
from urllib.parse import urlsplit

import pytest
from django.core.files.uploadhandler import FileUploadHandler
from django.test import Client
from django.urls import reverse
from rest_framework.authtoken.models import Token

from datasets_app.models import Job

pytestmark = pytest.mark.django_db(transaction=True)

LIMIT = 128 * 1024  # IMPORT_MAX_BYTES in these tests: 0.125 MB
BOUNDARY = "----instructory-test-boundary"


class SpoolProbe(FileUploadHandler):
    """Put behind the bounded handler (settings.FILE_UPLOAD_HANDLERS): counts the file bytes that get through
    to the handlers that keep a file in memory or spool it to disk."""

    received: list[int] = []

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        SpoolProbe.received.append(len(raw_data))
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None


@pytest.fixture
def limits(settings, tmp_path):
    settings.IMPORT_MAX_BYTES = LIMIT
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 0  # every file would be spooled to disk...
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path)  # ...here
    settings.FILE_UPLOAD_HANDLERS = [
        f"{__name__}.SpoolProbe",
        "django.core.files.uploadhandler.TemporaryFileUploadHandler",
    ]
    SpoolProbe.received.clear()
    return tmp_path


def _session_cookie(user) -> str:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def _exchange(live_server, head: str, first_bytes: bytes) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    """Send a request head and the first bytes of its body, then read the answer (status, body) without
    sending any more: an answer proves the server did not wait for the rest."""
    where = urlsplit(live_server.url)
    with socket.create_connection((where.hostname, where.port), timeout=20) as sock:
        sock.sendall(head.encode() + first_bytes)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, f"the server closed without answering: {data!r}"
            data += chunk
        header, _, body = data.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1]) for line in header.split(b"\r\n") if line.lower().startswith(b"content-length:")
        )
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    return int(header.split()[1]), body.decode(errors="replace")


def _head(path: str, host: str, *headers: str) -> str:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Type: multipart/form-data; boundary={BOUNDARY}"]
    return "\r\n".join([*lines, *headers, "", ""])


CSRF_SECRET = "t" * 32  # a CSRF cookie value; the form sends the same secret back


def _multipart(size: int, *, csrf: bool = True) -> bytes:
    token = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="csrfmiddlewaretoken"\r\n\r\n{CSRF_SECRET}\r\n'
        if csrf
        else ""
    )
    return (
        (
            f'{token}--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="pairs.jsonl"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + b'{"prompt": "q", "response": "r"}\n' * (size // 33)
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


@pytest.fixture
def import_paths(dataset, annotator):
    token = Token.objects.create(user=annotator).key
    return {
        "page": (
            reverse("dataset-import", args=[dataset.pk]),
            f"Cookie: {_session_cookie(annotator)}; csrftoken={CSRF_SECRET}",
        ),
        "api": (reverse("api-dataset-import", args=[dataset.pk]), f"Authorization: Token {token}"),
    }


@pytest.mark.parametrize("path", ["page", "api"])
def test_a_declared_gigabyte_is_refused_413_without_reading_it(live_server, limits, import_paths, path, dataset):
    url, auth = import_paths[path]
    head = _head(url, urlsplit(live_server.url).netloc, auth, f"Content-Length: {1 << 30}")

    status, body = _exchange(live_server, head, f"--{BOUNDARY}\r\n".encode())  # a few bytes of the 1 GB

    assert status == 413
    assert "larger than the 0.125 MB import limit" in body
    assert SpoolProbe.received == []  # nothing reached a file handler
    assert list(limits.iterdir()) == []
    assert not dataset.examples.exists()


@pytest.mark.parametrize("path", ["page", "api"])
def test_a_chunked_body_without_a_length_is_refused_unread(live_server, limits, import_paths, path, dataset):
    url, auth = import_paths[path]
    head = _head(url, urlsplit(live_server.url).netloc, auth, "Transfer-Encoding: chunked")
    chunk = _multipart(4 * LIMIT)  # the start of a body that would go on past the limit

    status, body = _exchange(live_server, head, f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")

    assert status == 411
    assert "no Content-Length" in body
    assert SpoolProbe.received == []
    assert not Job.objects.exists()
    assert not dataset.examples.exists()


@pytest.mark.parametrize("path", ["page", "api"])
def test_a_file_over_the_limit_inside_an_allowed_length_is_cut_at_the_limit(
    live_server, limits, import_paths, path, dataset
):
    url, auth = import_paths[path]
    body = _multipart(LIMIT + 40_000)  # the whole request is within the limit plus the form's envelope
    head = _head(url, urlsplit(live_server.url).netloc, auth, f"Content-Length: {len(body)}")

    status, page = _exchange(live_server, head, body)

    assert status == 413
    assert "larger than the 0.125 MB import limit" in page
    assert 0 < sum(SpoolProbe.received) <= LIMIT  # spooled at most up to the limit, then stopped
    assert not dataset.examples.exists()


@pytest.mark.parametrize(("path", "created"), [("page", 200), ("api", 201)])
def test_a_file_within_the_limit_is_imported_as_before(live_server, limits, import_paths, dataset, path, created):
    url, auth = import_paths[path]
    body = _multipart(LIMIT // 2)
    head = _head(url, urlsplit(live_server.url).netloc, auth, f"Content-Length: {len(body)}")

    status, answer = _exchange(live_server, head, body)

    assert status == created, answer
    assert dataset.examples.count() == 1  # the same pair many times: duplicates skipped


@pytest.mark.parametrize("size", [100, LIMIT + 40_000], ids=["small file", "file over the limit"])
def test_the_import_page_still_needs_the_csrf_token(live_server, limits, dataset, annotator, size):
    url = reverse("dataset-import", args=[dataset.pk])
    body = _multipart(size, csrf=False)
    head = _head(url, urlsplit(live_server.url).netloc, f"Cookie: {_session_cookie(annotator)}; csrftoken={CSRF_SECRET}",
                 f"Content-Length: {len(body)}")  # fmt: skip

    status, _ = _exchange(live_server, head, body)

    assert status == 403
    assert sum(SpoolProbe.received) <= LIMIT
    assert not dataset.examples.exists()


def test_the_refusal_page_is_the_import_page_with_the_reason(client, dataset, annotator, settings):
    settings.IMPORT_MAX_BYTES = LIMIT
    client.force_login(annotator)

    response = client.generic(
        "POST",
        reverse("dataset-import", args=[dataset.pk]),
        b"x",
        content_type=f"multipart/form-data; boundary={BOUNDARY}",
        CONTENT_LENGTH=str(1 << 30),
    )

    page = response.content.decode()
    assert response.status_code == 413
    assert "Nothing was imported.</strong> The file is larger than the 0.125 MB import limit." in page
    assert 'enctype="multipart/form-data"' in page  # the form, to try again
