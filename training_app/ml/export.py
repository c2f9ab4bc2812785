"""A run's model as one Hugging Face folder: a LoRA adapter merged into the base weights (a QLoRA adapter into the
full-precision base, as QLoRA models are usually shipped), saved as safetensors with the tokenizer, its chat
template and the generation config, so `from_pretrained`, vLLM or llama.cpp's converter take it without peft or
Instructory."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from training_app.ml.config import is_adapter_method
from training_app.ml.registry import load_model

# Files of a model folder the export copies as they are when the merged model did not write its own.
KEPT_FROM_SOURCE = ("generation_config.json",)


def export_merged(source_dir: Path, tuned_dir: Path, method: str, out_dir: Path) -> Path:
    """Write the merged model of a run (LoRA, QLoRA: base + adapter; full: its own weights) to ``out_dir``.

    Merged on the CPU in float32, then saved in the base model's own dtype.
    """
    out_dir = Path(out_dir)
    if is_adapter_method(method):
        model, tokenizer = load_model(Path(source_dir), adapter_dir=Path(tuned_dir), device="cpu")
        model = model.merge_and_unload()
    else:
        model, tokenizer = load_model(Path(tuned_dir), device="cpu")
    model.to(_saved_dtype(Path(source_dir)))
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    for name in KEPT_FROM_SOURCE:
        if (Path(source_dir) / name).exists() and not (out_dir / name).exists():
            shutil.copy2(Path(source_dir) / name, out_dir / name)
    return out_dir


def _saved_dtype(source_dir: Path) -> torch.dtype:
    config = json.loads((source_dir / "config.json").read_text())
    name = config.get("dtype") or config.get("torch_dtype") or "float32"
    dtype = getattr(torch, str(name), None)
    return dtype if isinstance(dtype, torch.dtype) else torch.float32
