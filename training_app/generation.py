"""The local generator backends: the base model, or a fine-tuned run of the workspace, drafts answers on a worker,
greedily.

Importing this module is cheap; torch and the model load on the first ``generate`` call and stay
loaded in the process (training_app.execution keeps them, as for chat completions), so later calls start at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.conf import settings

from datasets_app.blueprints.generators import ChatRequest, Generator, GeneratorError
from training_app.models import RunStatus, TrainingRun


class LocalGenerator(Generator):
    """A base model from settings.BASE_MODELS (``MODEL`` is its registry name), run through transformers."""

    def __init__(self, *, key: str, config: Mapping[str, Any]) -> None:
        super().__init__(key=key, config=config)
        if self.base_model not in settings.BASE_MODELS:
            known = ", ".join(settings.BASE_MODELS)
            raise GeneratorError(f"generator {key!r}: base model {self.base_model!r} is not registered; known: {known}")

    @property
    def base_model(self) -> str:
        return self.model_name

    def generate(self, requests: Sequence[ChatRequest], *, max_new_tokens: int = 256) -> list[str]:
        from training_app.ml.data import ChatExample
        from training_app.ml.generate import generate

        if not requests:
            return []
        model, tokenizer = self._model()
        chats = [
            ChatExample(prompt=request.prompt, system=request.system_prompt, history=list(request.history))
            for request in requests
        ]
        return generate(model, tokenizer, chats, max_new_tokens, max_prompt_len=self._max_prompt_len(max_new_tokens))

    def _model(self) -> tuple[Any, Any]:
        from training_app.execution import loaded_base_model

        return loaded_base_model(self.model_name)

    def _max_prompt_len(self, max_new_tokens: int) -> int | None:
        # A long conversation keeps its newest tokens, so prompt and answer fit the model's context.
        context = settings.BASE_MODELS[self.base_model].get("context")
        return max(int(context) - max_new_tokens, 1) if context else None


class FineTunedGenerator(LocalGenerator):
    """A succeeded run's fine-tuned model (``MODEL`` is its `ft:...` name, ``RUN`` the run id): the base model with
    the run's artifact, fetched from storage and loaded by the same cache chat completions use."""

    kind = "fine_tuned"

    def __init__(self, *, key: str, config: Mapping[str, Any]) -> None:
        self.run_id = int(config["RUN"])
        self._base_model = str(config["BASE_MODEL"])
        super().__init__(key=key, config=config)

    @property
    def base_model(self) -> str:
        return self._base_model

    def _model(self) -> tuple[Any, Any]:
        from training_app.execution import tuned_model

        # Read again on the worker: the model may have been deleted since the job was queued.
        run = TrainingRun.objects.filter(pk=self.run_id, status=RunStatus.SUCCEEDED).exclude(artifact="").first()
        if run is None:
            raise GeneratorError(f"the fine-tuned model {self.model_name!r} was deleted; choose another generator")
        try:
            return tuned_model(run)
        except FileNotFoundError as error:
            raise GeneratorError(f"the fine-tuned model {self.model_name!r} could not be loaded: {error}") from error
