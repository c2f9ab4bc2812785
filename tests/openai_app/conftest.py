import json

import openai
import pytest
from django.core.files.base import ContentFile

from datasets_app.models import Role
from openai_app.keys import api_key_create
from tests.factories import DatasetFactory, MembershipFactory, UserFactory, WorkspaceFactory, runs_on

CHAT_LINES = [
    {"messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]},
    {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Capital of France?"},
            {"role": "assistant", "content": "Lyon?", "weight": 0},
            {"role": "user", "content": "Sure?"},
            {"role": "assistant", "content": "Paris.", "weight": 1},
        ]
    },
]


def jsonl(lines: list) -> bytes:
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


@pytest.fixture
def key_of(admin_member):
    """key_of(role) -> a secret made by the workspace's admin."""

    def make(role: str = "lead", *, by=None, workspace=None) -> str:
        by = by or admin_member
        workspace = workspace or by.memberships.get().workspace
        return api_key_create(workspace=workspace, by=by, name=f"{role} key", role=role)[1]

    return make


@pytest.fixture
def lead_key(key_of):
    return key_of("lead")


@pytest.fixture
def annotator_key(key_of):
    return key_of("annotator")


@pytest.fixture
def tuned_run(workspace):
    """A succeeded run of the workspace with an artifact in storage: a fine-tuned model."""
    (run,) = runs_on(DatasetFactory(workspace=workspace, name="Support"), "succeeded")
    run.artifact.save(f"run-{run.pk}.zip", ContentFile(b"weights"))
    return run


@pytest.fixture
def other_admin(db):
    """The admin of another workspace, Globex, which has a fine-tuned model of its own."""
    workspace = WorkspaceFactory(name="Globex")
    user = UserFactory(username="gina")
    MembershipFactory(workspace=workspace, user=user, role=Role.ADMIN)
    return user


@pytest.fixture
def client_with(live_server):
    """The official client on this test's server, one per key; closed at the end, as a kept-alive connection holds
    a server thread, and its database connection, open."""
    made = []

    def make(key: str, timeout: float = 30) -> openai.OpenAI:
        made.append(openai.OpenAI(base_url=live_server.url + "/v1", api_key=key, max_retries=0, timeout=timeout))
        return made[-1]

    yield make
    for client in made:
        client.close()
