"""One process of a data-parallel fit of the tiny model (started by torchrun from test_ml_parallel.py): rank 0
writes each step's loss and the trained weights to the file named on the command line."""

import json
import sys

import torch

from tests.training_app.conftest_ml import fresh_tiny_model
from tests.training_app.test_ml_parallel import CONFIG, PAIRS, Losses
from training_app.ml.checkpoint import LoopOptions
from training_app.ml.distributed import sync_from_environment
from training_app.ml.train import NullCallbacks, fit, prepare_model

if __name__ == "__main__":
    torch.set_num_threads(1)
    sync = sync_from_environment()
    model, tokenizer = fresh_tiny_model()
    model = prepare_model(model, CONFIG)
    callbacks = Losses() if sync.leader else NullCallbacks()
    result = fit(model, tokenizer, PAIRS, [], CONFIG, callbacks, options=LoopOptions(sync=sync))
    if sync.leader:
        weights = {name: p.detach().tolist() for name, p in model.named_parameters() if p.requires_grad}
        found = {"losses": callbacks.losses, "tokens": result.train_tokens, "weights": weights}
        with open(sys.argv[1], "w") as out:
            json.dump(found, out)
    torch.distributed.destroy_process_group()
