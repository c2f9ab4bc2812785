"""The ML core: model sources, data encoding, training (supervised and by preference), generation and evaluation.

This package is the only place that imports torch, transformers, peft or trl, and it knows nothing
about Django: plain dataclasses and dicts go in and out. Import the submodules directly
(``training_app.ml.train`` and so on); this module stays light so importing the package is cheap.
"""

import os
import sys

if "torch" not in sys.modules:
    # OpenMP threads that wait for each other spin for a long time by default; when anything
    # else runs on the machine, that spinning stalls every step (we measured 10x slower
    # training on 2 busy cores). A short spin keeps the uncontended speed. It is read once,
    # when torch loads, so it must be set before the first torch import.
    os.environ.setdefault("GOMP_SPINCOUNT", "10000")
