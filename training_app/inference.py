"""Chat answers of a base or fine-tuned model on a worker, for /v1/chat/completions (openai_app reaches the models
only through here). The model comes from the worker's cache of recently used ones (training_app.execution)."""

from collections.abc import Callable, Sequence
from typing import Any

from training_app.models import TrainingRun


def chat_answer(
    *,
    base_model: str,
    run: TrainingRun | None,
    messages: Sequence[dict[str, str]],
    options: dict[str, Any],
    on_text: Callable[[str], bool],
) -> Any:
    """The answer of the run's fine-tuned model (or the base model without a run), streamed to `on_text`; a
    training_app.ml.chat.ChatResult. Raises ContextTooLong when the conversation does not fit the model."""
    from training_app.execution import loaded_base_model, tuned_model
    from training_app.ml.chat import ChatOptions, stream_chat

    model = tuned_model(run) if run is not None else loaded_base_model(base_model)
    return stream_chat(*model, messages, ChatOptions(**options), on_text)
