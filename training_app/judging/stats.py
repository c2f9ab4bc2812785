"""The numbers of a tally of votes; pure Python."""

import math

Z_95 = 1.959963984540054  # the normal quantile of a two-sided 95% interval


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion (successes of trials); None without trials.

    Unlike the normal approximation it stays within [0, 1] and is honest for few trials or a rate near 0 or 1.
    """
    if trials <= 0:
        return None
    if not 0 <= successes <= trials:
        raise ValueError(f"successes must be between 0 and {trials}, got {successes}")
    rate = successes / trials
    z2 = z * z
    centre = (rate + z2 / (2 * trials)) / (1 + z2 / trials)
    spread = z / (1 + z2 / trials) * math.sqrt(rate * (1 - rate) / trials + z2 / (4 * trials * trials))
    return max(0.0, centre - spread), min(1.0, centre + spread)
