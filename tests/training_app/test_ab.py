"""Blind A/B judgement over the API and on the judging page: what a person is shown (never which model wrote
which), no prompt shown twice for the same two models, votes once, the tally and its Wilson interval, who may judge.

Runs are rows as a worker leaves them, with evaluated prompts created directly; the typed prompt answered by a real
worker is in test_ab_worker.py."""

import json
import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from datasets_app.models import DatasetKind, Role
from tests.api_client import client_for
from tests.factories import DatasetFactory, MembershipFactory, UserFactory
from tests.training_app.conftest import TINY
from tests.training_app.test_compare import approved
from training_app.judging.services import Matchup, ab_sweep, ab_tally
from training_app.judging.stats import wilson_interval
from training_app.models import ABItem, ABVote, EvalItem, RunStatus, TrainingRun
from training_app.snapshots import snapshot_create

pytestmark = pytest.mark.django_db

WORDS = ["apple", "river", "stone", "cloud", "maple", "ember", "frost", "meadow", "harbor", "lantern", "pepper",
         "violet", "willow", "canyon", "saddle", "thistle", "marble", "orchard", "falcon", "juniper", "quartz",
         "bramble", "copper", "dune"]  # fmt: skip
PROMPTS = [f"Describe the {word} in one line." for word in WORDS]
XSS = '<script>alert("pwned")</script>'


def scored(snapshot, user, prompts, *, tag, status=RunStatus.SUCCEEDED):
    """A finished run whose every evaluated prompt has a base answer (before) and a fine-tuned one (after)."""
    run = TrainingRun.objects.create(snapshot=snapshot, base_model=TINY, created_by=user, status=status)
    EvalItem.objects.bulk_create(
        EvalItem(run=run, prompt=prompt, before_output=f"plain answer {n}", after_output=f"{tag} answer {n}")
        for n, prompt in enumerate(prompts)
    )
    return run


def a_snapshot(workspace, lead):
    dataset = DatasetFactory(workspace=workspace, kind=DatasetKind.GENERAL)
    approved(dataset, lead, [("One?", "1."), ("Two?", "2.")])
    return snapshot_create(dataset=dataset, user=None)


@pytest.fixture
def snapshot(workspace, lead):
    return a_snapshot(workspace, lead)


@pytest.fixture
def run(snapshot, lead):
    return scored(snapshot, lead, PROMPTS, tag="tuned")


def next_pair(api, run, against="base"):
    return api.get(f"/api/runs/{run.pk}/ab/next/", {"against": against})


def judge_all(api, run, against="base", choose=lambda body: "tie", limit=None):
    """Vote on every prompt left (or on `limit` of them); returns the pairs shown, in order. No answer on the way
    says which model wrote which."""
    shown = []
    runs = [run.pk, int(against)] if against.isdigit() else [run.pk]
    while (response := next_pair(api, run, against)).status_code == 200:
        if limit is not None and len(shown) == limit:
            return shown
        body = response.json()
        assert set(body) == {"token", "prompt", "a", "b"}
        assert leaks(response, runs) == []
        shown.append(body)
        voted = api.post("/api/ab-votes/", {"token": body["token"], "choice": choose(body)}, format="json")
        assert voted.status_code == 201, voted.json()
        assert set(voted.json()) == {"token", "choice", "rewrite", "created_at"}
        assert leaks(voted, runs) == []
    assert response.status_code == 204
    assert response.content == b""
    return shown


def leaks(response, run_ids):
    """What in a response would tell a judge which model wrote which answer: a run id or a model's name anywhere but
    in the texts judged (the prompt, the answers, a rewrite) and the random token; the response's shape is checked
    by each test."""
    body = {key: value for key, value in response.json().items() if key not in ("token", "prompt", "a", "b", "rewrite")}
    headers = {
        key: value
        for key, value in response.headers.items()
        if key not in ("Content-Length", "Date", "Content-Security-Policy")
    }
    text = json.dumps([body, headers]).lower()
    names = [name for name in (TINY, "smollm", "base", "tuned", "model", "run") if name in text]
    return names + [
        str(pk) for pk in run_ids if re.search(rf"\b{pk}\b", text.replace(body.get("created_at", "") or "!", ""))
    ]


# --- the Wilson score interval


@pytest.mark.parametrize(
    ("wins", "decisive", "expected"),
    [(5, 10, (0.2366, 0.7634)), (0, 10, (0.0, 0.2775)), (10, 10, (0.7225, 1.0)), (81, 263, (0.2553, 0.3662)),
     (1, 1, (0.2065, 1.0))],
)  # fmt: skip
def test_wilson_interval_matches_known_values(wins, decisive, expected):
    low, high = wilson_interval(wins, decisive)
    assert (round(low, 4), round(high, 4)) == expected


def test_wilson_interval_is_none_without_trials_and_refuses_impossible_counts():
    assert wilson_interval(0, 0) is None
    with pytest.raises(ValueError, match="between 0 and 3"):
        wilson_interval(4, 3)


# --- the flow


def test_an_annotator_judges_every_prompt_blind_and_never_sees_one_twice(annotator, run):
    api = client_for(annotator)
    first = next_pair(api, run)
    assert first.status_code == 200
    assert set(first.json()) == {"token", "prompt", "a", "b"}
    assert leaks(first, [run.pk]) == []

    shown = [first.json()] + judge_all(api, run)[1:]
    prompts = [body["prompt"] for body in shown]
    assert sorted(prompts) == sorted(PROMPTS)  # every evaluation prompt once, none twice
    for body in shown:
        n = PROMPTS.index(body["prompt"])
        assert {body["a"], body["b"]} == {f"plain answer {n}", f"tuned answer {n}"}
    fine_tuned_first = [body["a"].startswith("tuned") for body in shown]
    assert True in fine_tuned_first
    assert False in fine_tuned_first
    assert ABVote.objects.filter(user=annotator).count() == len(PROMPTS)
    assert next_pair(api, run).status_code == 204  # still nothing: no repeats


def test_a_refresh_gives_the_same_pair_until_it_is_voted_on(annotator, run):
    api = client_for(annotator)
    first = next_pair(api, run).json()
    assert next_pair(api, run).json() == first  # same token, prompt and order: a reload burns nothing
    assert api.post("/api/ab-votes/", {"token": first["token"], "choice": "a"}, format="json").status_code == 201
    assert next_pair(api, run).json()["prompt"] != first["prompt"]


def test_each_person_judges_each_prompt_once_and_the_pair_of_runs_is_unordered(annotator, lead, snapshot, run):
    other = scored(snapshot, lead, [*PROMPTS[:3], "A prompt only the other run was asked."], tag="other")
    mine, theirs = client_for(annotator), client_for(lead)
    shown = judge_all(mine, run, against=str(other.pk))
    assert sorted(body["prompt"] for body in shown) == sorted(PROMPTS[:3])  # the prompts both runs were scored on
    for body in shown:
        n = PROMPTS.index(body["prompt"])
        assert {body["a"], body["b"]} == {f"tuned answer {n}", f"other answer {n}"}
    # run 2 against run 1 is the same two models: nothing left for this person, all three for another person
    assert next_pair(mine, other, against=str(run.pk)).status_code == 204
    assert len(judge_all(theirs, other, against=str(run.pk))) == 3
    # against the base model is another pair of models
    assert next_pair(mine, run).status_code == 200


def test_an_unvoted_pair_is_given_again_from_the_other_runs_page(annotator, snapshot, lead, run):
    other = scored(snapshot, lead, PROMPTS, tag="other")
    api = client_for(annotator)
    shown = next_pair(api, run, against=str(other.pk)).json()
    assert next_pair(api, other, against=str(run.pk)).json() == shown


def test_a_vote_counts_once_and_only_for_whom_the_pair_was_given(annotator, lead, run):
    api = client_for(annotator)
    token = next_pair(api, run).json()["token"]
    first = api.post(
        "/api/ab-votes/", {"token": token, "choice": "both_bad", "rewrite": "A better answer."}, format="json"
    )
    assert first.status_code == 201
    assert first.json()["choice"] == "both_bad"
    assert first.json()["rewrite"] == "A better answer."
    assert leaks(first, [run.pk]) == []
    again = api.post("/api/ab-votes/", {"token": token, "choice": "a"}, format="json")
    assert again.status_code == 409
    assert "already voted" in again.json()["detail"]
    stolen = client_for(lead).post("/api/ab-votes/", {"token": token, "choice": "a"}, format="json")
    assert stolen.status_code == 404
    vote = ABVote.objects.get()
    assert (vote.user, vote.choice, vote.rewrite) == (annotator, "both_bad", "A better answer.")
    assert {vote.item.a_model, vote.item.b_model} == {f"run:{run.pk}", f"base:{TINY}"}  # kept server side


@pytest.mark.parametrize(
    ("body", "field"),
    [({"choice": "c"}, "choice"), ({"choice": 1}, "choice"), ({"choice": "a", "rewrite": 5}, "rewrite"),
     ({"choice": "a", "rewrite": "x" * 20001}, "rewrite"),
     ({}, "choice")],
)  # fmt: skip
def test_a_bad_vote_names_its_field_and_records_nothing(annotator, run, body, field):
    api = client_for(annotator)
    token = next_pair(api, run).json()["token"]
    response = api.post("/api/ab-votes/", {"token": token, **body}, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not ABVote.objects.exists()


def test_the_summary_counts_every_voter_from_the_runs_point_of_view(annotator, lead, snapshot, run):
    other = scored(snapshot, lead, PROMPTS[:8], tag="other")
    me, them = f"run:{run.pk}", f"run:{other.pk}"
    verdicts = ["me", "me", "me", "them", "tie", "both_bad", "me", "them"]  # per prompt, in the order shown

    def choose_for(verdict_iter):
        def choose(body):
            item = ABItem.objects.get(token=body["token"])
            verdict = next(verdict_iter)
            if verdict in ("tie", "both_bad"):
                return verdict
            wanted = me if verdict == "me" else them
            return "a" if item.a_model == wanted else "b"

        return choose

    judge_all(client_for(annotator), run, str(other.pk), choose_for(iter(verdicts)), limit=4)
    judge_all(client_for(lead), run, str(other.pk), choose_for(iter(verdicts)))
    response = client_for(annotator).get(f"/api/runs/{run.pk}/ab/summary/", {"against": other.pk})
    assert response.status_code == 200
    summary = response.json()
    low, high = wilson_interval(7, 10)
    assert summary == {"votes": 12, "wins": 7, "losses": 3, "ties": 1, "both_bad": 1, "win_rate": 0.7,
                       "interval": [low, high]}  # fmt: skip
    assert (round(low, 4), round(high, 4)) == (0.3968, 0.8922)
    reverse_view = client_for(lead).get(f"/api/runs/{other.pk}/ab/summary/", {"against": run.pk}).json()
    assert (reverse_view["wins"], reverse_view["losses"], reverse_view["win_rate"]) == (3, 7, 0.3)
    assert ab_tally(matchup=Matchup(run=run, against=None)).votes == 0  # against the base model: no votes yet


def test_a_summary_without_decisive_votes_has_no_rate(annotator, run):
    judge_all(client_for(annotator), run)  # all ties
    summary = client_for(annotator).get(f"/api/runs/{run.pk}/ab/summary/", {"against": "base"}).json()
    assert summary == {"votes": len(PROMPTS), "wins": 0, "losses": 0, "ties": len(PROMPTS), "both_bad": 0,
                       "win_rate": None, "interval": None}  # fmt: skip


# --- typed prompts without a worker (the answer by a real worker: test_ab_worker.py)


def test_a_typed_prompt_answers_at_once_with_a_url_and_cannot_be_voted_on_before_its_answers(annotator, run):
    api = client_for(annotator)
    response = api.post(f"/api/runs/{run.pk}/ab/next/", {"prompt": "Tell me a joke.", "against": "base"}, format="json")
    assert response.status_code == 202
    queued = response.json()
    assert set(queued) == {"token", "status", "url"}
    assert queued["status"] == "queued"
    assert response["Location"] == queued["url"] == f"/api/ab-items/{queued['token']}/"
    polled = api.get(queued["url"]).json()
    assert polled == {"token": queued["token"], "status": "queued", "prompt": "Tell me a joke.", "a": None, "b": None,
                      "error": None}  # fmt: skip
    early = api.post("/api/ab-votes/", {"token": queued["token"], "choice": "a"}, format="json")
    assert early.status_code == 409
    again = api.post(f"/api/runs/{run.pk}/ab/next/", {"prompt": "Tell me a joke."}, format="json")
    assert again.json()["token"] == queued["token"]  # asked again before voting: the same item
    assert ABItem.objects.filter(typed=True).count() == 1
    assert client_for(UserFactory()).get(queued["url"]).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [({"prompt": "   "}, "prompt"), ({"prompt": 42}, "prompt"), ({"prompt": "x" * 8001}, "prompt"), ({}, "prompt"),
     ({"prompt": "Hi", "against": "gpt"}, "against")],
)  # fmt: skip
def test_a_bad_typed_prompt_names_its_field(annotator, run, body, field):
    response = client_for(annotator).post(f"/api/runs/{run.pk}/ab/next/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not ABItem.objects.exists()


def test_a_prompt_already_judged_for_the_two_models_is_a_conflict(annotator, run):
    api = client_for(annotator)
    shown = next_pair(api, run).json()
    api.post("/api/ab-votes/", {"token": shown["token"], "choice": "tie"}, format="json")
    response = api.post(f"/api/runs/{run.pk}/ab/next/", {"prompt": shown["prompt"]}, format="json")
    assert response.status_code == 409
    assert "already judged" in response.json()["detail"]


# --- who may judge what


def test_outsiders_get_404_on_every_endpoint(outsider, annotator, run):
    token = next_pair(client_for(annotator), run).json()["token"]
    api = client_for(outsider)
    assert next_pair(api, run).status_code == 404
    assert api.post(f"/api/runs/{run.pk}/ab/next/", {"prompt": "Hi"}, format="json").status_code == 404
    assert api.post(f"/api/runs/{run.pk}/ab/next/", {"prompt": 5}, format="json").status_code == 404  # 404 first
    assert api.get(f"/api/runs/{run.pk}/ab/summary/").status_code == 404
    assert api.get(f"/api/ab-items/{token}/").status_code == 404
    assert api.post("/api/ab-votes/", {"token": token, "choice": "a"}, format="json").status_code == 404
    browser = Client()
    browser.force_login(outsider)
    assert browser.get(reverse("training-judge", args=[run.pk])).status_code == 404


def test_against_must_be_a_succeeded_run_the_user_sees_in_the_same_workspace(annotator, lead, run, outsider):
    api = client_for(annotator)
    hidden = scored(a_snapshot(outsider.memberships.get().workspace, outsider), outsider, PROMPTS, tag="hidden")
    response = next_pair(api, run, against=str(hidden.pk))
    assert response.status_code == 404
    assert "against" in response.json()["detail"]
    MembershipFactory(workspace=hidden.snapshot.dataset.workspace, user=annotator, role=Role.ANNOTATOR)
    response = next_pair(api, run, against=str(hidden.pk))  # seen now, but of another workspace
    assert response.status_code == 409
    assert "another workspace" in response.json()["detail"]
    assert "itself" in next_pair(api, run, against=str(run.pk)).json()["detail"]
    assert next_pair(api, run, against="7x").status_code == 400
    running = scored(run.snapshot, lead, PROMPTS, tag="running", status=RunStatus.RUNNING)
    response = next_pair(api, run, against=str(running.pk))
    assert response.status_code == 409
    assert f"run {running.pk} has not succeeded" in response.json()["detail"]


def test_a_run_that_has_not_succeeded_cannot_be_judged(annotator, snapshot, lead):
    failed = scored(snapshot, lead, PROMPTS, tag="failed", status=RunStatus.FAILED)
    api = client_for(annotator)
    for response in (
        next_pair(api, failed),
        api.post(f"/api/runs/{failed.pk}/ab/next/", {"prompt": "Hi"}, format="json"),
        api.get(f"/api/runs/{failed.pk}/ab/summary/"),
    ):
        assert response.status_code == 409
        assert "has not succeeded (it is failed)" in response.json()["detail"]


def test_an_annotator_may_judge_but_not_send_failures_or_start_runs(annotator, run):
    api = client_for(annotator)
    token = next_pair(api, run).json()["token"]
    assert api.post("/api/ab-votes/", {"token": token, "choice": "a"}, format="json").status_code == 201
    assert api.post(f"/api/runs/{run.pk}/send-failures/", {"paraphrase": False}, format="json").status_code == 403
    started = api.post("/api/runs/", {"dataset": run.snapshot.dataset_id, "base_model": TINY}, format="json")
    assert started.status_code == 403
    assert TrainingRun.objects.count() == 1


# --- the judging page and the comparison page


def test_the_judging_page_shows_the_pair_blind_and_a_vote_brings_the_next(annotator, snapshot, lead):
    run = scored(snapshot, lead, [f"Say {XSS}", f"Then say {XSS}"], tag="tuned")
    browser = Client()
    browser.force_login(annotator)
    page = browser.get(reverse("training-judge", args=[run.pk]), {"against": "base"})
    assert page.status_code == 200
    html = page.content.decode()
    pair = html.split('id="judge-pair"')[1].split('id="ask-form"')[0]
    item = ABItem.objects.get()
    assert "Answer 1" in pair
    assert "Answer 2" in pair
    assert f"run:{run.pk}" not in html
    assert "tuned" not in pair.replace(item.a_output, "").replace(item.b_output, "")
    assert XSS not in html
    assert "&lt;script&gt;" in pair  # the prompt is text
    response = browser.post(
        reverse("training-judge-vote", args=[run.pk]), {"token": item.token, "choice": "b", "against": "base"},
        headers={"HX-Request": "true"},
    )  # fmt: skip
    assert response.status_code == 200
    fragment = response.content.decode()
    assert "Vote saved." in fragment
    following = ABItem.objects.exclude(pk=item.pk).get()
    assert following.token in fragment
    assert ABVote.objects.get().choice == "b"


def test_the_comparison_page_shows_the_blind_votes_of_the_runs(annotator, lead, snapshot, run):
    other = scored(snapshot, lead, PROMPTS[:4], tag="other")
    api = client_for(annotator)
    judge_all(api, run, str(other.pk), lambda body: "a" if ABItem.objects.get(token=body["token"]).a_model == f"run:{run.pk}" else "b")  # fmt: skip
    browser = Client()
    browser.force_login(annotator)
    html = browser.get(reverse("training-compare"), {"runs": f"{run.pk},{other.pk}"}).content.decode()
    section = html.split('id="compare-ab"')[1].split("</section>")[0]
    row = section.split(f'data-ab="{run.pk}-{other.pk}"')[1].split("</tr>")[0]
    assert 'data-ab-field="votes">4<' in row
    assert 'data-ab-field="wins">4<' in row
    assert 'data-ab-field="win_rate">100%<' in row
    assert "51% – 100%" in row
    assert f'data-ab="{other.pk}-base"' in section
    assert f'data-ab="{run.pk}-base"' in section
    assert f"/training/runs/{run.pk}/judge/?against={other.pk}" in row


def test_the_judging_page_says_plainly_why_it_cannot_judge(annotator, snapshot, lead, run):
    running = scored(snapshot, lead, PROMPTS, tag="running", status=RunStatus.RUNNING)
    browser = Client()
    browser.force_login(annotator)
    page = browser.get(reverse("training-judge", args=[running.pk]))
    assert page.status_code == 409
    assert f"run {running.pk} has not succeeded (it is running)" in page.content.decode()
    page = browser.get(reverse("training-judge", args=[run.pk]), {"against": "gpt-4"})
    assert page.status_code == 400
    assert "expected &#x27;base&#x27; or a run id" in page.content.decode()
    assert not ABItem.objects.exists()


def test_the_run_page_links_the_judging_page_once_the_run_has_succeeded(annotator, snapshot, lead, run):
    running = scored(snapshot, lead, PROMPTS, tag="running", status=RunStatus.RUNNING)
    browser = Client()
    browser.force_login(annotator)
    link = f'href="{reverse("training-judge", args=[run.pk])}?against=base"'
    assert link in browser.get(reverse("training-run", args=[run.pk])).content.decode()
    assert "data-judge-link" not in browser.get(reverse("training-run", args=[running.pk])).content.decode()


def test_a_typed_prompt_whose_worker_died_is_failed_by_the_sweeper_and_asking_again_queues_it(annotator, run):
    api = client_for(annotator)
    queued = api.post(f"/api/runs/{run.pk}/ab/next/", {"prompt": "Tell me a joke."}, format="json").json()
    ABItem.objects.filter(token=queued["token"]).update(
        status="running", started_at=timezone.now() - timedelta(hours=1)
    )
    assert ab_sweep() == 1
    failed = api.get(queued["url"]).json()
    assert failed["status"] == "failed"
    assert "stopped" in failed["error"]
    again = api.post(f"/api/runs/{run.pk}/ab/next/", {"prompt": "Tell me a joke."}, format="json")
    assert again.status_code == 202
    assert again.json() == {**queued, "status": "queued"}
