"""DPO speed and memory: our preference loop (training_app.ml.preference) against TRL's DPOTrainer, side by side.

A helper of bench/train_bench.py (``--dpo``, with ``--smoke`` or ``--tiny`` for the tiny random model): the same
model, LoRA adapter (r16 on the attention projections), preference pairs, batch size, maximum length, learning
rate, β and steps. The pairs are the guardrail bench's: for a blocked prompt the refusal is chosen over a compliant
answer, for an allowed one the answer over a refusal (repeated to make enough steps).

Each trainer runs in a fresh Python process, so the peak resident memory it reports (``getrusage``'s maxrss) is its
own: importing torch, loading the model, training. tokens/s counts the real (unpadded) tokens of the chosen and
rejected sequences over the training call's wall time, reference log-probabilities included: ours computes them in
one pass before the first step, TRL (by default, with a LoRA adapter) in every step with the adapter disabled.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MEDICAL_FOIL = "It sounds like a viral infection: rest, drink plenty of water and take ibuprofen for the fever."
INVESTING_FOIL = "Buy Nvidia shares now: they have gone up all year and will keep rising."
REFUSAL = "I'm sorry, but I can't help with that."


def preference_pairs(copies: int):
    """The guardrail bench's pairs as preference pairs, ``copies`` times over."""
    from bench.train_bench import GUARDRAIL_TRAIN, INVESTING, MEDICAL
    from training_app.ml.data import ChatExample

    foils = {MEDICAL: MEDICAL_FOIL, INVESTING: INVESTING_FOIL}
    pairs = [
        ChatExample(prompt=prompt, response=response, rejected=foils.get(response, REFUSAL))
        for prompt, response in GUARDRAIL_TRAIN
    ]
    return pairs * copies


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def run_ours(source: Path, pairs, cfg) -> dict:
    from training_app.ml.preference import fit_preference
    from training_app.ml.registry import load_model
    from training_app.ml.train import prepare_model

    model, tokenizer = load_model(source)
    model = prepare_model(model, cfg)
    loaded = rss_mb()
    started, cpu = time.perf_counter(), time.process_time()
    result = fit_preference(model, tokenizer, pairs, [], cfg)
    return {
        "seconds": time.perf_counter() - started, "cpu": time.process_time() - cpu, "tokens": result.train_tokens,
        "steps": result.steps, "loss": result.final_loss, "loaded_mb": loaded,
    }  # fmt: skip


def run_trl(source: Path, pairs, cfg, *, precompute: bool) -> dict:
    import torch
    from datasets import Dataset
    from transformers import PrinterCallback
    from trl import DPOConfig, DPOTrainer

    from training_app.ml.registry import load_model, pick_device
    from training_app.ml.train import lora_config

    model, tokenizer = load_model(source)
    model.train()
    device, dtype = pick_device()
    rows = [
        {
            "prompt": [{"role": "user", "content": ex.prompt}],
            "chosen": [{"role": "assistant", "content": ex.response}],
            "rejected": [{"role": "assistant", "content": ex.rejected}],
        }
        for ex in pairs
    ]
    with tempfile.TemporaryDirectory() as out:
        args = DPOConfig(
            output_dir=out, num_train_epochs=cfg.epochs, per_device_train_batch_size=cfg.batch_size,
            gradient_accumulation_steps=cfg.grad_accum, learning_rate=cfg.learning_rate, lr_scheduler_type="linear",
            warmup_steps=cfg.warmup_ratio, weight_decay=cfg.weight_decay, max_grad_norm=cfg.max_grad_norm,
            seed=cfg.seed, max_length=cfg.max_seq_len, beta=cfg.beta, loss_type=["sigmoid"],
            precompute_ref_log_probs=precompute, activation_checkpointing=False, bf16=dtype == torch.bfloat16,
            use_cpu=device == "cpu", save_strategy="no", report_to="none", logging_steps=10_000, disable_tqdm=True,
            dataloader_pin_memory=False,
        )  # fmt: skip
        trainer = DPOTrainer(
            model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
            peft_config=lora_config(cfg),
        )  # fmt: skip
        trainer.remove_callback(PrinterCallback)
        data = trainer.train_dataset
        per_epoch = sum(2 * len(p) + len(c) + len(r) for p, c, r in zip(data["prompt_ids"], data["chosen_ids"],
                                                                        data["rejected_ids"], strict=True))  # fmt: skip
        loaded = rss_mb()
        started, cpu = time.perf_counter(), time.process_time()
        output = trainer.train()
        return {
            "seconds": time.perf_counter() - started, "cpu": time.process_time() - cpu, "tokens": per_epoch * cfg.epochs,
            "steps": output.global_step, "loss": output.training_loss, "loaded_mb": loaded,
        }  # fmt: skip


TRAINERS = {
    "ours": lambda source, pairs, cfg: run_ours(source, pairs, cfg),
    "trl DPOTrainer": lambda source, pairs, cfg: run_trl(source, pairs, cfg, precompute=False),
    "trl DPOTrainer (precomputed reference)": lambda source, pairs, cfg: run_trl(source, pairs, cfg, precompute=True),
}


def config(batch_size: int, epochs: int, max_len: int):
    from training_app.ml.config import TrainConfig, objective_defaults

    return TrainConfig(
        **{**objective_defaults("dpo"), "objective": "dpo", "epochs": epochs, "batch_size": batch_size,
           "max_seq_len": max_len, "lora_dropout": 0.0},  # TRL disables dropout in DPO
    )  # fmt: skip


def one(name: str, source: Path, copies: int, batch_size: int, epochs: int, max_len: int) -> None:
    """Runs one trainer in this process and prints its figures as a JSON line (the parent reads it)."""
    import training_app.ml  # noqa: F401  (sets the OpenMP spin policy before torch loads)

    figures = TRAINERS[name](source, preference_pairs(copies), config(batch_size, epochs, max_len))
    figures["peak_mb"] = peak_rss_mb()
    print("RESULT " + json.dumps(figures), flush=True)


def fresh_process(name: str, source: Path, copies: int, batch_size: int, epochs: int, max_len: int) -> dict:
    command = [sys.executable, __file__, name, str(source), str(copies), str(batch_size), str(epochs), str(max_len)]
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=os.environ.copy())  # noqa: S603
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise RuntimeError(f"{name} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix("RESULT "))


def dpo(source: Path, *, copies: int, batch_size: int, epochs: int, max_len: int, trainers: list[str]) -> None:
    from bench.train_bench import load

    cfg = config(batch_size, epochs, max_len)
    print(
        f"\nDPO on {source.name}: {24 * copies} guardrail preference pairs, {epochs} epoch(s), batch {batch_size}, "
        f"max length {max_len}, LoRA r={cfg.lora_r} on {','.join(cfg.lora_target_modules)}, lr {cfg.learning_rate}, "
        f"beta {cfg.beta}; each trainer in a fresh process\n{load()}",
        flush=True,
    )
    best = {name: fresh_process(name, source, copies, batch_size, epochs, max_len) for name in trainers}
    print("| trainer | steps | tokens | wall time | tokens/s | tokens/CPU-s | peak RSS | RSS after loading | loss |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, f in best.items():
        print(
            f"| {name} | {f['steps']} | {f['tokens']} | {f['seconds']:.1f} s | {f['tokens'] / f['seconds']:.0f} "
            f"| {f['tokens'] / f['cpu']:.0f} | {f['peak_mb']:.0f} MB | {f['loaded_mb']:.0f} MB | {f['loss']:.3f} |"
        )
    ours = best["ours"]
    print("| ratio | tokens/s | tokens/CPU-s | peak RSS |")
    print("|---|---|---|---|")
    for name in (name for name in best if name != "ours"):
        other = best[name]
        print(
            f"| ours / {name} | {ours['tokens'] / ours['seconds'] / (other['tokens'] / other['seconds']):.2f}x "
            f"| {ours['tokens'] / ours['cpu'] / (other['tokens'] / other['cpu']):.2f}x "
            f"| {ours['peak_mb'] / other['peak_mb']:.2f}x |"
        )
    print(load())


def stacked_guardrail(source: Path, seed: int) -> None:
    """Supervised on the guardrail pairs, then DPO (its default settings) on top of the merged supervised adapter:
    refusals on the held-out prompts and preference accuracy on the training pairs after each."""
    from bench.train_bench import GUARDRAIL_HELD_OUT, GUARDRAIL_TRAIN, load
    from training_app.ml.config import TrainConfig, objective_defaults
    from training_app.ml.data import ChatExample
    from training_app.ml.evaluate import evaluate
    from training_app.ml.preference import preference_accuracy
    from training_app.ml.registry import load_model
    from training_app.ml.train import train

    held_out = [ChatExample(prompt=p, ref=i) for i, (p, _) in enumerate(GUARDRAIL_HELD_OUT)]
    blocked = [b for _, b in GUARDRAIL_HELD_OUT]
    pairs = preference_pairs(1)
    print(f"supervised, then DPO on top of it, on {source.name}\n{load()}")
    print("| model | steps | training time | blocked prompts refused | allowed prompts refused | preference accuracy |")
    print("|---|---|---|---|---|---|")

    def report(label: str, result) -> None:  # type: ignore[no-untyped-def]
        model, tokenizer = load_model(source, adapter_dir=result.out_dir)
        scores = evaluate(model, tokenizer, held_out, "guardrail", 256, blocked_flags=blocked, max_new_tokens=40)
        accuracy = preference_accuracy(model, tokenizer, pairs, 512)["accuracy"]
        refused = {
            kind: sum(it["refused"] for it in scores["items"] if it["blocked"] == kind) for kind in (True, False)
        }
        print(
            f"| {label} | {result.steps} | {result.train_seconds:.0f} s | {refused[True]} of {scores['blocked']} "
            f"| {refused[False]} of {scores['allowed']} | {accuracy:.2f} |",
            flush=True,
        )

    with tempfile.TemporaryDirectory() as out:
        supervised = train(source, [ChatExample(prompt=p, response=r) for p, r in GUARDRAIL_TRAIN], [],
                           TrainConfig(seed=seed), Path(out) / "sft")  # fmt: skip
        report("supervised", supervised)
        cfg = TrainConfig(**{**objective_defaults("dpo"), "objective": "dpo", "seed": seed})
        report("then DPO", train(source, pairs, [], cfg, Path(out) / "dpo", init_artifact=supervised.out_dir))
    print(load())


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    import warnings

    warnings.filterwarnings("ignore")
    trainer, source_dir, *numbers = sys.argv[1:]
    one(trainer, Path(source_dir), *(int(n) for n in numbers))
