"""Training hyperparameters and their validation.

Deliberately free of torch imports, so forms and serializers can validate a config without
loading the ML stack. ``training_app.ml.train`` re-exports these names.
"""

from __future__ import annotations

import importlib.util
import math
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

METHODS = ("lora", "full", "qlora")
# Methods whose artifact is a LoRA adapter over the base (qlora trains it over the base loaded in 4-bit).
ADAPTER_METHODS = ("lora", "qlora")
# What a run learns from: supervised answers, or preference pairs (DPO against the starting model, or ORPO,
# which needs no reference).
OBJECTIVES = ("sft", "dpo", "orpo")
MAX_BETA = 10.0
_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")


class ConfigError(ValueError):
    """Raised with the list of (field, message) problems that make a config unusable."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{name}: {message}" for name, message in problems))


@dataclass
class TrainConfig:
    # epochs and learning_rate are tuned on SmolLM2-135M with 24 guardrail pairs (bench/train_bench.py
    # --guardrail): 18 steps teach the refusals without spilling onto allowed topics, in about 30 s
    # of training on 2 CPU cores. Larger data sets need fewer epochs.
    method: str = "lora"
    epochs: int = 6
    learning_rate: float = 1e-3
    batch_size: int = 8
    grad_accum: int = 1
    max_seq_len: int = 512
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    seed: int = 42
    warmup_ratio: float = 0.03
    group_by_length: bool = True
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    gradient_checkpointing: bool = False  # recompute activations in backward: less memory, about a third slower
    objective: str = "sft"
    beta: float = 0.1  # DPO: how far from the reference the policy may move; ORPO: the odds-ratio term's weight

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Defaults overlaid with ``values``; raises ConfigError listing every problem."""
        problems = validate_config(values)
        if problems:
            raise ConfigError(problems)
        merged = {**asdict(cls()), **values}
        merged["lora_target_modules"] = list(merged["lora_target_modules"])
        return cls(**merged)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# From a trial on SmolLM2-135M and 23 guardrail preference pairs (issue 14): a fresh LoRA trained with DPO on top
# of a merged supervised adapter at lr 5e-4 for 3 epochs kept the blocked prompts refused (5 of 6) and refused no
# allowed one; at 1e-3 DPO degraded the text. ORPO alone needed more: lr 8e-4, 5 epochs.
_OBJECTIVE_DEFAULTS: dict[str, dict[str, Any]] = {
    "sft": {},
    "dpo": {"learning_rate": 5e-4, "epochs": 3},
    "orpo": {"learning_rate": 8e-4, "epochs": 5},
}


def objective_defaults(objective: str) -> dict[str, Any]:
    """The hyperparameters whose default differs from TrainConfig's for ``objective``."""
    if objective not in _OBJECTIVE_DEFAULTS:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}")
    return dict(_OBJECTIVE_DEFAULTS[objective])


def is_adapter_method(method: str) -> bool:
    return method in ADAPTER_METHODS


def is_quantized_method(method: str) -> bool:
    """The base of a qlora run is loaded in 4-bit, for training and for every later use of its model."""
    return method == "qlora"


def method_description(method: str) -> str:
    """The method as a run's log names it."""
    return "qlora (base in 4-bit NF4)" if is_quantized_method(method) else method


def qlora_problem(method: str) -> str | None:
    """Why a run of ``method`` cannot train on this server (QLoRA without bitsandbytes), else None; looks the package
    up without importing it (and torch)."""
    if is_quantized_method(method) and importlib.util.find_spec("bitsandbytes") is None:
        return "QLoRA needs bitsandbytes, which is not installed here (pip install bitsandbytes); use lora or full"
    return None


def steps_per_epoch(pairs: int, cfg: TrainConfig) -> int:
    """Optimizer steps in one pass over ``pairs`` training pairs: batches of batch_size, grad_accum batches a step."""
    return math.ceil(math.ceil(pairs / cfg.batch_size) / cfg.grad_accum)


def _number(value: Any, *, integer: bool) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) if integer else isinstance(value, int | float)


MIN_SEQ_LEN, MAX_SEQ_LEN = 32, 131072
# field: (integer?, low, high, high is exclusive?)
_RANGES: dict[str, tuple[bool, float, float, bool]] = {
    "epochs": (True, 1, 100, False),
    "learning_rate": (False, 1e-7, 1, False),
    "batch_size": (True, 1, 1024, False),
    "grad_accum": (True, 1, 1024, False),
    "max_seq_len": (True, MIN_SEQ_LEN, MAX_SEQ_LEN, False),
    "lora_r": (True, 1, 1024, False),
    "lora_alpha": (False, 1e-3, 4096, False),
    "lora_dropout": (False, 0, 1, True),
    "seed": (True, 0, 2**32 - 1, False),
    "warmup_ratio": (False, 0, 1, True),
    "weight_decay": (False, 0, 1, False),
    "max_grad_norm": (False, 0, 1e4, False),  # 0 turns clipping off
}


def validate_config(cfg: dict[str, Any]) -> list[tuple[str, str]]:
    """Every problem with a (partial) config as (field, message); empty means usable.

    Whether the LoRA target modules exist is checked later, against the model.
    """
    known = {f.name for f in fields(TrainConfig)}
    problems = [(name, "is not a training setting") for name in cfg if name not in known]
    for name, (integer, low, high, open_high) in _RANGES.items():
        if name not in cfg:
            continue
        value = cfg[name]
        if not _number(value, integer=integer):
            problems.append((name, "must be a whole number" if integer else "must be a number"))
        elif open_high and not low <= value < high:
            problems.append((name, f"must be at least {low:g} and below {high:g}"))
        elif not open_high and not low <= value <= high:
            problems.append((name, f"must be between {low:g} and {high:g}"))
    if "method" in cfg and cfg["method"] not in METHODS:
        problems.append(("method", f"must be one of {', '.join(METHODS)}"))
    if "objective" in cfg and cfg["objective"] not in OBJECTIVES:
        problems.append(("objective", f"must be one of {', '.join(OBJECTIVES)}"))
    if "beta" in cfg and not _number(cfg["beta"], integer=False):
        problems.append(("beta", "must be a number"))
    elif "beta" in cfg and not 0 < cfg["beta"] <= MAX_BETA:
        problems.append(("beta", f"must be above 0 and at most {MAX_BETA:g}"))
    for flag in ("group_by_length", "gradient_checkpointing"):
        if flag in cfg and not isinstance(cfg[flag], bool):
            problems.append((flag, "must be true or false"))
    if "lora_target_modules" in cfg:
        modules = cfg["lora_target_modules"]
        if not isinstance(modules, list | tuple) or not modules:
            problems.append(("lora_target_modules", "must be a non-empty list of module names"))
        elif not all(isinstance(m, str) and _MODULE_NAME.fullmatch(m) for m in modules):
            problems.append(("lora_target_modules", "must be module names like q_proj"))
    return problems


def settings_schema() -> dict[str, Any]:
    """The JSON Schema (OpenAPI 3.0) of the settings validate_config accepts, `method` aside: what a run's
    `hyperparameters` may hold, so the API documents exactly the values it takes."""
    properties: dict[str, Any] = {}
    for name, (integer, low, high, open_high) in _RANGES.items():
        properties[name] = {"type": "integer" if integer else "number", "minimum": low, "maximum": high}
        if open_high:
            properties[name]["exclusiveMaximum"] = True
    properties["group_by_length"] = {"type": "boolean"}
    properties["gradient_checkpointing"] = {"type": "boolean"}
    properties["objective"] = {"type": "string", "enum": list(OBJECTIVES)}
    properties["beta"] = {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": MAX_BETA}
    properties["lora_target_modules"] = {
        "type": "array",
        "minItems": 1,
        "items": {"type": "string", "pattern": f"^{_MODULE_NAME.pattern}$"},
    }
    return {"type": "object", "properties": properties, "additionalProperties": False}
