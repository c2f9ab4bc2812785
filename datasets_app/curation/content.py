"""The normalized content hash that spots duplicate pairs regardless of case and spacing."""

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any


def normalize(text: str) -> str:
    """Case-folded, with every run of whitespace (as str.isspace() sees it) made one space."""
    return " ".join(text.split()).casefold()


def content_hash(
    *,
    prompt: str,
    response: str,
    system_prompt: str = "",
    history: Iterable[Mapping[str, Any]] = (),
    rejected: str = "",
) -> str:
    parts = [normalize(system_prompt)]
    # A turn at weight 0 (context, not trained on) differs from one trained on; weight 1 is the default, so it
    # hashes as no weight (and the hashes of pairs without weights are what they always were).
    parts += [
        f"{turn['role']}{'/0' if turn.get('weight') == 0 else ''}:{normalize(turn['content'])}" for turn in history
    ]
    parts += [normalize(prompt), normalize(response)]
    if rejected:  # a preference pair; other pairs keep the hashes they always had
        parts.append(f"rejected:{normalize(rejected)}")
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=16).hexdigest()
