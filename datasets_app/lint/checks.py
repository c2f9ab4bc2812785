"""Lint: what is wrong with a dataset's pairs, per pair (on every save) and across pairs (duplicates).

A problem is a dict {code, field, line, message, related}; `related` is the other pair's id for
duplicates, else None. Per-pair checks (this module) run on every write path; the whole-dataset report
(report.py) adds same-prompt duplicates and near duplicates within the training set and within the evaluation set
(MinHash over word shingles, confirmed by exact Jaccard), and training pairs whose prompt repeats or nearly repeats
an evaluation pair's (eval_overlap, overlap.py).
"""

import math
from dataclasses import dataclass

from django.conf import settings

from datasets_app.blueprints.specs import GuardrailSpec, MCQSpec, Spec, spec_or_none
from datasets_app.curation.content import normalize
from datasets_app.lint.placeholders import find_placeholders
from datasets_app.lint.tokens import count_tokens_upto
from datasets_app.lint.validators import FormatProblem, validate_guardrail, validate_mcq
from datasets_app.models import Example, ExampleStatus, Template, Workspace

CODES = (
    "blank", "missing_response", "placeholder", "too_long", "format", "guardrail", "duplicate", "near_duplicate",
    "eval_overlap", "blank_side", "same_sides",
)  # fmt: skip
TEMPLATE_CODES = ("format", "guardrail")  # what a dataset that requires valid pairs refuses to approve
CROSS_CODES = ("duplicate", "near_duplicate", "eval_overlap")  # found only by the whole-dataset report
DEFAULT_CONTEXT = 2048


def problem(code: str, message: str, *, field: str = "", line: int | None = None, related: int | None = None) -> dict:
    return {"code": code, "field": field, "line": line, "message": message, "related": related}


def describe(item: dict) -> str:
    """One problem as a sentence, e.g. `line 6: the answer E is not among the options A–D`."""
    return f"line {item['line']}: {item['message']}" if item.get("line") else item["message"]


@dataclass(frozen=True)
class LintRules:
    """What the per-pair checks need, worked out once for a dataset."""

    template_kind: str | None = None
    spec: Spec | None = None
    context: int = DEFAULT_CONTEXT
    model: str = ""
    preference: bool = False  # a preference dataset's pairs: both sides are checked


def lint_rules(*, workspace: Workspace, template: Template | None, preference: bool = False) -> LintRules:
    """The rules for a workspace's base model and a dataset's template (an unreadable spec checks nothing)."""
    model = workspace.default_base_model or settings.DEFAULT_BASE_MODEL
    context = settings.BASE_MODELS.get(model, {}).get("context", DEFAULT_CONTEXT)
    spec = spec_or_none(template.kind, template.spec) if template is not None else None
    return LintRules(
        template_kind=template.kind if template else None, spec=spec, context=context, model=model,
        preference=preference,
    )  # fmt: skip


def example_problems(example: Example, *, template: Template | None, rules: LintRules | None = None) -> list[dict]:
    """The per-pair problems of an example: blank, missing_response, placeholder, too_long, format, guardrail,
    and in a preference dataset blank_side and same_sides.

    Makes no queries when the example's dataset and workspace are loaded (or `rules` is given).
    """
    dataset = example.dataset
    rules = rules or lint_rules(workspace=dataset.workspace, template=template, preference=dataset.is_preference)
    return pair_problems(
        prompt=example.prompt, response=example.response, system_prompt=example.system_prompt,
        history=example.history, tags=example.tags, status=example.status, rules=rules, rejected=example.rejected,
    )  # fmt: skip


def example_relint(
    example: Example, *, template: Template | None, keep_cross: bool = False, rules: LintRules | None = None
) -> None:
    """Set an example's stored problems before it is saved; `keep_cross` keeps duplicate findings (text unchanged)."""
    found = example_problems(example, template=template, rules=rules)
    if keep_cross:
        found += [item for item in example.problems if item.get("code") in CROSS_CODES]
    example.problems, example.problem_count = found, len(found)


def pair_problems(
    *,
    prompt: str,
    response: str,
    system_prompt: str,
    history: list[dict[str, str]],
    tags: list[str],
    status: str,
    rules: LintRules,
    rejected: str = "",
) -> list[dict]:
    """A pair's own problems. In a preference dataset (`rules.preference`) each side (the chosen `response`, the
    `rejected` answer) is checked: blank, the same as the other, placeholders, too long with the prompt; the
    template's validator checks only the chosen side (the rejected one is meant to be the worse answer)."""
    found = _sides(prompt, response, rejected) if rules.preference else _blanks(prompt, response, status)
    context = {"system_prompt": system_prompt, "prompt": prompt}
    context.update({f"history[{n}]": turn.get("content", "") for n, turn in enumerate(history)})
    answers = {"response": response, "rejected": rejected} if rules.preference else {"response": response}
    for name, text in {**context, **answers}.items():
        found += _placeholders(name, text)
    for name, answer in answers.items():
        found += _too_long([*context.values(), answer], rules, field=name if rules.preference else "")
    if response.strip():
        found += _template_problems(response, tags, rules)
    return found


def _sides(prompt: str, chosen: str, rejected: str) -> list[dict]:
    """A preference pair's blanks: the prompt, then each side; and two sides that say the same."""
    found = [problem("blank", "the prompt is empty", field="prompt")] if not prompt.strip() else []
    for name, text, word in (("response", chosen, "chosen"), ("rejected", rejected, "rejected")):
        if not text.strip():
            found.append(problem("blank_side", f"the {word} answer is empty", field=name))
    if chosen.strip() and normalize(chosen) == normalize(rejected):
        message = "the chosen and the rejected answer are the same (case and spacing aside): nothing to prefer"
        found.append(problem("same_sides", message, field="rejected"))
    return found


def _blanks(prompt: str, response: str, status: str) -> list[dict]:
    found = []
    if not prompt.strip():
        found.append(problem("blank", "the prompt is empty", field="prompt"))
    if response.strip():
        return found
    if status == ExampleStatus.DRAFT:
        return [*found, problem("missing_response", "no response yet", field="response")]
    return [*found, problem("blank", "the response is empty", field="response")]


def _placeholders(name: str, text: str) -> list[dict]:
    return [
        problem("placeholder", f"leftover placeholder {found.text}", field=name, line=found.line)
        for found in find_placeholders(text)
    ]


def _too_long(texts: list[str], rules: LintRules, *, field: str = "") -> list[dict]:
    # A token is at least one byte, so only pairs longer than the context in bytes are counted, and only as
    # far as passing the context needs: a long text is never tokenized whole.
    if (
        sum(len(text) for text in texts) <= rules.context // 4
        or sum(len(text.encode()) for text in texts) <= rules.context
    ):
        return []
    texts = [text for text in texts if text]
    counted = count_tokens_upto(texts, limit=rules.context, model_name=rules.model)
    total, whole = counted if counted is not None else (math.ceil(sum(map(len, texts)) / 4), True)
    if total <= rules.context:
        return []
    about = "about " if counted is None else "" if whole else "at least "
    side = {"response": "the chosen answer: ", "rejected": "the rejected answer: "}.get(field, "")
    return [
        problem(
            "too_long",
            f"{side}{about}{total:,} tokens with the system prompt and earlier turns; "
            f"the base model's context is {rules.context:,}",
            field=field,
        )
    ]


def _template_problems(response: str, tags: list[str], rules: LintRules) -> list[dict]:
    found: list[FormatProblem] = []
    if rules.template_kind == "mcq" and isinstance(rules.spec, MCQSpec):
        found = validate_mcq(response, rules.spec)
        return [problem("format", item.message, field="response", line=item.line) for item in found]
    if any(tag.startswith(("blocked:", "allowed:")) for tag in tags):
        spec = rules.spec if isinstance(rules.spec, GuardrailSpec) else None
        found = validate_guardrail(response=response, tags=tags, spec=spec)
    return [problem("guardrail", item.message, field="response", line=item.line) for item in found]
