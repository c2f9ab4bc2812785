"""What a template generates, pair by pair, before anything is written or any model is called.

A guardrail template gives supervised pairs (a blocked seed prompt with the refusal, an allowed one for a model to
answer) or preference pairs, which teach the contrast both ways: per blocked seed prompt the refusal is chosen over a
compliant answer a model drafts, per allowed seed prompt the model's answer is chosen over the refusal. In a
preference pair `response` is the chosen answer and `rejected` the rejected one, as in every preference dataset.
"""

from dataclasses import dataclass, replace

from datasets_app.blueprints.generators import ChatRequest
from datasets_app.blueprints.specs import GuardrailSpec, MCQSpec
from project.refusals import is_refusal

RESPONSE, REJECTED = "response", "rejected"
# A blocked prompt's compliant answer is drafted without the guardrail's system prompt, which may make a model refuse.
COMPLY_SYSTEM = "You are a helpful assistant. Answer the user's request directly and completely."


@dataclass(frozen=True)
class PlannedPair:
    prompt: str
    response: str  # empty when a model drafts it
    tags: tuple[str, ...]
    system_prompt: str = ""
    drafted: bool = False  # a model drafts one side: `draft_into`
    exists: bool = False  # the dataset already has this prompt, so generating skips it
    rejected: str = ""  # a preference pair's rejected answer (empty when a model drafts it)
    draft_into: str = RESPONSE  # the side a model drafts: the response (the chosen answer) or the rejected one

    def request(self) -> ChatRequest:
        """What the model is asked to draft this pair's side."""
        if self.draft_into == REJECTED:
            return ChatRequest(self.prompt, COMPLY_SYSTEM)
        return ChatRequest(self.prompt, self.system_prompt)

    def filled(self, draft: str) -> "PlannedPair":
        """The pair with a model's draft on its drafted side."""
        return replace(self, **{self.draft_into: draft})

    def refused(self) -> bool:
        """A model's draft that is a refusal: a preference pair then lacks its contrast (refusal against refusal)."""
        return self.drafted and is_refusal(getattr(self, self.draft_into))

    def ready(self, *, by_model: bool) -> bool:
        """Whether the pair goes to review (submitted) rather than to an annotator (draft): template-written text,
        or a preference pair whose chosen refusal is the template's and whose drafted foil does not refuse."""
        if self.draft_into == REJECTED:
            return bool(self.rejected.strip()) and not is_refusal(self.rejected)
        return bool(self.response.strip()) and not by_model


@dataclass
class Plan:
    pairs: list[PlannedPair]
    paraphrases: int = 0  # rewordings per seed prompt, written by a model at generation time

    @property
    def new(self) -> list[PlannedPair]:
        return [pair for pair in self.pairs if not pair.exists]

    @property
    def needs_model(self) -> bool:
        return self.paraphrases > 0 or any(pair.drafted for pair in self.new)


def guardrail_pairs(spec: GuardrailSpec) -> list[PlannedPair]:
    pairs = []
    for topic in spec.blocked:
        response = spec.refusal_for(topic)
        tags = (f"blocked:{topic.name}",)
        pairs += [PlannedPair(seed, response, tags, spec.system_prompt) for seed in topic.seeds]
    for topic in spec.allowed:
        tags = (f"allowed:{topic.name}",)
        pairs += [PlannedPair(seed, "", tags, spec.system_prompt, drafted=True) for seed in topic.seeds]
    return pairs


def guardrail_preference_pairs(spec: GuardrailSpec) -> list[PlannedPair]:
    """Blocked seeds: the refusal chosen, a drafted compliant answer rejected. Allowed seeds: a drafted answer
    chosen, the refusal (the pattern filled in for the allowed topic: what an over-refusing model says) rejected.
    Tagged blocked:<topic> and allowed:<topic> like the supervised pairs, so the guardrail metrics read them."""
    pairs = []
    for topic in spec.blocked:
        refusal, tags = spec.refusal_for(topic), (f"blocked:{topic.name}",)
        pairs += [
            PlannedPair(seed, refusal, tags, spec.system_prompt, drafted=True, draft_into=REJECTED)
            for seed in topic.seeds
        ]
    for topic in spec.allowed:
        refusal, tags = spec.refusal_for(topic), (f"allowed:{topic.name}",)
        pairs += [
            PlannedPair(seed, "", tags, spec.system_prompt, drafted=True, rejected=refusal) for seed in topic.seeds
        ]
    return pairs


def mcq_pairs(spec: MCQSpec) -> list[PlannedPair]:
    pairs = []
    for prompt, topic, level in spec.prompts():
        tags = (f"topic:{topic}", f"level:{level}") if level else (f"topic:{topic}",)
        pairs.append(PlannedPair(prompt, "", tags, spec.system_prompt, drafted=True))
    return pairs
