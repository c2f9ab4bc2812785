"""Over-long text through the REST API: a clear 400 naming the field, and nothing written, on every path
(one pair, a list, an edit, an import in any format)."""

import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from datasets_app.curation.services import example_create
from tests.api_client import client_for

pytestmark = pytest.mark.django_db

CAP = 100_000
OVER = f"at most {CAP} characters (got {CAP + 1})"


def test_one_pair_with_a_long_response_gets_400_naming_the_field(dataset, annotator):
    response = client_for(annotator).post(
        f"/api/datasets/{dataset.pk}/examples/", {"prompt": "q", "response": "x" * 250_000}, format="json"
    )

    assert response.status_code == 400
    assert response.json() == {"response": [f"at most {CAP} characters (got 250000)"]}
    assert not dataset.examples.exists()


def test_a_ten_megabyte_prompt_is_refused_by_its_length_alone(dataset, annotator):
    prompt = "word " * 1_980_000  # 9.9 MB: under the request body limit, far over the field's

    response = client_for(annotator).post(
        f"/api/datasets/{dataset.pk}/examples/", {"prompt": prompt, "response": "r"}, format="json"
    )

    assert response.status_code == 400
    assert response.json() == {"prompt": [f"at most {CAP} characters (got 9900000)"]}
    assert not dataset.examples.exists()


def test_an_earlier_turn_over_the_cap_is_named_by_its_place(dataset, annotator):
    history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "a" * (CAP + 1)}]

    response = client_for(annotator).post(
        f"/api/datasets/{dataset.pk}/examples/", {"prompt": "q", "response": "r", "history": history}, format="json"
    )

    assert response.status_code == 400
    assert response.json() == {"history": {"1": {"content": [OVER]}}}


def test_a_list_with_one_long_pair_creates_none_and_names_the_record(dataset, annotator):
    items = [{"prompt": "a", "response": "b"}, {"prompt": "c", "response": "d" * (CAP + 1)}, {"prompt": "e"}]

    response = client_for(annotator).post(f"/api/datasets/{dataset.pk}/examples/", items, format="json")

    assert response.status_code == 400
    assert response.json()["problems"] == [{"record": 2, "field": "response", "message": OVER}]
    assert not dataset.examples.exists()


def test_an_edit_over_the_cap_gets_400_and_changes_nothing(dataset, annotator):
    example = example_create(dataset=dataset, user=annotator, prompt="q?", response="short")

    response = client_for(annotator).patch(
        f"/api/examples/{example.pk}/", {"response": "y" * (CAP + 1)}, format="json", HTTP_IF_MATCH='"1"'
    )

    assert response.status_code == 400
    assert response.json() == {"response": [OVER]}
    example.refresh_from_db()
    assert (example.response, example.version) == ("short", 1)


def test_a_long_review_comment_gets_400(dataset, annotator, lead):
    example = example_create(dataset=dataset, user=annotator, prompt="q?", response="r", status="submitted")

    response = client_for(lead).post(
        f"/api/examples/{example.pk}/status/", {"action": "reject", "comment": "c" * 5001}, format="json"
    )

    assert response.status_code == 400
    assert response.json() == {"comment": ["at most 5000 characters (got 5001)"]}


# --- imports


def _import(api, dataset, name, content):
    data = {"file": SimpleUploadedFile(name, content)}
    return api.post(f"/api/datasets/{dataset.pk}/import/", data, format="multipart")


def test_a_jsonl_import_with_one_long_response_names_its_line_and_field_and_imports_nothing(dataset, annotator):
    lines = [{"prompt": f"q{n}", "response": "fine"} for n in range(6)]
    lines[4]["response"] = "z" * (CAP + 1)
    content = "\n".join(json.dumps(line) for line in lines).encode()

    response = _import(client_for(annotator), dataset, "pairs.jsonl", content)

    assert response.status_code == 400
    assert response.json()["problems"] == [{"line": 5, "field": "response", "message": OVER}]
    assert not dataset.examples.exists()


def test_a_csv_import_with_a_long_prompt_names_its_line_and_field_and_imports_nothing(dataset, annotator):
    content = f"prompt,response\nq1,fine\n{'p' * (CAP + 1)},fine\nq3,fine\n".encode()

    response = _import(client_for(annotator), dataset, "pairs.csv", content)

    assert response.status_code == 400
    assert response.json()["problems"] == [{"line": 3, "field": "prompt", "message": OVER}]
    assert not dataset.examples.exists()


def test_a_line_far_over_the_caps_is_refused_unread_naming_its_field(dataset, annotator, settings):
    settings.PAIR_TOTAL_MAX_CHARS = 1000  # a record in the file may then be about 1.1 MB
    content = b'{"prompt": "q", "response": "ok"}\n{"prompt": "q2", "response": "' + b"w" * (3 << 20) + b'"}\n'

    response = _import(client_for(annotator), dataset, "pairs.jsonl", content)

    assert response.status_code == 400
    (problem,) = response.json()["problems"]
    assert (problem["line"], problem["field"]) == (2, "response")
    assert problem["message"].startswith("is over the limit: the record is larger than 1.1 MB")
    assert not dataset.examples.exists()


def test_a_parquet_bomb_is_refused_naming_the_row_and_column(dataset, annotator):
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(pa.table({"prompt": ["hi"], "response": ["a" * 60_000_000]}), sink, compression="zstd")

    response = _import(client_for(annotator), dataset, "bomb.parquet", sink.getvalue())

    assert response.status_code == 400
    (problem,) = response.json()["problems"]
    assert (problem["row"], problem["field"]) == (1, "response")
    assert "decompresses to 60000004 bytes" in problem["message"]
    assert not dataset.examples.exists()
