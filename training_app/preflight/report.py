"""The preflight of a run: every pair tokenized as training will tokenize it, totals, steps, time and warnings.

Nothing is saved or queued. A run on a dataset is checked on the rows a snapshot made now would hold (the
approved pairs, the same seeded split); a run on a snapshot on its frozen rows. The tokenizer is the base
model's own, from this machine's model cache, loaded without torch (training_app.ml.tokenizer), and the counts
come from the functions the trainer's encoding is made of (training_app.ml.data: the same chat template, texts,
tokenizer call and truncation; ``fitted(token_lengths(...)[n], max_len)`` is ``encode``'s length and labels, see
its tests).
"""

import hashlib
import json
import random
from array import array
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.http import Http404

from datasets_app.curation.selectors import example_get
from datasets_app.models import Dataset, DatasetKind
from training_app.ml.config import TrainConfig, steps_per_epoch
from training_app.ml.data import ChatExample, fitted, token_lengths, token_pieces
from training_app.ml.tokenizer import fingerprint, load_tokenizer_only, prepared_dir
from training_app.models import DatasetVersion, TrainingRun
from training_app.preflight.checks import EVAL, TRAIN, VALIDATION, Facts, PreflightWarning, preflight_warnings
from training_app.preflight.estimate import Estimate, training_estimate
from training_app.services import run_settings
from training_app.snapshots import SnapshotRow, snapshot_draft, snapshot_stream

SAMPLE_SEED = 0
CHUNK = 1000  # pairs tokenized at a time: memory stays that of a chunk's token ids, whatever the dataset's size
LENGTHS_CACHE_S = 3600  # a check again after changing a setting reuses the token counts of the same texts


class TokenizerMissing(Exception):
    """The base model's tokenizer is not on this machine yet (no worker or prepare_models has built its cache)."""

    def __init__(self, base_model: str) -> None:
        super().__init__(
            f"the tokenizer of {base_model!r} is not prepared on this machine yet: run `manage.py prepare_models "
            f"{base_model}` (`make run` does), or start one run on it"
        )


def base_tokenizer(base_model: str):  # type: ignore[no-untyped-def]  # (a transformers tokenizer, its fingerprint)
    spec = {**settings.BASE_MODELS[base_model], "name": base_model}
    directory = prepared_dir(spec, Path(settings.MODEL_CACHE_DIR))
    if directory is None:
        raise TokenizerMissing(base_model)
    return load_tokenizer_only(directory), fingerprint(directory)


@dataclass(frozen=True)
class PairCount:
    """One pair as training sees it. tokens = trained_tokens + masked_tokens, after truncation; full_tokens before."""

    example: int | None
    split: str | None
    tokens: int
    full_tokens: int
    trained_tokens: int
    masked_tokens: int
    truncated: bool

    @classmethod
    def of(cls, row: SnapshotRow, lengths: tuple[int, ...], max_len: int) -> "PairCount":
        kept = fitted(lengths, max_len)
        return cls(example=row.ref, split=row.split or None, tokens=kept.tokens, full_tokens=kept.full,
                   trained_tokens=kept.trained, masked_tokens=kept.tokens - kept.trained, truncated=kept.truncated)  # fmt: skip

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Totals:
    pairs: int = 0
    tokens: int = 0
    full_tokens: int = 0
    trained_tokens: int = 0
    masked_tokens: int = 0
    truncated: int = 0

    def add(self, pair: PairCount) -> None:
        self.pairs += 1
        self.tokens += pair.tokens
        self.full_tokens += pair.full_tokens
        self.trained_tokens += pair.trained_tokens
        self.masked_tokens += pair.masked_tokens
        self.truncated += pair.truncated

    def scaled_to(self, pairs: int) -> "Totals":
        """These totals of a sample scaled up to `pairs` pairs (sums rounded; they still add up)."""
        if self.pairs in (0, pairs):
            return Totals(**{**asdict(self), "pairs": pairs})
        factor = pairs / self.pairs
        trained, masked = round(self.trained_tokens * factor), round(self.masked_tokens * factor)
        return Totals(pairs=pairs, tokens=trained + masked, full_tokens=round(self.full_tokens * factor),
                      trained_tokens=trained, masked_tokens=masked, truncated=round(self.truncated * factor))  # fmt: skip

    def __iadd__(self, other: "Totals") -> "Totals":
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)
        return self

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Preflight:
    dataset: Dataset
    snapshot: DatasetVersion | None
    base_model: str
    config: TrainConfig
    validation_fraction: float
    pairs: list[PairCount]  # every pair, or the sample when there are more than PREFLIGHT_MAX_PAIRS
    total_pairs: int
    totals: Totals = field(default_factory=Totals)
    splits: dict[str, Totals] = field(default_factory=dict)
    steps_per_epoch: int = 0
    estimate: Estimate | None = None
    warnings: list[PreflightWarning] = field(default_factory=list)

    @property
    def sampled(self) -> bool:
        return len(self.pairs) < self.total_pairs

    @property
    def steps(self) -> int:
        return self.steps_per_epoch * self.config.epochs


def _chat(row: SnapshotRow) -> ChatExample:
    return ChatExample(prompt=row.prompt, response=row.response, system=row.system, history=row.history, ref=row.ref)


def _token_lengths(tokenizer, rows: list[SnapshotRow]) -> list[tuple[int, ...]]:  # type: ignore[no-untyped-def]
    try:
        return token_lengths(tokenizer, [_chat(row) for row in rows])
    except ValueError:  # a history turn or a template the trainer would fail on too: name the pair
        for row in rows:
            try:
                token_lengths(tokenizer, [_chat(row)])
            except ValueError as error:
                raise ValidationError({"dataset": f"pair #{row.ref} cannot be tokenized: {error}"}) from error
        raise


def _lengths(tokenizer, tokenizer_key: str, rows: list[SnapshotRow]) -> list[tuple[int, ...]]:  # type: ignore[no-untyped-def]
    """Each row's token counts part by part before truncation (``token_lengths``), a chunk at a time; kept in the
    cache under a digest of the exact texts and the tokenizer, so checking again with other settings does not
    tokenize again."""
    digest = hashlib.blake2b(tokenizer_key.encode(), digest_size=16)
    for row in rows:
        digest.update(json.dumps([row.system, row.history, row.prompt, row.response], ensure_ascii=False).encode())
    key = f"preflight:parts:{digest.hexdigest()}"
    cached = cache.get(key)
    if isinstance(cached, array):
        unpacked = _unpacked(cached)
        if len(unpacked) == len(rows):
            return unpacked
    lengths = []
    for start in range(0, len(rows), CHUNK):
        lengths += _token_lengths(tokenizer, rows[start : start + CHUNK])
    cache.set(key, array("L", [n for parts in lengths for n in (len(parts), *parts)]), LENGTHS_CACHE_S)
    return lengths


def _unpacked(packed: array) -> list[tuple[int, ...]]:
    """The cached counts: each row's number of parts, then its parts."""
    lengths, at = [], 0
    while at < len(packed):
        parts = packed[at]
        lengths.append(tuple(packed[at + 1 : at + 1 + parts]))
        at += 1 + parts
    return lengths


def _rows_of(
    *, snapshot: DatasetVersion | None, dataset: Dataset | None, validation_fraction: float
) -> tuple[Dataset, int, int, Iterator[SnapshotRow]]:
    """The run's dataset, its count of training pairs, of those that repeat an evaluation prompt, and every row."""
    if snapshot is not None:
        n_training = snapshot.n_train + snapshot.n_validation
        return snapshot.dataset, n_training, snapshot.eval_overlap, snapshot_stream(snapshot)
    assert dataset is not None
    total, overlap, rows = snapshot_draft(dataset=dataset, validation_fraction=validation_fraction)
    return dataset, total, overlap, rows


def run_preflight(
    *,
    user: AbstractBaseUser,
    snapshot: DatasetVersion | None = None,
    dataset: Dataset | None = None,
    base_model: str = "",
    method: str = "lora",
    objective: str = "sft",
    init_run: TrainingRun | None = None,
    hyperparameters: dict | None = None,
    validation_fraction: float = 0.1,
) -> Preflight:
    """What POST /api/runs/ would train on, checked as run_create checks it (leads only), saving and queueing nothing.

    Up to PREFLIGHT_MAX_PAIRS pairs are all tokenized; past that a seeded sample of that many is, and the token
    totals are scaled up from it (the counts of pairs, the steps and the warnings still cover every pair).
    """
    base_model, hyperparameters = run_settings(
        user=user, snapshot=snapshot, dataset=dataset, base_model=base_model, method=method, objective=objective,
        init_run=init_run, hyperparameters=hyperparameters,
    )  # fmt: skip
    config = TrainConfig.from_dict({**hyperparameters, "method": method, "objective": objective})
    source, total, overlap, rows = _rows_of(snapshot=snapshot, dataset=dataset, validation_fraction=validation_fraction)
    tokenizer, tokenizer_key = base_tokenizer(base_model)
    limit = settings.PREFLIGHT_MAX_PAIRS
    sample = random.Random(SAMPLE_SEED).sample(range(total), limit) if total > limit else None  # noqa: S311 - not a secret
    chosen = set(sample) if sample is not None else None
    kind = snapshot.kind if snapshot is not None else source.kind
    facts = Facts(kind=kind, max_seq_len=config.max_seq_len, eval_overlap=overlap)
    kept = []
    for row in rows:
        position = facts.training_pairs
        facts.observe(row)
        if row.split != EVAL and (chosen is None or position in chosen):
            kept.append(row)
    lengths = _lengths(tokenizer, tokenizer_key, kept)
    report = Preflight(
        dataset=source, snapshot=snapshot, base_model=base_model, config=config,
        validation_fraction=snapshot.validation_fraction if snapshot is not None else validation_fraction,
        pairs=[PairCount.of(row, pair, config.max_seq_len) for row, pair in zip(kept, lengths, strict=True)],
        total_pairs=total,
    )  # fmt: skip
    _add_up(report, facts)
    facts.truncated, facts.sampled = report.totals.truncated, report.sampled
    report.warnings = preflight_warnings(facts)
    report.estimate = training_estimate(
        user=user, base_model=base_model, method=method, tokens=report.splits[TRAIN].tokens * config.epochs
    )
    return report


def _add_up(report: Preflight, facts: Facts) -> None:
    """Totals per split (scaled up from a sample) and overall, and the trainer's step count."""
    sampled = {TRAIN: Totals(), VALIDATION: Totals()}
    for pair in report.pairs:
        sampled[pair.split or TRAIN].add(pair)
    for split, totals in sampled.items():
        report.splits[split] = totals.scaled_to(facts.pairs[split])
        report.totals += report.splits[split]
    # The trainer skips pairs with nothing to learn (no answer token left); a sample leaves their count unknown.
    untrained = sum(1 for pair in report.pairs if pair.split == TRAIN and not pair.trained_tokens)
    trainable = facts.pairs[TRAIN] - (0 if report.sampled else untrained)
    report.steps_per_epoch = steps_per_epoch(trainable, report.config)


# --- one pair's tokens


@dataclass(frozen=True)
class PairTokens:
    counts: PairCount
    pieces: list[tuple[str, str]]  # (text, "masked" | "trained" | "cut"), joined: the conversation as rendered
    max_seq_len: int
    base_model: str


def _snapshot_row(snapshot: DatasetVersion, example: int) -> SnapshotRow:
    for row in snapshot_stream(snapshot):
        if row.ref == example:
            return row
    raise Http404("no pair with this id in the snapshot")


def _objective_for(kind: str) -> str:
    """A pair's tokens are the same whatever the objective; this one is accepted for the pair's dataset."""
    return "dpo" if kind == DatasetKind.PREFERENCE else "sft"


def pair_tokens(
    *,
    user: AbstractBaseUser,
    example: int,
    snapshot: DatasetVersion | None = None,
    base_model: str = "",
    max_seq_len: int | None = None,
) -> PairTokens:
    """One pair's tokens as training will see them, each marked trained, masked or cut (leads, like the preflight).

    With a snapshot, its frozen copy of the pair; without, the pair as it is now in the dataset.
    """
    hyperparameters = {"max_seq_len": max_seq_len} if max_seq_len is not None else {}
    if snapshot is not None:
        base_model, config = run_settings(
            user=user, snapshot=snapshot, base_model=base_model, objective=_objective_for(snapshot.kind),
            hyperparameters=hyperparameters,
        )  # fmt: skip
        row = _snapshot_row(snapshot, example)
    else:
        pair = example_get(user=user, pk=example)
        base_model, config = run_settings(
            user=user, dataset=pair.dataset, base_model=base_model, objective=_objective_for(pair.dataset.kind),
            hyperparameters=hyperparameters,
        )  # fmt: skip
        row = SnapshotRow(ref=pair.pk, split="", system=pair.system_prompt, prompt=pair.prompt, response=pair.response,
                          history=pair.history, tags=pair.tags)  # fmt: skip
    tokenizer, _ = base_tokenizer(base_model)
    (lengths,) = _token_lengths(tokenizer, [row])
    pieces = token_pieces(tokenizer, _chat(row), config["max_seq_len"])
    return PairTokens(counts=PairCount.of(row, lengths, config["max_seq_len"]), pieces=pieces,
                      max_seq_len=config["max_seq_len"], base_model=base_model)  # fmt: skip
