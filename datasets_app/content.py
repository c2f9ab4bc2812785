"""The normalized content hash that spots duplicate pairs regardless of case and spacing."""

import hashlib
import re
from collections.abc import Iterable, Mapping

_SPACE = re.compile(r"\s+")


def normalize(text: str) -> str:
    return _SPACE.sub(" ", text).strip().casefold()


def content_hash(
    *, prompt: str, response: str, system_prompt: str = "", history: Iterable[Mapping[str, str]] = ()
) -> str:
    parts = [normalize(system_prompt)]
    parts += [f"{turn['role']}:{normalize(turn['content'])}" for turn in history]
    parts += [normalize(prompt), normalize(response)]
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=16).hexdigest()
