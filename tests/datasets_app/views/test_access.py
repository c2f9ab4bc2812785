"""Who may reach what: outsiders get 404 everywhere, annotators 403 on lead actions, visitors the login page.
And every page keeps to the Content-Security-Policy: no inline script, no inline style, no event attributes."""

import re

import pytest
from django.urls import reverse

from datasets_app.curation.services import example_create, example_update
from datasets_app.models import Example, Job
from tests.factories import ExampleFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def pair(dataset, annotator):
    example = example_create(dataset=dataset, user=annotator, prompt="Q?", response="A.")
    return example_update(example=example, user=annotator, expected_version=1, response="A better A.")


@pytest.fixture
def job(dataset, annotator):
    return Job.objects.create(kind="import", dataset=dataset, created_by=annotator, params={"filename": "f.jsonl"})


def pages(dataset, pair, job):
    return [
        reverse("dataset", args=[dataset.pk]),
        reverse("example", args=[pair.pk]),
        reverse("example-history", args=[pair.pk]),
        reverse("example-new", args=[dataset.pk]),
        reverse("dataset-import", args=[dataset.pk]),
        reverse("job", args=[job.pk]),
        reverse("workspace-members", args=[dataset.workspace_id]),
        reverse("dataset-new", args=[dataset.workspace_id]),
    ]


def actions(dataset, pair):
    selected = f"{pair.pk}:{pair.version}"
    return [
        (
            reverse("example", args=[pair.pk]),
            {"version": pair.version, "intent": "save", "prompt": "x", "response": "y"},
        ),
        (
            reverse("example", args=[pair.pk]),
            {"version": pair.version, "intent": "approve", "prompt": "Q?", "response": "A."},
        ),
        (reverse("example-restore", args=[pair.pk]), {"version": 1, "expected_version": pair.version}),
        (reverse("example-lease", args=[pair.pk]), {}),
        (reverse("dataset-bulk", args=[dataset.pk]), {"action": "delete", "selected": selected, "confirm": "1"}),
        (reverse("dataset-bulk", args=[dataset.pk]), {"action": "submit", "selected": selected}),
        (reverse("dataset-queue", args=[dataset.pk, "draft"]), {}),
        (reverse("dataset-queue", args=[dataset.pk, "review"]), {}),
        (reverse("example-new", args=[dataset.pk]), {"prompt": "New?", "response": "Yes.", "intent": "draft"}),
        (reverse("markdown-preview", args=[dataset.pk]), {"response": "**secret**"}),
        (reverse("token-counts", args=[dataset.pk]), {"prompt": "secret"}),
        (reverse("sides-diff", args=[dataset.pk]), {"response": "secret", "rejected": "other"}),
        (reverse("dataset-new", args=[dataset.workspace_id]), {"name": "Sneaky", "kind": "preference"}),
    ]


def test_outsiders_get_404_on_every_page_and_action(client, dataset, pair, job, outsider):
    client.force_login(outsider)
    for url in pages(dataset, pair, job):
        assert client.get(url).status_code == 404, url
    for url, data in actions(dataset, pair):
        assert client.post(url, data).status_code == 404, url
    pair.refresh_from_db()
    assert (pair.version, pair.response) == (2, "A better A.")
    assert Example.objects.count() == 1


def test_visitors_are_sent_to_log_in(client, dataset, pair, job):
    for url in pages(dataset, pair, job):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
    for url, data in actions(dataset, pair):
        assert client.post(url, data).status_code == 302, url
    assert Example.objects.get(pk=pair.pk).version == 2


def test_annotators_get_403_on_lead_actions_by_url(client, dataset, pair, annotator):
    client.force_login(annotator)
    selected = f"{pair.pk}:{pair.version}"
    lead_only = [
        (
            reverse("example", args=[pair.pk]),
            {"version": pair.version, "intent": "approve", "prompt": "Q?", "response": "A."},
        ),
        (
            reverse("example", args=[pair.pk]),
            {"version": pair.version, "intent": "reject", "comment": "no", "prompt": "Q?", "response": "A."},
        ),
        (reverse("dataset-bulk", args=[dataset.pk]), {"action": "approve", "selected": selected}),
        (reverse("dataset-bulk", args=[dataset.pk]), {"action": "reject", "selected": selected, "comment": "no"}),
        (reverse("dataset-bulk", args=[dataset.pk]), {"action": "delete", "selected": selected}),
        (reverse("dataset-bulk", args=[dataset.pk]), {"action": "delete", "selected": selected, "confirm": "1"}),
        (reverse("dataset-queue", args=[dataset.pk, "review"]), {}),
        (reverse("dataset-new", args=[dataset.workspace_id]), {"name": "Mine", "kind": "preference"}),
    ]
    for url, data in lead_only:
        response = client.post(url, data)
        assert response.status_code == 403, (url, data)
        assert "Your role does not allow this" in response.content.decode()
    pair.refresh_from_db()
    assert (pair.status, pair.version) == ("draft", 2)


def test_pages_answer_only_their_methods(client, dataset, pair, annotator):
    client.force_login(annotator)
    assert client.get(reverse("dataset-bulk", args=[dataset.pk])).status_code == 405
    assert client.get(reverse("dataset-queue", args=[dataset.pk, "draft"])).status_code == 405
    assert client.get(reverse("example-restore", args=[pair.pk])).status_code == 405
    assert client.post(reverse("dataset", args=[dataset.pk])).status_code == 405


def test_forms_need_the_csrf_token(dataset, pair, annotator):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(annotator)
    response = strict.post(reverse("example", args=[pair.pk]), {"version": 2, "intent": "save", "response": "x"})
    assert response.status_code == 403
    assert Example.objects.get(pk=pair.pk).response == "A better A."


INLINE = [
    (re.compile(r"<script(?![^>]*\ssrc=)[^>]*>", re.I), "an inline <script>"),
    (re.compile(r"\sstyle\s*=", re.I), "a style attribute"),
    (re.compile(r"\son[a-z]+\s*=", re.I), "an event-handler attribute"),
    (re.compile(r"<style", re.I), "a <style> element"),
    (re.compile(r"https?://(?!example\.com)[^\"'\s<]*\.(js|css)\b", re.I), "a script or stylesheet from elsewhere"),
]


def test_every_page_keeps_to_the_content_security_policy(client, dataset, pair, job, lead):
    ExampleFactory(dataset=dataset, status="submitted", tags=["t"])
    client.force_login(lead)
    stale = client.post(
        reverse("example", args=[pair.pk]), {"version": 1, "intent": "save", "prompt": "Q?", "response": "Mine."}
    )
    assert stale.status_code == 409
    responses = [client.get(url) for url in [reverse("home"), *pages(dataset, pair, job)]] + [stale]
    responses.append(
        client.post(reverse("dataset-bulk", args=[dataset.pk]), {"action": "delete", "selected": f"{pair.pk}:2"})
    )
    for response in responses:
        html = response.content.decode()
        assert "script-src 'self'" in response["Content-Security-Policy"]
        for pattern, what in INLINE:
            found = pattern.search(html)
            assert found is None, f"{what} in {response.request['PATH_INFO']}: {found.group(0) if found else ''}"
        assert 'src="/static/vendor/htmx.min.js"' in html
