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


PIECE_CHARS = 4096  # the least text tokenized at a time by count_tokens_upto
CHARS_PER_TOKEN = 4  # a typical ratio, to size the next piece; the count never depends on it


def count_tokens(texts: list[str], model_name: str | None = None) -> list[int] | None:
    """How many tokens each text is for the model; None while its tokenizer is not cached on this machine.

    Tokenizes every text whole: for texts already within a cap (the editor's counts); see count_tokens_upto."""
    path = tokenizer_path(model_name)
    if not path.is_file():
        return None
    return [len(encoding.ids) for encoding in _load(str(path)).encode_batch(texts, add_special_tokens=False)]


def count_tokens_upto(texts: list[str], *, limit: int, model_name: str | None = None) -> tuple[int, bool] | None:
    """The tokens of the texts together, counted only as far as `limit` needs: (count, whole). `whole` is
    True when every text was counted (the exact total); False when counting stopped as soon as the
    count passed `limit` (the total is at least `count`). None while the tokenizer is not cached.

    The texts are tokenized in pieces cut before whitespace, which is where the tokenizer splits anyway,
    each about as long as the tokens still needed to pass the limit, so a huge text costs about
    `limit` tokens of work, not its length.
    """
    path = tokenizer_path(model_name)
    if not path.is_file():
        return None
    tokenizer = _load(str(path))
    total = 0
    for text in texts:
        start = 0
        while start < len(text):
            if total > limit:
                return total, False
            end = _cut(text, start, max(PIECE_CHARS, (limit - total + 1) * CHARS_PER_TOKEN))
            total += len(tokenizer.encode(text[start:end], add_special_tokens=False).ids)
            start = end
    return total, True


def _cut(text: str, start: int, size: int) -> int:
    """Where a piece of about `size` characters from `start` ends: before the last whitespace in its second half."""
    end = start + size
    if end >= len(text):
        return len(text)
    for index in range(end, start + size // 2, -1):
        if text[index].isspace():
            return index
    return end
