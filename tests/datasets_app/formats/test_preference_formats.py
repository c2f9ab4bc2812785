"""Preference pairs in TRL's, OpenAI's and Parquet's preference formats: exact round trips, detection, problems by
line and field, and Hugging Face `datasets` reading what is exported (no Django needed)."""

from __future__ import annotations

import io
import json

import pytest

from datasets_app.formats import (
    PREFERENCE_FORMATS,
    Problem,
    Record,
    UnknownFormat,
    detect_format,
    read_records,
    write_records,
)
from openai_app.finetune_format import check_file

PAIRS = [
    Record(
        prompt='Say "hi", then\nlist: a, b; c',
        response="Hi! a, b and c.",
        system="You are terse.",
        history=[
            {"role": "user", "content": "First question, with a comma"},
            {"role": "assistant", "content": 'First "answer"\nover two lines'},
        ],
        tags=["greeting", "semi;colon", "ünïcode"],
        rejected="No.\r\nGo away.",
    ),
    Record(prompt="翻译：你好 😀", response="مرحبا — שלום", rejected="hello", tags=["rtl"]),
    Record(prompt="  spaces kept  ", response=" chosen ", rejected="\trejected\t"),
    Record(prompt="long", response="word, " * 20_000, rejected="short"),
]


def content(record: Record) -> tuple:
    """What a user sees of a preference record; positions aside."""
    return record.prompt, record.response, record.rejected, record.system, record.history, record.tags


def export(records: list[Record], fmt: str) -> bytes:
    return b"".join(write_records(records, fmt, preference=True))


def read(data: bytes, fmt: str | None = None) -> tuple[list[Record], list[str]]:
    items = list(read_records(io.BytesIO(data), fmt, preference=True))
    return [i for i in items if isinstance(i, Record)], [str(i) for i in items if isinstance(i, Problem)]


def jsonl(*values: object) -> bytes:
    return b"".join(json.dumps(value).encode() + b"\n" for value in values)


@pytest.mark.parametrize("fmt", PREFERENCE_FORMATS)
def test_every_preference_format_reads_back_the_same_pairs(fmt):
    data = export(PAIRS, fmt)
    records, problems = read(data)  # detected, as an upload without a format is
    assert problems == []
    assert [content(r) for r in records] == [content(r) for r in PAIRS]


@pytest.mark.parametrize("fmt", ["trl", "trl_chat", "openai_preference"])
def test_json_preference_files_are_detected_by_their_keys(fmt):
    assert detect_format(export(PAIRS[:1], fmt)) == fmt


def test_trl_string_form_keeps_system_history_and_tags_in_keys_of_their_own():
    line = json.loads(export(PAIRS[:1], "trl"))
    assert line["prompt"] == PAIRS[0].prompt
    assert (line["chosen"], line["rejected"]) == (PAIRS[0].response, PAIRS[0].rejected)
    assert (line["system"], line["history"], line["tags"]) == (PAIRS[0].system, PAIRS[0].history, PAIRS[0].tags)
    assert set(json.loads(export(PAIRS[2:3], "trl"))) == {"prompt", "chosen", "rejected"}


def test_trl_conversational_and_openai_forms_put_the_conversation_in_messages():
    chat = json.loads(export(PAIRS[:1], "trl_chat"))
    assert [m["role"] for m in chat["prompt"]] == ["system", "user", "assistant", "user"]
    assert chat["chosen"] == [{"role": "assistant", "content": PAIRS[0].response}]
    assert chat["rejected"] == [{"role": "assistant", "content": PAIRS[0].rejected}]
    openai = json.loads(export(PAIRS[:1], "openai_preference"))
    assert openai["input"]["messages"] == chat["prompt"]
    assert openai["preferred_output"] == chat["chosen"]
    assert openai["non_preferred_output"] == chat["rejected"]


def test_trls_implicit_prompt_is_read_from_two_whole_conversations():
    turns = [{"role": "user", "content": "Hi?"}]
    data = jsonl(
        {"chosen": [*turns, {"role": "assistant", "content": "Hello."}],
         "rejected": [*turns, {"role": "assistant", "content": "Go away."}]},
    )  # fmt: skip
    records, problems = read(data, "trl")
    assert problems == []
    assert content(records[0]) == ("Hi?", "Hello.", "Go away.", "", [], [])


def test_a_string_file_and_a_conversational_file_may_mix_forms_line_by_line():
    data = export(PAIRS[:1], "trl") + export(PAIRS[1:2], "trl_chat")
    records, problems = read(data, "trl")
    assert problems == []
    assert [content(r) for r in records] == [content(r) for r in PAIRS[:2]]


def test_malformed_trl_lines_name_their_line_and_field():
    user = [{"role": "user", "content": "Q?"}]
    data = jsonl(
        {"prompt": "Fine?", "chosen": "Yes.", "rejected": "No."},
        {"prompt": "No rejected", "chosen": "Yes."},
        {"prompt": "Blank", "chosen": "  ", "rejected": 3},
        {"prompt": user, "chosen": [{"role": "user", "content": "x"}], "rejected": [{"role": "assistant"}]},
        {"prompt": [{"role": "assistant", "content": "A"}], "chosen": [{"role": "assistant", "content": "x"}],
         "rejected": [{"role": "assistant", "content": "y"}]},
        {"prompt": "Mixed", "chosen": [{"role": "assistant", "content": "x"}], "rejected": "y"},
        {"chosen": [*user, {"role": "assistant", "content": "a"}],
         "rejected": [{"role": "user", "content": "Other?"}, {"role": "assistant", "content": "b"}]},
        {"prompt": user, "chosen": [{"role": "assistant", "content": "x"}] * 2,
         "rejected": [{"role": "assistant", "content": "y"}], "system": "Be nice."},
    )  # fmt: skip
    records, problems = read(data, "trl")
    assert [r.position for r in records] == [1]
    assert problems == [
        "line 2: rejected is missing",
        "line 3: chosen is blank",
        "line 3: rejected must be a string, got number",
        "line 4: chosen[0].role must be assistant, got user",
        "line 4: rejected[0].content is missing",
        "line 5: prompt must end with the user's turn (the prompt), but the last turn is the assistant's",
        "line 6: chosen is a list of messages, but the prompt is a string: give both as strings or both as messages",
        "line 7: rejected must have the same turns as chosen before its last one (TRL's implicit prompt)",
        "line 8: system is for the string form; with the prompt given as messages, put it in the prompt",
        "line 8: chosen must be a list of exactly one assistant message (got 2)",
    ]


def test_malformed_openai_preference_lines_name_their_line_and_field():
    good = json.loads(export(PAIRS[1:2], "openai_preference"))
    data = jsonl(
        good,
        {**good, "input": {"messages": []}},
        {**good, "preferred_output": [{"role": "assistant", "content": ""}]},
        {k: v for k, v in good.items() if k != "non_preferred_output"},
        {**good, "input": "Hi?"},
    )
    records, problems = read(data, "openai_preference")
    assert len(records) == 1
    assert problems == [
        "line 2: input.messages is empty",
        "line 3: preferred_output[0].content is blank",
        "line 4: non_preferred_output must be a list of exactly one assistant message (got missing)",
        "line 5: input must be an object, got string",
    ]


def test_openais_file_check_reads_preference_examples_with_the_same_reader():
    good = json.loads(export(PAIRS[1:2], "openai_preference"))
    checked = check_file(
        io.BytesIO(jsonl(good, {**good, "input": {"messages": [{"role": "assistant", "content": "x"}]}}))
    )
    assert checked.format == "preference"
    assert [str(problem) for problem in checked.problems] == [
        "line 2: input.messages must end with the user's turn (the prompt), but the last turn is the assistant's"
    ]


def test_parquet_problems_name_row_and_column_and_the_other_kind_is_named():
    rows, problems = read(export([Record(prompt="p", response="", rejected="r")], "parquet"))
    assert (rows, problems) == ([], ["row 1: chosen is blank"])
    plain = b"".join(write_records([Record(prompt="p", response="r")], "parquet"))
    rows, problems = read(plain)
    assert len(problems) == 1
    assert "has no chosen or rejected column" in problems[0]
    assert "it holds plain pairs" in problems[0]
    items = list(read_records(io.BytesIO(export(PAIRS[:1], "parquet")), "parquet"))
    assert [str(i) for i in items][0].endswith(
        "it holds preference pairs (chosen and rejected): import it into a preference dataset"
    )


def test_a_format_of_the_other_kind_is_refused_before_reading():
    with pytest.raises(UnknownFormat, match="the pairs format holds plain prompt/response pairs"):
        read_records(io.BytesIO(b'{"prompt": "a", "response": "b"}\n'), preference=True)
    with pytest.raises(UnknownFormat, match="the trl format holds preference pairs"):
        read_records(io.BytesIO(export(PAIRS[:1], "trl")))
    with pytest.raises(UnknownFormat, match="the trl_chat format holds preference pairs"):
        write_records(PAIRS, "trl_chat")
    with pytest.raises(UnknownFormat, match="the alpaca format holds plain"):
        write_records(PAIRS, "alpaca", preference=True)


@pytest.mark.parametrize(
    ("fmt", "columns"),
    [
        ("trl", {"prompt", "chosen", "rejected", "system", "history", "tags"}),
        ("trl_chat", {"prompt", "chosen", "rejected", "tags"}),
        ("openai_preference", {"input", "preferred_output", "non_preferred_output", "tags"}),
        ("parquet", {"prompt", "chosen", "rejected", "system", "history", "tags"}),
    ],
)
def test_hugging_face_datasets_reads_every_export_with_its_columns(fmt, columns, tmp_path):
    datasets = pytest.importorskip("datasets")
    path = tmp_path / f"pairs.{'parquet' if fmt == 'parquet' else 'jsonl'}"
    path.write_bytes(export(PAIRS, fmt))
    loaded = datasets.load_dataset(
        "parquet" if fmt == "parquet" else "json", data_files=str(path), split="train", cache_dir=str(tmp_path / "hf")
    )
    assert set(loaded.column_names) == columns
    assert len(loaded) == len(PAIRS)
    first = loaded[0]
    if fmt in ("trl", "parquet"):
        assert (first["prompt"], first["chosen"], first["rejected"]) == (
            PAIRS[0].prompt,
            PAIRS[0].response,
            PAIRS[0].rejected,
        )
    elif fmt == "trl_chat":
        assert first["chosen"] == [{"role": "assistant", "content": PAIRS[0].response}]
        assert first["prompt"][-1] == {"role": "user", "content": PAIRS[0].prompt}
    else:
        assert first["non_preferred_output"] == [{"role": "assistant", "content": PAIRS[0].rejected}]


def test_a_plain_file_with_an_input_column_is_still_read_as_pairs():
    assert detect_format(jsonl({"prompt": "Hi?", "response": "Hello.", "input": "extra"})) == "pairs"
