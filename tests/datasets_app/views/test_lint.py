"""Lint in the browser workspace: the dataset page's badge and filter, "Check dataset", the report with near
duplicates side by side, problems in the editor, a refused approval, and the dataset's checks (template, require_valid)."""

import re

import pytest
from django.urls import reverse

from datasets_app.blueprints.services import template_create
from datasets_app.curation.services import example_create
from datasets_app.models import Dataset, ExampleStatus, Job
from tests.datasets_app.lint.test_lint import KNEAD
from tests.datasets_app.views.test_access import INLINE
from tests.datasets_app.views.test_xss import SCRIPT, assert_inert
from tests.factories import UserFactory, runs_on

pytestmark = pytest.mark.django_db

MCQ = {
    "prompt_pattern": "Write one multiple-choice question about {topic}.",
    "topics": ["photosynthesis"],
    "options": 4,
    "label_style": "A)",
    "explanation": False,
}
VALID = "Question: What do plants make from light?\nA) Sugar\nB) Salt\nC) Iron\nD) Oil\nAnswer: A"
BROKEN = "Question: What do plants make from light?\nA) Sugar\nB) Salt\nC) Iron\nAnswer: E"


def row_ids(html):
    return [int(pk) for pk in re.findall(r'name="selected" value="(\d+):\d+"', html)]


@pytest.fixture
def pairs(dataset, annotator):
    fine = example_create(dataset=dataset, user=annotator, prompt="How do I zest a lemon?", response="Use a grater.")
    empty = example_create(dataset=dataset, user=annotator, prompt="What is a roux?", response="")
    leftover = example_create(dataset=dataset, user=annotator, prompt="Define {topic}.", response="A thing.")
    return {"fine": fine, "empty": empty, "leftover": leftover}


def test_the_dataset_page_counts_and_filters_pairs_with_problems(client, dataset, pairs, annotator):
    client.force_login(annotator)
    page = client.get(reverse("dataset", args=[dataset.pk])).content.decode()
    assert "2 pairs with problems" in page
    assert 'name="problems"' in page

    only = client.get(reverse("dataset", args=[dataset.pk]), {"problems": "1"}).content.decode()

    assert row_ids(only) == [pairs["empty"].pk, pairs["leftover"].pk]
    editor = client.get(reverse("example", args=[pairs["empty"].pk]), {"problems": "1"}).content.decode()
    assert f'href="{reverse("example", args=[pairs["leftover"].pk])}?problems=1"' in editor  # next: in the same list


def test_check_dataset_stores_findings_across_pairs_and_shows_the_report(client, dataset, annotator):
    first = example_create(dataset=dataset, user=annotator, prompt=KNEAD[0], response=KNEAD[1])
    second = example_create(dataset=dataset, user=annotator, prompt=KNEAD[0] + " Thanks!", response=KNEAD[1])
    client.force_login(annotator)
    assert "0 pairs with problems" in client.get(reverse("dataset", args=[dataset.pk])).content.decode()

    response = client.post(reverse("dataset-lint", args=[dataset.pk]), follow=True)

    page = response.content.decode()
    assert response.redirect_chain[-1][0] == reverse("dataset-lint", args=[dataset.pk])
    assert "Checked 2 pairs of Guardrails: 2 problems in 2 pairs." in page
    assert re.search(r"near_duplicate</code></td><td class=\"num\">2</td>", page)
    assert f'href="{reverse("example", args=[first.pk])}"' in page
    assert f'href="{reverse("example", args=[second.pk])}"' in page
    side_by_side = re.search(r"<div class=\"side-by-side\">.*?</div>\s*</div>", page, re.S).group(0)
    assert side_by_side.count(KNEAD[1]) == 2
    assert re.search(r"\d\d% similar", page)
    assert "2 pairs with problems" in client.get(reverse("dataset", args=[dataset.pk])).content.decode()
    assert "Every pair was last checked together 0\xa0minutes ago" in page


def test_the_report_says_when_the_dataset_was_never_checked_as_a_whole(client, dataset, pairs, annotator):
    client.force_login(annotator)

    page = client.get(reverse("dataset-lint", args=[dataset.pk])).content.decode()

    assert "has not been checked as a whole yet" in page
    assert re.search(r"placeholder</code></td><td class=\"num\">1</td>", page)  # stored when the pair was saved


def test_checking_a_large_dataset_opens_the_job_page_and_the_report_links_to_it(
    client, settings, dataset, pairs, annotator
):
    settings.LINT_SYNC_MAX = 2
    client.force_login(annotator)

    response = client.post(reverse("dataset-lint", args=[dataset.pk]))

    job = Job.objects.get(dataset=dataset, kind="lint")
    assert response["Location"] == reverse("job", args=[job.pk])
    job_page = client.get(response["Location"]).content.decode()
    assert f"Checking every pair of {dataset.name}" in job_page
    assert "A worker is checking every pair" in job_page
    report = client.get(reverse("dataset-lint", args=[dataset.pk])).content.decode()
    assert f'A check of every pair is queued: <a href="{reverse("job", args=[job.pk])}">' in report


def test_the_editor_lists_a_pairs_problems_and_a_save_refreshes_them(client, dataset, pairs, annotator):
    leftover = pairs["leftover"]
    client.force_login(annotator)
    page = client.get(reverse("example", args=[leftover.pk])).content.decode()
    assert "1 problem found in this pair" in page
    assert "leftover placeholder {topic}" in page
    assert "in <strong>prompt</strong>, line 1" in page

    saved = client.post(
        reverse("example", args=[leftover.pk]),
        {"version": leftover.version, "intent": "save", "prompt": "Define a roux.", "response": "Flour and fat."},
        follow=True,
    )

    assert "found in this pair" not in saved.content.decode()


def test_a_refused_approval_is_a_clear_message_not_an_error_page(client, workspace, lead):
    template = template_create(workspace=workspace, user=lead, name="Quiz", kind="mcq", spec=MCQ)
    quiz = Dataset.objects.create(workspace=workspace, name="Quiz", kind="mcq", template=template, require_valid=True)
    broken = example_create(dataset=quiz, user=lead, prompt="Ask about photosynthesis.", response=BROKEN)
    client.force_login(lead)

    response = client.post(
        reverse("example", args=[broken.pk]),
        {"version": broken.version, "intent": "approve", "prompt": broken.prompt, "response": BROKEN},
    )

    page = response.content.decode()
    assert response.status_code == 400
    assert "Nothing was saved" in page
    assert "can&#x27;t approve" in page
    broken.refresh_from_db()
    assert broken.status == ExampleStatus.DRAFT
    fixed = client.post(
        reverse("example", args=[broken.pk]),
        {"version": broken.version, "intent": "approve", "prompt": broken.prompt, "response": VALID},
    )
    assert fixed.status_code == 302
    broken.refresh_from_db()
    assert broken.status == ExampleStatus.APPROVED


def test_leads_choose_the_template_and_require_valid_pairs(client, dataset, workspace, lead, annotator):
    template = template_create(workspace=workspace, user=lead, name="Quiz", kind="mcq", spec=MCQ)
    url = reverse("dataset-settings", args=[dataset.pk])
    client.force_login(annotator)
    assert client.get(url).status_code == 403
    assert client.post(url, {"template": template.pk, "require_valid": "on"}).status_code == 403
    assert "Checks</a>" not in client.get(reverse("dataset", args=[dataset.pk])).content.decode()

    client.force_login(lead)
    assert "Quiz" in client.get(url).content.decode()
    response = client.post(url, {"template": template.pk, "require_valid": "on"})

    assert response["Location"] == reverse("dataset", args=[dataset.pk])
    dataset.refresh_from_db()
    assert (dataset.template, dataset.require_valid) == (template, True)
    page = client.get(reverse("dataset", args=[dataset.pk])).content.decode()
    assert "checked by the template" in page
    assert "must pass before approval" in page


def test_a_template_of_another_workspace_cannot_be_chosen(client, dataset, lead, outsider, other_workspace):
    theirs = template_create(workspace=other_workspace, user=outsider, name="Theirs", kind="mcq", spec=MCQ)
    client.force_login(lead)
    response = client.post(reverse("dataset-settings", args=[dataset.pk]), {"template": theirs.pk})
    assert response.status_code == 400
    dataset.refresh_from_db()
    assert dataset.template is None


def test_outsiders_get_404_on_lint_and_settings(client, dataset, pairs, outsider):
    client.force_login(outsider)
    for response in [
        client.get(reverse("dataset-lint", args=[dataset.pk])),
        client.post(reverse("dataset-lint", args=[dataset.pk])),
        client.get(reverse("dataset-settings", args=[dataset.pk])),
        client.post(reverse("dataset-settings", args=[dataset.pk]), {"require_valid": "on"}),
        client.post(reverse("dataset-delete", args=[dataset.pk])),
    ]:
        assert response.status_code == 404
    assert Dataset.objects.filter(pk=dataset.pk).exists()


def test_a_lead_deletes_a_dataset_from_its_settings_and_an_annotator_may_not(client, dataset, pairs, lead, annotator):
    url = reverse("dataset-delete", args=[dataset.pk])
    client.force_login(annotator)
    assert client.post(url).status_code == 403
    assert Dataset.objects.filter(pk=dataset.pk).exists()

    client.force_login(lead)
    assert f'action="{url}"' in client.get(reverse("dataset-settings", args=[dataset.pk])).content.decode()
    response = client.post(url, follow=True)

    assert response.redirect_chain == [(reverse("home"), 302)]
    assert "Deleted the dataset Guardrails with its pairs." in response.content.decode()
    assert not Dataset.objects.filter(pk=dataset.pk).exists()


def test_a_dataset_that_runs_were_trained_on_stays_and_the_page_says_why(client, dataset, pairs, lead):
    runs_on(dataset, "succeeded", "running")
    client.force_login(lead)

    response = client.post(reverse("dataset-delete", args=[dataset.pk]))

    assert response.status_code == 409
    assert (
        "Not deleted.</strong> This dataset is used by 2 fine-tuning runs, trained on its snapshots; "
        "it cannot be deleted while they exist." in response.content.decode()
    )
    assert Dataset.objects.get(pk=dataset.pk).examples.count() == len(pairs)


def test_the_admin_keeps_what_runs_use_too_and_lists_the_runs(client, dataset):
    runs_on(dataset, "succeeded")
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    for url in [
        reverse("admin:datasets_app_dataset_delete", args=[dataset.pk]),
        reverse("admin:datasets_app_workspace_delete", args=[dataset.workspace_id]),
    ]:
        response = client.post(url, {"post": "yes"})
        assert response.status_code == 200, url
        assert "protected related objects" in response.content.decode(), url
    assert Dataset.objects.filter(pk=dataset.pk).exists()


def test_the_report_shows_hostile_pairs_as_text(client, dataset, annotator):
    prompt = f"{SCRIPT} {KNEAD[0]}"
    example_create(dataset=dataset, user=annotator, prompt=prompt, response=KNEAD[1])
    example_create(dataset=dataset, user=annotator, prompt=f"{prompt} Thanks!", response=KNEAD[1])
    client.force_login(annotator)
    client.post(reverse("dataset-lint", args=[dataset.pk]))
    for url in [reverse("dataset-lint", args=[dataset.pk]), reverse("dataset", args=[dataset.pk])]:
        html = client.get(url).content.decode()
        assert_inert(html, url)
        for pattern, what in INLINE:
            assert pattern.search(html) is None, f"{what} in {url}"
