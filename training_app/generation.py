"""The local generator backend: the workspace's base model drafts answers on a worker, greedily.

Importing this module is cheap; torch and the model load on the first ``generate`` call and stay
loaded in the process (training_app.execution keeps them), so later calls start at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.conf import settings

from datasets_app.blueprints.generators import ChatRequest, Generator, GeneratorError


class LocalGenerator(Generator):
    """A base model from settings.BASE_MODELS (``MODEL`` is its registry name), run through transformers."""

    def __init__(self, *, key: str, config: Mapping[str, Any]) -> None:
        super().__init__(key=key, config=config)
        if self.model_name not in settings.BASE_MODELS:
            known = ", ".join(settings.BASE_MODELS)
            raise GeneratorError(f"generator {key!r}: base model {self.model_name!r} is not registered; known: {known}")

    def generate(self, requests: Sequence[ChatRequest], *, max_new_tokens: int = 256) -> list[str]:
        from training_app.execution import loaded_base_model
        from training_app.ml.data import ChatExample
        from training_app.ml.generate import generate

        if not requests:
            return []
        model, tokenizer = loaded_base_model(self.model_name)
        chats = [
            ChatExample(prompt=request.prompt, system=request.system_prompt, history=list(request.history))
            for request in requests
        ]
        return generate(model, tokenizer, chats, max_new_tokens, max_prompt_len=self._max_prompt_len(max_new_tokens))

    def _max_prompt_len(self, max_new_tokens: int) -> int | None:
        # A long conversation keeps its newest tokens, so prompt and answer fit the model's context.
        context = settings.BASE_MODELS[self.model_name].get("context")
        return max(int(context) - max_new_tokens, 1) if context else None
