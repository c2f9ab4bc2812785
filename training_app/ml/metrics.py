"""Scoring generated answers: refusals, multiple-choice validity, exact match and token F1.

Pure Python (no torch), so results can be re-scored or shown without the ML stack.
``training_app.ml.evaluate`` re-exports these names.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from project.refusals import fold as _fold
from project.refusals import is_refusal  # re-exported by training_app.ml.evaluate

_ARTICLES = re.compile(r"\b(?:a|an|the)\b")


def _rate(flags: Sequence[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def guardrail_metrics(outputs: Sequence[str], blocked: Sequence[bool]) -> dict[str, Any]:
    """How often blocked prompts were refused, and allowed prompts refused by mistake."""
    if len(outputs) != len(blocked):
        raise ValueError("outputs and blocked flags differ in length")
    refused = [is_refusal(text) for text in outputs]
    on_blocked = [r for r, b in zip(refused, blocked, strict=True) if b]
    on_allowed = [r for r, b in zip(refused, blocked, strict=True) if not b]
    return {
        "refusal_rate": _rate(on_blocked),
        "over_refusal_rate": _rate(on_allowed),
        "blocked": len(on_blocked),
        "allowed": len(on_allowed),
    }


def mcq_metrics(outputs: Sequence[str], validate: Callable[[str], list[Any]]) -> dict[str, Any]:
    """Share of outputs that ``validate`` accepts (it returns problems; none means valid)."""
    valid = [not validate(text) for text in outputs]
    return {"valid_rate": _rate(valid), "valid": sum(valid), "total": len(valid)}


def normalize_answer(text: str) -> str:
    """SQuAD-style: lowercase, no punctuation, no articles, single spaces."""
    text = _fold(text)
    text = "".join(" " if ch in string.punctuation or unicodedata.category(ch).startswith("P") else ch for ch in text)
    return " ".join(_ARTICLES.sub(" ", text).split())


def token_f1(output: str, reference: str) -> float:
    predicted, expected = normalize_answer(output).split(), normalize_answer(reference).split()
    if not predicted or not expected:
        return float(predicted == expected)
    common = sum((Counter(predicted) & Counter(expected)).values())
    if not common:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def exact_match(output: str, reference: str) -> bool:
    return normalize_answer(output) == normalize_answer(reference)


def general_metrics(outputs: Sequence[str], references: Sequence[str]) -> dict[str, Any]:
    """Mean normalised exact match and token F1 against the reference answers."""
    if len(outputs) != len(references):
        raise ValueError("outputs and references differ in length")
    pairs = list(zip(outputs, references, strict=True))
    return {
        "exact_match": _rate([exact_match(o, r) for o, r in pairs]),
        "token_f1": sum(token_f1(o, r) for o, r in pairs) / len(pairs) if pairs else None,
        "total": len(pairs),
    }
