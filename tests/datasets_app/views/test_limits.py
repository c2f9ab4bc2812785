"""Over-long text in the browser: the form says which field and by how much, beside it, and keeps what was
typed; nothing is saved. The preview and token counts do not spend time on text that cannot be saved."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from datasets_app.curation.services import example_create

pytestmark = pytest.mark.django_db

CAP = 100_000
OVER = f"at most {CAP} characters (got {CAP + 1})"


@pytest.fixture
def pair(dataset, annotator):
    return example_create(dataset=dataset, user=annotator, prompt="How do I whisk eggs?", response="With a fork.")


def _field_errors(page: str, field: str) -> str:
    start = page.index(f'id="e-{field}"')
    return page[start : page.index("</ul>", start)]


def test_the_editor_refuses_a_long_response_beside_the_field_and_keeps_the_text(client, pair, annotator):
    client.force_login(annotator)
    typed = "z" * (CAP + 1)

    response = client.post(
        reverse("example", args=[pair.pk]), {"version": 1, "intent": "save", "prompt": pair.prompt, "response": typed}
    )

    page = response.content.decode()
    assert response.status_code == 400
    assert OVER in _field_errors(page, "response")
    assert typed in page  # nothing typed is lost
    pair.refresh_from_db()
    assert (pair.response, pair.version) == ("With a fork.", 1)


def test_the_editor_names_a_long_earlier_turn(client, pair, annotator):
    client.force_login(annotator)
    data = {
        "version": 1, "intent": "save", "prompt": pair.prompt, "response": pair.response,
        "turn_role": ["user", "assistant"], "turn_content": ["Hi", "t" * (CAP + 1)],
    }  # fmt: skip

    response = client.post(reverse("example", args=[pair.pk]), data)

    assert response.status_code == 400
    assert f"Earlier turn 2: {OVER}" in response.content.decode()
    pair.refresh_from_db()
    assert pair.history == []


def test_the_new_pair_form_refuses_a_long_prompt_beside_the_field(client, dataset, annotator):
    client.force_login(annotator)

    response = client.post(
        reverse("example-new", args=[dataset.pk]), {"prompt": "p" * (CAP + 1), "response": "r", "intent": "draft"}
    )

    assert response.status_code == 400
    assert OVER in _field_errors(response.content.decode(), "prompt")
    assert not dataset.examples.exists()


def test_the_import_page_lists_the_line_and_field_over_the_cap(client, dataset, annotator):
    client.force_login(annotator)
    lines = [{"prompt": "fine", "response": "ok"}, {"prompt": "long", "response": "r" * (CAP + 1)}]
    upload = SimpleUploadedFile("long.jsonl", "\n".join(json.dumps(line) for line in lines).encode())

    response = client.post(reverse("dataset-import", args=[dataset.pk]), {"file": upload})

    page = response.content.decode()
    assert response.status_code == 400
    assert "line 2" in page
    assert "<code>response</code>" in page
    assert OVER in page
    assert not dataset.examples.exists()


def test_preview_and_token_counts_do_not_process_text_over_the_cap(client, dataset, annotator):
    client.force_login(annotator)
    long = "**bold** " * 20_000  # 180,000 characters

    preview = client.post(reverse("markdown-preview", args=[dataset.pk]), {"response": long}).content.decode()
    counts = client.post(reverse("token-counts", args=[dataset.pk]), {"response": long}).json()

    assert f"Too long to preview: at most {CAP} characters (got 180000)" in preview
    assert "<strong>" not in preview
    assert counts == {"exact": False, "counts": {"response": 45_000}, "total": 45_000}
