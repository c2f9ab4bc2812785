"""Many reviewers asking for the next pair at once: each gets a free pair whenever one exists, never someone else's.

Every reviewer is its own process with its own database connection (tests/lease_reviewer.py), so the claims
race the way web server processes do: on SQLite through the file's write lock, on PostgreSQL under READ
COMMITTED. The parent sends commands to all of them at once and checks the answers against each other and
against what the database holds.
"""

import json
import os
import random
import subprocess
import sys
from collections import defaultdict

import pytest
from django.conf import settings
from django.utils import timezone

from datasets_app.models import ExampleLease
from tests.factories import ExampleFactory, MembershipFactory, UserFactory
from tests.worker import database_url

pytestmark = pytest.mark.django_db(transaction=True)


class Reviewers:
    """Reviewer processes, each answering one JSON line per command; remembers every pair each one held, and when."""

    def __init__(self, dataset, users) -> None:
        env = {**os.environ, "DATABASE_URL": database_url()}
        self.user_ids = [user.pk for user in users]
        self.holds: dict[int, list[tuple[float, float, int]]] = defaultdict(list)  # pair: [(from, until, who)]
        self.processes = [
            subprocess.Popen(
                [sys.executable, "-m", "tests.lease_reviewer", str(dataset.pk), user.username],
                cwd=settings.BASE_DIR,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for user in users
        ]
        for process in self.processes:
            self._read(process)  # "ready"

    def send(self, command: str, to: list[int] | None = None) -> dict[int, dict]:
        """Send a command to the given reviewers (all by default) before reading any answer, so they race."""
        chosen = range(len(self.processes)) if to is None else to
        for index in chosen:
            self.processes[index].stdin.write(command + "\n")
            self.processes[index].stdin.flush()
        answers = {index: self._read(self.processes[index]) for index in chosen}
        for index, answer in answers.items():
            for pair, since, until in answer["holds"]:
                self.holds[pair].append((since, until, index))
        return answers

    def _read(self, process) -> dict:
        line = process.stdout.readline()
        assert line, f"a reviewer process died (exit code {process.wait()}); see its stderr above"
        return json.loads(line)

    def pairs_held_by_two(self, answers: dict[int, dict]) -> list[int]:
        """Pairs that two reviewers held at the same moment, counting the pairs in hand now as held until now."""
        holds = {pair: list(spans) for pair, spans in self.holds.items()}
        for index, answer in answers.items():
            if answer["in_hand"] is not None:
                pair, since, _ = answer["in_hand"]
                holds.setdefault(pair, []).append((since, float("inf"), index))
        overlapping = []
        for pair, spans in holds.items():
            spans.sort()
            if any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:], strict=False)):
                overlapping.append(pair)
        return overlapping

    def close(self) -> None:
        for process in self.processes:
            process.stdin.close()
        for process in self.processes:
            assert process.wait(timeout=60) == 0


@pytest.fixture
def reviewers(dataset, workspace):
    started = []

    def start(count: int) -> Reviewers:
        users = [UserFactory(username=f"reviewer{n}") for n in range(count)]
        for user in users:
            MembershipFactory(workspace=workspace, user=user, role="lead")
        started.append(Reviewers(dataset, users))
        return started[-1]

    yield start
    for group in started:
        for process in group.processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def requests(answers: dict[int, dict]) -> list[dict]:
    return [request for answer in answers.values() for request in answer["requests"]]


def in_hand(group: Reviewers, answers: dict[int, dict]) -> dict[int, int]:
    """{pair id: user id} of the pairs the reviewers say they hold."""
    return {
        answer["in_hand"][0]: group.user_ids[index]
        for index, answer in answers.items()
        if answer["in_hand"] is not None
    }


def live_leases(dataset) -> dict[int, int]:
    """{pair id: user id} of the leases that count right now."""
    held = ExampleLease.objects.filter(example__dataset=dataset, expires_at__gt=timezone.now())
    return dict(held.values_list("example_id", "user_id"))


def test_fewer_reviewers_than_pairs_every_request_gets_a_pair(dataset, reviewers):
    # given 22 pairs waiting for review and 20 leads going through them as fast as they can click
    for _ in range(22):
        ExampleFactory(dataset=dataset, status="submitted")
    group = reviewers(20)
    asked = 0
    for _ in range(4):
        # when each of them, all at once, 20 times gives back their pair and asks for the next one
        answers = group.send("cycle 20")
        asked += len(requests(answers))
        # then every request gets a pair: at most 19 others hold one, so there are always free pairs
        empty = [request for request in requests(answers) if request["got"] is None]
        assert empty == [], f"{len(empty)} of {len(requests(answers))} requests were told 'no pairs waiting'"
        # and the database agrees that each pair handed out was the reviewer's, and no pair was held by two
        assert all(request["mine"] for request in requests(answers))
        assert group.pairs_held_by_two(answers) == []
        assert live_leases(dataset) == in_hand(group, answers)
    assert asked == 1600
    group.close()


def test_more_reviewers_than_pairs_every_pair_is_taken_and_nobody_holds_two(dataset, reviewers):
    # given 4 pairs waiting for review and 10 leads
    for _ in range(4):
        ExampleFactory(dataset=dataset, status="submitted")
    group = reviewers(10)
    answers = group.send("next")
    assert len(in_hand(group, answers)) == 4
    rng = random.Random(4)
    for _ in range(60):
        # when some holders give their pair back, and then everyone asks for the next one at the same moment
        # (holders move on to another pair if one is free, the others look for one)
        holding = [index for index, answer in answers.items() if answer["in_hand"] is not None]
        group.send("release", to=rng.sample(holding, rng.randint(1, len(holding))))
        answers = group.send("next")
        # then the freed pairs are all taken again: exactly 4 reviewers hold one, each a different one
        # (pairs only get taken while they ask, so a pair still free now was free when someone was told "none")
        held = in_hand(group, answers)
        assert len(held) == 4, f"{4 - len(held)} pairs left free while reviewers were told 'no pairs waiting'"
        # a reviewer who held a pair still holds one (theirs or another), and the database agrees with everyone
        assert all(request["got"] is not None for request in requests(answers) if request["held_before"])
        assert all(request["mine"] for request in requests(answers) if request["got"] is not None)
        assert group.pairs_held_by_two(answers) == []
        assert live_leases(dataset) == held
    group.close()
