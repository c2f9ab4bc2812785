"""The OpenAPI schema is valid, Swagger UI is served from local assets, and fuzzing the API finds no 500."""

import re

import pytest
import schemathesis
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error

from datasets_app.demo import seed_demo
from datasets_app.models import Dataset
from project.wsgi import application

pytestmark = pytest.mark.django_db


def test_schema_validates_without_warnings(tmp_path):
    out = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    text = out.read_text()
    for path in [
        "/api/datasets/{id}/examples/",
        "/api/datasets/{id}/import/",
        "/api/examples/{id}/status/",
        "/api/auth/token/",
    ]:
        assert f"  {path}:" in text


def test_swagger_ui_uses_only_local_assets(client, annotator):
    client.force_login(annotator)
    page = client.get("/api/docs/").content.decode()
    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert sources
    assert all(source.startswith("/") for source in sources), sources
    for source in sources:
        if source.startswith("/static/"):
            assert client.get(source).status_code == 200, source


def real_ids() -> dict[str, int]:
    """Ids of real demo rows, so generated requests reach past the 404 into the code behind it."""
    dataset = Dataset.objects.order_by("id").first()
    return {
        "workspaces": dataset.workspace_id,
        "datasets": dataset.pk,
        "examples": dataset.examples.order_by("id").first().pk,
    }


def fuzz(operation, token: str, ids: dict[str, int]) -> int:
    """Send generated requests to one operation; fails on the first 5xx. Returns how many were sent."""
    sent = []
    collection = operation.path.split("/")[2]

    @given(case=operation.as_strategy(), use_real_id=st.booleans())
    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case, use_real_id):
        if use_real_id and case.path_parameters and collection in ids:
            case.path_parameters = {**case.path_parameters, "id": ids[collection]}
        case.headers = {**(case.headers or {}), "Authorization": f"Token {token}"}
        response = case.call()
        sent.append(response.status_code)
        case.validate_response(response, checks=[not_a_server_error])

    check()
    return len(sent)


@pytest.fixture
def keep_test_connection():
    """Like Django's test client: a request ending must not close the test's database connection."""
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


def test_fuzzing_every_endpoint_finds_no_server_error(keep_test_connection):
    seed_demo()
    token = Token.objects.create(user=get_user_model().objects.get(username="lead")).key
    schema = schemathesis.openapi.from_wsgi("/api/schema/", application)
    ids = real_ids()
    operations = sorted((result.ok() for result in schema.get_all_operations()), key=lambda op: op.method == "delete")
    sent = {f"{op.method} {op.path}": fuzz(op, token, ids) for op in operations}
    assert len(sent) >= 20
    assert all(count > 0 for count in sent.values()), sent
