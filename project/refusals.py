"""Telling a refusal ("I'm sorry, but I can't help with that.") from an answer.

Pure Python: the lint, the validators and the training metrics all use it.
"""

import re
import unicodedata

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'", "\u00b4": "'"})
_NEGATION = (
    r"(?:can't|cant|cannot|can not|won't|wont|will not|shouldn't|should not|must not|"
    r"(?:'m|am) (?:not able|unable|not allowed|not permitted|not going) to)"
)
_VERB = (
    r"(?:help|assist|provide|answer|give|offer|share|discuss|comply|fulfil|fulfill|support|"
    r"recommend(?!(?: \w+){1,3} enough)|advise|diagnose|engage|respond|predict|suggest|pick|choose|"
    r"do that|do this|tell you)"
)
_REFUSALS = [
    # "I can't help", "I'm unable to provide", "I won't be able to assist"
    rf"\bi\s*{_NEGATION}\s+(?:\w+\s+){{0,3}}?{_VERB}\b",
    # "I don't provide", "I do not give" (no filler words: "I don't think ..." is not a refusal)
    rf"\bi\s*(?:don't|dont|do not)\s+{_VERB}\b",
    r"\bi\s*(?:must|have to|need to|'ll have to|will have to)\s+(?:\w+\s+)?(?:decline|refuse)\b",
    r"\b(?:i'm|im|i am)\s+(?:so\s+|very\s+|really\s+|truly\s+)?sorry,?\s+but\b",
    r"\bi\s+apologi[sz]e,?\s+but\b",
    r"\b(?:unable|not able) to (?:help|assist|provide|answer|comply|fulfil|fulfill|support)\b",
    r"\b(?:can't|cannot|can not) (?:help|assist) (?:you )?with (?:that|this|your)\b",
    r"\bnot something i can (?:help|assist)\b",
]
_REFUSAL = re.compile("|".join(f"(?:{p})" for p in _REFUSALS))


def fold(text: str) -> str:
    """NFKC, one apostrophe style, lower case, single spaces."""
    text = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES).lower()
    return " ".join(text.split())


def is_refusal(text: str) -> bool:
    """Whether an answer declines the request ("I'm sorry, but I can't help with that.").

    Case, apostrophe style (' or ’) and spacing do not matter; sympathy ("I'm sorry to hear
    that") and praise ("I can't recommend it enough") are not refusals.
    """
    return bool(_REFUSAL.search(fold(text)))
