"""Evaluation pairs leaking into training: a training prompt that is an evaluation prompt (case and spacing aside)
or nearly one (the near-duplicate check's MinHash over word pairs, confirmed by exact Jaccard). Pure Python.

The evaluation set (usually small) is indexed once; training prompts stream past it a batch at a time, so memory
grows with the evaluation set only. Each training prompt is compared with the evaluation prompts it shares the
most bands with, not with a few neighbours as within a dataset, so an overlap is not missed for crowding.
"""

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from datasets_app.curation.content import normalize
from datasets_app.lint.duplicates import BATCH, band_keys, jaccard, rows_per_band, shingles

MOST_SHARED = 20  # evaluation prompts compared with each training prompt: those sharing the most bands with it


@dataclass(frozen=True)
class Overlap:
    pk: int  # the training pair
    eval_pk: int  # the evaluation pair whose prompt it repeats
    similarity: float  # of the prompts' word pairs; 1.0 for the same prompt

    @property
    def message(self) -> str:
        if self.similarity >= 1.0:
            return f"the same prompt as evaluation pair #{self.eval_pk}"
        return f"the prompt is {self.similarity:.0%} similar to that of evaluation pair #{self.eval_pk}"


class EvalOverlap:
    """Index the evaluation prompts ({id: prompt}), then `add` training prompts; `overlaps()` lists the repeats."""

    def __init__(self, eval_prompts: Iterable[tuple[int, str]], *, threshold: float) -> None:
        self.threshold = threshold
        self.rows = rows_per_band(threshold)
        self.same: dict[str, int] = {}
        self.shingles: dict[int, set[str]] = {}
        self.buckets: dict[tuple[int, int], list[int]] = {}
        self.pending: list[tuple[int, set[str]]] = []
        self.found: list[Overlap] = []
        for pk, prompt in eval_prompts:
            if prompt.strip():
                self.same.setdefault(normalize(prompt), pk)
                self._queue(pk, prompt, self._index)
        self._index()

    def __bool__(self) -> bool:
        """Whether there is an evaluation set to compare with."""
        return bool(self.same)

    def add(self, pk: int, prompt: str) -> None:
        if not self.same or not prompt.strip():
            return
        same = self.same.get(normalize(prompt))
        if same is not None:
            self.found.append(Overlap(pk, same, 1.0))
        else:
            self._queue(pk, prompt, self._compare)

    def overlaps(self) -> list[Overlap]:
        """Every training pair added that repeats an evaluation prompt, by id."""
        self._compare()
        return sorted(self.found, key=lambda overlap: overlap.pk)

    def _queue(self, pk: int, prompt: str, flush) -> None:  # type: ignore[no-untyped-def]
        found = shingles(prompt, "")
        if found:
            self.pending.append((pk, found))
        if len(self.pending) == BATCH:
            flush()

    def _index(self) -> None:
        for (pk, found), keys in zip(self.pending, band_keys([f for _, f in self.pending], self.rows), strict=True):
            self.shingles[pk] = found
            for band, key in enumerate(keys):
                self.buckets.setdefault((band, key), []).append(pk)
        self.pending = []

    def _compare(self) -> None:
        for (pk, found), keys in zip(self.pending, band_keys([f for _, f in self.pending], self.rows), strict=True):
            shared = Counter(other for band, key in enumerate(keys) for other in self.buckets.get((band, key), ()))
            scored = [(jaccard(found, self.shingles[other]), -other) for other, _ in shared.most_common(MOST_SHARED)]
            best = max(scored, default=None)
            if best is not None and best[0] >= self.threshold:
                self.found.append(Overlap(pk, -best[1], best[0]))
        self.pending = []
