import pytest

from datasets_app.curation.services import example_create
from datasets_app.models import DatasetKind, ExampleStatus
from tests.factories import DatasetFactory

TINY = "smollm2-tiny-random"
FAST = {"epochs": 2, "batch_size": 4, "max_seq_len": 128, "lora_r": 4, "lora_alpha": 8}


def guardrail_pairs(n_blocked: int = 6, n_allowed: int = 6) -> list[dict]:
    refusal = "I'm sorry, but I can't help with medical advice."
    blocked = [{"prompt": f"What dose of medicine number {n} should I take?", "response": refusal, "tags": ["blocked:medical"]}
               for n in range(n_blocked)]  # fmt: skip
    allowed = [{"prompt": f"How long should I bake cake number {n}?", "response": f"About {20 + n} minutes at 180 C.",
                "tags": ["allowed:baking"]} for n in range(n_allowed)]  # fmt: skip
    return blocked + allowed


@pytest.fixture
def guardrail_dataset(workspace, lead):
    dataset = DatasetFactory(workspace=workspace, name="Medical guardrail", kind=DatasetKind.GUARDRAIL)
    for pair in guardrail_pairs():
        example_create(dataset=dataset, user=lead, status=ExampleStatus.APPROVED, **pair)
    return dataset
