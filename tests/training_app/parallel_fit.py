"""One process of a data-parallel fit of the tiny model (started by torchrun from test_ml_parallel.py): rank 0
writes each step's loss and the trained weights to the file named on the command line. With a second argument, a
model directory, it trains QLoRA over that model loaded in 4-bit (test_ml_qlora.py)."""

import json
import sys
from dataclasses import replace
from pathlib import Path

import torch

from tests.training_app.conftest_ml import fresh_tiny_model
from tests.training_app.test_ml_parallel import CONFIG, PAIRS, Losses
from training_app.ml.checkpoint import LoopOptions
from training_app.ml.distributed import sync_from_environment
from training_app.ml.registry import load_base, load_tokenizer
from training_app.ml.train import NullCallbacks, fit, prepare_model


def model_and_config():
    if len(sys.argv) < 3:
        return *fresh_tiny_model(), CONFIG
    source = Path(sys.argv[2])
    model = load_base(source, device="cpu", dtype=torch.float32, quantized=True)
    return model, load_tokenizer(source), replace(CONFIG, method="qlora")


if __name__ == "__main__":
    torch.set_num_threads(1)
    sync = sync_from_environment()
    model, tokenizer, cfg = model_and_config()
    model = prepare_model(model, cfg)
    callbacks = Losses() if sync.leader else NullCallbacks()
    result = fit(model, tokenizer, PAIRS, [], cfg, callbacks, options=LoopOptions(sync=sync))
    if sync.leader:
        weights = {name: p.detach().tolist() for name, p in model.named_parameters() if p.requires_grad}
        found = {"losses": callbacks.losses, "tokens": result.train_tokens, "weights": weights}
        with open(sys.argv[1], "w") as out:
            json.dump(found, out)
    torch.distributed.destroy_process_group()
