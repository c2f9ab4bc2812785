"""User text is shown as text on every page: HTML, script, event handlers, javascript: links and template syntax."""

import re

import pytest
from django.urls import reverse

from datasets_app.curation.services import example_create, example_set_status, example_update

pytestmark = pytest.mark.django_db

SCRIPT = "<script>window.__xss=1</script>"
IMG = '<img src=x onerror="window.__xss=1">'
JS_LINK = '[click me](javascript:window.__xss=1) <a href="javascript:window.__xss=1">raw link</a>'
TEMPLATE = "{{ request.user.password }}{% csrf_token %}"
PAYLOAD = f"{SCRIPT} {IMG} {JS_LINK} {TEMPLATE}"


def assert_inert(html: str, where: str) -> None:
    """Nothing of the payload survives as markup; what the user typed is there, escaped."""
    assert "<script>window.__xss" not in html, where
    assert "<img" not in html.lower(), where
    assert not re.search(r"""<a\s[^>]*href\s*=\s*["']?\s*javascript:""", html, re.I), where
    assert not re.search(r"<a [^>]*>raw link", html), where
    assert "pbkdf2" not in html, where  # template syntax in data is never evaluated


@pytest.fixture
def hostile(dataset, annotator, lead, workspace):
    workspace.name = f"Acme {SCRIPT}"
    workspace.save()
    dataset.description = PAYLOAD
    dataset.guidelines = f"## Rules\n\n{PAYLOAD}"
    dataset.save()
    example = example_create(
        dataset=dataset,
        user=annotator,
        system_prompt=IMG,
        prompt=f"Prompt {PAYLOAD}",
        response=f"Response {PAYLOAD}",
        history=[{"role": "user", "content": f"Earlier {PAYLOAD}"}],
        tags=[SCRIPT, "ok"],
    )
    example = example_update(example=example, user=annotator, expected_version=1, response=f"Edited {PAYLOAD}")
    example_set_status(example=example, user=annotator, action="submit")
    return example_set_status(example=example, user=lead, action="reject", comment=f"Fix {PAYLOAD}")


def test_list_editor_history_and_home_show_the_payload_as_text(client, dataset, hostile, lead):
    client.force_login(lead)
    for name, url in [
        ("home", reverse("home")),
        ("list", reverse("dataset", args=[dataset.pk])),
        ("search", reverse("dataset", args=[dataset.pk]) + "?q=xss&tag=" + SCRIPT),
        ("editor", reverse("example", args=[hostile.pk])),
        ("history", reverse("example-history", args=[hostile.pk])),
    ]:
        html = client.get(url).content.decode()
        assert_inert(html, name)
        if name != "home":
            assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in html, name
    editor = client.get(reverse("example", args=[hostile.pk])).content.decode()
    assert "{{ request.user.password }}{% csrf_token %}" in editor  # shown literally, in the textarea


def test_conflict_page_shows_both_hostile_versions_as_text(client, dataset, hostile, annotator):
    client.force_login(annotator)
    response = client.post(
        reverse("example", args=[hostile.pk]),
        {"version": 1, "intent": "save", "prompt": f"Mine {PAYLOAD}", "response": f"My response {IMG}", "tags": SCRIPT},
    )
    assert response.status_code == 409
    html = response.content.decode()
    assert_inert(html, "conflict")
    assert "Mine &lt;script&gt;" in html


def test_markdown_preview_of_a_hostile_response_is_sanitized(client, dataset, annotator):
    client.force_login(annotator)
    html = client.post(reverse("markdown-preview", args=[dataset.pk]), {"response": PAYLOAD}).content.decode()
    assert_inert(html, "preview")
    assert "click me" in html  # the link text stays, without the javascript: target
    assert "{{ request.user.password }}" in html


def test_refused_forms_echo_the_payload_as_text(client, dataset, annotator):
    client.force_login(annotator)
    response = client.post(
        reverse("example-new", args=[dataset.pk]), {"prompt": PAYLOAD, "response": "", "intent": "submit"}
    )
    assert response.status_code == 400
    assert_inert(response.content.decode(), "new pair")


def test_bulk_confirmation_shows_hostile_prompts_as_text(client, dataset, hostile, lead):
    client.force_login(lead)
    html = client.post(
        reverse("dataset-bulk", args=[dataset.pk]), {"action": "delete", "selected": f"{hostile.pk}:{hostile.version}"}
    ).content.decode()
    assert "Delete 1 pair?" in html
    assert_inert(html, "bulk confirm")


def test_import_problems_show_hostile_file_content_as_text(client, dataset, annotator):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client.force_login(annotator)
    bad = SimpleUploadedFile("x.jsonl", f'{{"prompt": "{SCRIPT}"}}\n'.encode())
    html = client.post(reverse("dataset-import", args=[dataset.pk]), {"file": bad}).content.decode()
    assert "nothing was imported" in html
    assert_inert(html, "import problems")
