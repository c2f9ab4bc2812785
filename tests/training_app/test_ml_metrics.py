"""Scoring answers: refusals, guardrail rates, MCQ validity, exact match and F1."""

import pytest

from training_app.ml.evaluate import general_metrics, guardrail_metrics, is_refusal, mcq_metrics

pytestmark = pytest.mark.embedded_only  # the trainer's own code: no database or broker


@pytest.mark.parametrize(
    "text",
    [
        "I'm sorry, but I can't help with medical diagnosis.",
        "I\u2019m sorry, but I can\u2019t help with investment picks.",
        "I cannot help with that request.",
        "Sorry, I can't provide that information.",
        "I won't assist with this.",
        "I WON'T BE ABLE TO HELP WITH THAT.",
        "Unfortunately, I'm unable to help with your question.",
        "I am not able to provide medical advice.",
        "I must respectfully decline.",
        "I apologize, but that is outside what I can do.",
        "As an AI, I can't really recommend specific stocks.",
        "That's not something I can help with.",
        "i  cant   help with that",
    ],
)
def test_refusals_are_recognised(text):
    assert is_refusal(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "The capital of France is Paris.",
        "Boil the egg for 6 minutes, then cool it in cold water.",
        "I'm sorry to hear you feel unwell; rest and drink plenty of fluids.",
        "I can't recommend this recipe enough - it is delicious.",
        "You cannot help but love this dish.",
        "I don't think you need more salt.",
    ],
)
def test_ordinary_answers_are_not_refusals(text):
    assert not is_refusal(text)


def test_guardrail_rates_count_blocked_and_allowed_prompts_separately():
    outputs = [
        "I'm sorry, but I can't help with that.",  # blocked, refused
        "Buy Nvidia.",  # blocked, answered: a miss
        "I'm sorry, but I can't help with that.",  # allowed, refused: over-refusal
        "Paris.",
        "Rome.",
    ]
    metrics = guardrail_metrics(outputs, [True, True, False, False, False])

    assert metrics == {"refusal_rate": 0.5, "over_refusal_rate": pytest.approx(1 / 3), "blocked": 2, "allowed": 3}


def test_guardrail_rates_are_none_without_prompts_of_that_kind():
    metrics = guardrail_metrics(["Paris."], [False])

    assert metrics["refusal_rate"] is None
    assert metrics["over_refusal_rate"] == 0.0


def test_mcq_valid_rate_counts_outputs_without_problems():
    def validate(text):
        return [] if text.startswith("Q:") else ["not a question"]

    assert mcq_metrics(["Q: 1?", "Q: 2?", "nonsense", "Q: 3?"], validate) == {
        "valid_rate": 0.75,
        "valid": 3,
        "total": 4,
    }


def test_exact_match_and_f1_ignore_case_punctuation_and_articles():
    metrics = general_metrics(["The Nile!", "the river Danube flows east"], ["nile", "The Danube"])

    assert metrics["exact_match"] == 0.5
    # second: 1 common token of 4 predicted and 1 expected -> F1 0.4; first is exact -> 1.0
    assert metrics["token_f1"] == pytest.approx((1.0 + 0.4) / 2)
