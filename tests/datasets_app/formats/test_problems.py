"""Bad input: each problem is reported where it is, and reading carries on past it."""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datasets_app.formats import IMPORT_FORMATS, Problem, Record, read_records, write_records

GOOD = b'{"prompt": "p", "response": "r"}'
NOT_A_WEIGHT = "must be 0 or 1 (0: context only, 1: trained on)"


def read(data: bytes, fmt: str | None = None) -> tuple[list[Record], list[Problem]]:
    items = list(read_records(io.BytesIO(data), fmt))
    return [i for i in items if isinstance(i, Record)], [i for i in items if isinstance(i, Problem)]


def jsonl(*lines: object) -> bytes:
    return b"\n".join(line if isinstance(line, bytes) else json.dumps(line).encode() for line in lines)


def between_good_lines(bad: object, fmt: str = "pairs", good: bytes = GOOD) -> tuple[list[int], list[tuple]]:
    """Read a bad line between two good ones: positions of the records, (line, field, message)."""
    records, problems = read(jsonl(good, bad, good), fmt)
    return [r.position for r in records], [(p.position, p.field, p.message) for p in problems]


def test_invalid_json_is_reported_with_its_column_and_the_lines_around_it_still_come_out():
    positions, problems = between_good_lines(b'{"prompt": "p" "response": "r"}')

    assert positions == [1, 3]
    assert problems == [(2, "", "invalid JSON: Expecting ',' delimiter (column 16)")]


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ({"response": "r"}, [("prompt", "is missing")]),
        ({"prompt": "  \n", "response": ""}, [("prompt", "is blank"), ("response", "is blank")]),
        ({"prompt": 42, "response": "r"}, [("prompt", "must be a string, got number")]),
        ({"prompt": "p", "response": None}, [("response", "is missing")]),
        ({"prompt": "p", "response": "r", "system": ["x"]}, [("system", "must be a string, got array")]),
        ({"prompt": "p", "response": "r", "tags": "a,b"}, [("tags", "must be a list of strings, got string")]),
        (
            {"prompt": "p", "response": "r", "tags": ["ok", 3, " "]},
            [("tags[1]", "must be a string, got number"), ("tags[2]", "is blank")],
        ),
        ({"prompt": "p", "response": "r", "history": {}}, [("history", "must be a list of turns, got object")]),
        (
            {"prompt": "p", "response": "r", "history": [{"role": "bot", "content": "c"}, "hi"]},
            [
                ("history[0].role", "unknown role 'bot' (expected system, user or assistant)"),
                ("history[1]", "must be an object with role and content, got string"),
            ],
        ),
        (
            {
                "prompt": "p",
                "response": "r",
                "history": [
                    {"role": "user", "content": "c", "weight": 1},
                    {"role": "assistant", "content": "c", "weight": 0.5},
                ],
            },
            [
                ("history[0].weight", "is only allowed on assistant turns"),
                ("history[1].weight", f"{NOT_A_WEIGHT}, got 0.5"),
            ],
        ),  # fmt: skip
        ({"prompt": "a\u0000b", "response": "r"}, [("prompt", "contains a NUL character")]),
        ([1, 2], [("", "must be an object, got array")]),
    ],
)
def test_pairs_field_problems_name_the_field_and_say_what_is_wrong(bad, expected):
    positions, problems = between_good_lines(bad)

    assert positions == [1, 3]
    assert problems == [(2, name, message) for name, message in expected]


def test_an_unpaired_surrogate_escape_is_refused_because_it_cannot_be_stored():
    _, problems = between_good_lines(b'{"prompt": "bad \\ud83d", "response": "fine \\ud83d\\ude00"}')

    assert problems == [(2, "prompt", "contains invalid Unicode (an unpaired surrogate)")]


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ({"input": "x", "output": "o"}, [("instruction", "is missing")]),
        ({"instruction": " ", "input": "", "output": "o"}, [("instruction", "is blank")]),
        ({"instruction": "i"}, [("output", "is missing")]),
        ({"instruction": "i", "input": 5, "output": "o"}, [("input", "must be a string, got number")]),
        (
            {"instruction": "i", "output": "o", "history": [["q"]]},
            [("history[0]", "must be a pair [instruction, response], got 1 items")],
        ),
        ({"instruction": "i", "output": "o", "history": [["q", ""]]}, [("history[0][1]", "is blank")]),
    ],
)
def test_alpaca_problems(bad, expected):
    positions, problems = between_good_lines(bad, "alpaca", good=b'{"instruction": "i", "output": "o"}')

    assert positions == [1, 3]
    assert problems == [(2, name, message) for name, message in expected]


def turns(*roles: str, key: str = "role", text: str = "content") -> list[dict[str, str]]:
    return [{key: role, text: f"{role} says"} for role in roles]


def weighted(messages: list[dict], index: int, weight: object) -> list[dict]:
    messages[index]["weight"] = weight
    return messages


def test_weights_on_earlier_answers_and_weight_1_on_the_response_are_read():
    messages = weighted(weighted(turns("user", "assistant", "user", "assistant"), 1, 0), 3, 1)

    records, problems = read(jsonl({"messages": messages}), "openai")

    assert problems == []
    assert records[0].history == [{"role": "user", "content": "user says"},
                                  {"role": "assistant", "content": "assistant says", "weight": 0}]  # fmt: skip


@pytest.mark.parametrize(
    ("messages", "field", "message"),
    [
        (turns("user", "bot"), "messages[1].role", "unknown role 'bot' (expected system, user or assistant)"),
        (turns("system", "user"), "messages", "has no assistant turn"),
        (
            turns("user", "assistant", "user"),
            "messages",
            "must end with the assistant's turn, but the last turn is the user's",
        ),
        (turns("system", "assistant"), "messages", "needs a user turn right before the final assistant turn"),
        (
            turns("user", "assistant", "assistant"),
            "messages",
            "needs a user turn right before the final assistant turn",
        ),
        ([], "messages", "is empty"),
        (weighted(turns("user", "assistant"), 0, 1), "messages[0].weight", "is only allowed on assistant turns"),
        (weighted(turns("user", "assistant"), 1, 2), "messages[1].weight", f"{NOT_A_WEIGHT}, got 2"),
        (weighted(turns("user", "assistant"), 1, "1"), "messages[1].weight", f'{NOT_A_WEIGHT}, got "1"'),
        (weighted(turns("user", "assistant"), 1, True), "messages[1].weight", f"{NOT_A_WEIGHT}, got true"),
        (weighted(turns("user", "assistant"), 1, None), "messages[1].weight", f"{NOT_A_WEIGHT}, got null"),
        (
            weighted(turns("user", "assistant", "user", "assistant"), 3, 0),
            "messages[3].weight",
            "is 0, but the final assistant turn is the pair's response, which is always trained on",
        ),
        ([{"role": "user"}, {"role": "assistant", "content": "a"}], "messages[0].content", "is missing"),
        ("hello", "messages", "must be a list of turns, got string"),
    ],
)
def test_openai_conversation_problems(messages, field, message):
    records, problems = read(jsonl({"messages": messages}, {"messages": turns("user", "assistant")}), "openai")

    assert [(p.position, p.unit, p.field, p.message) for p in problems] == [(1, "line", field, message)]
    assert [r.position for r in records] == [2]


def test_sharegpt_problems_use_sharegpt_role_names_and_record_numbers():
    data = json.dumps(
        [
            {"conversations": turns("human", "gpt", key="from", text="value")},
            {"conversations": turns("human", "bot", key="from", text="value")},
            {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": " "}]},
            {"conversations": turns("human", "gpt", key="from", text="value")},
            {"conversations": weighted(turns("human", "gpt", key="from", text="value"), 0, 1)},
            {"conversations": weighted(turns("human", "gpt", "human", "gpt", key="from", text="value"), 3, 0)},
            {"conversations": weighted(turns("human", "gpt", "human", "gpt", key="from", text="value"), 1, 0)},
        ],
        indent=1,
    ).encode()

    records, problems = read(data, "sharegpt")

    assert [r.position for r in records] == [1, 4, 7]
    assert records[2].history[1] == {"role": "assistant", "content": "gpt says", "weight": 0}
    assert [p.as_dict() for p in problems] == [
        {
            "record": 2,
            "field": "conversations[1].from",
            "message": "unknown role 'bot' (expected system, human or gpt)",
        },
        {"record": 3, "field": "conversations[1].value", "message": "is blank"},
        {"record": 5, "field": "conversations[0].weight", "message": "is only allowed on gpt turns"},
        {
            "record": 6,
            "field": "conversations[3].weight",
            "message": "is 0, but the final assistant turn is the pair's response, which is always trained on",
        },
    ]


def test_invalid_json_in_an_array_names_the_record_and_the_file_line_and_column():
    data = b"""[
  {"prompt": "a", "response": "b"},
  {"prompt": "c", "response": d},
  {"prompt": "e", "response": "f"}
]"""

    records, problems = read(data)

    assert [r.prompt for r in records] == ["a", "e"]
    assert [r.position for r in records] == [1, 3]
    assert problems == [Problem(2, "record", "", "invalid JSON: Expecting value (line 3, column 31)")]


def test_a_missing_comma_between_array_records_is_reported_and_reading_goes_on():
    data = b'[{"prompt": "a", "response": "b"} {"prompt": "c", "response": "d"}, {"prompt": "e", "response": "f"}]'

    records, problems = read(data)

    assert [r.prompt for r in records] == ["a", "e"]
    assert problems == [Problem(2, "record", "", "invalid JSON: Expecting ',' delimiter (line 1, column 35)")]


def test_a_truncated_array_keeps_the_records_before_the_cut():
    data = b'[{"prompt": "a", "response": "b"}, {"prompt": "c", "resp'

    records, problems = read(data)

    assert [r.prompt for r in records] == ["a"]
    assert [(p.position, p.unit) for p in problems] == [(2, "record")]
    assert problems[0].message.startswith("invalid JSON: ")


@pytest.mark.parametrize(
    ("data", "where"),
    [
        (GOOD + b"\n" + b'{"prompt": "caf\xe9", "response": "r"}\n' + GOOD, (2, "line")),
        (b"[" + GOOD + b',\n{"prompt": "caf\xe9", "response": "r"},\n' + GOOD + b"]", (2, "record")),
        (b'prompt,response\np,r\n"caf\xe9\nau lait",r\np,r\n', (3, "line")),
    ],
    ids=["jsonl", "array", "csv"],
)
def test_bytes_that_are_not_utf8_are_reported_on_their_line_or_record(data, where):
    records, problems = read(data)

    assert len(records) == 2
    assert [(p.position, p.unit) for p in problems] == [where]
    assert problems[0].message.startswith("is not valid UTF-8")


@pytest.mark.parametrize("data", [b"", b"  \n\n", b"\xef\xbb\xbf"])
def test_an_empty_file_is_one_file_problem(data):
    assert read(data) == ([], [Problem(None, "file", "", "the file is empty")])


@pytest.mark.parametrize("data", [b"[]", b"prompt,response\n", b"\n\n[\n]\n"])
def test_a_file_without_records_says_so(data):
    assert read(data, "pairs") == ([], [Problem(None, "file", "", "the file has no records")])


def test_blank_lines_in_jsonl_are_skipped_and_a_bom_is_tolerated():
    records, problems = read(b"\xef\xbb\xbf" + GOOD + b"\n\n   \r\n" + GOOD + b"\n\n")

    assert problems == []
    assert [r.position for r in records] == [1, 4]


def test_a_csv_header_without_prompt_and_response_names_the_columns_it_has():
    _, problems = read(b"question,answer\nq,a\n", "pairs")

    assert problems == [
        Problem(None, "file", "", "the CSV header needs prompt and response columns (found columns: question, answer)")
    ]


def test_csv_rows_with_the_wrong_number_of_fields_are_reported_and_others_read():
    data = b'prompt,response,system\np,r,s\np,r\np,r,s,extra\n"a, b",r,\n'

    records, problems = read(data)

    assert [r.position for r in records] == [2, 5]
    assert [p.as_dict() for p in problems] == [
        {"line": 3, "field": "", "message": "has 2 fields, expected 3 as in the header"},
        {"line": 4, "field": "", "message": "has 4 fields, expected 3 as in the header"},
    ]


def test_csv_cell_problems_name_the_column():
    data = b'prompt,response,history,tags\n,r,"[{""role"": ""user""",\n'

    _, problems = read(data)

    assert [(p.position, p.field) for p in problems] == [(2, "prompt"), (2, "history")]
    assert problems[1].message.startswith("invalid JSON: ")


def test_problems_keep_coming_after_the_first():
    lines = [GOOD if n % 3 == 0 else b'{"prompt": 1}' for n in range(300)]

    records, problems = read(b"\n".join(lines))

    assert len(records) == 100
    assert len(problems) == 400  # prompt wrong and response missing, on each of 200 lines
    assert problems[-1].position == 300


def test_deeply_nested_json_is_a_problem_not_a_crash():
    deep = b"[" * 100_000 + b"]" * 100_000

    _, line_problems = read(GOOD + b"\n" + deep, "pairs")
    _, array_problems = read(b"[" + GOOD + b"," + deep + b"]", "pairs")

    assert line_problems == [Problem(2, "line", "", "invalid JSON: nested too deeply")]
    assert array_problems == [Problem(2, "record", "", "invalid JSON: nested too deeply")]


def test_parquet_problems_are_about_the_whole_file():
    no_response = b"".join(write_records([Record("p", "r")], "parquet")).replace(b"response", b"answer00")

    assert read(no_response)[1][0].message.startswith("has no response column (found columns: prompt, answer00")
    assert read(b"PAR1 this is not really parquet")[1][0].message.startswith("is not a readable parquet file")
    assert read(b"PAR1 not parquet", "openai")[1] == [Problem(None, "file", "", "is a parquet file, not openai")]


@settings(max_examples=150, deadline=None, database=None)
@given(data=st.binary(max_size=300) | st.text('[]{},:"\\ \nprompt response\xe9\x00', max_size=120).map(str.encode))
def test_no_content_makes_reading_raise(data):
    for fmt in (*IMPORT_FORMATS, "csv"):
        for item in read_records(io.BytesIO(data), fmt):
            assert isinstance(item, Record | Problem)
