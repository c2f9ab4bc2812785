"""The preflight's warnings: what a lead should know before training on these pairs.

To add one: gather what it needs in ``Facts.observe`` (called once for every pair of the run, in snapshot order,
before any sampling) or from the fields the report fills in, write a function ``Facts -> list[PreflightWarning]``, and
append it to ``CHECKS``. Each warning has a stable ``code`` for clients and a plain ``message`` for people.
"""

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from datasets_app.curation.content import normalize
from datasets_app.models import DatasetKind
from training_app.snapshots import SnapshotRow

TRAIN, VALIDATION, EVAL = "train", "validation", "eval"
MIN_TRAIN_PAIRS = 20  # fewer rarely teach a model anything it keeps (the demo's guardrail set has 32)
IMBALANCE_RATIO = 4  # a guardrail set with four times more of one side than the other tips the model that way


@dataclass(frozen=True)
class PreflightWarning:
    code: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass
class Facts:
    """What the checks look at, about every pair of the run (a sampled report still sees them all here)."""

    kind: str
    max_seq_len: int
    pairs: Counter = field(default_factory=Counter)  # by split
    blocked: Counter = field(default_factory=Counter)  # guardrail pairs on a blocked topic, by split
    answers_by_prompt: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    eval_overlap: int = 0  # training pairs whose prompt repeats an evaluation pair's
    truncated: int = 0  # filled in by the report once it has tokenized (an estimate when it sampled)
    sampled: bool = False

    @property
    def training_pairs(self) -> int:
        return self.pairs[TRAIN] + self.pairs[VALIDATION]

    def observe(self, row: SnapshotRow) -> None:
        self.pairs[row.split] += 1
        if row.split == EVAL:
            return
        if row.blocked:
            self.blocked[row.split] += 1
        if row.prompt.strip():
            self.answers_by_prompt[hash(normalize(row.prompt))].append(hash(normalize(row.response)))


def too_few_pairs(facts: Facts) -> list[PreflightWarning]:
    count = facts.pairs[TRAIN]
    if count >= MIN_TRAIN_PAIRS:
        return []
    return [
        PreflightWarning("too_few_pairs", f"only {count} training pairs: a fine-tune usually needs a few dozen or more")
    ]


def duplicates(facts: Facts) -> list[PreflightWarning]:
    """Pairs that repeat an earlier pair's prompt (case and spacing aside), as the lint's `duplicate` finds them."""
    repeats = conflicting = 0
    for answers in facts.answers_by_prompt.values():
        repeats += len(answers) - 1
        conflicting += sum(answer != answers[0] for answer in answers[1:])
    if not repeats:
        return []
    detail = f", {conflicting} of them with a different response" if conflicting else ", with the same response"
    noun = "pair repeats" if repeats == 1 else "pairs repeat"
    return [PreflightWarning("duplicates", f"{repeats} {noun} the prompt of another pair{detail}")]


def guardrail_balance(facts: Facts) -> list[PreflightWarning]:
    if facts.kind != DatasetKind.GUARDRAIL:
        return []
    blocked = facts.blocked[TRAIN]
    allowed = facts.pairs[TRAIN] - blocked
    if min(blocked, allowed) * IMBALANCE_RATIO >= max(blocked, allowed):
        return []
    leans = "refuse allowed questions too" if blocked > allowed else "answer blocked questions anyway"
    return [
        PreflightWarning(
            "imbalance",
            f"{blocked} blocked and {allowed} allowed training pairs: the model may learn to {leans}",
        )
    ]


def validation_set(facts: Facts) -> list[PreflightWarning]:
    if not facts.pairs[VALIDATION]:
        return [
            PreflightWarning(
                "no_validation",
                "no validation pairs: the run has no validation loss and nothing is evaluated before and after "
                "training (each split needs two pairs of a kind; add pairs or raise the validation fraction)",
            )
        ]
    if facts.kind == DatasetKind.GUARDRAIL:
        blocked = facts.blocked[VALIDATION]
        if not blocked or blocked == facts.pairs[VALIDATION]:
            missing = "blocked" if not blocked else "allowed"
            return [
                PreflightWarning(
                    "validation_one_sided",
                    f"the validation pairs hold no {missing} prompts, so the evaluation cannot tell "
                    f"whether the model {'refuses' if missing == 'blocked' else 'still answers'} them",
                )
            ]
    return []


def truncation(facts: Facts) -> list[PreflightWarning]:
    if not facts.truncated:
        return []
    about = "about " if facts.sampled else ""
    noun = "pair is" if facts.truncated == 1 else "pairs are"
    return [
        PreflightWarning(
            "truncated",
            f"{about}{facts.truncated} {noun} longer than max_seq_len ({facts.max_seq_len} tokens) and will be "
            "cut: the oldest context first, then the end of the response",
        )
    ]


def evaluation_set(facts: Facts) -> list[PreflightWarning]:
    if not facts.pairs[EVAL]:
        return [
            PreflightWarning(
                "eval_set_empty",
                "the evaluation set is empty: the run is scored on its validation split, which changes from snapshot "
                "to snapshot, so runs cannot be compared on the same prompts (move pairs to the evaluation set)",
            )
        ]
    if facts.eval_overlap:
        noun, verb = ("pair", "repeats") if facts.eval_overlap == 1 else ("pairs", "repeat")
        return [
            PreflightWarning(
                "eval_overlap",
                f"{facts.eval_overlap} training {noun} {verb} or nearly {verb} an evaluation prompt: the "
                "evaluation will overstate what the model learned (see the eval_overlap lint)",
            )
        ]
    return []


CHECKS: list[Callable[[Facts], list[PreflightWarning]]] = [
    too_few_pairs,
    duplicates,
    guardrail_balance,
    validation_set,
    evaluation_set,
    truncation,
]


def preflight_warnings(facts: Facts) -> list[PreflightWarning]:
    return [warning for check in CHECKS for warning in check(facts)]
