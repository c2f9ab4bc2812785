"""The OpenAPI schema is valid and true, and Swagger UI is served from local assets.

Schemathesis sends every API operation the requests it derives from the schema, valid ones and invalid ones
(its examples, coverage and fuzzing phases), and runs every check it has on each answer: no server error,
every status code, content type, header and body as documented, invalid requests refused, valid ones accepted.
"""

import re

import pytest
import schemathesis
from django.core.management import call_command
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import CHECKS, ensure_resource_availability, load_all_checks, positive_data_acceptance
from schemathesis.config import SchemathesisConfig
from schemathesis.core.parameters import ParameterLocation

from datasets_app.blueprints.services import template_create
from datasets_app.blueprints.specs import default_spec
from datasets_app.curation.invitations import invitation_create
from datasets_app.curation.services import dataset_create, example_create, example_set_status, workspace_create
from datasets_app.models import Example, Job, Template
from openai_app.keys import api_key_create
from project.wsgi import application
from tests.factories import UserFactory
from training_app.models import PlaygroundRequest, RunStatus, TrainingRun
from training_app.snapshots import snapshot_create

load_all_checks()
EVERY_CHECK = CHECKS.get_all()
GENERATION = {
    "mode": "all",  # valid and invalid requests
    "max-examples": 10,  # fuzzing cases per operation and mode; the coverage phase adds its own
    "deterministic": True,
    "database": "none",
    "with-security-parameters": False,  # the test logs in with a real token
    "allow-x00": False,  # no text takes a NUL: the API's description says so once, not each field's schema
}
SCHEMA = schemathesis.openapi.from_wsgi(
    "/api/schema/",
    application,
    config=SchemathesisConfig.from_dict(
        {"generation": GENERATION, "phases": {"stateful": {"enabled": False}}, "suppress-health-check": ["all"]}
    ),
)
# A valid request may still be refused for what JSON Schema cannot say; only these fields, only here.
BEYOND_JSON_SCHEMA = {
    "POST /api/auth/token/": {"non_field_errors"},  # a username and password that match: no schema can know one
    "POST /api/datasets/{id}/import/": {"detail", "problems"},  # the file's content, in any of six formats
    "POST /api/templates/": {"spec"},  # a spec's rules: known placeholders, unique topics, the pairs it would make
    "PATCH /api/templates/{id}/": {"spec"},
    # a rejected answer belongs only to a preference dataset's pairs, and a format to its kind of dataset
    "POST /api/datasets/{id}/examples/": {"rejected", "detail", "problems"},  # one pair, or many
    "PATCH /api/examples/{id}/": {"rejected"},
    "GET /api/datasets/{id}/export/": {"format"},
    # an objective fits a kind of dataset (preference or not), beta only a preference objective, and the run to
    # start from must have succeeded in the same workspace on the same base model
    "POST /api/runs/": {"objective", "init_run", "hyperparameters.beta"},
    "POST /api/runs/preflight/": {"objective", "init_run", "hyperparameters.beta"},
}
# A 404 that is not about the row the path names, which ensure_resource_availability takes it for.
NOT_THE_PATHS_404 = {
    "GET /api/runs/{id}/artifact/": "the run has no artifact until it has succeeded",
    "POST /api/workspaces/{id}/members/": "no member has the username in the body",
}
REFERENCES = ("workspace", "dataset", "snapshot", "template", "run")  # body fields that name a row


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


@pytest.fixture
def keep_test_connection():
    """Like Django's test client: a request ending must not close the test's database connection."""
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


@pytest.fixture
def world(db, keep_test_connection):
    """One of everything the API names, so generated requests reach past the 404 into the code behind it."""
    lead = UserFactory(username="lead")
    workspace = workspace_create(name="Team", user=lead)
    dataset = dataset_create(workspace=workspace, user=lead, name="Pairs")
    examples = [
        example_create(dataset=dataset, user=lead, prompt=f"Question {n}?", response=f"Answer {n}.") for n in range(3)
    ]
    for example in examples[:2]:
        example_set_status(example=example, user=lead, action="approve")
    template = template_create(
        workspace=workspace, user=lead, name="Guard", kind="guardrail", spec=default_spec("guardrail")
    )
    snapshot = snapshot_create(dataset=dataset, user=lead)
    run, second = (
        TrainingRun.objects.create(snapshot=snapshot, base_model="smollm2-tiny-random", status=RunStatus.SUCCEEDED)
        for _ in range(2)
    )
    other = workspace_create(name="Elsewhere", user=UserFactory(username="someone"))
    ids = {
        "workspaces": workspace.pk,
        "datasets": dataset.pk,
        "examples": examples[2].pk,
        "templates": template.pk,
        "snapshots": snapshot.pk,
        "runs": run.pk,
        "compared": [run.pk, second.pk],
        "jobs": Job.objects.create(kind=Job.Kind.LINT, dataset=dataset, created_by=lead).pk,
        "playground": PlaygroundRequest.objects.create(run=run, user=lead, prompt="Hi?").pk,
        "invitations": invitation_create(workspace=other, by=other.created_by, username="lead", role="lead").pk,
        "invitation": invitation_create(workspace=workspace, by=lead, username="newcomer", role="annotator").pk,
        "key": api_key_create(workspace=workspace, by=lead, name="Script", role="lead")[0].pk,
    }
    return {"token": Token.objects.create(user=lead).key, "ids": ids}


@SCHEMA.parametrize()
def test_every_operation_answers_as_its_schema_says(case, world):
    auth = {"Authorization": f"Token {world['token']}"}
    with_real_state(case, world["ids"])
    check(case, case.call(headers=auth), auth)


def test_sequences_of_requests_keep_the_schemas_promises(world):
    """Schemathesis links the operations by the ids their answers carry (create, then read, edit, delete) and
    also checks that what was created can be found and what was deleted is gone."""
    auth = {"Authorization": f"Token {world['token']}"}
    config = SchemathesisConfig.from_dict({"generation": GENERATION, "suppress-health-check": ["all"]})

    class Workflow(schemathesis.openapi.from_wsgi("/api/schema/", application, config=config).as_state_machine()):
        def setup(self):
            self.before = transaction.savepoint()  # each sequence starts from the same rows (a replay too)

        def teardown(self):
            transaction.savepoint_rollback(self.before)

        def before_call(self, case):
            with_real_references(case, world["ids"])

        def get_call_kwargs(self, case):
            return {"headers": auth}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            check(case, response, auth, recorder=self.recorder)

    Workflow.run(
        settings=hypothesis_settings(
            max_examples=10,
            stateful_step_count=10,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
    )


def check(case, response, auth: dict[str, str], recorder=None) -> None:
    """Every check schemathesis has, on one answer; excused are only the findings listed above as no faults."""
    label = f"{case.operation.method.upper()} {case.operation.path}"
    excluded = [ensure_resource_availability] if label in NOT_THE_PATHS_404 else []
    if response.status_code == 400 and error_fields(response) <= BEYOND_JSON_SCHEMA.get(label, set()):
        excluded.append(positive_data_acceptance)
    case.validate_response(response, checks=EVERY_CHECK, excluded_checks=excluded, headers=auth, recorder=recorder)


def with_real_state(case, ids: dict[str, int]) -> None:
    """Give the parts of a request that no schema can generate, what a client would have: the ids of real rows
    (in the path of every other request, in a valid body always) and, to edit, the version it loaded."""
    meta = case.meta
    valid_path = meta is None or not meta.is_negative_at(ParameterLocation.PATH)
    collection = case.operation.path.split("/")[2]
    if valid_path and case.path_parameters and collection in ids and hash_of(case) % 2 == 0:
        real = {"id": ids[collection], "invitation": ids["invitation"], "key": ids["key"], "other": ids[collection]}
        case.path_parameters = {name: str(real[name]) for name in case.path_parameters}
    valid_query = meta is None or not meta.is_negative_at(ParameterLocation.QUERY)
    if valid_query and "runs" in (case.query or {}) and hash_of(case) % 2 == 0:
        case.query = {**case.query, "runs": ids["compared"]}
    with_real_references(case, ids)


def with_real_references(case, ids: dict[str, int]) -> None:
    """In a valid body the rows it names are real ones; a valid edit sends the version of the row it edits."""
    valid_body = case.meta is None or not case.meta.is_negative_at(ParameterLocation.BODY)
    if valid_body and isinstance(case.body, dict):
        found = {name: ids[f"{name}s"] for name in REFERENCES if isinstance(case.body.get(name), int)}
        case.body = {**case.body, **found}
    valid = case.meta is not None and case.meta.generation.mode.is_positive
    if valid and any(parameter.name == "If-Match" for parameter in case.operation.headers):
        version = current_version(case.operation.path.split("/")[2], str(case.path_parameters.get("id")))
        if version is not None:
            case.headers = {**(case.headers or {}), "If-Match": f'"{version}"'}


def error_fields(response) -> set[str]:
    """The fields a 400 names (a body that is not a JSON object names none the test can excuse)."""
    try:
        body = response.json()
    except ValueError:
        return {"(not JSON)"}
    return set(body) if isinstance(body, dict) else {"(not an object)"}


def hash_of(case) -> int:
    """A number fixed by the request (not by chance), so a failure replays the same way."""
    return sum(map(ord, repr(sorted((case.path_parameters or {}).items())) + repr(case.query)))


def current_version(collection: str, pk: str) -> int | None:
    model = {"examples": Example, "templates": Template}[collection]
    return model.objects.filter(pk=pk).values_list("version", flat=True).first() if pk.isdigit() else None
