"""One process of a sharded (FSDP) full fine-tune of the tiny model, started by torchrun from test_ml_parallel.py.

Each rank writes how many weights it holds to rank<N>.json in the folder named on the command line; rank 0 also
writes what its callbacks saw in two runs: a sharded run from the start (checkpoint of step 2 kept, artifact saved)
and a sharded run resumed from the single-process checkpoint the test left in single-checkpoint/."""

import json
import sys
from pathlib import Path

import torch

from tests.training_app.conftest_ml import fresh_tiny_model, tiny_source
from tests.training_app.test_ml_parallel import FULL, PAIRS, VALIDATION, Recorder
from training_app.ml.checkpoint import LoopOptions
from training_app.ml.distributed import local_numel, sync_from_environment
from training_app.ml.train import NullCallbacks, train

if __name__ == "__main__":
    torch.set_num_threads(1)
    folder = Path(sys.argv[1])
    sync = sync_from_environment()
    model, _ = fresh_tiny_model()
    model.requires_grad_(True)
    sync.shard(model)
    held = {"local": local_numel(model), "total": sum(p.numel() for p in model.parameters())}
    (folder / f"rank{sync.rank}.json").write_text(json.dumps(held))

    found = {}
    for name, resume in [("sharded", None), ("resumed", folder / "single-checkpoint")]:
        callbacks = Recorder(folder / f"{name}-checkpoint") if sync.leader else NullCallbacks()
        options = LoopOptions(sync=sync, micro_batch=1, resume=resume)
        result = train(tiny_source(), PAIRS, VALIDATION, FULL, folder / name, callbacks, options=options)
        if sync.leader:
            found[name] = {**callbacks.figures(), "val_loss": result.val_loss, "tokens": result.train_tokens}
    if sync.leader:
        (folder / "found.json").write_text(json.dumps(found))
    torch.distributed.destroy_process_group()
