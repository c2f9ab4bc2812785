"""Round trips, format detection and the public API of datasets_app.formats (no Django needed)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from datasets_app.formats import (
    EXPORT_CONTENT_TYPES,
    EXPORT_EXTENSIONS,
    EXPORT_FORMATS,
    IMPORT_FORMATS,
    PREFERENCE_FORMATS,
    Problem,
    Record,
    UnknownFormat,
    detect_format,
    read_records,
    write_records,
)

TRICKY = [
    Record(
        prompt='Say "hi", then\nlist: a, b; c',
        response='Sure:\n- a\n- b\r\n"quoted", with commas, and a \\ backslash',
        system="You are terse.",
        history=[
            {"role": "user", "content": "First question, with a comma"},
            {"role": "assistant", "content": 'First "answer"\nover two lines'},
            {"role": "user", "content": "Second"},
            {"role": "assistant", "content": "Second answer"},
        ],
        tags=["greeting", "two words", "semi;colon", "ünïcode"],
    ),
    Record(prompt="翻译：你好 😀👩‍👩‍👧", response="مرحبا بالعالم — שלום", tags=["rtl"]),
    Record(prompt="  spaces kept  ", response="tab\there, nul-free, U+2028:\u2028end"),
    Record(prompt="long", response="word, " * 40_000),
]


def content(record: Record) -> tuple:
    """What a user sees of a record; positions aside."""
    return record.prompt, record.response, record.system, record.history, record.tags


def read(data: bytes, fmt: str | None = None) -> tuple[list[Record], list[Problem]]:
    items = list(read_records(io.BytesIO(data), fmt))
    return [i for i in items if isinstance(i, Record)], [i for i in items if isinstance(i, Problem)]


def export(records: list[Record], fmt: str) -> bytes:
    return b"".join(write_records(records, fmt))


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_every_export_format_reads_back_the_same_records(fmt):
    records, problems = read(export(TRICKY, fmt))

    assert problems == []
    assert [content(r) for r in records] == [content(r) for r in TRICKY]


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_every_export_is_detected_as_the_format_it_was_written_in(fmt):
    expected = "pairs" if fmt == "csv" else fmt

    assert detect_format(export(TRICKY[:2], fmt)[: 1 << 16]) == expected


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_a_first_record_bigger_than_the_detection_head_is_still_detected(fmt):
    huge_first = [Record(prompt="p", response="x" * 100_000), TRICKY[0]]
    data = export(huge_first, fmt)

    records, problems = read(data)

    assert problems == []
    assert [content(r) for r in records] == [content(r) for r in huge_first]


def test_exported_pairs_leave_out_empty_optional_keys():
    lines = export([Record(prompt="p", response="r"), TRICKY[0]], "pairs").decode().splitlines()

    assert json.loads(lines[0]) == {"prompt": "p", "response": "r"}
    assert set(json.loads(lines[1])) == {"prompt", "response", "system", "history", "tags"}


def test_exported_csv_has_the_documented_header_and_json_cells():
    text = export([TRICKY[1]], "csv").decode()

    assert text.startswith("prompt,response,system,tags,history\r\n")
    assert '"[""rtl""]"' in text


def test_exported_sharegpt_puts_the_system_prompt_in_a_first_system_turn():
    (item,) = json.loads(export([Record("q", "a", system="Be kind.", tags=["t"])], "sharegpt"))

    assert item == {
        "conversations": [
            {"from": "system", "value": "Be kind."},
            {"from": "human", "value": "q"},
            {"from": "gpt", "value": "a"},
        ],
        "tags": ["t"],
    }


def test_exported_alpaca_is_a_json_array_with_history_pairs():
    (item,) = json.loads(export([TRICKY[0]], "alpaca"))

    assert item["instruction"] == TRICKY[0].prompt
    assert item["input"] == ""
    assert item["history"] == [
        ["First question, with a comma", 'First "answer"\nover two lines'],
        ["Second", "Second answer"],
    ]


def test_alpaca_export_keeps_only_user_assistant_pairs_and_lifts_a_leading_system_turn():
    history = [
        {"role": "system", "content": "Old rules"},
        {"role": "user", "content": "u1"},
        {"role": "user", "content": "u2"},
        {"role": "assistant", "content": "a2"},
        {"role": "system", "content": "mid-conversation system"},
        {"role": "assistant", "content": "orphan answer"},
    ]

    records, _ = read(export([Record("q", "a", history=history)], "alpaca"))

    assert records[0].system == "Old rules"
    assert records[0].history == [
        {"role": "user", "content": "u2"},
        {"role": "assistant", "content": "a2"},
    ]


@pytest.mark.parametrize("fmt", ["sharegpt", "openai"])
def test_a_leading_system_turn_in_history_comes_back_as_the_system_prompt(fmt):
    record = Record("q", "a", history=[{"role": "system", "content": "rules"}])

    records, _ = read(export([record], fmt))

    assert (records[0].system, records[0].history) == ("rules", [])


def test_mid_conversation_system_turns_survive_openai():
    history = [
        {"role": "user", "content": "u"},
        {"role": "assistant", "content": "a"},
        {"role": "system", "content": "now answer in French"},
    ]

    records, _ = read(export([Record("q", "r", system="s", history=history)], "openai"))

    assert content(records[0]) == ("q", "r", "s", history, [])


def test_alpaca_input_is_joined_to_the_instruction_with_a_blank_line():
    data = (
        b'[{"instruction": "Translate", "input": "bonjour", "output": "hello"},'
        b' {"instruction": "", "input": "only input", "output": "ok"}]'
    )

    records, _ = read(data)

    assert [r.prompt for r in records] == ["Translate\n\nbonjour", "only input"]


def test_sharegpt_accepts_user_assistant_spellings_and_a_top_level_system():
    data = json.dumps(
        [
            {
                "system": "top",
                "conversations": [
                    {"from": "system", "value": "turn"},
                    {"from": "user", "value": "q1"},
                    {"from": "assistant", "value": "a1"},
                    {"from": "human", "value": "q2"},
                    {"from": "gpt", "value": "a2"},
                ],
            }
        ]
    ).encode()

    records, _ = read(data)

    assert records[0].system == "top"
    assert [t["role"] for t in records[0].history] == ["system", "user", "assistant"]
    assert (records[0].prompt, records[0].response) == ("q2", "a2")


WEIGHTED = Record(
    prompt="Sure?",
    response="Paris.",
    system="Be brief.",
    history=[
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Lyon?", "weight": 0},
        {"role": "user", "content": "Really?"},
        {"role": "assistant", "content": "Yes, Lyon.", "weight": 1},
        {"role": "user", "content": "Hm."},
        {"role": "assistant", "content": "Sorry."},
    ],
)


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_weights_of_earlier_answers_survive_every_format_but_alpaca(fmt):
    records, problems = read(export([WEIGHTED, *TRICKY[:2]], fmt))

    assert problems == []
    if fmt == "alpaca":  # alpaca has no place for a weight: dropped, as its docstring says
        unweighted = [{"role": turn["role"], "content": turn["content"]} for turn in WEIGHTED.history]
        assert records[0].history == unweighted
    else:
        assert records[0].history == WEIGHTED.history
    assert [content(r) for r in records[1:]] == [content(r) for r in TRICKY[:2]]


@pytest.mark.parametrize(("fmt", "key", "text", "assistant"), [("openai", "role", "content", "assistant"),
                                                              ("sharegpt", "from", "value", "gpt")])  # fmt: skip
def test_a_weighted_conversation_comes_back_exactly_as_it_was_written(fmt, key, text, assistant):
    spelled = {"system": "system", "user": "user" if fmt == "openai" else "human", "assistant": assistant}
    turns = [{key: spelled["system"], text: WEIGHTED.system}]
    turns += [{key: spelled[turn["role"]], text: turn["content"], **({"weight": turn["weight"]} if "weight" in turn else {})}
              for turn in WEIGHTED.history]  # fmt: skip
    turns += [{key: spelled["user"], text: "Sure?"}, {key: assistant, text: "Paris.", "weight": 1}]
    outer = "messages" if fmt == "openai" else "conversations"

    records, problems = read(json.dumps([{outer: turns}]).encode(), fmt)
    again, _ = read(export(records, fmt), fmt)

    assert problems == []
    assert [content(r) for r in records] == [content(r) for r in again] == [content(WEIGHTED)]
    # written back as read, but for the final turn's weight 1, which is what every response gets anyway
    (written,) = json.loads(export(records, "sharegpt")) if fmt == "sharegpt" else [json.loads(export(records, fmt))]
    assert written[outer] == [*turns[:-1], {key: assistant, text: "Paris."}]


def test_positions_are_line_numbers_for_jsonl_and_csv_and_numbers_for_arrays():
    jsonl = b'{"prompt": "a", "response": "b"}\n\n{"prompt": "c", "response": "d"}\n'
    csv_data = b'prompt,response\n"multi\nline",x\nc,d\n'
    array = b'[\n{"prompt": "a", "response": "b"},\n\n{"prompt": "c", "response": "d"}]'

    assert [r.position for r in read(jsonl)[0]] == [1, 3]
    assert [r.position for r in read(csv_data)[0]] == [2, 4]
    assert [r.position for r in read(array)[0]] == [1, 2]


def test_csv_tags_may_be_separated_by_semicolons_and_columns_in_any_order():
    data = b'ID,Response,Prompt,Tags\n7,r,p," alpha ; beta;"\n'

    records, problems = read(data)

    assert problems == []
    assert content(records[0]) == ("p", "r", "", [], ["alpha", "beta"])


@pytest.mark.parametrize("delimiter", [b";", b"\t"])
def test_csv_with_semicolons_or_tabs_between_fields_is_read(delimiter):
    data = delimiter.join([b"prompt", b"response"]) + b"\n" + delimiter.join([b"p, with comma", b"r"]) + b"\n"

    records, problems = read(data)

    assert problems == []
    assert (records[0].prompt, records[0].response) == ("p, with comma", "r")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b'{"prompt": "p", "response": "r"}\n', "pairs"),
        (b'[{"prompt": "p", "response": "r"}]', "pairs"),
        (b"prompt,response\np,r\n", "pairs"),
        (b"\xef\xbb\xbfid\tprompt\tresponse\n1\tp\tr\n", "pairs"),
        (b'{"instruction": "i", "input": "", "output": "o"}\n', "alpaca"),
        (b'  [\n  {"instruction": "i", "output": "o"}\n]', "alpaca"),
        (b'[{"conversations": [{"from": "human", "value": "q"}]}]', "sharegpt"),
        (b'{"conversations": []}\n', "sharegpt"),
        (b'{"messages": [{"role": "user", "content": "q"}]}\n', "openai"),
        (b'[{"messages": []}]', "openai"),
        (b'{"prompt": "p" "response": "r"}\n{"prompt": "p", "response": "r"}\n', "pairs"),
        (b"PAR1\x15\x04", "parquet"),
    ],
)
def test_detect_format_recognises_each_format_by_its_content(data, expected):
    assert detect_format(data) == expected


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b'{"question": "q", "answer": "a"}\n', "first record has keys question, answer"),
        (b"name,text\nx,y\n", "(found columns: name, text)"),
        (b"", "the file is empty"),
        (b"[]", "the JSON array is empty"),
        (b"[1, 2]", "the first record is not an object (got number)"),
        (b'{\n  "prompt": "p",\n  "response": "r"\n}\n', "the first line is not a whole JSON object"),
        (b"\x1f\x8b\x08\x00", "gzip"),
    ],
)
def test_detect_format_says_what_it_saw_when_it_cannot_tell(data, says):
    with pytest.raises(UnknownFormat, match="could not detect the format") as failure:
        detect_format(data, filename="upload.bin" if not data else "")

    assert says in str(failure.value)


def test_reading_undetectable_content_raises_unknown_format_at_call_time():
    with pytest.raises(UnknownFormat, match="keys a, b"):
        read_records(io.BytesIO(b'{"a": 1, "b": 2}\n'))


def test_unknown_format_names_are_refused_before_any_reading_or_writing():
    with pytest.raises(UnknownFormat, match="unknown import format 'yaml'"):
        read_records(io.BytesIO(b""), "yaml")
    with pytest.raises(UnknownFormat, match="unknown export format 'xml'"):
        write_records([], "xml")


def test_every_export_format_has_a_content_type_and_extension():
    every = {*EXPORT_FORMATS, *PREFERENCE_FORMATS}
    assert set(EXPORT_CONTENT_TYPES) == every == set(EXPORT_EXTENSIONS)
    assert set(IMPORT_FORMATS) <= set(EXPORT_FORMATS)
    assert EXPORT_EXTENSIONS["csv"] == "csv"


def test_problem_as_dict_names_its_position_by_unit():
    assert Problem(3, "line", "prompt", "is missing").as_dict() == {
        "line": 3,
        "field": "prompt",
        "message": "is missing",
    }
    assert Problem(2, "row", "", "x").as_dict() == {"row": 2, "field": "", "message": "x"}
    assert Problem(None, "file", "", "the file is empty").as_dict() == {"field": "", "message": "the file is empty"}
    assert str(Problem(4, "record", "tags[0]", "is blank")) == "record 4: tags[0] is blank"


def test_importing_formats_loads_neither_django_nor_pyarrow():
    code = (
        "import sys, datasets_app.formats;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('django', 'pyarrow')))"
    )
    root = Path(__file__).resolve().parents[3]

    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)

    assert result.stdout.strip() == "[]"
