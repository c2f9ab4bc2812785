"""The two things a reader yields: a Record (one good example) or a Problem (why one is bad)."""

from __future__ import annotations

from dataclasses import dataclass, field

ROLES = ("system", "user", "assistant")


@dataclass(slots=True)
class Record:
    prompt: str
    response: str
    system: str = ""
    # Earlier turns, oldest first, without the final prompt/response:
    # [{"role": "user" | "assistant" | "system", "content": str}, ...]
    history: list[dict[str, str]] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    # 1-based line (JSONL, CSV) or record number (JSON array, parquet row) it came from.
    position: int = 0
    unit: str = "line"  # what position counts: "line", "record" or "row"
    rejected: str = ""  # preference pairs: the rejected answer (`response` is the chosen one)


@dataclass(slots=True, frozen=True)
class Problem:
    position: int | None  # None for a whole-file problem
    unit: str  # "line", "record", "row" or "file": what position counts
    field: str  # "prompt", "messages[2].role", ...; "" for the whole line or file
    message: str

    def as_dict(self) -> dict[str, int | str | None]:
        """{"line": 3, "field": "prompt", "message": "is missing"}; no position key for the file."""
        if self.unit == "file":
            return {"field": self.field, "message": self.message}
        return {self.unit: self.position, "field": self.field, "message": self.message}

    def __str__(self) -> str:
        where = "file" if self.unit == "file" else f"{self.unit} {self.position}"
        subject = f"{self.field} " if self.field else ""
        return f"{where}: {subject}{self.message}"


@dataclass(slots=True, frozen=True)
class ReadLimits:
    """How much of a file one read may hold in memory, whatever the file says: bounds, not validation.

    record_bytes: the largest record in the file (a JSON line or array element, a CSV row) and the largest
    decompressed Parquet page (at least PAGE_FLOOR); a bigger one is reported, not read.
    decoded_bytes: the most a compressed (Parquet) file may decode to; records: the most rows it may have.
    """

    record_bytes: int = 64 << 20
    decoded_bytes: int | None = None
    records: int | None = None


def too_long(length: int, limit: int) -> str:
    """The one wording of a text over its limit: "at most 100000 characters (got 250000)"."""
    return f"at most {limit} characters (got {length})"


class UnknownFormat(ValueError):
    """The format name is not known, or the content is not recognisable as any format."""
