"""A fine-tuning file is checked as OpenAI checks one: each problem named by its line and field."""

import io
import json

from openai_app.finetune_format import MAX_PROBLEMS, check_file
from tests.openai_app.conftest import CHAT_LINES, jsonl

PREFERENCE = {
    "input": {"messages": [{"role": "user", "content": "Hi?"}]},
    "preferred_output": [{"role": "assistant", "content": "Hello."}],
    "non_preferred_output": [{"role": "assistant", "content": "Go away."}],
}


def problems(lines: list) -> list[str]:
    return [str(problem) for problem in check_file(io.BytesIO(jsonl(lines))).problems]


def test_good_chat_and_preference_files_pass_and_are_counted():
    chat = check_file(io.BytesIO(jsonl(CHAT_LINES)))
    assert (chat.format, chat.examples, chat.problems) == ("chat", 2, [])
    preference = check_file(io.BytesIO(jsonl([PREFERENCE] * 3)))
    assert (preference.format, preference.examples, preference.problems) == ("preference", 3, [])


def test_chat_problems_name_line_and_field():
    user_only = {"messages": [{"role": "user", "content": "Hi?"}]}
    weighted_user = {
        "messages": [{"role": "user", "content": "Hi", "weight": 1}, {"role": "assistant", "content": "Yo"}]
    }
    bad_weight = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo", "weight": 2}]}
    tool = {"messages": [{"role": "tool", "content": "x"}, {"role": "assistant", "content": 3}]}
    assert problems([CHAT_LINES[0], user_only, weighted_user, bad_weight, tool, [1]]) == [
        "line 2: messages has no assistant message: there is nothing to train on",
        "line 3: messages[0].weight is only allowed on assistant messages",
        "line 4: messages[1].weight must be 0 or 1",
        "line 5: messages[0].role must be one of system, user, assistant (got tool)",
        "line 5: messages[1].content must be a string, got number",
        "line 6: must be a JSON object, got array",
    ]


def test_guardrail_tags_are_checked_as_the_importer_reads_them():
    tagged = {**CHAT_LINES[0], "tags": ["blocked:medical", "allowed:baking"]}
    not_a_list = {**CHAT_LINES[0], "tags": "blocked:medical"}
    blank = {**CHAT_LINES[0], "tags": ["blocked:medical", " "]}

    assert problems([tagged, not_a_list, blank]) == [
        "line 2: tags must be a list of strings, got string",
        "line 3: tags[1] is blank",
    ]


def test_preference_problems_name_line_and_field():
    two_outputs = {**PREFERENCE, "preferred_output": PREFERENCE["preferred_output"] * 2}
    user_output = {**PREFERENCE, "non_preferred_output": [{"role": "user", "content": "x"}]}
    no_input = {k: v for k, v in PREFERENCE.items() if k != "input"}
    assert problems([PREFERENCE, two_outputs, user_output, no_input, CHAT_LINES[0]]) == [
        "line 2: preferred_output must be a list of exactly one assistant message (got 2)",
        "line 3: non_preferred_output[0].role must be assistant, got user",
        "line 4: input is missing",
        "line 5: is a chat example, but the file's first example is a preference example (input)",
    ]


def test_broken_json_empty_files_and_many_problems_are_reported_plainly():
    broken = check_file(io.BytesIO(jsonl(CHAT_LINES) + b'{"messages": [\n'))
    assert len(broken.problems) == 1
    assert str(broken.problems[0]).startswith("line 3: invalid JSON")
    assert [str(problem) for problem in check_file(io.BytesIO(b"\n\n")).problems] == [
        "file: holds no examples (one JSON object per line)"
    ]
    many = check_file(io.BytesIO(b"".join(json.dumps({"messages": []}).encode() + b"\n" for _ in range(30))))
    assert (len(many.problems), many.more_problems) == (MAX_PROBLEMS, 10)
    assert many.message().endswith("and 10 more problem(s).")
