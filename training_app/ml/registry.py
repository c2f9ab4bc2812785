"""Base models: turn a settings entry into a local safetensors directory once, then load it.

A spec is a plain dict from settings; ``source`` says where the weights come from:

- ``gguf``: a GGUF file shipped inside a Python package (``package`` + ``file``) or at ``path``;
  dequantised to float32 once and saved as safetensors, because a GGUF-loaded model refuses
  ``save_pretrained`` and dequantising on every load costs ~15 s.
- ``local``: ``path`` is already a directory with config.json, *.safetensors and tokenizer files.
- ``hub``: ``repo_id`` (and optional ``revision``) is fetched once; only safetensors weights.
- ``tiny``: a small, seeded, random model with the architecture and tokenizer of ``base`` (another
  spec), for tests and smoke runs; building it reads only the base's metadata, never its weights.

Remote code is never trusted and weights are only ever read from safetensors.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from training_app.ml.tokenizer import MARKER

logger = logging.getLogger(__name__)
# On import (peft imports it too) bitsandbytes warns, on CPUs with AVX512-BF16, that the optional `kernels` package
# (fetched from the Hub) is missing; it then computes with torch's own operations, which is fine.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)

SOURCES = ("gguf", "local", "hub", "tiny")
# Written last into a finished build; holds the spec so a changed settings entry is rebuilt.
_MARKER = MARKER
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
# Llama-family names; keys the base config lacks are skipped.
TINY_SHAPE = {
    "num_hidden_layers": 2,
    "hidden_size": 64,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 128,
    "head_dim": 16,
    # Wider than the usual 0.02, so the random model is not near-uniform: its greedy answers
    # differ from prompt to prompt and a small adapter visibly changes them.
    "initializer_range": 0.1,
}
_HUB_FILES = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"]
# Config keys that describe how a file was stored, not the model; a fresh model must not inherit them.
_STORAGE_KEYS = ("quantization_config", "_name_or_path", "_model_name_or_path", "transformers_version")


class ModelSourceError(ValueError):
    """The spec is malformed or points at something that is not there."""


def pick_device() -> tuple[str, torch.dtype]:
    """The device to train and generate on: CUDA in bfloat16 where it can, else CPU in float32."""
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "cuda", torch.bfloat16
    if torch.cuda.is_available():
        return "cuda", torch.float32
    return "cpu", torch.float32


def dtype_for(device: str) -> torch.dtype:
    if device.startswith("cuda") and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def model_source_dir(spec: dict[str, Any], cache_root: Path) -> Path:
    """A local directory with config.json, safetensors weights and tokenizer files for ``spec``.

    Built at most once under ``cache_root/<name>/``: the build happens in a temporary sibling
    directory that is renamed into place, under a file lock, so a crashed build leaves nothing
    that looks finished and two racing processes do the work once.
    """
    source = spec.get("source")
    if source == "local":
        return _local_dir(spec)
    builders: dict[str, Callable[[Path], None]] = {
        "gguf": lambda tmp: _build_gguf(spec, tmp),
        "hub": lambda tmp: _build_hub(spec, tmp),
        "tiny": lambda tmp: _build_tiny(spec, Path(cache_root), tmp),
    }
    if source not in builders:
        raise ModelSourceError(f"source must be one of {', '.join(SOURCES)}, not {source!r}")
    return _cached(Path(cache_root) / _name(spec), spec, builders[source])


def load_model(
    source_dir: Path,
    *,
    adapter_dir: Path | None = None,
    device: str | None = None,
    quantized: bool = False,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a base model (optionally with a LoRA adapter on top) in eval mode, plus its tokenizer.

    ``source_dir`` may also be the output of a full fine-tune, which holds complete weights. ``quantized`` loads the
    base in 4-bit NF4, as a qlora run trained over it, so its adapter answers as it was trained.
    """
    if device is None:
        device, dtype = pick_device()
    else:
        dtype = dtype_for(device)
    model = load_base(source_dir, device=device, dtype=dtype, quantized=quantized)
    tokenizer_dir = source_dir
    if adapter_dir is not None:
        from peft import PeftModel

        if is_adapter(Path(adapter_dir) / INIT_DIR):  # a run stacked on an earlier one: that one first, merged
            if quantized:
                raise ModelSourceError("an adapter trained over another run's cannot be merged into a 4-bit base")
            model = merge_adapter(model, Path(adapter_dir) / INIT_DIR)
        with quiet_peft():
            model = PeftModel.from_pretrained(model, adapter_dir, is_trainable=False)
        if (Path(adapter_dir) / "tokenizer_config.json").exists():
            tokenizer_dir = adapter_dir
    tokenizer = load_tokenizer(tokenizer_dir)
    if not quantized:  # a 4-bit model is placed while it loads
        model.to(device)
    model.eval()
    return model, tokenizer


class QuantizationUnavailable(RuntimeError):
    """bitsandbytes, which loads a base in 4-bit for QLoRA, cannot be imported here."""


def load_base(source_dir: Path, *, device: str, dtype: torch.dtype, quantized: bool = False) -> PreTrainedModel:
    """The weights in ``source_dir`` on ``device`` in ``dtype``; ``quantized``: the linear layers of the transformer
    blocks in 4-bit NF4 with double quantization, computing in ``dtype`` (bitsandbytes, as QLoRA does)."""
    if not quantized:
        return AutoModelForCausalLM.from_pretrained(
            source_dir, dtype=dtype, use_safetensors=True, trust_remote_code=False
        ).to(device)
    from transformers import BitsAndBytesConfig

    import_bitsandbytes()
    config = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=dtype,
    )
    return AutoModelForCausalLM.from_pretrained(
        source_dir, dtype=dtype, quantization_config=config, device_map={"": _placed(device)},
        use_safetensors=True, trust_remote_code=False,
    )  # fmt: skip


def import_bitsandbytes() -> None:
    """Import bitsandbytes, or raise QuantizationUnavailable saying QLoRA needs it."""
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as error:
        raise QuantizationUnavailable(f"QLoRA needs bitsandbytes, which cannot be imported here: {error}") from error


def _placed(device: str) -> str | int:
    """Where a 4-bit model loads: the process's current GPU (each data-parallel process set its own), or the CPU."""
    if device == "cuda":
        return torch.cuda.current_device()
    return device


# Inside a LoRA artifact trained on top of an earlier one: a copy of that one's adapter (with its own init/, if any).
INIT_DIR = "init"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def is_adapter(directory: Path) -> bool:
    return all((Path(directory) / name).is_file() for name in ADAPTER_FILES)


def merge_adapter(model: PreTrainedModel, adapter_dir: Path) -> PreTrainedModel:
    """``model`` with the LoRA adapter in ``adapter_dir`` merged into its weights, the adapter's own init/ first."""
    from peft import PeftModel

    adapter_dir = Path(adapter_dir)
    if not is_adapter(adapter_dir):
        raise ModelSourceError(f"{adapter_dir} is not a LoRA artifact (it needs {' and '.join(ADAPTER_FILES)})")
    if is_adapter(adapter_dir / INIT_DIR):
        model = merge_adapter(model, adapter_dir / INIT_DIR)
    with quiet_peft():
        return PeftModel.from_pretrained(model, adapter_dir, is_trainable=False).merge_and_unload()


def copy_adapter(adapter_dir: Path, target: Path) -> None:
    """Copy a LoRA artifact's adapter files and its init/ chain (not its tokenizer or summary) to ``target``."""
    target.mkdir(parents=True)
    for name in ADAPTER_FILES:
        shutil.copy2(Path(adapter_dir) / name, target / name)
    if is_adapter(Path(adapter_dir) / INIT_DIR):
        copy_adapter(Path(adapter_dir) / INIT_DIR, target / INIT_DIR)


def load_tokenizer(directory: Path) -> PreTrainedTokenizerBase:
    tokenizer = AutoTokenizer.from_pretrained(directory, trust_remote_code=False)
    if tokenizer.pad_token is None:
        # Padding positions are masked out everywhere, so any real token will do.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


@contextmanager
def quiet_peft() -> Iterator[None]:
    """peft asks transformers a deprecated question; that warning is nothing for us to act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


# --- the cache -------------------------------------------------------------------------------


def _name(spec: dict[str, Any]) -> str:
    name = spec.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ModelSourceError(f"name must be letters, digits, '.', '_' or '-', not {name!r}")
    return name


# Registry keys that describe a model without changing its files; editing them keeps the cache.
_DESCRIPTIVE_KEYS = ("label", "context")


def _canonical(spec: dict[str, Any]) -> Any:
    build_keys = {key: value for key, value in spec.items() if key not in _DESCRIPTIVE_KEYS}
    if isinstance(build_keys.get("base"), dict):
        build_keys["base"] = _canonical(build_keys["base"])
    return json.loads(json.dumps(build_keys, sort_keys=True, default=str))


def _is_built(directory: Path, spec: dict[str, Any]) -> bool:
    marker = directory / _MARKER
    try:
        return json.loads(marker.read_text()) == _canonical(spec)
    except (OSError, ValueError):
        return False


def _cached(final: Path, spec: dict[str, Any], build: Callable[[Path], None]) -> Path:
    if _is_built(final, spec):
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(final) + ".lock"):
        if _is_built(final, spec):  # another process finished it while we waited
            return final
        logger.info("building model source %s", final)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.build-", dir=final.parent))
        try:
            tmp.chmod(0o755)  # mkdtemp makes it private; workers of other users may read it
            build(tmp)
            (tmp / _MARKER).write_text(json.dumps(_canonical(spec), sort_keys=True, indent=2))
            if final.exists():  # built from a different spec: move it aside, then swap
                old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
                final.rename(old)
                shutil.rmtree(old, ignore_errors=True)
            tmp.rename(final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final


# --- the sources -----------------------------------------------------------------------------


def _local_dir(spec: dict[str, Any]) -> Path:
    path = Path(str(spec.get("path", "")))
    if not (path / "config.json").is_file():
        raise ModelSourceError(f"{path} has no config.json")
    if not any(path.glob("*.safetensors")):
        raise ModelSourceError(f"{path} has no safetensors weights")
    return path


def _gguf_location(spec: dict[str, Any]) -> tuple[Path, str]:
    if spec.get("path"):
        path = Path(str(spec["path"]))
        directory, filename = path.parent, path.name
    else:
        package, filename = spec.get("package"), spec.get("file")
        if not package or not filename:
            raise ModelSourceError("a gguf source needs 'package' and 'file', or 'path'")
        # find_spec does not import the package, which may need dependencies we do not have.
        found = importlib.util.find_spec(package)
        if found is None or not found.submodule_search_locations:
            raise ModelSourceError(f"package {package!r} is not installed")
        directory = Path(next(iter(found.submodule_search_locations)))
    if not (directory / filename).is_file():
        raise ModelSourceError(f"{directory / filename} does not exist")
    return directory, filename


def _plain_config(config: PretrainedConfig, **overrides: Any) -> PretrainedConfig:
    values = {k: v for k, v in config.to_dict().items() if k not in _STORAGE_KEYS}
    values.update(overrides)
    return type(config).from_dict(values)


def _save_tokenizer(tokenizer: PreTrainedTokenizerBase, directory: Path) -> None:
    template = tokenizer.chat_template
    tokenizer.save_pretrained(directory)
    if template and AutoTokenizer.from_pretrained(directory).chat_template != template:
        raise ModelSourceError("the chat template did not survive saving the tokenizer")


def _build_gguf(spec: dict[str, Any], tmp: Path) -> None:
    directory, filename = _gguf_location(spec)
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=filename)
    loaded = AutoModelForCausalLM.from_pretrained(directory, gguf_file=filename, dtype=torch.float32)
    model = AutoModelForCausalLM.from_config(_plain_config(loaded.config), dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    # A tied lm_head may be absent from the GGUF file; tie_weights() restores it below.
    if unexpected or any(not key.startswith("lm_head") for key in missing):
        raise ModelSourceError(f"GGUF weights do not fit: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    model.generation_config = loaded.generation_config
    del loaded
    model.save_pretrained(tmp)
    _save_tokenizer(tokenizer, tmp)


def _build_hub(spec: dict[str, Any], tmp: Path) -> None:
    from huggingface_hub import snapshot_download

    repo_id = spec.get("repo_id")
    if not isinstance(repo_id, str) or "/" not in repo_id:
        raise ModelSourceError("a hub source needs repo_id as 'org/model'")
    snapshot_download(repo_id, revision=spec.get("revision"), local_dir=tmp, allow_patterns=_HUB_FILES)
    shutil.rmtree(tmp / ".cache", ignore_errors=True)
    _local_dir({"path": tmp})


def _base_metadata(base: dict[str, Any], cache_root: Path) -> tuple[PreTrainedTokenizerBase, PretrainedConfig]:
    """Tokenizer and config of a base spec without loading (or dequantising) its weights."""
    source = base.get("source")
    if source == "local":
        directory = _local_dir(base)
    elif source in ("gguf", "hub") and _is_built(cache_root / _name(base), base):
        directory = cache_root / _name(base)
    elif source == "gguf":
        gguf_dir, filename = _gguf_location(base)
        tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=filename)
        return tokenizer, AutoConfig.from_pretrained(gguf_dir, gguf_file=filename)
    elif source == "hub":
        directory = model_source_dir(base, cache_root)
    else:
        raise ModelSourceError("a tiny source needs a base spec of source gguf, local or hub")
    return AutoTokenizer.from_pretrained(directory), AutoConfig.from_pretrained(directory)


def _build_tiny(spec: dict[str, Any], cache_root: Path, tmp: Path) -> None:
    base = spec.get("base")
    if not isinstance(base, dict):
        raise ModelSourceError("a tiny source needs a 'base' spec")
    tokenizer, base_config = _base_metadata(base, cache_root)
    base_values = base_config.to_dict()
    shape = {k: v for k, v in {**TINY_SHAPE, **spec.get("shape", {})}.items() if k in base_values}
    config = _plain_config(base_config, **shape)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(spec.get("seed", 0)))
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.save_pretrained(tmp)
    _save_tokenizer(tokenizer, tmp)
