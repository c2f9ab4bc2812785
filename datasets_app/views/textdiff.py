"""Word-level differences between two texts, for the history and conflict pages and a preference pair's answers."""

import difflib
import json
import re
from dataclasses import dataclass
from typing import Any

from datasets_app.curation.content import normalize
from datasets_app.curation.limits import pair_text_max

_TOKEN = re.compile(r"\s+|\w+|[^\w\s]", re.UNICODE)
# Above this many words a side, compare lines instead: difflib's matching grows quickly with length.
MAX_WORDS = 20_000


@dataclass(frozen=True)
class Piece:
    kind: str  # "same", "added" or "removed"
    text: str


def word_diff(old: str, new: str) -> list[Piece]:
    """The pieces that turn `old` into `new`: runs of unchanged, removed and added words (and the spaces between)."""
    split = _TOKEN.findall if max(len(old), len(new)) < MAX_WORDS * 6 else (lambda text: text.splitlines(True))
    before, after = split(old), split(new)
    pieces: list[Piece] = []
    for op, a1, a2, b1, b2 in difflib.SequenceMatcher(None, before, after, autojunk=False).get_opcodes():
        if op == "equal":
            _add(pieces, "same", "".join(before[a1:a2]))
            continue
        if op in ("delete", "replace"):
            _add(pieces, "removed", "".join(before[a1:a2]))
        if op in ("insert", "replace"):
            _add(pieces, "added", "".join(after[b1:b2]))
    return pieces


def coarse(pieces: list[Piece]) -> list[Piece]:
    """The pieces with each run of changes joined across the spaces between them: two answers that differ in
    whole phrases read as a phrase removed and a phrase added, not word against word."""
    merged: list[Piece] = []
    removed = added = ""
    for index, piece in enumerate(pieces):
        inside = piece.kind == "same" and piece.text.isspace() and 0 < index < len(pieces) - 1
        if piece.kind == "same" and not inside:
            merged += [Piece(kind, text) for kind, text in (("removed", removed), ("added", added)) if text]
            removed = added = ""
            merged.append(piece)
            continue
        removed += piece.text if piece.kind != "added" else ""
        added += piece.text if piece.kind != "removed" else ""
    return merged + [Piece(kind, text) for kind, text in (("removed", removed), ("added", added)) if text]


def _add(pieces: list[Piece], kind: str, text: str) -> None:
    if not text:
        return
    if pieces and pieces[-1].kind == kind:
        pieces[-1] = Piece(kind, pieces[-1].text + text)
    else:
        pieces.append(Piece(kind, text))


def as_text(name: str, value: Any) -> str:
    """A field's value as the text a person reads and compares: tags joined, earlier turns one per paragraph."""
    if value is None:
        return ""
    if name == "tags" and isinstance(value, list):
        return ", ".join(str(tag) for tag in value)
    if name == "history" and isinstance(value, list):
        return "\n\n".join(
            f"{turn.get('role', '?')}{' (not trained on)' if turn.get('weight') == 0 else ''}: {turn.get('content', '')}"
            if isinstance(turn, dict)
            else str(turn)
            for turn in value
        )
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def sides_context(chosen: str, rejected: str) -> dict[str, Any]:
    """The word diff from a preference pair's rejected answer to its chosen one (pieces escaped when shown)."""
    if len(chosen) > pair_text_max() or len(rejected) > pair_text_max():
        return {"sides_too_long": "An answer is over the length limit; it cannot be saved, so it is not compared."}
    if not chosen.strip() or not rejected.strip():
        return {}
    if normalize(chosen) == normalize(rejected):
        return {"sides_same": True}
    return {"sides_diff": coarse(word_diff(rejected, chosen))}
