"""An id that does not exist and an id of something in another workspace get the same answer (status and body),
wherever an id appears: in a request body, a path, a filter, a bulk selection. Otherwise ids could be probed to
learn what other teams have."""

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from datasets_app.blueprints.services import template_create
from datasets_app.curation.invitations import invitation_create
from datasets_app.curation.services import example_create
from datasets_app.models import Job
from openai_app.keys import api_key_create
from openai_app.models import ApiKey
from tests.api_client import client_for
from tests.datasets_app.blueprints.test_services import GUARDRAIL
from tests.factories import DatasetFactory, MembershipFactory
from training_app.models import DatasetVersion, PlaygroundRequest, TrainingRun

pytestmark = pytest.mark.django_db

GONE = 10_000  # added to another workspace's id: no row has it


@pytest.fixture
def theirs(other_workspace, outsider):
    """One of everything, in a workspace the requesting user is not in."""
    dataset = DatasetFactory(workspace=other_workspace, name="Secret")
    example = example_create(dataset=dataset, user=outsider, prompt="Secret?", response="Yes.")
    snapshot = DatasetVersion.objects.create(
        dataset=dataset, number=1, file="snapshots/secret.jsonl", content_hash="x", n_train=1, n_validation=1
    )
    run = TrainingRun.objects.create(snapshot=snapshot, base_model="smollm2-tiny-random", status="succeeded")
    olga = MembershipFactory(workspace=other_workspace, user__username="olga", role="admin").user
    return {
        "workspace": other_workspace.pk,
        "dataset": dataset.pk,
        "example": example.pk,
        "template": template_create(
            workspace=other_workspace, user=outsider, name="Theirs", kind="guardrail", spec=GUARDRAIL
        ).pk,
        "job": Job.objects.create(kind="import", dataset=dataset, created_by=outsider).pk,
        "snapshot": snapshot.pk,
        "run": run.pk,
        "playground": PlaygroundRequest.objects.create(run=run, user=outsider, prompt="hi").pk,
        "invitation": invitation_create(workspace=other_workspace, by=olga, username="zed", role="lead").pk,
        "api_key": api_key_create(workspace=other_workspace, by=olga, name="Theirs", role="lead")[0].pk,
    }


@pytest.fixture
def mine(workspace, admin_member):
    dataset = DatasetFactory(workspace=workspace, name="Mine")
    template = template_create(workspace=workspace, user=admin_member, name="Mine", kind="guardrail", spec=GUARDRAIL)
    return {"workspace": workspace.pk, "dataset": dataset.pk, "template": template.pk}


def _requests(mine: dict, kind: str, x: int) -> list[tuple[str, str, dict | None]]:
    """(method, url, JSON body) of every API request that takes an id of this kind, with the id x."""
    body = {
        "workspace": [
            ("post", "/api/datasets/", {"workspace": x, "name": "n"}),
            ("post", "/api/templates/", {"workspace": x, "name": "t", "kind": "guardrail"}),
            ("get", f"/api/datasets/?workspace={x}", None),
            ("get", f"/api/templates/?workspace={x}", None),
        ],
        "template": [("patch", f"/api/datasets/{mine['dataset']}/", {"template": x})],
        "snapshot": [
            ("post", "/api/runs/", {"snapshot": x}),
            ("post", "/api/runs/preflight/", {"snapshot": x}),
            ("get", f"/api/runs/preflight/pair/?example=1&snapshot={x}", None),
        ],
        "dataset": [
            ("post", "/api/runs/", {"dataset": x}),
            ("post", "/api/runs/preflight/", {"dataset": x}),
            ("post", f"/api/templates/{mine['template']}/preview/", {"dataset": x}),
            ("post", f"/api/templates/{mine['template']}/generate/", {"dataset": x}),
            ("get", f"/api/runs/?dataset={x}", None),
        ],
        "example": [
            ("post", f"/api/datasets/{mine['dataset']}/draft-responses/", {"examples": [x]}),
            ("get", f"/api/runs/preflight/pair/?example={x}", None),
        ],
        "invitation": [
            ("delete", f"/api/workspaces/{mine['workspace']}/invitations/{x}/", None),
            ("post", f"/api/invitations/{x}/accept/", None),
            ("post", f"/api/invitations/{x}/decline/", None),
        ],
        "api_key": [("delete", f"/api/workspaces/{mine['workspace']}/api-keys/{x}/", None)],
    }
    paths = {
        "workspace": [
            "/api/workspaces/{x}/", "/api/workspaces/{x}/members/", "/api/workspaces/{x}/invitations/",
            "/api/workspaces/{x}/api-keys/",
        ],
        "dataset": [
            "/api/datasets/{x}/", "/api/datasets/{x}/examples/", "/api/datasets/{x}/export/",
            "/api/datasets/{x}/lint/", "/api/datasets/{x}/snapshots/",
        ],
        "example": ["/api/examples/{x}/", "/api/examples/{x}/revisions/"],
        "template": ["/api/templates/{x}/"],
        "job": ["/api/jobs/{x}/"],
        "snapshot": ["/api/snapshots/{x}/", "/api/snapshots/{x}/download/"],
        "run": ["/api/runs/{x}/", "/api/runs/{x}/metrics/", "/api/runs/{x}/logs/", "/api/runs/{x}/artifact/"],
        "playground": ["/api/playground/{x}/"],
    }  # fmt: skip
    writes = {
        "workspace": [
            ("post", "/api/workspaces/{x}/members/", {"username": "olga", "role": "lead"}),
            ("post", "/api/workspaces/{x}/invitations/", {"username": "olga", "role": "lead"}),
            ("post", "/api/workspaces/{x}/api-keys/", {"name": "k", "role": "lead"}),
        ],
        "dataset": [
            ("post", "/api/datasets/{x}/examples/", {"prompt": "p", "response": "r"}),
            ("post", "/api/datasets/{x}/lint/", None),
            ("post", "/api/datasets/{x}/snapshots/", {}),
            ("post", "/api/datasets/{x}/draft-responses/", {}),
            ("delete", "/api/datasets/{x}/", None),
        ],
        "example": [
            ("post", "/api/examples/{x}/status/", {"action": "submit"}),
            ("patch", "/api/examples/{x}/", {"prompt": "p", "version": 1}),
            ("delete", "/api/examples/{x}/", None),
        ],
        "template": [
            ("post", "/api/templates/{x}/preview/", {}),
            ("post", "/api/templates/{x}/generate/", {"dataset": mine["dataset"]}),
            ("patch", "/api/templates/{x}/", {"name": "n", "version": 1}),
            ("delete", "/api/templates/{x}/", None),
        ],
        "run": [
            ("post", "/api/runs/{x}/cancel/", None),
            ("post", "/api/runs/{x}/generate/", {"prompt": "hi"}),
            ("post", "/api/runs/{x}/send-failures/", {"paraphrase": False}),
        ],
    }
    return (
        body.get(kind, [])
        + [("get", path.format(x=x), None) for path in paths.get(kind, [])]
        + [(method, path.format(x=x), data) for method, path, data in writes.get(kind, [])]
    )


KINDS = [
    "workspace", "dataset", "example", "template", "job", "snapshot", "run", "playground", "invitation", "api_key",
]  # fmt: skip


@pytest.mark.parametrize("kind", KINDS)
def test_the_api_answers_a_missing_id_and_another_workspaces_alike(kind, theirs, mine, admin_member):
    api = client_for(admin_member)  # an admin of their own workspace, so roles never decide the answer
    checked = 0
    for (method, url, data), (_, missing_url, missing_data) in zip(
        _requests(mine, kind, theirs[kind]), _requests(mine, kind, theirs[kind] + GONE), strict=True
    ):
        other = getattr(api, method)(url, data, format="json")
        missing = getattr(api, method)(missing_url, missing_data, format="json")
        assert other.status_code == missing.status_code, (method, url, other.status_code, missing.status_code)
        assert other.status_code in (200, 400, 404, 409), (method, url, other.status_code)
        assert _text(other) == _text(missing), (method, url)
        checked += 1
    assert checked >= 1


def _text(response) -> str:  # type: ignore[no-untyped-def]
    body = response.content.decode() if not getattr(response, "streaming", False) else ""
    return body.replace(str(response.wsgi_request.path), "PATH")


def test_nothing_was_changed_in_the_other_workspace(theirs, mine, admin_member):
    api = client_for(admin_member)
    for kind in KINDS:
        for method, url, data in _requests(mine, kind, theirs[kind]):
            getattr(api, method)(url, data, format="json")
    from datasets_app.models import Dataset, Example, Invitation, Template

    assert Dataset.objects.filter(pk=theirs["dataset"]).exists()
    assert Example.objects.get(pk=theirs["example"]).status == "draft"
    assert Template.objects.filter(pk=theirs["template"]).exists()
    assert Invitation.objects.get(pk=theirs["invitation"]).status == "pending"
    assert TrainingRun.objects.get(pk=theirs["run"]).status == "succeeded"
    assert not PlaygroundRequest.objects.exclude(pk=theirs["playground"]).exists()
    assert ApiKey.objects.get(pk=theirs["api_key"]).revoked_at is None
    assert ApiKey.objects.count() == 1


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        ("dataset", "dataset"), ("example", "example"), ("example", "example-history"), ("template", "template"),
        ("job", "job"), ("workspace", "workspace-members"), ("workspace", "workspace-templates"),
        ("run", "training-run"), ("run", "training-playground"), ("dataset", "dataset-import"),
        ("workspace", "workspace-api-keys"),
    ],
)  # fmt: skip
def test_pages_answer_a_missing_id_and_another_workspaces_alike(client, kind, name, theirs, admin_member):
    client.force_login(admin_member)
    other = client.get(reverse(name, args=[theirs[kind]]))
    missing = client.get(reverse(name, args=[theirs[kind] + GONE]))
    assert (other.status_code, missing.status_code) == (404, 404)


@pytest.mark.parametrize(
    ("kind", "name", "data"),
    [
        ("invitation", "invitation-accept", {}),
        ("invitation", "invitation-decline", {}),
        ("workspace", "workspace-invite", {"username": "olga", "role": "lead"}),
        ("workspace", "workspace-role", {"username": "olga", "role": "lead"}),
        ("run", "training-run-send-failures", {"prompts": "as-is"}),
        ("workspace", "workspace-api-key-create", {"name": "k", "role": "lead"}),
    ],
)
def test_forms_answer_a_missing_id_and_another_workspaces_alike(client, kind, name, data, theirs, admin_member):
    client.force_login(admin_member)
    other = client.post(reverse(name, args=[theirs[kind]]), data)
    missing = client.post(reverse(name, args=[theirs[kind] + GONE]), data)
    assert (other.status_code, missing.status_code) == (404, 404)


def test_a_bulk_selection_skips_a_missing_pair_and_another_workspaces_alike(theirs, mine, admin_member):
    url = reverse("dataset-bulk", args=[mine["dataset"]])

    def outcome(pk: int) -> list[str]:
        client = Client()
        client.force_login(admin_member)
        response = client.post(url, {"action": "submit", "selected": f"{pk}:1"})
        return [str(message).replace(f"#{pk}:", "#ID:") for message in get_messages(response.wsgi_request)]

    assert outcome(theirs["example"]) == outcome(theirs["example"] + GONE)
    assert outcome(theirs["example"]) == ["0 pairs submitted.", "1 skipped (#ID: no longer exists)."]
