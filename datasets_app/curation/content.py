"""The normalized content hash that spots duplicate pairs regardless of case and spacing."""

import hashlib
from collections.abc import Iterable, Mapping


def normalize(text: str) -> str:
    """Case-folded, with every run of whitespace (as str.isspace() sees it) made one space."""
    return " ".join(text.split()).casefold()


def content_hash(
    *,
    prompt: str,
    response: str,
    system_prompt: str = "",
    history: Iterable[Mapping[str, str]] = (),
    rejected: str = "",
) -> str:
    parts = [normalize(system_prompt)]
    parts += [f"{turn['role']}:{normalize(turn['content'])}" for turn in history]
    parts += [normalize(prompt), normalize(response)]
    if rejected:  # a preference pair; other pairs keep the hashes they always had
        parts.append(f"rejected:{normalize(rejected)}")
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=16).hexdigest()
