"""Comparing runs (metrics, matched prompts, flips) and diffing snapshots, over the API and on the comparison page.

Runs are rows as a worker leaves them, on real snapshots, with EvalItems created directly (no worker needed)."""

import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from datasets_app.curation.services import example_create, example_delete, example_update
from datasets_app.models import DatasetKind, ExampleStatus
from tests.api_client import client_for
from tests.factories import DatasetFactory
from tests.training_app.conftest import TINY
from training_app.models import EvalItem, RunMetric, RunStatus, TrainingRun
from training_app.snapshots import snapshot_create

pytestmark = pytest.mark.django_db

XSS = '<script>alert("pwned")</script><img src=x onerror=alert(1)>'
TRAINING = [
    ("What is two plus two?", "Four."),
    ("Name a primary colour.", "Red."),
    ("Boiling point of water?", "100 C."),
]
EVALUATION = [("Capital of France?", "Paris."), ("Capital of Spain?", "Madrid."), (f"Say {XSS}", "Done."),
              ("Capital of Peru?", "Lima.")]  # fmt: skip


def approved(dataset, user, pairs, split="train"):
    return [
        example_create(dataset=dataset, user=user, status=ExampleStatus.APPROVED, split=split, prompt=p, response=r)
        for p, r in pairs
    ]


@pytest.fixture
def qa(workspace, lead):
    """A general dataset with three training pairs and four evaluation pairs (one prompt carries a script)."""
    dataset = DatasetFactory(workspace=workspace, name="Capitals", kind=DatasetKind.GENERAL)
    approved(dataset, lead, TRAINING)
    return dataset, approved(dataset, lead, EVALUATION, split="eval")


def scored_run(snapshot, user, answers, *, after=None, summary=None, losses=(2.0, 1.5, 1.2)):
    """A finished run: its evaluation after training, one EvalItem per (pair, answer, passed), a loss curve."""
    run = TrainingRun.objects.create(
        snapshot=snapshot, base_model=TINY, created_by=user, status=RunStatus.SUCCEEDED,
        evaluation={"source": "eval_set", "before": {}, "after": after or {"exact_match": 0.5, "token_f1": 0.6, "val_loss": 1.1}},
        summary=summary or {"final_loss": 1.2, "val_loss": 1.3},
    )  # fmt: skip
    EvalItem.objects.bulk_create(
        EvalItem(run=run, example=pair, prompt=pair.prompt, reference=pair.response, after_output=answer, after_ok=ok)
        for pair, answer, ok in answers
    )
    RunMetric.objects.bulk_create(RunMetric(run=run, step=step, loss=loss) for step, loss in enumerate(losses, 1))
    return run


def answered(pairs, passed):
    return [
        (pair, f"answer {n} ({'right' if ok else 'wrong'})", ok)
        for n, (pair, ok) in enumerate(zip(pairs, passed, strict=True))
    ]


@pytest.fixture
def two_runs(qa, lead):
    """Run A passes the first two prompts; run B fixes the third and breaks the second."""
    dataset, pairs = qa
    snapshot = snapshot_create(dataset=dataset, user=None)
    first = scored_run(snapshot, lead, answered(pairs, [True, True, False, False]))
    last = scored_run(
        snapshot, lead, answered(pairs, [True, False, True, False]),
        after={"exact_match": 0.75, "token_f1": 0.5, "val_loss": 0.9}, summary={"final_loss": 0.8, "val_loss": 1.4},
    )  # fmt: skip
    return first, last


def compare(user, *ids):
    return client_for(user).get("/api/runs/compare/", {"runs": ",".join(map(str, ids))})


# --- the API


def test_a_comparison_lists_the_fixed_prompt_first_then_the_broken_one(two_runs, qa, lead):
    first, last = two_runs
    _, pairs = qa
    response = compare(lead, first.pk, last.pk)
    assert response.status_code == 200, response.json()
    body = response.json()
    assert [run["id"] for run in body["runs"]] == [first.pk, last.pk]
    assert set(body["runs"][0]) >= {"id", "base_model", "snapshot_number", "status", "created_at"}
    assert body["same_eval_set"] is True
    assert body["unshared"] == 0
    assert body["flips"] == {"fixed": 1, "broken": 1}
    assert [(p["prompt"], p["flip"]) for p in body["prompts"]] == [
        (pairs[2].prompt, "fixed"), (pairs[1].prompt, "broken"), (pairs[0].prompt, None), (pairs[3].prompt, None),
    ]  # fmt: skip
    fixed = body["prompts"][0]
    assert fixed["passed"] == [False, True]
    assert fixed["outputs"] == ["answer 2 (wrong)", "answer 2 (right)"]
    assert (fixed["expected"], fixed["example"]) == ("Done.", pairs[2].pk)


def test_metrics_hold_each_runs_value_and_which_way_is_better(two_runs, lead):
    first, last = two_runs
    metrics = {m["name"]: (m["values"], m["better"]) for m in compare(lead, first.pk, last.pk).json()["metrics"]}
    assert metrics == {
        "exact_match": ([0.5, 0.75], "higher"),
        "token_f1": ([0.6, 0.5], "higher"),
        "eval_loss": ([1.1, 0.9], "lower"),
        "train_loss": ([1.2, 0.8], "lower"),
        "val_loss": ([1.3, 1.4], "lower"),
    }


def test_flips_count_from_the_first_run_to_the_last_whatever_the_runs_between(two_runs, qa, lead):
    first, last = two_runs
    _, pairs = qa
    middle = scored_run(first.snapshot, lead, answered(pairs, [False, False, False, True]))
    body = compare(lead, first.pk, middle.pk, last.pk).json()
    assert body["flips"] == {"fixed": 1, "broken": 1}
    assert [p["passed"] for p in body["prompts"][:2]] == [[False, False, True], [True, False, False]]
    # the same runs the other way round: what was fixed is now broken
    backwards = compare(lead, last.pk, middle.pk, first.pk).json()
    assert [(p["prompt"], p["flip"]) for p in backwards["prompts"][:2]] == [
        (pairs[1].prompt, "fixed"), (pairs[2].prompt, "broken"),
    ]  # fmt: skip


def test_runs_on_different_evaluation_sets_compare_only_the_prompts_they_share(qa, lead):
    dataset, pairs = qa
    before = snapshot_create(dataset=dataset, user=None)
    edited = example_update(example=pairs[3], user=lead, expected_version=pairs[3].version, prompt="Capital of Chile?")
    extra = approved(dataset, lead, [("Capital of Japan?", "Tokyo.")], split="eval")
    after = snapshot_create(dataset=dataset, user=None)
    assert before.eval_hash != after.eval_hash
    old = scored_run(before, lead, answered(pairs, [False, False, False, False]))
    new = scored_run(after, lead, answered([*pairs[:3], edited, *extra], [True, True, True, True, True]))
    body = compare(lead, old.pk, new.pk).json()
    assert body["same_eval_set"] is False
    assert [p["prompt"] for p in body["prompts"]] == [pairs[0].prompt, pairs[1].prompt, pairs[2].prompt]
    assert body["unshared"] == 3  # Peru (only the old run), Chile and Japan (only the new one)
    assert body["flips"] == {"fixed": 3, "broken": 0}


def test_a_run_without_an_evaluation_set_is_not_on_the_same_set(qa, lead, workspace):
    dataset, pairs = qa
    plain = DatasetFactory(workspace=workspace, name="No evaluation set", kind=DatasetKind.GENERAL)
    approved(plain, lead, TRAINING)
    one = scored_run(snapshot_create(dataset=plain, user=None), lead, [])
    two = scored_run(snapshot_create(dataset=dataset, user=None), lead, answered(pairs, [True] * 4))
    body = compare(lead, one.pk, two.pk).json()
    assert (body["same_eval_set"], body["prompts"], body["unshared"]) == (False, [], 4)


def test_a_prompt_asked_twice_is_matched_occurrence_by_occurrence(qa, lead):
    dataset, pairs = qa
    snapshot = snapshot_create(dataset=dataset, user=None)
    twice = [pairs[0], pairs[0]]
    first = scored_run(snapshot, lead, [(pair, "same", ok) for pair, ok in zip(twice, [True, False], strict=True)])
    last = scored_run(snapshot, lead, [(pair, "same", ok) for pair, ok in zip(twice, [True, True], strict=True)])
    body = compare(lead, first.pk, last.pk).json()
    assert [(p["prompt"], p["passed"]) for p in body["prompts"]] == [
        (pairs[0].prompt, [False, True]), (pairs[0].prompt, [True, True]),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("runs", "message"),
    [("", "give two or more"), ("{a}", "give two or more"), ("{a},{a}", "given twice"), ("{a},,{b}", "not a run id"), ("{a},x", "not a run id"),
     ("{a},99999999999999999999", "not a run id"), (",".join(str(n) for n in range(1, 12)), "at most 10")],
)  # fmt: skip
def test_fewer_than_two_runs_or_a_bad_id_is_a_400(two_runs, lead, runs, message):
    response = client_for(lead).get("/api/runs/compare/", {"runs": runs.format(a=two_runs[0].pk, b=two_runs[1].pk)})
    assert response.status_code == 400
    assert message in response.json()["runs"][0]


def test_an_annotator_may_compare_the_runs_they_can_see(two_runs, annotator):
    assert compare(annotator, *(run.pk for run in two_runs)).status_code == 200


def test_a_run_of_another_workspace_is_answered_like_a_missing_one(two_runs, outsider, lead, other_workspace, client):
    theirs = DatasetFactory(workspace=other_workspace, name="Theirs", kind=DatasetKind.GENERAL)
    approved(theirs, outsider, TRAINING)
    secret = scored_run(snapshot_create(dataset=theirs, user=None), outsider, [])
    mine = two_runs[0].pk
    other, missing = compare(lead, mine, secret.pk), compare(lead, mine, secret.pk + 1000)
    assert (other.status_code, missing.status_code) == (404, 404)
    assert other.json() == missing.json()
    assert compare(outsider, *(run.pk for run in two_runs)).status_code == 404
    client.force_login(lead)
    for run in (secret.pk, secret.pk + 1000):
        assert client.get(reverse("training-compare"), {"runs": f"{mine},{run}"}).status_code == 404


def test_the_number_of_queries_does_not_grow_with_the_prompts(qa, lead):
    dataset, pairs = qa
    snapshot = snapshot_create(dataset=dataset, user=None)

    def queries(n_prompts):
        rows = [(pairs[n % 4], f"answer {n}", n % 2 == 0) for n in range(n_prompts)]
        first, last = scored_run(snapshot, lead, rows), scored_run(snapshot, lead, rows[::-1])
        api = client_for(lead)
        with CaptureQueriesContext(connection) as api_queries:
            assert api.get("/api/runs/compare/", {"runs": f"{first.pk},{last.pk}"}).status_code == 200
        browser = Client()
        browser.force_login(lead)
        with CaptureQueriesContext(connection) as page_queries:
            assert browser.get(reverse("training-compare"), {"runs": f"{first.pk},{last.pk}"}).status_code == 200
        return len(api_queries), len(page_queries)

    few, many = queries(4), queries(200)
    assert few == many
    # the API: the token (with its user), the runs, their evaluated prompts; the page: the session, the user, the
    # runs, their evaluated prompts, their loss curves, the tallies of blind votes, and for a lead the role and the
    # preference datasets the votes may be made into pairs of
    assert few[0] <= 3, few
    assert few[1] <= 8, few


# --- the snapshot diff


def diff(user, before, after):
    return client_for(user).get(f"/api/snapshots/{before.pk}/diff/{after.pk}/")


def test_a_snapshot_diff_lists_training_pairs_added_removed_and_changed(qa, lead):
    dataset, pairs = qa
    before = snapshot_create(dataset=dataset, user=None)
    trained = list(dataset.examples.filter(split="train").order_by("id"))
    example_update(example=trained[0], user=lead, expected_version=trained[0].version, response=f"Four, {XSS}")
    deleted = (trained[1].pk, trained[1].prompt)
    example_delete(example=trained[1], user=lead)
    added = approved(dataset, lead, [("Largest ocean?", "The Pacific.")])[0]
    example_update(example=pairs[0], user=lead, expected_version=pairs[0].version, response="Paris, France.")
    example_create(dataset=dataset, user=lead, prompt="Not approved yet?", response="Draft.")
    after = snapshot_create(dataset=dataset, user=None)

    response = diff(lead, before, after)
    assert response.status_code == 200
    body = response.json()
    assert body["counts"] == {
        "added": 1, "removed": 1, "changed": 1, "unchanged": 1,
        "eval": {"added": 0, "removed": 0, "changed": 1, "unchanged": 3},
    }  # fmt: skip
    assert [(row["ref"], row["prompt"]) for row in body["added"]] == [(added.pk, "Largest ocean?")]
    assert [(row["ref"], row["prompt"]) for row in body["removed"]] == [deleted]
    [change] = body["changed"]
    assert (change["ref"], change["changed_fields"]) == (trained[0].pk, ["response"])
    assert (change["before"]["response"], change["after"]["response"]) == ("Four.", f"Four, {XSS}")
    assert body["truncated"] is False
    # and back again: what was added is removed
    back = diff(lead, after, before).json()
    assert [row["ref"] for row in back["removed"]] == [added.pk]


def test_moving_a_pair_between_train_and_validation_is_not_a_change(qa, lead):
    dataset, _ = qa
    one = snapshot_create(dataset=dataset, user=None, seed=1, validation_fraction=0.34)
    other = snapshot_create(dataset=dataset, user=None, seed=2, validation_fraction=0.34)
    counts = diff(lead, one, other).json()["counts"]
    assert (counts["added"], counts["removed"], counts["changed"], counts["unchanged"]) == (0, 0, 0, 3)


def test_a_pair_moved_into_the_evaluation_set_leaves_the_training_pairs(qa, lead):
    dataset, _ = qa
    before = snapshot_create(dataset=dataset, user=None)
    moved = dataset.examples.filter(split="train").order_by("id").first()
    example_update(example=moved, user=lead, expected_version=moved.version, split="eval")
    body = diff(lead, before, snapshot_create(dataset=dataset, user=None)).json()
    assert [row["ref"] for row in body["removed"]] == [moved.pk]
    assert body["counts"]["eval"]["added"] == 1


def test_a_snapshot_diff_needs_both_snapshots_visible(qa, lead, annotator, outsider, other_workspace):
    dataset, _ = qa
    mine = snapshot_create(dataset=dataset, user=None)
    theirs = DatasetFactory(workspace=other_workspace, name="Theirs", kind=DatasetKind.GENERAL)
    approved(theirs, outsider, TRAINING)
    secret = snapshot_create(dataset=theirs, user=None)
    assert diff(annotator, mine, mine).status_code == 200
    for before, after in ((mine, secret), (secret, mine)):
        assert diff(lead, before, after).status_code == 404
    assert diff(outsider, mine, secret).status_code == 404
    gone = client_for(lead).get(f"/api/snapshots/{mine.pk}/diff/{secret.pk + 1000}/")
    assert gone.json() == diff(lead, mine, secret).json()


# --- the page


@pytest.fixture
def browser_client(client, lead):
    client.force_login(lead)
    return client


def page(client, *ids):
    response = client.get(reverse("training-compare"), {"runs": ",".join(map(str, ids))})
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def test_the_page_shows_flips_first_and_escapes_what_people_wrote(browser_client, two_runs, qa):
    first, last = two_runs
    _, pairs = qa
    html = page(browser_client, first.pk, last.pk)
    flips = re.findall(r'data-flip="(\w*)"', html)
    assert flips == ["fixed", "broken", "", ""]
    assert "Say &lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<script>alert(" not in html
    assert "<img src=x" not in html
    assert "<strong>1 fixed</strong>, <strong>1 broken</strong>" in html
    assert 'id="compare-curves" type="application/json"' in html


def test_a_long_comparison_shows_the_flipped_prompts_and_points_to_the_api_for_the_rest(
    browser_client, two_runs, monkeypatch
):
    monkeypatch.setattr("training_app.views.compare.PAGE_PROMPTS_MAX", 2)
    first, last = two_runs
    html = page(browser_client, first.pk, last.pk)
    assert re.findall(r'data-flip="(\w*)"', html) == ["fixed", "broken"]
    assert "Showing the first 2 of 4 prompts" in html
    assert f'href="/api/runs/compare/?runs={first.pk},{last.pk}"' in html


def test_the_page_colours_each_change_by_which_way_is_better(browser_client, two_runs):
    first, last = two_runs
    html = page(browser_client, first.pk, last.pk)

    def change(metric):
        row = re.search(rf'data-metric="{metric}">(.*?)</tr>', html, re.S).group(1)
        return re.search(r'class="tr-delta tr-(\w+)"[^>]*>(.*?)</div>', row, re.S).groups()

    assert change("exact_match") == ("better", "▲ +25.0 pp")
    assert change("token_f1") == ("worse", "▼ −10.0 pp")
    assert change("train_loss") == ("better", "▲ −0.400")  # lower is better
    assert change("val_loss") == ("worse", "▼ +0.100")


def test_the_page_shows_the_data_change_as_escaped_word_diffs(browser_client, qa, lead):
    dataset, pairs = qa
    before = snapshot_create(dataset=dataset, user=None)
    trained = dataset.examples.filter(split="train").order_by("id").first()
    example_update(example=trained, user=lead, expected_version=trained.version, response=f"Four, {XSS}")
    approved(dataset, lead, [("Largest ocean?", "The Pacific.")])
    first = scored_run(before, lead, answered(pairs, [True] * 4))
    last = scored_run(snapshot_create(dataset=dataset, user=None), lead, answered(pairs, [True] * 4))
    html = page(browser_client, first.pk, last.pk)
    data = html[html.index('id="compare-data"') :]
    assert "<strong>1 added</strong>, <strong>0 removed</strong>, <strong>1 changed</strong>" in data
    assert "Four<del>.</del><ins>, &lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;" in data
    assert "Largest ocean?" in data


def test_the_runs_list_offers_a_tick_per_run_and_sends_them_oldest_first(browser_client, two_runs):
    first, last = two_runs
    runs_page = browser_client.get(reverse("training-runs")).content.decode()
    assert f'name="runs" value="{first.pk}" form="compare-form"' in runs_page
    assert 'id="compare-form"' in runs_page
    response = browser_client.get(reverse("training-compare"), {"runs": [str(last.pk), str(first.pk)]})
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('training-compare')}?runs={first.pk},{last.pk}"


def test_the_page_asks_for_two_runs_when_given_fewer(browser_client, two_runs):
    response = browser_client.get(reverse("training-compare"), {"runs": str(two_runs[0].pk)})
    assert response.status_code == 400
    assert "give two or more different runs" in response.content.decode()


def test_the_page_needs_a_login(client, two_runs):
    response = client.get(reverse("training-compare"), {"runs": f"{two_runs[0].pk},{two_runs[1].pk}"})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
