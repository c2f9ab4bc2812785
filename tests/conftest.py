import pytest
from django.core.cache import cache

from datasets_app.models import Role
from tests.factories import DatasetFactory, MembershipFactory, UserFactory, WorkspaceFactory

pytest_plugins = ["tests.chat_server", "tests.worker"]


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
