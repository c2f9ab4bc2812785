"""A base model's tokenizer alone, for the web process: found in the model cache, loaded without torch.

``registry.load_tokenizer`` goes through ``AutoTokenizer``, whose import loads torch (seconds and hundreds of
megabytes). The tokenizer files a cache entry holds are loaded here by their class directly, which needs only
transformers' tokenizer modules and the ``tokenizers`` library; nothing here reads weights or builds a cache
entry, so a model that no worker or ``manage.py prepare_models`` has prepared on this machine has no tokenizer yet.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

# Written last into a finished cache entry by the registry: the entry's files are complete.
MARKER = "instructory_source.json"
# The classes tokenizer.json is loaded by unchanged; any other is looked up by name in transformers.
_GENERIC = {"TokenizersBackend", "PreTrainedTokenizerFast"}


def prepared_dir(spec: dict[str, Any], cache_root: Path) -> Path | None:
    """Where the tokenizer of a registry entry lies on this machine, or None while no one has prepared it.

    A local model's own directory; else the finished cache entry; for a tiny model, whose tokenizer is its
    base's, the base's entry will do too.
    """
    if spec.get("source") == "local":
        directory = Path(str(spec.get("path", "")))
        return directory if (directory / "tokenizer_config.json").is_file() else None
    directory = Path(cache_root) / str(spec.get("name", ""))
    if (directory / MARKER).is_file() and (directory / "tokenizer_config.json").is_file():
        return directory
    base = spec.get("base")
    if spec.get("source") == "tiny" and isinstance(base, dict):
        return prepared_dir(base, cache_root)
    return None


def _built_at(directory: Path) -> int:
    marker = Path(directory) / MARKER
    return marker.stat().st_mtime_ns if marker.exists() else 0


def fingerprint(directory: Path) -> str:
    """Names the tokenizer in ``directory`` as built now: a rebuilt cache entry gets another."""
    return f"{Path(directory).resolve()}@{_built_at(directory)}"


def load_tokenizer_only(directory: Path) -> PreTrainedTokenizerBase:
    """The tokenizer saved in ``directory``, with its chat template; kept per process (loading takes a second)."""
    return _load(str(directory), _built_at(directory))


@lru_cache(maxsize=4)
def _load(directory: str, _built_at: int) -> PreTrainedTokenizerBase:  # a rebuilt entry is loaded afresh
    import transformers
    from transformers.tokenization_utils_tokenizers import TokenizersBackend

    config = json.loads((Path(directory) / "tokenizer_config.json").read_text())
    name = config.get("tokenizer_class") or "TokenizersBackend"
    cls = TokenizersBackend if name in _GENERIC else getattr(transformers, name, TokenizersBackend)
    tokenizer = cls.from_pretrained(directory, trust_remote_code=False)
    if tokenizer.pad_token is None:  # as registry.load_tokenizer does
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
