import os

import pytest
from django.core.cache import cache

from datasets_app.models import Role
from tests.factories import DatasetFactory, MembershipFactory, UserFactory, WorkspaceFactory

pytest_plugins = ["tests.chat_server", "tests.worker"]


def pytest_collection_modifyitems(config, items):
    """CI runs the suite on the embedded defaults and again on PostgreSQL + Redis (DATABASE_URL set). Tests whose
    outcome does not depend on the database or broker, the browser's pages and the trainer's own code, run in the
    first configuration only; `postgres_only` ones (the loop's real-model test) in the second only."""
    on_postgres = bool(os.environ.get("DATABASE_URL"))
    for item in items:
        if on_postgres and (item.get_closest_marker("browser") or item.get_closest_marker("embedded_only")):
            item.add_marker(pytest.mark.skip(reason="does not depend on the backends: runs on the embedded defaults"))
        if not on_postgres and item.get_closest_marker("postgres_only"):
            item.add_marker(pytest.mark.skip(reason="runs on PostgreSQL + Redis only (DATABASE_URL)"))


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Tests create many users; the production hasher is slow on purpose."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def empty_cache():
    """Each test starts with an empty cache: the API's login throttle counts requests there, and huge datasets'
    counts are kept there. It is the file cache in the var dir, which the tests' worker processes share."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def workspace(db):
    return WorkspaceFactory(name="Acme")


@pytest.fixture
def other_workspace(db):
    return WorkspaceFactory(name="Globex")


def _member(workspace, username, role):
    user = UserFactory(username=username)
    MembershipFactory(workspace=workspace, user=user, role=role)
    return user


@pytest.fixture
def annotator(workspace):
    return _member(workspace, "annie", Role.ANNOTATOR)


@pytest.fixture
def lead(workspace):
    return _member(workspace, "leo", Role.LEAD)


@pytest.fixture
def admin_member(workspace):
    return _member(workspace, "ada", Role.ADMIN)


@pytest.fixture
def outsider(other_workspace):
    return _member(other_workspace, "otto", Role.LEAD)


@pytest.fixture
def dataset(workspace):
    return DatasetFactory(workspace=workspace, name="Guardrails", kind="guardrail")
