"""A real Celery worker process, on the configured broker (filesystem by default, Redis in CI), runs our tasks."""

import pytest
from django.conf import settings

from datasets_app.curation.content import content_hash
from datasets_app.curation.tasks import dataset_rehash_task
from datasets_app.models import Example
from tests.factories import ExampleFactory
from tests.worker import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def test_worker_on_the_configured_broker_recomputes_stale_hashes(celery_worker, dataset):
    stale = ExampleFactory(dataset=dataset, prompt="Boil pasta?", response="In salted water.", content_hash="0" * 32)
    dataset_rehash_task.delay(dataset.pk)
    wait_for(lambda: Example.objects.get(pk=stale.pk).content_hash != "0" * 32)
    assert Example.objects.get(pk=stale.pk).content_hash == content_hash(
        prompt="Boil pasta?", response="In salted water."
    )
    scheme = settings.CELERY_BROKER_URL.split("://")[0]
    banner = "".join(celery_worker.log[:40])
    assert f"transport:   {scheme}://" in banner
