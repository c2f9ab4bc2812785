"""Token counts for the editor, with the base model's own tokenizer, without loading torch."""

from functools import lru_cache
from pathlib import Path

from django.conf import settings
from tokenizers import Tokenizer


def tokenizer_path(model_name: str | None = None) -> Path:
    """Where the converted base model's tokenizer lies once a trainer or `prepare_models` has built the cache."""
    return Path(settings.MODEL_CACHE_DIR) / (model_name or settings.DEFAULT_BASE_MODEL) / "tokenizer.json"


@lru_cache(maxsize=4)
def _load(path: str) -> Tokenizer:
    return Tokenizer.from_file(path)


def count_tokens(texts: list[str], model_name: str | None = None) -> list[int] | None:
    """How many tokens each text is for the model; None while its tokenizer is not cached on this machine."""
    path = tokenizer_path(model_name)
    if not path.is_file():
        return None
    return [len(encoding.ids) for encoding in _load(str(path)).encode_batch(texts, add_special_tokens=False)]
