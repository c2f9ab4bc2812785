"""How long training would take, from the speed earlier runs of the same base model and method measured here."""

from dataclasses import dataclass
from statistics import median

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser

from training_app.models import RunStatus
from training_app.selectors import run_list

RECENT_RUNS = 5  # the median of this many latest runs: the machine's speed now, not a year's average
MEASURED, DEFAULT = "measured", "default"


@dataclass(frozen=True)
class Estimate:
    seconds: float
    basis: str  # MEASURED or DEFAULT
    runs: int  # how many runs the speed comes from (0 for the default)
    tokens_per_s: float
    tokens: int  # the tokens training feeds forward, every epoch together

    def as_dict(self) -> dict:
        return {"seconds": self.seconds, "basis": self.basis, "runs": self.runs, "tokens_per_s": self.tokens_per_s,
                "tokens": self.tokens}  # fmt: skip


def measured_speeds(*, user: AbstractBaseUser, base_model: str, method: str) -> list[float]:
    """Training tokens/s of the latest succeeded runs on `base_model` with `method` that the user can see."""
    runs = run_list(user=user).filter(base_model=base_model, method=method, status=RunStatus.SUCCEEDED)
    speeds = []
    for summary in runs.order_by("-finished_at", "-id").values_list("summary", flat=True)[: RECENT_RUNS * 4]:
        speed = summary.get("tokens_per_s") if isinstance(summary, dict) else None
        if isinstance(speed, int | float) and speed > 0:
            speeds.append(float(speed))
    return speeds[:RECENT_RUNS]


def training_estimate(*, user: AbstractBaseUser, base_model: str, method: str, tokens: int) -> Estimate:
    """The optimizer steps' time for `tokens` (loading the model and evaluating it are not counted)."""
    speeds = measured_speeds(user=user, base_model=base_model, method=method)
    if speeds:
        speed, basis = median(speeds), MEASURED
    else:
        speed, basis = float(settings.PREFLIGHT_DEFAULT_TOKENS_PER_S), DEFAULT
    return Estimate(seconds=round(tokens / speed, 1), basis=basis, runs=len(speeds), tokens_per_s=round(speed, 1),
                    tokens=tokens)  # fmt: skip
