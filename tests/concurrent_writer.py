"""Run as a separate process by test_concurrent_writes: writes pairs as fast as it can."""

import os
import sys

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
django.setup()

from django.contrib.auth import get_user_model  # noqa: E402

from datasets_app.curation.services import example_create, example_set_status, example_update  # noqa: E402
from datasets_app.models import Dataset  # noqa: E402


def main(dataset_id: int, username: str, count: int) -> None:
    dataset = Dataset.objects.get(pk=dataset_id)
    user = get_user_model().objects.get(username=username)
    for n in range(count):
        example = example_create(dataset=dataset, user=user, prompt=f"{username} prompt {n}?", response="first")
        example = example_update(example=example, user=user, expected_version=1, response="second")
        example_set_status(example=example, user=user, action="submit")


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], int(sys.argv[3]))
