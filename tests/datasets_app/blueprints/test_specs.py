"""Template specs: parsed into frozen objects, every problem named by its field path, rendered consistently."""

import copy

import pytest

from datasets_app.blueprints.specs import MCQSpec, SpecError, default_spec, parse_spec

GUARDRAIL = {
    "system_prompt": "You are Acme Kitchen's assistant.",
    "refusal": "I'm sorry, but I can't help with {topic}. {redirect}",
    "blocked": [
        {
            "name": "medical-advice",
            "label": "medical advice",
            "description": "doses, diagnoses, treatments",
            "redirect": "Please talk to a doctor or pharmacist.",
            "seeds": ["What's the right dose of ibuprofen?"],
        },
        {"name": "legal-advice", "seeds": ["Can I sue my landlord?"]},
    ],
    "allowed": [{"name": "cooking", "seeds": ["How long should I boil an egg?"]}],
    "paraphrases": 0,
}


def problems_of(kind, data):
    with pytest.raises(SpecError) as raised:
        parse_spec(kind, data)
    return raised.value.problems


def changed(base, **fields):
    data = copy.deepcopy(base)
    data.update(fields)
    return data


@pytest.mark.parametrize("kind", ["guardrail", "mcq"])
def test_the_default_spec_parses_and_round_trips(kind):
    spec = parse_spec(kind, default_spec(kind))
    assert parse_spec(kind, spec.to_dict()) == spec
    assert spec.to_dict() == default_spec(kind)


def test_a_guardrail_spec_fills_labels_from_names_and_tags_topics():
    spec = parse_spec("guardrail", GUARDRAIL)
    legal = spec.topic("legal-advice")
    assert legal.label == "legal advice"
    assert [topic.tag for topic in spec.topics] == ["blocked:medical-advice", "blocked:legal-advice", "allowed:cooking"]
    assert parse_spec("guardrail", spec.to_dict()) == spec


def test_the_refusal_is_rendered_per_topic_without_a_double_space_for_a_blank_redirect():
    spec = parse_spec("guardrail", GUARDRAIL)
    assert spec.refusal_for("medical-advice") == (
        "I'm sorry, but I can't help with medical advice. Please talk to a doctor or pharmacist."
    )
    assert spec.refusal_for("legal-advice") == "I'm sorry, but I can't help with legal advice."


def test_guardrail_problems_name_their_fields():
    data = changed(
        GUARDRAIL,
        refusal="Sorry, no {subject}.",
        paraphrases=9,
        blocked=[
            {"name": "Medical Advice", "seeds": ["What dose?"]},
            {"name": "law", "seeds": ["  "]},
            {"name": "money", "seeds": ["what   DOSE?"]},
        ],
        allowed=[{"name": "law", "seeds": []}],
    )
    assert problems_of("guardrail", data) == [
        "refusal: unknown placeholder {subject}; use {topic}, {description}, {redirect}",
        "blocked[0].name: use lower-case letters, digits and hyphens, starting with a letter or digit",
        "blocked[1].seeds[0]: may not be blank",
        "blocked[2].seeds[0]: repeats blocked[0].seeds[0]",
        "allowed[0].name: 'law' is already the name of blocked[1]",
        "allowed[0].seeds: needs at least one seed prompt",
        "paraphrases: must be between 0 and 5",
    ]


def test_a_guardrail_spec_needs_a_refusal_and_a_blocked_topic():
    assert problems_of("guardrail", changed(GUARDRAIL, refusal=" ", blocked=[], extra=1)) == [
        "extra: unknown field",
        "refusal: may not be blank",
        "blocked: needs at least one topic to refuse",
    ]


def test_mcq_prompts_cover_every_topic_and_level():
    spec = parse_spec("mcq", changed(default_spec("mcq"), topics=["atoms", "cells"], levels=["easy", "hard"]))
    assert spec.prompts()[:2] == [
        ("Write one multiple-choice question about atoms at easy level.", "atoms", "easy"),
        ("Write one multiple-choice question about atoms at hard level.", "atoms", "hard"),
    ]
    assert len(spec.prompts()) == 4
    assert MCQSpec.tags("atoms", "easy") == ["topic:atoms", "level:easy"]


def test_mcq_prompts_without_levels_have_a_blank_level():
    spec = parse_spec("mcq", changed(default_spec("mcq"), prompt_pattern="Ask about {topic}.", levels=[]))
    assert spec.prompts() == [("Ask about photosynthesis.", "photosynthesis", "")]


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"options": 7}, "options: must be between 2 and 6"),
        ({"options": "four"}, "options: must be a whole number"),
        ({"label_style": "a-"}, "label_style: must be one of A), A., (a), 1."),
        ({"output": "yaml"}, 'output: must be "text" or "json"'),
        ({"prompt_pattern": "Ask at {level} level."}, "prompt_pattern: must contain {topic}"),
        ({"prompt_pattern": "Ask about {topic}."}, "prompt_pattern: must contain {level} since levels are given"),
        (
            {"levels": [], "prompt_pattern": "{topic} at {level}"},
            "prompt_pattern: uses {level} but no levels are given",
        ),
        ({"answer_line": "Answer: {letter}"}, "answer_line: unknown placeholder {letter}; use {label}"),
        ({"answer_line": "{label}"}, "answer_line: needs text around {label}, e.g. 'Answer: {label}'"),
        ({"topics": []}, "topics: needs at least one topic"),
        ({"topics": ["atoms", " Atoms "]}, "topics[1]: repeats topics[0]"),
        ({"explanation": "yes"}, "explanation: must be true or false"),
        ({"json_keys": {"question": "q", "answer": "q"}}, "json_keys.answer: 'q' is already the key of question"),
    ],
)
def test_mcq_problems_name_their_fields(fields, problem):
    assert problem in problems_of("mcq", changed(default_spec("mcq"), **fields))


@pytest.mark.parametrize(("style", "labels"), [("A)", "ABCD"), ("A.", "ABCD"), ("(a)", "abcd"), ("1.", "1234")])
def test_labels_follow_the_label_style(style, labels):
    assert MCQSpec(label_style=style).labels() == list(labels)


def test_an_unknown_kind_is_refused():
    assert problems_of("essay", {}) == ["kind: must be guardrail or mcq, not 'essay'"]
