"""Blind votes into preference pairs: the winner's answer chosen over the loser's, a rewrite chosen over both, ties
and "both bad" without a rewrite skipped, each pair linked to its vote, nothing made twice; who may make them; the
buttons on the comparison and the run page. Runs are rows as a worker leaves them (test_ab.py's helpers); votes go
through the judging services, so which side each model was on is drawn at random as on the judging page."""

import threading

import pytest
from django.db import IntegrityError, connection
from django.test import Client
from django.urls import reverse

from datasets_app.curation.services import example_create
from datasets_app.models import DatasetKind, Example, ExampleStatus, Role
from tests.api_client import client_for
from tests.factories import DatasetFactory, MembershipFactory, WorkspaceFactory
from tests.training_app.test_ab import PROMPTS, a_snapshot, scored
from training_app.judging.preferences import preferences_from_votes
from training_app.judging.services import ab_ask, ab_next, ab_vote, matchup_get
from training_app.models import ABItem, ABStatus, EvalItem, RunStatus, VotePair
from training_app.snapshots import snapshot_create

pytestmark = pytest.mark.django_db

REWRITE = "Here is a better answer, written by the judge."


@pytest.fixture
def snapshot(workspace, lead):
    return a_snapshot(workspace, lead)


@pytest.fixture
def run(snapshot, lead):
    return scored(snapshot, lead, PROMPTS, tag="tuned")


@pytest.fixture
def prefs(workspace):
    return DatasetFactory(workspace=workspace, name="Preferences", kind=DatasetKind.PREFERENCE)


def vote(user, run, verdict, *, against="base", rewrite=""):
    """One blind vote by `user` on the next prompt: for the run's answer ("run"), for the other model's ("other"),
    or "tie" / "both_bad"."""
    matchup = matchup_get(user=user, run=run, against=against)
    item = ab_next(user=user, matchup=matchup)
    mine = "a" if item.a_model == matchup.me else "b"
    choice = {"run": mine, "other": "b" if mine == "a" else "a"}.get(verdict, verdict)
    return ab_vote(user=user, token=item.token, choice=choice, rewrite=rewrite)


def number(vote_row):
    return PROMPTS.index(vote_row.item.prompt)


def make_pairs(user, dataset, run, **body):
    return client_for(user).post(
        f"/api/datasets/{dataset.pk}/preferences-from-votes/", {"run": run.pk, **body}, format="json"
    )


def pairs_in(dataset):
    return {(e.prompt, e.response, e.rejected) for e in Example.objects.filter(dataset=dataset)}


def test_the_winner_is_chosen_over_the_loser_and_a_rewrite_over_both_answers(annotator, lead, run, prefs):
    won = vote(annotator, run, "run")
    lost = vote(annotator, run, "other")
    vote(annotator, run, "tie")
    vote(annotator, run, "both_bad")
    rewritten_bad = vote(annotator, run, "both_bad", rewrite=REWRITE)
    rewritten_won = vote(annotator, run, "run", rewrite=REWRITE + " Again.")

    response = make_pairs(lead, prefs, run)

    assert response.status_code == 200, response.content
    body = response.json()
    assert {key: value for key, value in body.items() if key != "examples"} == {
        "votes": 6, "created": 6, "already": 0, "duplicates": 0, "ties": 1, "both_bad": 1, "unusable": 0,
    }  # fmt: skip
    n, m, r, s = number(won), number(lost), number(rewritten_bad), number(rewritten_won)
    assert pairs_in(prefs) == {
        (PROMPTS[n], f"tuned answer {n}", f"plain answer {n}"),
        (PROMPTS[m], f"plain answer {m}", f"tuned answer {m}"),
        (PROMPTS[r], REWRITE, f"tuned answer {r}"),
        (PROMPTS[r], REWRITE, f"plain answer {r}"),
        (PROMPTS[s], REWRITE + " Again.", f"tuned answer {s}"),
        (PROMPTS[s], REWRITE + " Again.", f"plain answer {s}"),
    }
    made = Example.objects.filter(dataset=prefs)
    assert sorted(body["examples"]) == sorted(made.values_list("id", flat=True))
    # submitted: a person already compared the answers, a lead reviews them before a snapshot trains on them
    assert {(e.status, e.split, tuple(e.tags)) for e in made} == {
        (ExampleStatus.SUBMITTED, "train", (f"from-run:{run.pk}",))
    }


def test_each_pair_links_back_to_its_vote_and_making_them_again_adds_nothing(annotator, lead, run, prefs):
    won = vote(annotator, run, "run")
    rewritten = vote(annotator, run, "tie", rewrite=REWRITE)
    make_pairs(lead, prefs, run)

    again = make_pairs(lead, prefs, run).json()

    assert (again["created"], again["already"], again["examples"]) == (0, 3, [])
    assert Example.objects.filter(dataset=prefs).count() == VotePair.objects.count() == 3
    link = VotePair.objects.get(vote=won)
    loser = "b" if won.choice == "a" else "a"
    assert (link.chosen, link.rejected, link.dataset, link.created_by) == (won.choice, loser, prefs, lead)
    assert link.example.source == f"vote:{won.pk}"
    assert link.example.response == f"tuned answer {number(won)}"
    assert {(p.chosen, p.rejected) for p in VotePair.objects.filter(vote=rewritten)} == {
        ("rewrite", "a"),
        ("rewrite", "b"),
    }
    assert {p.example.source for p in VotePair.objects.filter(vote=rewritten)} == {f"vote:{rewritten.pk}"}


def test_a_vote_link_is_unique_per_dataset_and_rejected_side(annotator, lead, run, prefs):
    won = vote(annotator, run, "run")
    make_pairs(lead, prefs, run)
    link = VotePair.objects.get()
    spare = example_create(dataset=prefs, user=lead, prompt="Spare?", response="Yes.", rejected="No.")

    with pytest.raises(IntegrityError):
        VotePair.objects.create(vote=won, dataset=prefs, example=spare, chosen=link.chosen, rejected=link.rejected)


@pytest.mark.django_db(transaction=True)
def test_two_requests_at_once_make_each_pair_once(annotator, lead, run, prefs):
    for verdict in ("run", "other", "run"):
        vote(annotator, run, verdict)
    start = threading.Barrier(2)
    outcomes = []

    def make_now():
        try:
            start.wait()
            outcomes.append(preferences_from_votes(user=lead, dataset=prefs, run=run))
        finally:
            connection.close()

    threads = [threading.Thread(target=make_now) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted((outcome.created, outcome.already) for outcome in outcomes) == [(0, 3), (3, 0)]
    assert Example.objects.filter(dataset=prefs).count() == VotePair.objects.count() == 3


def test_two_voters_with_the_same_verdict_share_one_pair(annotator, lead, snapshot, prefs):
    single = scored(snapshot, lead, PROMPTS[:1], tag="tuned")
    first, second = vote(annotator, single, "run"), vote(lead, single, "run")

    body = make_pairs(lead, prefs, single).json()

    assert (body["created"], body["duplicates"]) == (1, 1)
    example = Example.objects.get(dataset=prefs)
    assert {link.vote for link in VotePair.objects.filter(example=example)} == {first, second}


def test_an_evaluation_prompt_keeps_its_pairs_system_prompt_history_and_tags_a_typed_one_the_usual_system_prompt(
    annotator, lead, workspace, prefs
):
    dataset = DatasetFactory(workspace=workspace, kind=DatasetKind.GUARDRAIL)
    for n in range(2):
        example_create(dataset=dataset, user=lead, prompt=f"Bake {n}?", response="Yes.", system_prompt="Be brief.",
                       tags=["allowed:baking"], status=ExampleStatus.APPROVED)  # fmt: skip
    evaluated = example_create(
        dataset=dataset, user=lead, prompt="Which pills?", response="I can't help with that.", split="eval",
        system_prompt="You bake.", history=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}],
        tags=["blocked:medical"], status=ExampleStatus.APPROVED,
    )  # fmt: skip
    run = scored(snapshot_create(dataset=dataset, user=lead), lead, [], tag="tuned")
    EvalItem.objects.create(run=run, example=evaluated, prompt="Which pills?", before_output="I can't help with that.",
                            after_output="Take ten.", blocked=True)  # fmt: skip
    vote(annotator, run, "other")
    typed = ab_ask(user=annotator, matchup=matchup_get(user=annotator, run=run, against="base"), prompt="A cake?")
    ABItem.objects.filter(pk=typed.pk).update(status=ABStatus.READY, a_output="Yes, bake one.", b_output="No.")
    ab_vote(user=annotator, token=typed.token, choice="a")

    assert make_pairs(lead, prefs, run).json()["created"] == 2

    refusal = Example.objects.get(dataset=prefs, prompt="Which pills?")
    assert (refusal.response, refusal.rejected) == ("I can't help with that.", "Take ten.")
    assert (refusal.system_prompt, refusal.history, refusal.tags) == (
        "You bake.", evaluated.history, ["blocked:medical", f"from-run:{run.pk}"]
    )  # fmt: skip
    cake = Example.objects.get(dataset=prefs, prompt="A cake?")
    assert (cake.response, cake.rejected, cake.system_prompt, cake.tags) == (
        "Yes, bake one.", "No.", "Be brief.", [f"from-run:{run.pk}"]
    )  # fmt: skip


def test_votes_against_another_run_use_both_runs_answers(annotator, lead, snapshot, run, prefs):
    other = scored(snapshot, lead, PROMPTS[:3], tag="other")
    won = vote(annotator, run, "other", against=str(other.pk))
    vote(annotator, run, "run")  # against the base model: not these two

    body = make_pairs(lead, prefs, run, against=str(other.pk)).json()

    assert (body["votes"], body["created"]) == (1, 1)
    n = number(won)
    assert pairs_in(prefs) == {(PROMPTS[n], f"other answer {n}", f"tuned answer {n}")}


def test_who_may_make_pairs_and_into_what(annotator, lead, outsider, run, prefs, workspace):
    vote(annotator, run, "run")

    forbidden = make_pairs(annotator, prefs, run)
    assert forbidden.status_code == 403
    assert make_pairs(outsider, prefs, run).status_code == 404
    general = DatasetFactory(workspace=workspace, name="Plain", kind=DatasetKind.GENERAL)
    wrong_kind = make_pairs(lead, general, run)
    assert wrong_kind.status_code == 409
    assert (
        "'Plain' is a dataset of kind General: pairs from votes go into a dataset of kind Preference pairs"
        in (wrong_kind.json()["detail"])
    )
    elsewhere = WorkspaceFactory(name="Elsewhere")
    MembershipFactory(workspace=elsewhere, user=lead, role=Role.LEAD)
    foreign = scored(a_snapshot(elsewhere, lead), lead, PROMPTS, tag="foreign")
    assert make_pairs(lead, prefs, foreign).status_code == 404  # a run the lead sees, of another workspace
    hidden = scored(a_snapshot(outsider.memberships.get().workspace, outsider), outsider, PROMPTS, tag="hidden")
    assert make_pairs(lead, prefs, hidden).status_code == 404
    assert make_pairs(lead, prefs, run, against="7x").status_code == 400
    running = scored(run.snapshot, lead, PROMPTS, tag="running", status=RunStatus.RUNNING)
    assert make_pairs(lead, prefs, running).status_code == 409
    assert not Example.objects.filter(dataset__in=[prefs, general]).exists()


# --- the buttons


def browser_for(user):
    browser = Client()
    browser.force_login(user)
    return browser


def test_the_comparison_page_offers_leads_to_make_pairs_of_each_rows_votes(annotator, lead, snapshot, run, prefs):
    other = scored(snapshot, lead, PROMPTS[:3], tag="other")
    won = vote(annotator, run, "run", against=str(other.pk))
    compare = f"{reverse('training-compare')}?runs={run.pk},{other.pk}"

    page = browser_for(lead).get(compare).content.decode()
    section = page.split('id="compare-ab"')[1].split("</section>")[0]
    row = section.split(f'data-ab="{run.pk}-{other.pk}"')[1].split("</tr>")[0]
    assert f'formaction="{reverse("training-preference-pairs", args=[run.pk])}"' in row
    assert f'name="against" value="{other.pk}"' in row
    assert f'<option value="{prefs.pk}">Preferences</option>' in section
    assert "data-make-pairs" not in browser_for(annotator).get(compare).content.decode()

    browser = browser_for(lead)
    url = reverse("training-preference-pairs", args=[run.pk])
    response = browser.post(url, {"dataset": prefs.pk, "against": other.pk, "next": compare}, follow=True)

    assert response.redirect_chain == [(compare, 302)]
    assert "Made 1 preference pair in Preferences from 1 vote, submitted for review." in response.content.decode()
    n = number(won)
    assert pairs_in(prefs) == {(PROMPTS[n], f"tuned answer {n}", f"other answer {n}")}
    again = browser.post(url, {"dataset": prefs.pk, "against": other.pk, "next": compare}, follow=True)
    assert "Made 0 preference pairs in Preferences from 1 vote, submitted for review (skipped: 1 already made)." in (
        again.content.decode()
    )
    assert browser_for(annotator).post(url, {"dataset": prefs.pk, "against": other.pk}).status_code == 403
    assert Example.objects.filter(dataset=prefs).count() == 1


def test_a_lead_without_a_preference_dataset_is_told_to_make_one(annotator, lead, snapshot, run):
    other = scored(snapshot, lead, PROMPTS[:3], tag="other")
    vote(annotator, run, "run", against=str(other.pk))

    page = browser_for(lead).get(f"{reverse('training-compare')}?runs={run.pk},{other.pk}").content.decode()

    assert "data-make-pairs" not in page
    assert "create a dataset of kind <em>Preference pairs</em>" in page


def test_the_run_page_makes_pairs_of_its_votes_against_the_base_model(annotator, lead, run, prefs, workspace):
    DatasetFactory(workspace=workspace, name="Plain", kind=DatasetKind.GENERAL)
    vote(annotator, run, "run")
    vote(annotator, run, "tie")
    page_url = reverse("training-run", args=[run.pk])

    page = browser_for(lead).get(page_url).content.decode()
    panel = page.split('id="votes-to-pairs"')[1].split("</section>")[0]
    assert 'data-base-votes="2"' in panel
    assert "Plain" not in panel  # only preference datasets are offered
    assert 'id="votes-to-pairs"' not in browser_for(annotator).get(page_url).content.decode()

    response = browser_for(lead).post(
        reverse("training-preference-pairs", args=[run.pk]), {"dataset": prefs.pk, "against": "base"}, follow=True
    )

    assert response.redirect_chain == [(page_url, 302)]
    assert "Made 1 preference pair in Preferences from 2 votes, submitted for review (skipped: 1 tie)." in (
        response.content.decode()
    )


def test_the_editor_of_a_pair_from_a_vote_tells_the_vote(annotator, lead, run, prefs):
    won = vote(annotator, run, "run")
    make_pairs(lead, prefs, run)
    example = Example.objects.get(dataset=prefs)

    page = browser_for(lead).get(reverse("example", args=[example.pk])).content.decode()

    assert f"From a blind vote on run {run.pk}&#x27;s answers" in page
    mine = "Answer 1" if won.choice == "a" else "Answer 2"
    assert f"{mine}, by run {run.pk}&#x27;s fine-tuned model" in page
    assert f"(by {annotator.username})" in page
