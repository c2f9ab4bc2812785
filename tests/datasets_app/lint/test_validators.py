"""Validators: an MCQ response in the template's format (text or JSON), and guardrail pairs that refuse or answer."""

import json

import pytest

from datasets_app.blueprints.specs import LABEL_STYLES, MCQSpec, default_spec, parse_spec
from datasets_app.lint.validators import validate_guardrail, validate_mcq

VALID = """Question: Which gas do plants take in for photosynthesis?
A) Oxygen
B) Carbon dioxide
C) Nitrogen
D) Hydrogen
Answer: B
Explanation: Plants absorb carbon dioxide through their leaves."""
GUARDRAIL = parse_spec("guardrail", default_spec("guardrail"))
REFUSAL = "I'm sorry, but I can't help with medical advice. Please talk to a doctor or pharmacist."


def messages(text, spec=None):
    return [str(problem) for problem in validate_mcq(text, spec)]


def test_a_question_in_the_demo_format_is_valid():
    assert messages(VALID) == []
    assert messages(VALID.replace("\n", "\n\n")) == []  # blank lines do not matter


@pytest.mark.parametrize("style", list(LABEL_STYLES))
@pytest.mark.parametrize("options", [2, 6])
def test_every_label_style_and_option_count_renders_valid_questions(style, options):
    spec = MCQSpec(label_style=style, options=options)
    text = spec.render("Which one?", [f"choice {n}" for n in range(options)], options - 1, "Because.")
    assert messages(text, spec) == []


def test_a_missing_option_is_named():
    assert messages(VALID.replace("D) Hydrogen\n", "")) == ["missing option D"]


def test_a_wrong_label_is_shown_with_its_line():
    text = VALID.replace("C) Nitrogen", "D) Hydrogen")
    assert messages(text) == [
        "line 4: expected option C) ..., got 'D) Hydrogen'",
        "line 5: the label D is used twice",
        "only 3 options; expected 4",
    ]


def test_a_label_in_another_style_is_shown():
    assert messages(VALID.replace("A) Oxygen", "A. Oxygen")) == ["line 2: expected option A) ..., got 'A. Oxygen'"]


def test_an_answer_that_is_not_an_option_is_named():
    assert messages(VALID.replace("Answer: B", "Answer: E")) == ["line 6: the answer E is not among the options A–D"]


def test_two_options_with_the_same_text_are_named():
    assert messages(VALID.replace("D) Hydrogen", "D) carbon  DIOXIDE")) == ["line 5: two options are the same: B and D"]


def test_extra_text_is_reported_where_it_is():
    text = VALID.replace("D) Hydrogen\n", "D) Hydrogen\nThink carefully!\n") + "\nGood luck."
    assert messages(text) == [
        "line 6: extra text before the answer: 'Think carefully!'",
        "line 9: extra text after the explanation: 'Good luck.'",
    ]


def test_a_missing_question_prefix_answer_and_explanation_are_reported():
    text = "Which gas?\nA) Oxygen\nB) Carbon dioxide\nC) Nitrogen\nD) Hydrogen"
    assert messages(text) == [
        "line 1: expected the question to start with 'Question:', got 'Which gas?'",
        "missing the answer line 'Answer: <label>'",
        "missing the explanation line 'Explanation: ...'",
    ]


def test_without_explanations_an_explanation_is_extra_text():
    spec = MCQSpec(explanation=False)
    assert messages(VALID.replace("through their leaves", ""), spec) == [
        "line 7: extra text after the answer: 'Explanation: Plants absorb carbon dioxide .'"
    ]


def test_the_answer_line_of_the_spec_is_used():
    spec = MCQSpec(label_style="(a)", answer_line="Correct: ({label})", explanation=False)
    text = spec.render("Which?", ["x", "y", "z", "w"], 2)
    assert text.splitlines()[-1] == "Correct: (c)"
    assert messages(text, spec) == []
    assert messages(text.replace("Correct: (c)", "Correct: (e)"), spec) == [
        "line 6: the answer e is not among the options a–d"
    ]


JSON_SPEC = MCQSpec(output="json")


def json_response(**changes):
    data = {"question": "Which gas?", "options": ["Oxygen", "CO2", "Nitrogen", "Hydrogen"], "answer": "B"}
    data["explanation"] = "Plants take in CO2."
    data.update(changes)
    return json.dumps({key: value for key, value in data.items() if value is not None}, indent=2)


def test_a_valid_json_question_passes():
    assert messages(json_response(), JSON_SPEC) == []
    assert messages(JSON_SPEC.render("Which?", ["a", "b", "c", "d"], 0, "e"), JSON_SPEC) == []


def test_invalid_json_is_reported_with_line_and_column():
    assert messages('{\n  "question": "Which?",\n  "options": [1,}', JSON_SPEC) == [
        "line 3: column 17: not valid JSON: Expecting value"
    ]


def test_json_keys_options_and_answer_are_checked():
    text = json_response(options=["Oxygen", "oxygen", "Nitrogen"], answer="E", explanation=None, hint="think")
    assert messages(text, JSON_SPEC) == [
        'missing key "explanation"',
        'unexpected key "hint"',
        '"options" has 3 items; expected 4',
        "two options are the same: A and B",
        "the answer E is not among the options A–D",
    ]


def test_json_that_is_not_an_object_is_reported():
    assert messages('["Which gas?"]', JSON_SPEC) == ["expected a JSON object, got list"]


def test_json_with_renamed_keys_and_no_explanation():
    spec = parse_spec(
        "mcq",
        {**default_spec("mcq"), "output": "json", "explanation": False, "label_style": "1.", "options": 2,
         "json_keys": {"question": "q", "options": "choices", "answer": "correct", "explanation": "why"}},
    )  # fmt: skip
    assert messages('{"q": "Yes?", "choices": ["yes", "no"], "correct": "1"}', spec) == []
    assert messages('{"q": "", "choices": ["yes", "no"], "correct": 1}', spec) == [
        '"q" must be non-empty text',
        "the answer 1 is not among the options 1–2",
    ]


def guardrail(response, *tags, spec=GUARDRAIL):
    return [str(problem) for problem in validate_guardrail(response=response, tags=list(tags), spec=spec)]


def test_a_blocked_pair_with_the_templates_refusal_passes():
    assert guardrail(REFUSAL, "blocked:medical-advice") == []
    assert guardrail(REFUSAL.upper().replace(" ", "  "), "blocked:medical-advice") == []


def test_a_blocked_pair_that_answers_is_reported():
    assert guardrail("Take 400 mg every six hours.", "blocked:medical-advice") == [
        "medical-advice is a blocked topic, but the response answers instead of refusing"
    ]


def test_a_refusal_in_other_words_shows_the_expected_text():
    assert guardrail("I'm sorry, but I can't help with that.", "blocked:medical-advice") == [
        f"the refusal differs from the template's; expected {REFUSAL!r}"
    ]


def test_an_allowed_pair_that_refuses_is_reported():
    assert guardrail("I'm sorry, but I can't help with cooking.", "allowed:cooking") == [
        "cooking is an allowed topic, but the response refuses"
    ]


def test_a_topic_the_template_does_not_have_is_reported():
    assert guardrail("Boil it for 7 minutes.", "allowed:baking", "topic:eggs") == [
        "the template has no topic 'baking' (tag allowed:baking)"
    ]
    assert guardrail(REFUSAL, "allowed:medical-advice") == [
        "tagged allowed:medical-advice, but the template lists 'medical-advice' as blocked"
    ]


def test_without_a_template_only_refusing_or_answering_is_checked():
    assert guardrail("I can't help with that.", "blocked:anything", spec=None) == []
    assert guardrail("Sure: buy gold.", "blocked:anything", spec=None) == [
        "anything is a blocked topic, but the response answers instead of refusing"
    ]


def test_an_empty_response_is_left_to_the_blank_check():
    assert guardrail("  ", "blocked:medical-advice") == []
