"""Storage on S3, against a real S3 HTTP server (moto's standalone server): the web side (this process) and two
workers act as different machines. Each has a local MEDIA_ROOT and model cache of its own, and they share only
PostgreSQL, a Redis broker and the bucket, so no path can read a file another process wrote locally."""

import io
import json
import os
import socket
import subprocess
import sys
import urllib.request
import uuid
import zipfile
from email.message import Message
from pathlib import Path

import boto3
import pytest
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from datasets_app.curation.services import example_create
from datasets_app.models import ExampleStatus
from openai_app.keys import api_key_create
from tests.api_client import client_for
from tests.factories import DatasetFactory
from tests.training_app.conftest import FAST, TINY, ask_playground
from tests.worker import WorkerProcess, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker, pytest.mark.postgres_only]

BUCKET = "instructory-test"
PAIRS = [{"prompt": f"What dose of medicine number {n} should I take?", "response": "I can't give medical advice.",
          "tags": ["blocked:medical"]} for n in range(8)] + [
         {"prompt": f"How long should I bake cake number {n}?", "response": f"About {20 + n} minutes at 180 C.",
          "tags": ["allowed:baking"]} for n in range(8)]  # fmt: skip


class S3Server:
    """moto's standalone S3 server on a free port, with the suite's bucket; every process reaches it over HTTP."""

    def __init__(self, tmp: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log = (tmp / "moto.log").open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_for(self._answers, timeout=60, interval=0.1)
        self.client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 (moto accepts any)
        )
        self.client.create_bucket(Bucket=BUCKET)

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.endpoint, timeout=1):  # noqa: S310 (our own server)
                return True
        except OSError:
            return False

    def keys(self, prefix: str) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    server = S3Server(tmp_path_factory.mktemp("moto"))
    yield server
    server.stop()


def s3_env(server: S3Server, prefix: str) -> dict[str, str]:
    """The S3_* variables a deployment sets on the web servers and workers alike."""
    return {
        "S3_BUCKET": BUCKET,
        "S3_ENDPOINT_URL": server.endpoint,
        "S3_REGION": "us-east-1",
        "S3_ACCESS_KEY_ID": "testing",
        "S3_SECRET_ACCESS_KEY": "testing",
        "S3_PREFIX": prefix,
        "S3_ADDRESSING_STYLE": "path",
        "S3_URL_EXPIRE_S": "120",
    }


def storages_from(env: dict[str, str]) -> dict:
    """STORAGES as project/settings.py builds it from `env`, read in a fresh process (the web side uses exactly that)."""
    code = "import json; from django.conf import settings; print(json.dumps(settings.STORAGES))"
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=django_settings.BASE_DIR,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


class Machine:
    """What one machine keeps locally: a MEDIA_ROOT, and a model cache holding the tiny base model."""

    def __init__(self, root: Path) -> None:
        self.media = root / "media"
        self.models = root / "models"
        self.media.mkdir(parents=True)
        self.models.mkdir()
        shared = Path(django_settings.MODEL_CACHE_DIR) / TINY
        (self.models / TINY).symlink_to(shared.resolve(), target_is_directory=True)

    def env(self) -> dict[str, str]:
        return {"MEDIA_ROOT": str(self.media), "INSTRUCTORY_MODEL_CACHE": str(self.models)}

    def files(self) -> list[Path]:
        return [path for path in self.media.rglob("*") if path.is_file()]


@pytest.fixture
def on_s3(s3_server, settings, tmp_path):
    """This process is a web server on S3 storage with a MEDIA_ROOT of its own; returns (env for the workers,
    the web machine, the bucket prefix)."""
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    env = s3_env(s3_server, prefix)
    web = Machine(tmp_path / "web")
    settings.STORAGES = storages_from({**env, **web.env()})
    settings.MEDIA_ROOT = web.media
    assert settings.STORAGES["default"]["BACKEND"] == "storages.backends.s3.S3Storage"
    return env, web, prefix


def fetched(url: str) -> tuple[bytes, Message]:
    """What a browser following the redirect gets: the body and its headers (case-insensitive)."""
    with urllib.request.urlopen(url, timeout=30) as answer:  # noqa: S310 (the presigned URL of our own server)
        return answer.read(), answer.headers


def test_import_snapshot_training_playground_and_downloads_run_on_different_machines_through_the_bucket(
    s3_server, on_s3, private_broker, workspace, lead, settings, tmp_path
):
    env, web, prefix = on_s3
    settings.IMPORT_ASYNC_BYTES = 100  # the import is queued for a worker
    private_broker.start()
    default_machine, training_machine = Machine(tmp_path / "worker-default"), Machine(tmp_path / "worker-training")
    api = client_for(lead)
    dataset = DatasetFactory(workspace=workspace, name="Medical guardrail", kind="guardrail")
    with (
        WorkerProcess("default", env={**private_broker.env, **env, **default_machine.env()}, name="s3-default"),
        WorkerProcess(
            "training",
            env={**private_broker.env, **env, **training_machine.env(), "RUN_CHECKPOINT_EVERY_STEPS": "1"},
            name="s3-training",
        ),
    ):
        # an upload: the web side stores it, the default worker imports it from the bucket
        content = "\n".join(json.dumps(pair) for pair in PAIRS).encode()
        queued = api.post(
            f"/api/datasets/{dataset.pk}/import/",
            {"file": SimpleUploadedFile("pairs.jsonl", content), "status": "approved"},
            format="multipart",
        )
        assert queued.status_code == 202, queued.content
        job = wait_for(lambda: (body := api.get(queued.json()["url"]).json())["status"] not in ("queued", "running")
                       and body, timeout=120)  # fmt: skip
        assert job["status"] == "succeeded", job
        assert dataset.examples.filter(status="approved").count() == len(PAIRS)
        assert not [key for key in s3_server.keys(prefix) if "/jobs/" in f"/{key}"]  # the worker deleted the upload

        # a snapshot: its file is an object in the bucket, and its download streams the same rows
        created = api.post(f"/api/datasets/{dataset.pk}/snapshots/", {"seed": 7}, format="json")
        assert created.status_code == 201, created.content
        snapshot_id = created.json()["id"]
        snapshot_keys = [key for key in s3_server.keys(prefix) if key.startswith(f"{prefix}/snapshots/")]
        assert len(snapshot_keys) == 1
        stored = s3_server.client.get_object(Bucket=BUCKET, Key=snapshot_keys[0])["Body"].read()
        download = api.get(f"/api/snapshots/{snapshot_id}/download/")
        assert download.status_code == 200
        assert download.streaming
        assert b"".join(download.streaming_content) == stored
        rows = [json.loads(line) for line in stored.decode().splitlines()]
        assert sorted(row["prompt"] for row in rows) == sorted(pair["prompt"] for pair in PAIRS)

        # a run on that snapshot trains on the training worker, which stores the artifact in the bucket
        run = api.post(
            "/api/runs/", {"snapshot": snapshot_id, "base_model": TINY, "hyperparameters": FAST}, format="json"
        )
        assert run.status_code == 201, run.content
        run_id = run.json()["id"]
        body = wait_for(lambda: (b := api.get(f"/api/runs/{run_id}/").json())["status"] not in ("queued", "running")
                        and b, timeout=300)  # fmt: skip
        assert body["status"] == "succeeded", body["error"] + body["traceback_tail"]
        assert [key for key in s3_server.keys(prefix) if key.startswith(f"{prefix}/artifacts/")]
        # it saved a checkpoint to the bucket every step, and deleted them when it succeeded
        lines = [line["line"] for line in api.get(f"/api/runs/{run_id}/logs/").json()]
        assert "checkpoint of step 1 saved" in lines
        assert not [key for key in s3_server.keys(prefix) if key.startswith(f"{prefix}/checkpoints/")]

        # the playground is answered by the default worker, which never saw the model: it fetches it from the bucket
        _, answer = ask_playground(api, run_id, "What dose should I take?", max_new_tokens=4)
        assert answer["status"] == "succeeded", answer["error"]
        assert list((default_machine.models / "runs").glob(f"run-{run_id}-*/adapter_model.safetensors"))
        assert not (training_machine.models / "runs").exists()

        # the artifact streams from the bucket as a zip of the adapter
        artifact = api.get(f"/api/runs/{run_id}/artifact/")
        assert artifact.status_code == 200
        assert artifact["Content-Disposition"] == f'attachment; filename="instructory-run-{run_id}.zip"'
        zipped = b"".join(artifact.streaming_content)
        assert {"adapter_model.safetensors", "instructory_run.json"} <= set(
            zipfile.ZipFile(io.BytesIO(zipped)).namelist()
        )

        # the merged model: the training worker builds it from the bucket's artifact and stores it in the bucket
        export_url = f"/api/runs/{run_id}/export/?format=merged"
        started = api.get(export_url)
        assert started.status_code == 202
        wait_for(lambda: api.get(started["Location"]).json()["status"] == "succeeded", timeout=120)
        merged = api.get(export_url)
        assert merged.status_code == 200
        names = zipfile.ZipFile(io.BytesIO(b"".join(merged.streaming_content))).namelist()
        assert f"instructory-run-{run_id}-merged/model.safetensors" in names
        assert [key for key in s3_server.keys(prefix) if key.startswith(f"{prefix}/exports/")]

        # with STORAGE_DOWNLOAD_REDIRECT the web server answers with a presigned URL instead of the bytes
        settings.STORAGE_DOWNLOAD_REDIRECT = True
        redirected = api.get(f"/api/runs/{run_id}/artifact/")
        assert redirected.status_code == 302
        body, headers = fetched(redirected["Location"])
        assert body == zipped
        assert headers["Content-Disposition"] == f'attachment; filename="instructory-run-{run_id}.zip"'

    # nothing was written to any machine's MEDIA_ROOT: every file went through the bucket
    assert (web.files(), default_machine.files(), training_machine.files()) == ([], [], [])


def test_snapshots_diff_from_the_bucket_and_downloads_redirect_to_presigned_urls_with_the_same_body(
    s3_server, on_s3, workspace, lead, admin_member, settings
):
    env, web, prefix = on_s3
    dataset = DatasetFactory(workspace=workspace, name="Kitchen notes", kind="guardrail")
    api = client_for(lead)
    for pair in PAIRS[:4]:
        example_create(dataset=dataset, user=lead, status=ExampleStatus.APPROVED, **pair)
    snapshot_id = api.post(f"/api/datasets/{dataset.pk}/snapshots/", {}, format="json").json()["id"]
    streamed = b"".join(api.get(f"/api/snapshots/{snapshot_id}/download/").streaming_content)
    # two snapshots compared, both read back from the bucket
    example_create(dataset=dataset, user=lead, status=ExampleStatus.APPROVED, **PAIRS[-1])
    newer_id = api.post(f"/api/datasets/{dataset.pk}/snapshots/", {}, format="json").json()["id"]
    counts = api.get(f"/api/snapshots/{snapshot_id}/diff/{newer_id}/").json()["counts"]
    assert (counts["added"] + counts["eval"]["added"], counts["removed"] + counts["eval"]["removed"]) == (1, 0)
    key = api_key_create(workspace=workspace, by=admin_member, name="files", role="lead")[1]
    v1 = APIClient()
    v1.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    chat = b'{"messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]}\n'
    uploaded = v1.post("/v1/files", {"file": SimpleUploadedFile("chat.jsonl", chat), "purpose": "fine-tune"},
                       format="multipart")  # fmt: skip
    assert uploaded.status_code == 200, uploaded.content
    file_id = uploaded.json()["id"]

    settings.STORAGE_DOWNLOAD_REDIRECT = True
    snapshot = api.get(f"/api/snapshots/{snapshot_id}/download/")
    assert snapshot.status_code == 302
    assert snapshot["Location"].startswith(f"{s3_server.endpoint}/{BUCKET}/{prefix}/snapshots/")
    assert "Signature=" in snapshot["Location"] or "X-Amz-Signature=" in snapshot["Location"]
    body, headers = fetched(snapshot["Location"])
    assert body == streamed
    assert headers["Content-Disposition"] == 'attachment; filename="Kitchen notes-v1.jsonl"'
    assert headers.get_all("Content-Type") == ["application/jsonl"]

    content = v1.get(f"/v1/files/{file_id}/content")
    assert content.status_code == 302
    body, headers = fetched(content["Location"])
    assert body == chat
    assert headers["Content-Disposition"] == 'inline; filename="chat.jsonl"'

    settings.STORAGE_DOWNLOAD_REDIRECT = False
    assert b"".join(v1.get(f"/v1/files/{file_id}/content").streaming_content) == chat
    assert web.files() == []
