"""Two processes (think: web server and worker) writing at once never hit 'database is locked'."""

import os
import subprocess
import sys

import pytest
from django.conf import settings

from datasets_app.models import ExampleStatus
from tests.worker import database_url

pytestmark = pytest.mark.django_db(transaction=True)


def test_two_processes_writing_at_once_both_succeed(dataset, annotator, lead):
    env = {**os.environ, "DATABASE_URL": database_url()}
    writers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.concurrent_writer", str(dataset.pk), user.username, "60"],
            cwd=settings.BASE_DIR,
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for user in (annotator, lead)
    ]
    errors = [writer.communicate(timeout=240)[1] for writer in writers]
    assert [writer.returncode for writer in writers] == [0, 0], "\n".join(errors)[-3000:]
    assert dataset.examples.filter(status=ExampleStatus.SUBMITTED, response="second").count() == 120
