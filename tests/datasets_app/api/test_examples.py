"""Browsing, creating and editing pairs over the REST API."""

from datetime import timedelta

import pytest
from django.utils import timezone

from datasets_app.curation.services import example_create
from datasets_app.models import Example
from tests.api_client import client_for
from tests.factories import ExampleFactory

pytestmark = pytest.mark.django_db


def pair(n, **extra):
    return {"prompt": f"How long do I boil egg number {n}?", "response": f"About {n} minutes.", **extra}


def test_cursor_pagination_walks_every_pair_once(dataset, annotator):
    ExampleFactory.create_batch(25, dataset=dataset)
    api, seen, url = client_for(annotator), [], f"/api/datasets/{dataset.pk}/examples/?page_size=10"
    while url:
        page = api.get(url).json()
        seen += [item["id"] for item in page["results"]]
        url = page["next"]
    assert len(seen) == 25
    assert seen == sorted(set(seen))


def test_filters_by_status_tag_source_and_updated_after(dataset, annotator):
    ExampleFactory(dataset=dataset, status="approved", tags=["blocked:medical"], source="import:a.jsonl")
    ExampleFactory(dataset=dataset, status="draft", tags=["allowed:cooking"], source="manual")
    old = ExampleFactory(dataset=dataset, status="draft", tags=["blocked:medical-extra"])
    Example.objects.filter(pk=old.pk).update(updated_at=timezone.now() - timedelta(days=2))
    api = client_for(annotator)

    def count(query):
        return len(api.get(f"/api/datasets/{dataset.pk}/examples/?{query}").json()["results"])

    assert count("status=approved") == 1
    assert count("tag=blocked:medical") == 1
    assert count("source=import:*") == 1
    assert count("source=manual") == 2
    since = (timezone.now() - timedelta(days=1)).isoformat().replace("+00:00", "Z")
    assert count(f"updated_after={since}") == 2


def test_full_text_search_over_prompt_and_response(dataset, annotator):
    ExampleFactory(dataset=dataset, prompt="How do I caramelize onions?", response="Slowly, over low heat.")
    ExampleFactory(dataset=dataset, prompt="Best pasta shape?", response="Orecchiette holds sauce; onions optional.")
    ExampleFactory(dataset=dataset, prompt="Boil rice?", response="Rinse first.")
    api = client_for(annotator)
    results = api.get(f"/api/datasets/{dataset.pk}/examples/?search=onions").json()["results"]
    assert {r["prompt"] for r in results} == {"How do I caramelize onions?", "Best pasta shape?"}
    assert len(api.get(f"/api/datasets/{dataset.pk}/examples/?search=low heat").json()["results"]) == 1
    assert api.get(f'/api/datasets/{dataset.pk}/examples/?search=" OR 1=1 --').status_code == 200


def test_search_sees_edits(dataset, annotator):
    from datasets_app.curation.services import example_update

    example = example_create(dataset=dataset, user=annotator, prompt="Knead dough?", response="Ten minutes.")
    example_update(example=example, user=annotator, expected_version=1, response="Until it is smooth and springy.")
    api = client_for(annotator)
    assert len(api.get(f"/api/datasets/{dataset.pk}/examples/?search=springy").json()["results"]) == 1
    assert len(api.get(f"/api/datasets/{dataset.pk}/examples/?search=minutes").json()["results"]) == 0


def test_bad_filter_values_are_400_not_500(dataset, annotator):
    api = client_for(annotator)
    assert api.get(f"/api/datasets/{dataset.pk}/examples/?status=great").status_code == 400
    assert api.get(f"/api/datasets/{dataset.pk}/examples/?updated_after=yesterday").status_code == 400
    assert api.get(f"/api/datasets/{dataset.pk}/examples/?cursor=garbage").status_code == 404


def test_post_one_pair_then_the_same_again_is_409(dataset, annotator):
    api = client_for(annotator)
    first = api.post(f"/api/datasets/{dataset.pk}/examples/", pair(1, tags=["x"]), format="json")
    assert first.status_code == 201
    assert (first.json()["version"], first.json()["created_by"], first["ETag"]) == (1, "annie", '"1"')
    again = api.post(f"/api/datasets/{dataset.pk}/examples/", pair(1), format="json")
    assert again.status_code == 409
    assert again.json()["existing_id"] == first.json()["id"]


def test_post_a_list_creates_all_and_skips_duplicates(dataset, annotator):
    api = client_for(annotator)
    response = api.post(
        f"/api/datasets/{dataset.pk}/examples/", [pair(n) for n in range(50)] + [pair(3)], format="json"
    )
    assert response.status_code == 201
    assert (response.json()["created"], response.json()["skipped_duplicates"]) == (50, 1)
    assert dataset.examples.count() == 50


def test_one_bad_item_in_a_list_creates_nothing_and_names_it(dataset, annotator):
    items = [pair(n) for n in range(5)]
    items[3] = {"prompt": "no response", "history": [{"role": "robot", "content": "beep"}]}
    response = client_for(annotator).post(f"/api/datasets/{dataset.pk}/examples/", items, format="json")
    assert response.status_code == 400
    problems = response.json()["problems"]
    assert {k: problems[0][k] for k in ("record", "field")} == {"record": 4, "field": "history[0].role"}
    assert "robot" in problems[0]["message"]
    assert dataset.examples.count() == 0


WEIGHTED = [{"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "Lyon?", "weight": 0}]


def test_earlier_turns_keep_their_weights_through_the_api(dataset, annotator):
    api = client_for(annotator)

    created = api.post(f"/api/datasets/{dataset.pk}/examples/", pair(1, history=WEIGHTED), format="json")
    trained = [WEIGHTED[0], {**WEIGHTED[1], "weight": 1}]
    patched = api.patch(f"/api/examples/{created.json()['id']}/", {"history": trained}, format="json",
                        HTTP_IF_MATCH='"1"')  # fmt: skip

    assert created.status_code == 201
    assert created.json()["history"] == WEIGHTED
    assert patched.status_code == 200
    assert api.get(f"/api/examples/{created.json()['id']}/").json()["history"] == trained
    assert Example.objects.get().history == trained


@pytest.mark.parametrize(
    ("turn", "says"),
    [
        ({"role": "user", "content": "Hi", "weight": 0}, "only allowed on an assistant turn, not a user one"),
        ({"role": "assistant", "content": "Hi", "weight": 2}, "less than or equal to 1"),
        ({"role": "assistant", "content": "Hi", "weight": True}, "must be a whole number"),
    ],
)
def test_a_bad_weight_is_refused_naming_the_turn(dataset, annotator, turn, says):
    api = client_for(annotator)

    one = api.post(f"/api/datasets/{dataset.pk}/examples/", pair(1, history=[turn]), format="json")
    listed = api.post(f"/api/datasets/{dataset.pk}/examples/", [pair(2), pair(1, history=[turn])], format="json")

    assert one.status_code == 400
    assert says in one.json()["history"]["0"]["weight"][0]
    assert listed.status_code == 400
    assert [(p["record"], p["field"]) for p in listed.json()["problems"]] == [(2, "history[0].weight")]
    assert dataset.examples.count() == 0


def test_submitted_item_with_blank_response_rejects_the_list(dataset, annotator):
    items = [pair(1), {"prompt": "Fine prompt", "response": "  ", "status": "submitted"}]
    response = client_for(annotator).post(f"/api/datasets/{dataset.pk}/examples/", items, format="json")
    assert response.status_code == 400
    assert response.json()["problems"][0]["record"] == 2
    assert dataset.examples.count() == 0


def test_more_than_ten_thousand_items_is_refused(dataset, annotator):
    response = client_for(annotator).post(f"/api/datasets/{dataset.pk}/examples/", [pair(1)] * 10_001, format="json")
    assert response.status_code == 400
    assert dataset.examples.count() == 0


def test_patch_with_current_etag_saves_and_returns_the_next(dataset, annotator):
    example = example_create(dataset=dataset, user=annotator, **pair(1))
    api = client_for(annotator)
    etag = api.get(f"/api/examples/{example.pk}/")["ETag"]
    response = api.patch(
        f"/api/examples/{example.pk}/", {"response": "Seven minutes."}, format="json", HTTP_IF_MATCH=etag
    )
    assert response.status_code == 200
    assert response["ETag"] == '"2"'
    assert Example.objects.get(pk=example.pk).response == "Seven minutes."


def test_stale_if_match_gets_412_and_changes_nothing(dataset, annotator, lead):
    example = example_create(dataset=dataset, user=annotator, **pair(1))
    client_for(lead).patch(
        f"/api/examples/{example.pk}/", {"response": "Lead's newer text."}, format="json", HTTP_IF_MATCH='"1"'
    )
    response = client_for(annotator).patch(
        f"/api/examples/{example.pk}/", {"response": "Older copy."}, format="json", HTTP_IF_MATCH='"1"'
    )
    assert response.status_code == 412
    assert response.json()["current_version"] == 2
    assert Example.objects.get(pk=example.pk).response == "Lead's newer text."


def test_patch_without_a_version_is_428(dataset, annotator):
    example = example_create(dataset=dataset, user=annotator, **pair(1))
    response = client_for(annotator).patch(f"/api/examples/{example.pk}/", {"response": "Blind write."}, format="json")
    assert response.status_code == 428
    assert Example.objects.get(pk=example.pk).response == "About 1 minutes."


def test_status_actions_and_rejection_comment(dataset, annotator, lead):
    example = example_create(dataset=dataset, user=annotator, **pair(1))
    api, lead_api = client_for(annotator), client_for(lead)
    assert (
        api.post(f"/api/examples/{example.pk}/status/", {"action": "submit"}, format="json").json()["status"]
        == "submitted"
    )
    no_comment = lead_api.post(f"/api/examples/{example.pk}/status/", {"action": "reject"}, format="json")
    assert no_comment.status_code == 400
    assert "comment" in no_comment.json()
    rejected = lead_api.post(
        f"/api/examples/{example.pk}/status/", {"action": "reject", "comment": "Cite a time."}, format="json"
    ).json()
    assert (rejected["status"], rejected["review_comment"]) == ("rejected", "Cite a time.")
    revisions = api.get(f"/api/examples/{example.pk}/revisions/").json()
    assert [r["action"] for r in revisions] == ["create", "status", "status"]
    assert revisions[-1]["user"] == "leo"


def test_unknown_action_is_400(dataset, annotator):
    example = example_create(dataset=dataset, user=annotator, **pair(1))
    assert (
        client_for(annotator)
        .post(f"/api/examples/{example.pk}/status/", {"action": "publish"}, format="json")
        .status_code
        == 400
    )


def test_updated_after_with_an_extreme_offset_is_handled(dataset, annotator):
    api = client_for(annotator)
    for moment in ["0281-09-02T15:20:24-18:41", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-05:00"]:
        response = api.get(f"/api/datasets/{dataset.pk}/examples/", {"updated_after": moment})
        assert response.status_code in (200, 400), moment


def test_nul_characters_in_filters_are_a_400(dataset, annotator, client):
    assert client_for(annotator).get(f"/api/datasets/{dataset.pk}/examples/", {"search": "\x001"}).status_code == 400
    client.force_login(annotator)
    assert client.get(f"/datasets/{dataset.pk}/", {"q": "a\x00b"}).status_code == 400
