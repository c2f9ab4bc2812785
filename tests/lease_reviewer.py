"""Run as a separate process by test_queue_contention: one reviewer taking pairs from the review queue on command.

Reads one command a line from stdin and answers each with one JSON line on stdout:
  release   give back the pair in hand (what the editor's "save & next" does before asking for the next one)
  next      ask for the next pair to review after the last one seen (moving on from the one in hand, if any)
  cycle N   N times release, then next: a reviewer going through the queue as fast as they can click
Each request's answer says which pair it got (or None), whether the database agrees the pair is now this
reviewer's, and when (time.monotonic, the same clock in every process) the reviewer began and stopped holding it.
"""

import json
import os
import sys
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.utils import timezone  # noqa: E402

from datasets_app.curation.queues import example_lease_next, example_lease_release  # noqa: E402
from datasets_app.models import Dataset, ExampleLease  # noqa: E402


class Reviewer:
    def __init__(self, dataset_id: int, username: str) -> None:
        self.dataset = Dataset.objects.select_related("workspace").get(pk=dataset_id)
        self.user = get_user_model().objects.get(username=username)
        self.in_hand, self.last_seen, self.since = None, None, 0.0
        self.requests: list[dict] = []
        self.holds: list[list] = []  # [pair, held from, held until] of the pairs let go since the last answer

    def release(self) -> None:
        if self.in_hand is not None:
            self._let_go()
            example_lease_release(example=self.in_hand, user=self.user)
            self.in_hand = None

    def next(self) -> None:
        held_before, asked = self.in_hand is not None, time.monotonic()
        got = example_lease_next(dataset=self.dataset, user=self.user, queue="review", after_id=self.last_seen)
        now = time.monotonic()
        if got is not None and self.in_hand is not None and got.pk != self.in_hand.pk:
            self._let_go(at=asked)  # moved on: the old pair went back in that transaction, at the earliest now
        answer = {"got": got.pk if got else None, "held_before": held_before}
        if got is not None:
            if self.in_hand is None or got.pk != self.in_hand.pk:
                self.since = now
            self.in_hand, self.last_seen = got, got.pk
            # the queue said this pair is ours: the database must agree (nobody else holds it)
            answer["mine"] = ExampleLease.objects.filter(
                example_id=got.pk, user_id=self.user.pk, expires_at__gt=timezone.now()
            ).exists()
        self.requests.append(answer)

    def _let_go(self, at: float | None = None) -> None:
        # Only the time known to be inside the hold is recorded: from after the claim returned to before the
        # release began, so two reviewers' records of one pair overlap only if they really held it at once.
        assert self.in_hand is not None
        self.holds.append([self.in_hand.pk, self.since, time.monotonic() if at is None else at])

    def answer(self) -> str:
        in_hand = [self.in_hand.pk, self.since, None] if self.in_hand else None
        answer = {"requests": self.requests, "holds": self.holds, "in_hand": in_hand}
        self.requests, self.holds = [], []
        return json.dumps(answer)


def main(dataset_id: int, username: str) -> None:
    reviewer = Reviewer(dataset_id, username)
    print(json.dumps({"ready": username}), flush=True)
    for line in sys.stdin:
        command, *count = line.split()
        for _ in range(int(count[0]) if count else 1):
            if command in ("release", "cycle"):
                reviewer.release()
            if command in ("next", "cycle"):
                reviewer.next()
        print(reviewer.answer(), flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
