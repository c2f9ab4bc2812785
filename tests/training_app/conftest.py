import pytest

from datasets_app.curation.services import example_create
from datasets_app.models import DatasetKind, ExampleStatus
from tests.factories import DatasetFactory
from tests.worker import wait_for

TINY = "smollm2-tiny-random"
FAST = {"epochs": 2, "batch_size": 4, "max_seq_len": 128, "lora_r": 4, "lora_alpha": 8}


def guardrail_pairs(n_blocked: int = 6, n_allowed: int = 6) -> list[dict]:
    refusal = "I'm sorry, but I can't help with medical advice."
    blocked = [{"prompt": f"What dose of medicine number {n} should I take?", "response": refusal, "tags": ["blocked:medical"]}
               for n in range(n_blocked)]  # fmt: skip
    allowed = [{"prompt": f"How long should I bake cake number {n}?", "response": f"About {20 + n} minutes at 180 C.",
                "tags": ["allowed:baking"]} for n in range(n_allowed)]  # fmt: skip
    return blocked + allowed


@pytest.fixture(scope="session")
def tiny_source():
    """The tiny model in this machine's cache, as a worker or `prepare_models` leaves it (the preflight builds nothing)."""
    from training_app.execution import base_model_dir

    return base_model_dir(TINY)


@pytest.fixture
def guardrail_dataset(workspace, lead):
    dataset = DatasetFactory(workspace=workspace, name="Medical guardrail", kind=DatasetKind.GUARDRAIL)
    for pair in guardrail_pairs():
        example_create(dataset=dataset, user=lead, status=ExampleStatus.APPROVED, **pair)
    return dataset


def ask_playground(api, run_id: int, prompt: str, max_new_tokens: int, timeout: float = 120) -> tuple[list[str], dict]:
    """Ask as the playground page does: queue the prompt (202 at once), then poll its URL until it has finished.

    Returns the statuses seen while polling and the finished request.
    """
    queued = api.post(
        f"/api/runs/{run_id}/generate/", {"prompt": prompt, "max_new_tokens": max_new_tokens}, format="json"
    )
    assert queued.status_code == 202, queued.content
    assert queued.json()["status"] == "queued"
    seen = [queued.json()["status"]]

    def finished():
        body = api.get(queued.json()["url"]).json()
        if seen[-1] != body["status"]:
            seen.append(body["status"])
        return body if body["status"] in ("succeeded", "failed") else None

    return seen, wait_for(finished, timeout=timeout, interval=0.1)
