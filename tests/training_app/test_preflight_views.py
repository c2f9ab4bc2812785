"""The New run page's Check step: the preflight fragment and a pair's coloured tokens, for leads only."""

import html
import re

import pytest
from django.urls import reverse

from datasets_app.curation.services import example_create
from datasets_app.models import ExampleStatus
from tests.factories import DatasetFactory
from tests.training_app.conftest import TINY
from tests.training_app.test_preflight import LONG_RESPONSE
from tests.training_app.test_views import form_data
from training_app.models import DatasetVersion, TrainingRun

pytestmark = pytest.mark.django_db

SCRIPT = "<script>alert(1)</script>"
HTMX = {"HTTP_HX_REQUEST": "true"}


def check(client, dataset, **overrides):
    response = client.post(reverse("training-run-check"), form_data(dataset, max_seq_len=128, **overrides), **HTMX)
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def test_the_new_run_page_has_a_check_step_before_start(client, lead, guardrail_dataset):
    client.force_login(lead)

    content = client.get(reverse("training-run-new")).content.decode()

    assert f'hx-post="{reverse("training-run-check")}"' in content
    assert content.index('id="check-run"') < content.index("Start run")
    assert 'id="preflight"' in content


def test_check_shows_totals_warnings_estimate_and_the_longest_pairs(client, lead, guardrail_dataset, tiny_source):
    long = example_create(
        dataset=guardrail_dataset,
        user=lead,
        status=ExampleStatus.APPROVED,
        prompt="Sponge cake?",
        response=LONG_RESPONSE,
    )
    client.force_login(lead)

    content = check(client, guardrail_dataset)

    assert re.search(r'data-total="pairs">13<', content)
    assert re.search(r'data-total="truncated">1<', content)
    assert 'data-basis="default"' in content
    assert 'data-code="too_few_pairs"' in content
    assert 'data-code="truncated"' in content
    rows = re.findall(r'<tr data-example="(\d+)"', content)
    assert len(rows) == 13
    assert rows[0] == str(long.pk)  # the longest first
    assert "cut from" in content
    assert f"example={long.pk}" in html.unescape(content)
    assert not DatasetVersion.objects.exists()
    assert not TrainingRun.objects.exists()


def test_check_lists_the_forms_problems_instead(client, lead, guardrail_dataset):
    client.force_login(lead)

    content = html.unescape(check(client, guardrail_dataset, epochs=0, lora_target_modules="q-proj!"))

    assert "Fix these before checking" in content
    assert "Epochs: must be between 1 and 100" in content
    assert "LoRA target modules: must be module names" in content
    assert "data-total" not in content


def test_a_pairs_tokens_are_coloured_and_its_text_escaped(client, lead, guardrail_dataset, tiny_source):
    pair = example_create(
        dataset=guardrail_dataset, user=lead, status=ExampleStatus.APPROVED, prompt=f"Why {SCRIPT}?",
        response="Because " + "it rises. " * 60,
    )  # fmt: skip
    client.force_login(lead)
    url = reverse("training-run-check-pair") + f"?example={pair.pk}&base_model={TINY}&max_seq_len=64"

    content = client.get(url, **HTMX).content.decode()

    assert SCRIPT not in content
    assert "&lt;" in content
    kinds = re.findall(r'<span class="tok tok-(\w+)">', content)
    assert {"trained", "masked", "cut"} <= set(kinds)
    assert kinds.count("trained") + kinds.count("masked") == 64 + 2  # and the legend shows one of each
    spans = re.findall(r'<span class="tok tok-\w+">(.*?)</span>', content, re.S)[3:]
    assert html.unescape("".join(spans)).count(f"Why {SCRIPT}?") == 1


def test_annotators_get_403_and_outsiders_see_nothing_of_ours(
    client, annotator, outsider, other_workspace, guardrail_dataset
):
    example = guardrail_dataset.examples.first()
    pair_url = reverse("training-run-check-pair") + f"?example={example.pk}&base_model={TINY}"
    client.force_login(annotator)
    assert client.post(reverse("training-run-check"), form_data(guardrail_dataset), **HTMX).status_code == 403
    assert client.get(pair_url, **HTMX).status_code == 403

    DatasetFactory(workspace=other_workspace, name="Theirs")
    client.force_login(outsider)  # a lead elsewhere
    assert client.get(pair_url, **HTMX).status_code == 404
    content = html.unescape(check(client, guardrail_dataset))
    assert "Select a valid choice" in content
    assert example.prompt not in content
