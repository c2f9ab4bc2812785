"""Finding repeated and nearly repeated pairs in a stream, in little memory. Pure Python (numpy, datasketch).

Same prompt: two 64-bit hashes a pair, grouped at the end. Near duplicates: a MinHash of each pair's
word pairs (shingles), cut into bands; pairs that share a band are candidates, to be confirmed by the
exact Jaccard similarity of their shingles.
"""

import re
import zlib
from array import array
from collections.abc import Iterator

import numpy as np
from datasketch import MinHash

from datasets_app.curation.content import normalize

SHINGLE_WORDS = 2  # word pairs: one changed word in a 30-word pair still leaves it 0.87 similar
PERMUTATIONS = 60  # MinHash values per pair, cut into bands (see rows_per_band)
NEIGHBOURS = 3  # in a band's bucket, each pair is compared with this many earlier ones
BATCH = 1000
_WORD = re.compile(r"\w+")


class SamePrompt:
    """Pairs whose prompt (case and spacing aside) an earlier pair has: repeated or conflicting answers.

    Keeps three 64-bit numbers a pair while streaming and groups them at the end.
    """

    def __init__(self) -> None:
        self.ids, self.prompts, self.answers = array("q"), array("q"), array("q")

    def add(self, pk: int, prompt: str, response: str, group: str = "") -> None:
        """`group`: only pairs of one group are compared (a dataset's training and evaluation sets)."""
        if prompt.strip():  # a blank prompt is the blank check's
            self.ids.append(pk)
            self.prompts.append(hash((group, normalize(prompt))))
            self.answers.append(hash(normalize(response)))

    def found(self) -> Iterator[tuple[int, int, str]]:
        """(pair, related pair, message): the first of each group points to the second, every later one to the first."""
        for group in self._groups():
            first, *later = (int(self.ids[n]) for n in group)
            yield first, later[0], f"pair #{later[0]} has the same prompt"
            for n, pk in zip(group[1:], later, strict=True):
                how = "and the same" if self.answers[n] == self.answers[group[0]] else "but a different"
                yield pk, first, f"the same prompt as pair #{first}, {how} response"

    def repeats(self) -> set[int]:
        """Every pair but the first of each group."""
        return {int(self.ids[n]) for group in self._groups() for n in group[1:]}

    def _groups(self) -> Iterator[list[int]]:
        """Positions of the pairs that share a prompt, group by group."""
        keys = np.array(self.prompts, dtype=np.int64)
        order = np.argsort(keys, kind="stable")  # stable: a group keeps id order
        ordered = keys[order]
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        ends = np.r_[starts[1:], len(ordered)]
        for n in np.flatnonzero(ends - starts > 1):
            yield order[starts[n] : ends[n]].tolist()


def shingles(prompt: str, response: str) -> set[str]:
    """Word pairs of the prompt and response, case and punctuation aside."""
    words = _WORD.findall(f"{prompt}\n{response}".casefold())
    if len(words) < SHINGLE_WORDS:
        return {" ".join(words)} if words else set()
    return {" ".join(words[n : n + SHINGLE_WORDS]) for n in range(len(words) - SHINGLE_WORDS + 1)}


def _hash32(text: str) -> int:
    return zlib.crc32(text.encode())  # fast, and the same in every process (unlike hash())


def rows_per_band(threshold: float) -> int:
    """The most MinHash values per band that still make a pair at the threshold share a band 99% of the time.

    At 0.8 that is 12 bands of 5: a pair 0.5 similar becomes a candidate 32% of the time, one 0.3 similar 3%.
    """
    for rows in (12, 10, 6, 5, 4, 3, 2):
        if 1 - (1 - threshold**rows) ** (PERMUTATIONS // rows) >= 0.99:
            return rows
    return 1


class Sketches:
    """MinHash signatures cut into bands; pairs that share a band are candidates. Keeps only band hashes."""

    def __init__(self, threshold: float) -> None:
        self.rows = rows_per_band(threshold)
        self.ids = array("q")  # arrays of 64-bit ints: a tenth of the memory of lists of Python ints
        self.bands = [array("q") for _ in range(PERMUTATIONS // self.rows)]
        self.pending: list[tuple[int, set[str]]] = []

    def add(self, pk: int, prompt: str, response: str) -> None:
        found = shingles(prompt, response)
        if found:
            self.pending.append((pk, found))
        if len(self.pending) == BATCH:
            self._flush()

    def _flush(self) -> None:
        for (pk, _), keys in zip(self.pending, band_keys([found for _, found in self.pending], self.rows), strict=True):
            self.ids.append(pk)
            for band, key in zip(self.bands, keys, strict=True):
                band.append(key)
        self.pending = []

    def candidates(self) -> list[tuple[int, int]]:
        """(earlier, later) pairs that share a band, each compared with up to NEIGHBOURS earlier bucket-mates."""
        self._flush()
        ids, found = np.frombuffer(self.ids, dtype=np.int64), set()
        for band in self.bands:
            keys = np.frombuffer(band, dtype=np.int64)
            order = np.argsort(keys, kind="stable")  # stable: a bucket keeps id order
            ordered = keys[order]
            for step in range(1, NEIGHBOURS + 1):
                same = np.nonzero(ordered[step:] == ordered[:-step])[0]
                found.update(zip(ids[order[same]].tolist(), ids[order[same + step]].tolist(), strict=True))
        return sorted(found)


def band_keys(shingle_sets: list[set[str]], rows: int) -> Iterator[list[int]]:
    """Each set's MinHash cut into bands of `rows` values: one hash a band (the same within a process)."""
    sets = [list(found) for found in shingle_sets]
    for sketch in MinHash.generator(sets, num_perm=PERMUTATIONS, hashfunc=_hash32):
        yield [hash(values.tobytes()) for values in sketch.hashvalues.reshape(PERMUTATIONS // rows, rows)]


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0
