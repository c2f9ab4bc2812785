"""Chat completion rows without a worker: the sweep fails those nobody waits for, and a late worker does nothing."""

from datetime import timedelta

import pytest
from django.utils import timezone

from openai_app import catalog
from openai_app.completions import TIMEOUT, chat_ask, completion_answer, completion_create, completion_sweep
from openai_app.keys import key_access
from openai_app.models import ChatCompletion, CompletionStatus
from tests.training_app.conftest import TINY

pytestmark = pytest.mark.django_db


@pytest.fixture
def queue_one(annotator_key, workspace):
    def make() -> ChatCompletion:
        ask = chat_ask({"model": TINY, "messages": [{"role": "user", "content": "Hello"}]})
        model = catalog.model_get(workspace=workspace, model=TINY)
        return completion_create(access=key_access(secret=annotator_key), model=model, ask=ask)

    return make


def test_the_sweep_fails_completions_left_without_progress_and_spares_fresh_ones(queue_one, settings):
    stale, fresh = queue_one(), queue_one()
    long_ago = timezone.now() - timedelta(seconds=settings.CHAT_TIMEOUT_S * 3)
    ChatCompletion.objects.filter(pk=stale.pk).update(status=CompletionStatus.RUNNING, updated_at=long_ago)

    assert completion_sweep() == 1

    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert (stale.status, stale.error_code) == (CompletionStatus.FAILED, TIMEOUT)
    assert fresh.status == CompletionStatus.QUEUED


def test_a_worker_that_gets_a_completion_its_request_gave_up_on_generates_nothing(queue_one):
    row = queue_one()
    ChatCompletion.objects.filter(pk=row.pk).update(status=CompletionStatus.FAILED, error_code=TIMEOUT)

    completion_answer(completion_id=row.pk)  # would load the model if it claimed the row

    row.refresh_from_db()
    assert (row.status, row.text, row.started_at) == (CompletionStatus.FAILED, "", None)
