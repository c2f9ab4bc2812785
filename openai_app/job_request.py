"""The body of POST /v1/fine_tuning/jobs read as OpenAI reads it, and its hyperparameters mapped to a run's.

Every problem is a ValidationError naming the parameter as OpenAI names it (`hyperparameters.n_epochs`, or
`method.supervised.hyperparameters.n_epochs` when given there), so the answer is a 400 with that `param`.
"""

import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError

from training_app.ml.config import TrainConfig, validate_config

AUTO = "auto"
SUFFIX = re.compile(r"[A-Za-z0-9._-]{1,64}")
SEED_MAX = 2**32 - 1
KNOWN = {"model", "training_file", "validation_file", "suffix", "seed", "hyperparameters", "method", "metadata",
         "integrations"}  # fmt: skip
# OpenAI's name: (the run's setting, a whole number?)
HYPERPARAMETERS = {"n_epochs": ("epochs", True), "batch_size": ("batch_size", True),
                   "learning_rate_multiplier": ("learning_rate", False)}  # fmt: skip


@dataclass(frozen=True)
class JobRequest:
    model: str
    training_file: str
    validation_file: str
    suffix: str
    seed: int
    hyperparameters: dict[str, Any]  # the run's: epochs, batch_size, learning_rate, seed
    learning_rate_multiplier: float
    metadata: dict[str, str] | None


def base_learning_rate() -> float:
    return TrainConfig().learning_rate


def job_request(body: Any) -> JobRequest:
    """The request, every value checked and "auto" resolved to Instructory's default."""
    if type(body) is not dict:
        raise ValidationError("The body must be a JSON object.")
    unknown = sorted(set(body) - KNOWN)
    if unknown:
        raise ValidationError({unknown[0]: [f"Unrecognized request argument supplied: {unknown[0]}"]})
    model = _text(body, "model", required=True)
    if model not in settings.BASE_MODELS:
        raise ValidationError(
            {"model": [f"Model {model} is not available for fine-tuning; use one of {', '.join(settings.BASE_MODELS)}"]}
        )
    if body.get("integrations"):
        raise ValidationError({"integrations": ["Integrations are not supported."]})
    where, given = _hyperparameters(body)
    config, multiplier = _resolved(given, where)
    seed = _seed(body.get("seed"))
    return JobRequest(
        model=model, training_file=_text(body, "training_file", required=True),
        validation_file=_text(body, "validation_file"), suffix=_suffix(body.get("suffix")), seed=seed,
        hyperparameters={**config, "seed": seed}, learning_rate_multiplier=multiplier,
        metadata=_metadata(body.get("metadata")),
    )  # fmt: skip


def _text(body: dict, name: str, *, required: bool = False) -> str:
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise ValidationError({name: [f"{name} is required"]})
        return ""
    if type(value) is not str:
        raise ValidationError({name: [f"{name} must be a string"]})
    return value


def _suffix(value: Any) -> str:
    if value is None or value == "":
        return ""
    if type(value) is not str or not SUFFIX.fullmatch(value):
        raise ValidationError(
            {"suffix": ["suffix must be at most 64 letters, digits, '-', '_' or '.' (it becomes part of the model id)"]}
        )
    return value


def _seed(value: Any) -> int:
    if value is None:
        return TrainConfig().seed
    if type(value) is not int or not 0 <= value <= SEED_MAX:
        raise ValidationError({"seed": [f"seed must be a whole number from 0 to {SEED_MAX}"]})
    return value


def _metadata(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    fits = type(value) is dict and len(value) <= 16
    if not fits or not all(type(v) is str and len(k) <= 64 and len(v) <= 512 for k, v in value.items()):
        raise ValidationError(
            {"metadata": ["metadata must be at most 16 keys of up to 64 characters, with string values of up to 512"]}
        )
    return value


def _hyperparameters(body: dict) -> tuple[str, dict]:
    """Where the hyperparameters were given (the prefix of their `param`) and what they are."""
    top = body.get("hyperparameters")
    method = body.get("method")
    if method is None:
        return "hyperparameters", _object(top, "hyperparameters")
    method = _object(method, "method")
    kind = method.get("type")
    if kind in ("dpo", "reinforcement"):
        raise ValidationError(
            {"method.type": [f"method.type {kind} is not supported yet; use supervised (with a chat training file)"]}
        )
    if kind != "supervised":
        raise ValidationError({"method.type": ["method.type must be supervised"]})
    given = _object(_object(method.get("supervised"), "method.supervised").get("hyperparameters"),
                    "method.supervised.hyperparameters")  # fmt: skip
    if given and top:
        raise ValidationError(
            {"hyperparameters": ["give hyperparameters in method.supervised.hyperparameters only, not also here"]}
        )
    return ("method.supervised.hyperparameters", given) if given or not top else ("hyperparameters", top)


def _object(value: Any, name: str) -> dict:
    if value is None:
        return {}
    if type(value) is not dict:
        raise ValidationError({name: [f"{name} must be an object"]})
    return value


def _resolved(given: dict, where: str) -> tuple[dict[str, Any], float]:
    """The run's epochs, batch_size and learning_rate, and the multiplier; "auto" (or absent) is the default."""
    base = base_learning_rate()
    config: dict[str, Any] = {}
    for name, value in given.items():
        param = f"{where}.{name}"
        if name not in HYPERPARAMETERS:
            raise ValidationError({param: [f"{param} is not a hyperparameter: use {', '.join(HYPERPARAMETERS)}"]})
        setting, whole = HYPERPARAMETERS[name]
        if value is None or value == AUTO:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or (whole and not isinstance(value, int)):
            raise ValidationError({param: [f'{param} must be "auto" or {"a whole number" if whole else "a number"}']})
        config[setting] = value * base if setting == "learning_rate" else value
        problems = validate_config({setting: config[setting]})
        if problems and setting == "learning_rate":
            low, high = 1e-7 / base, 1 / base  # the run's learning rate is checked between 1e-7 and 1
            raise ValidationError({param: [f"{param} must be greater than 0, between {low:g} and {high:g}"]})
        if problems:
            raise ValidationError({param: [f"{param} {problems[0][1]}"]})
    defaults = TrainConfig()
    resolved = {"epochs": defaults.epochs, "batch_size": defaults.batch_size, "learning_rate": base, **config}
    multiplier = given.get("learning_rate_multiplier")
    return resolved, float(multiplier) if multiplier not in (None, AUTO) else 1.0
