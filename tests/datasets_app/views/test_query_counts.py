"""The pages annotators load all day cost a fixed number of queries, however many pairs, authors or edits they show
(bench/web_bench.py measures them under load)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from datasets_app.curation.services import example_update
from datasets_app.models import Example
from tests.factories import ExampleFactory, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def queries_of(client, url):
    client.get(url)  # warm: cached counts, sessions, templates
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


def pairs_by_many_authors(dataset, first, last):
    for n in range(first, last):
        author = UserFactory(username=f"author-{dataset.pk}-{n}")
        MembershipFactory(workspace=dataset.workspace, user=author, role="annotator")
        ExampleFactory(
            dataset=dataset, created_by=author, prompt=f"Where is my refund {n}?", tags=["billing", f"t{n}"],
            problems=[{"code": "short", "message": "too short"}], problem_count=1,
        )  # fmt: skip


@pytest.mark.parametrize("query", ["", "?q=refund", "?status=draft", "?tag=billing"])
def test_the_dataset_page_costs_the_same_queries_for_one_pair_or_a_full_page(client, dataset, annotator, query):
    url = reverse("dataset", args=[dataset.pk]) + query
    client.force_login(annotator)
    pairs_by_many_authors(dataset, 0, 1)
    one = queries_of(client, url)
    pairs_by_many_authors(dataset, 1, 50)
    assert queries_of(client, url) == one
    assert Example.objects.filter(dataset=dataset).count() == 50


def test_the_editor_costs_the_same_queries_after_many_edits_by_many_people(client, dataset, annotator):
    pair = ExampleFactory(dataset=dataset, created_by=annotator)
    url = reverse("example", args=[pair.pk])
    client.force_login(annotator)
    first = queries_of(client, url)
    for n in range(10):
        editor = UserFactory(username=f"editor-{n}")
        MembershipFactory(workspace=dataset.workspace, user=editor, role="annotator")
        pair = example_update(example=pair, user=editor, expected_version=pair.version, response=f"Edit {n}.")
    assert queries_of(client, url) == first
