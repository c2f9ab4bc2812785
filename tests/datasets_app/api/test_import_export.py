"""Uploading and downloading datasets in the field's formats over the REST API."""

import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from datasets_app.curation.services import example_create
from datasets_app.models import Example
from tests.api_client import client_for
from tests.factories import DatasetFactory

pytestmark = pytest.mark.django_db

TRICKY = [
    {"prompt": "Plain question?", "response": "Plain answer.", "system_prompt": "", "history": [], "tags": []},
    {
        "prompt": 'And now, with "quotes", commas, and a\nnewline?',
        "response": "Ça marche — 你好 👋\nsecond line",
        "system_prompt": "You are terse.",
        "history": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
        "tags": ["blocked:medical", "level:easy"],
    },
    {"prompt": "Tagged only", "response": "Yes.", "system_prompt": "", "history": [], "tags": ["allowed:cooking"]},
]
FIELDS = ("prompt", "response", "system_prompt", "history", "tags")


def upload(api, dataset, name, content, **extra):
    data = {"file": SimpleUploadedFile(name, content), **extra}
    return api.post(f"/api/datasets/{dataset.pk}/import/", data, format="multipart")


def pairs_of(dataset):
    return [{name: getattr(e, name) for name in FIELDS} for e in dataset.examples.order_by("id")]


def jsonl(records):
    return "\n".join(json.dumps(record) for record in records).encode()


@pytest.mark.parametrize("fmt", ["pairs", "csv", "alpaca", "sharegpt", "openai", "parquet"])
def test_export_then_import_gives_back_the_same_pairs(fmt, dataset, annotator):
    for pair in TRICKY:
        example_create(dataset=dataset, user=annotator, **pair)
    api = client_for(annotator)
    response = api.get(f"/api/datasets/{dataset.pk}/export/?format={fmt}")
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith('attachment; filename="Guardrails.')
    content = b"".join(response.streaming_content)
    target = DatasetFactory(workspace=dataset.workspace, name=f"copy-{fmt}")
    result = upload(api, target, response["Content-Disposition"].split('"')[1], content)
    assert result.status_code == 201, result.json()
    assert result.json()["created"] == 3
    assert result.json()["format"] == ("pairs" if fmt == "csv" else fmt)
    assert pairs_of(target) == pairs_of(dataset)


def test_export_filters_by_status(dataset, annotator, lead):
    first = example_create(dataset=dataset, user=annotator, prompt="a?", response="b")
    example_create(dataset=dataset, user=annotator, prompt="c?", response="d")
    from datasets_app.curation.services import example_set_status

    example_set_status(
        example=example_set_status(example=first, user=annotator, action="submit"), user=lead, action="approve"
    )
    content = b"".join(
        client_for(annotator).get(f"/api/datasets/{dataset.pk}/export/?status=approved").streaming_content
    )
    assert [json.loads(line)["prompt"] for line in content.decode().splitlines()] == ["a?"]


def test_export_rejects_unknown_format_and_status(dataset, annotator):
    api = client_for(annotator)
    assert api.get(f"/api/datasets/{dataset.pk}/export/?format=xml").status_code == 400
    assert api.get(f"/api/datasets/{dataset.pk}/export/?format=").status_code == 400
    assert api.get(f"/api/datasets/{dataset.pk}/export/?status=great").status_code == 400


def test_a_name_with_no_letters_still_downloads_and_uploads(dataset, annotator):
    dataset.name = "!!!"
    dataset.save()
    api = client_for(annotator)
    example_create(dataset=dataset, user=annotator, prompt="a?", response="b")

    exported = api.get(f"/api/datasets/{dataset.pk}/export/")
    imported = upload(api, DatasetFactory(workspace=dataset.workspace), "???", b"".join(exported.streaming_content))

    assert exported["Content-Disposition"] == 'attachment; filename="dataset.jsonl"'
    assert imported.status_code == 201, imported.content


@pytest.mark.parametrize(
    ("name", "content", "fmt"),
    [
        ("a.jsonl", jsonl([{"prompt": "p", "response": "r", "tags": ["t"]}]), "pairs"),
        ("a.csv", b"prompt,response\nHow?,Like this.\n", "pairs"),
        ("a.json", json.dumps([{"instruction": "Add", "input": "2 and 2", "output": "4"}]).encode(), "alpaca"),
        (
            "a.json",
            json.dumps(
                [{"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]}]
            ).encode(),
            "sharegpt",
        ),
        (
            "a.jsonl",
            jsonl([{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]}]),
            "openai",
        ),
    ],
)
def test_format_is_detected_from_content(name, content, fmt, dataset, annotator):
    response = upload(client_for(annotator), dataset, name, content)
    assert response.status_code == 201, response.json()
    assert response.json() == {"created": 1, "skipped_duplicates": 0, "format": fmt}


def test_alpaca_input_is_joined_to_the_instruction(dataset, annotator):
    upload(
        client_for(annotator),
        dataset,
        "a.json",
        json.dumps([{"instruction": "Add these", "input": "2 and 2", "output": "4"}]).encode(),
    )
    assert dataset.examples.get().prompt == "Add these\n\n2 and 2"


def test_sharegpt_earlier_turns_become_history(dataset, annotator):
    record = {"conversations": [
        {"from": "system", "value": "Be brief."}, {"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"},
        {"from": "human", "value": "Boil an egg?"}, {"from": "gpt", "value": "Nine minutes."},
    ]}  # fmt: skip
    upload(client_for(annotator), dataset, "chat.json", json.dumps([record]).encode())
    example = dataset.examples.get()
    assert (example.system_prompt, example.prompt, example.response) == ("Be brief.", "Boil an egg?", "Nine minutes.")
    assert example.history == [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    assert example.source == "import:chat.json"


def test_an_openai_file_with_weights_imports_exports_and_imports_again_exactly(dataset, annotator):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Lyon?", "weight": 0},
        {"role": "user", "content": "Sure?"},
        {"role": "assistant", "content": "Paris, sorry.", "weight": 1},
        {"role": "user", "content": "Thanks."},
        {"role": "assistant", "content": "You're welcome."},
    ]
    api = client_for(annotator)

    assert upload(api, dataset, "chat.jsonl", jsonl([{"messages": messages}])).status_code == 201
    exported = b"".join(api.get(f"/api/datasets/{dataset.pk}/export/?format=openai").streaming_content)
    again = DatasetFactory(workspace=dataset.workspace, name="again")
    assert upload(api, again, "again.jsonl", exported).status_code == 201

    assert dataset.examples.get().history == messages[1:5]
    assert json.loads(exported) == {"messages": messages}
    assert pairs_of(again) == pairs_of(dataset)
    assert again.examples.get().content_hash == dataset.examples.get().content_hash


def test_a_bad_weight_rejects_the_file_naming_line_and_message(dataset, annotator):
    final_weight_0 = {
        "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo", "weight": 0}]
    }
    on_user = {"messages": [{"role": "user", "content": "Hi", "weight": 1}, {"role": "assistant", "content": "Yo"}]}

    response = upload(client_for(annotator), dataset, "chat.jsonl", jsonl([final_weight_0, on_user]), format="openai")

    assert response.status_code == 400
    assert [(p["line"], p["field"]) for p in response.json()["problems"]] == [
        (1, "messages[1].weight"), (2, "messages[0].weight"),
    ]  # fmt: skip
    assert "always trained on" in response.json()["problems"][0]["message"]
    assert dataset.examples.count() == 0


def test_duplicates_are_skipped_by_default_and_kept_on_request(dataset, annotator):
    api = client_for(annotator)
    content = jsonl(
        [{"prompt": "p", "response": "r"}, {"prompt": " P ", "response": "r"}, {"prompt": "q", "response": "s"}]
    )
    assert upload(api, dataset, "a.jsonl", content).json() == {"created": 2, "skipped_duplicates": 1, "format": "pairs"}
    assert upload(api, dataset, "a.jsonl", content).json()["skipped_duplicates"] == 3
    assert upload(api, dataset, "a.jsonl", content, on_duplicate="keep").json()["created"] == 3
    assert dataset.examples.count() == 5


BAD_FILES = [
    ("invalid JSON", "a.jsonl", b'{"prompt": "ok", "response": "fine"}\n{"prompt": "broken",\n', {"line": 2}),
    (
        "missing response",
        "a.jsonl",
        jsonl([{"prompt": "ok", "response": "fine"}, {"prompt": "no answer"}]),
        {"line": 2, "field": "response"},
    ),
    ("blank prompt", "a.jsonl", jsonl([{"prompt": "   ", "response": "fine"}]), {"line": 1, "field": "prompt"}),
    ("wrong type", "a.jsonl", jsonl([{"prompt": 42, "response": "fine"}]), {"line": 1, "field": "prompt"}),
    (
        "tags not a list",
        "a.jsonl",
        jsonl([{"prompt": "p", "response": "r", "tags": "x"}]),
        {"line": 1, "field": "tags"},
    ),
    (
        "unknown role",
        "a.jsonl",
        jsonl([{"messages": [{"role": "bot", "content": "hi"}, {"role": "assistant", "content": "yo"}]}]),
        {"line": 1},
    ),
    (
        "no assistant turn",
        "a.json",
        json.dumps([{"conversations": [{"from": "human", "value": "Hi"}]}]).encode(),
        {"record": 1},
    ),
    ("csv without header", "a.csv", b"question,answer\nHow?,So.\n", {}),
    (
        "not UTF-8",
        "a.jsonl",
        b'{"prompt": "ok", "response": "fine"}\n{"prompt": "caf\xe9", "response": "x"}\n',
        {"line": 2},
    ),
    ("empty file", "a.jsonl", b"", {}),
    ("whitespace only", "a.jsonl", b"  \n\n ", {}),
    ("garbage", "a.bin", b"\x00\x01\x02 not a dataset", {}),
]


@pytest.mark.parametrize(("case", "name", "content", "where"), BAD_FILES, ids=[case[0] for case in BAD_FILES])
def test_bad_file_is_rejected_whole_with_the_problem_named(case, name, content, where, dataset, annotator):
    example_create(dataset=dataset, user=annotator, prompt="existing", response="kept")
    response = upload(client_for(annotator), dataset, name, content)
    assert response.status_code == 400, response.json()
    body = response.json()
    assert body["problems"], body
    first = body["problems"][0]
    assert first["message"]
    for key, value in where.items():
        assert first[key] == value, first
    assert list(dataset.examples.values_list("prompt", flat=True)) == ["existing"]


def test_problems_are_listed_up_to_one_hundred(dataset, annotator):
    content = jsonl([{"prompt": "p", "response": ""} for _ in range(150)])
    body = upload(client_for(annotator), dataset, "a.jsonl", content).json()
    assert len(body["problems"]) == 100
    assert "or more" in body["detail"]
    assert dataset.examples.count() == 0


def test_a_valid_head_does_not_save_a_file_with_a_bad_tail(dataset, annotator):
    records = [{"prompt": f"p{n}", "response": "r"} for n in range(12_000)] + [{"prompt": "bad"}]
    response = upload(client_for(annotator), dataset, "a.jsonl", jsonl(records))
    assert response.status_code == 400
    assert response.json()["problems"][0]["line"] == 12_001
    assert dataset.examples.count() == 0


def test_file_over_the_limit_gets_413(dataset, annotator, settings):
    settings.IMPORT_MAX_BYTES = 1000
    response = upload(client_for(annotator), dataset, "a.jsonl", jsonl([{"prompt": "p" * 2000, "response": "r"}]))
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]
    assert dataset.examples.count() == 0


def test_explicit_format_that_does_not_fit_is_a_clear_400(dataset, annotator):
    response = upload(
        client_for(annotator), dataset, "a.jsonl", jsonl([{"prompt": "p", "response": "r"}]), format="sharegpt"
    )
    assert response.status_code == 400
    assert response.json()["problems"][0]["message"]


def test_approved_import_needs_the_lead_role(dataset, annotator, lead):
    content = jsonl([{"prompt": "p", "response": "r"}])
    assert upload(client_for(annotator), dataset, "a.jsonl", content, status="approved").status_code == 403
    assert upload(client_for(lead), dataset, "a.jsonl", content, status="approved").status_code == 201
    assert Example.objects.get().status == "approved"


def test_outsider_cannot_import(dataset, outsider):
    assert (
        upload(client_for(outsider), dataset, "a.jsonl", jsonl([{"prompt": "p", "response": "r"}])).status_code == 404
    )
    assert dataset.examples.count() == 0


def test_parquet_without_prompt_column_is_rejected(dataset, annotator):
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(pa.table({"question": ["q"], "answer": ["a"]}), sink)
    response = upload(client_for(annotator), dataset, "a.parquet", sink.getvalue())
    assert response.status_code == 400
    assert "prompt" in json.dumps(response.json()["problems"])
