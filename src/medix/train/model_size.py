"""Exact model sizes without weights or network: build the model from its config on the meta device and count.

    size = model_size("Qwen/Qwen3-VL-8B-Instruct")      # 8,767,123,696 parameters, 36 layers × 4096
    size = model_size("runs/x/final", lora=(16, "all-linear"))

Where a config comes from, in order: the paper's models packaged in `paper_models.yaml` (architecture fields
only, source named per entry); an embedded model name; a local folder with config.json; the local Hugging
Face cache. Nothing is downloaded: a model found nowhere is a MedixError that says how to get its config.json.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from medix.errors import MedixError

PAPER_MODELS = Path(__file__).parent / "paper_models.yaml"


@dataclass(frozen=True)
class ModelSize:
    """What a memory plan needs from one model; counts are parameters, `kv_bytes_per_token` is bytes."""

    name: str
    source: str            # "packaged", "folder <path>", "HF cache <path>"
    params: int            # every parameter once (tied embeddings counted once)
    vision_params: int     # the vision tower's share of `params` (0 for a text model)
    hidden: int            # text hidden size
    layers: int            # text decoder (or encoder) layers
    vocab: int
    kv_heads: int
    head_dim: int
    max_positions: int     # the context the config allows (vLLM's max_model_len when none is given)
    largest_block: int     # the largest unit ZeRO-3 / FSDP gathers at once: a decoder layer or an embedding
    adapter_params: int    # LoRA adapter parameters (0 without LoRA)
    vision_hidden: int = 0  # vision tower width (0 for a text model)
    vision_layers: int = 0  # vision tower blocks
    vision_patch: int = 0   # pixels per patch side (the tower sees one token per patch)

    def kv_bytes_per_token(self, tensor_parallel: int = 1) -> int:
        """bf16 K and V of one token over all layers on one GPU of a tensor-parallel group. vLLM splits the KV
        heads over the group and replicates them when there are fewer heads than GPUs."""
        heads = max(1, self.kv_heads // tensor_parallel)
        return 2 * self.layers * heads * self.head_dim * 2


@lru_cache(maxsize=1)
def packaged_configs() -> dict[str, dict]:
    """hub id (and each alias) → packaged entry of paper_models.yaml."""
    entries = yaml.safe_load(PAPER_MODELS.read_text())
    table = {}
    for name, entry in entries.items():
        for key in (name, *entry.get("aliases", [])):
            table[key.lower()] = {**entry, "name": name}
    return table


def find_config(name: str):
    """(transformers config, where it was found) for a model name, offline."""
    from transformers import AutoConfig

    entry = packaged_configs().get(name.lower())
    if entry:
        config = AutoConfig.for_model(entry["model_type"], architectures=[entry["architecture"]], **entry["config"])
        return config, "packaged config" + ("" if entry["name"] == name else f" of {entry['name']}")
    folder, where = _local_folder(name)
    if folder is None:
        raise MedixError(
            f"no config.json for model '{name}' offline: it is not one of the packaged paper models "
            f"({', '.join(sorted({e['name'] for e in packaged_configs().values()}))}), not a local folder with a "
            "config.json, and not in the local Hugging Face cache. Fetch only its config once "
            f"(`huggingface-cli download {name} config.json`) or give the model's folder.")
    try:
        return AutoConfig.from_pretrained(folder), f"{where} {folder}"
    except (OSError, ValueError, KeyError) as err:
        raise MedixError(f"model '{name}': cannot read {folder}/config.json ({err.__class__.__name__}: "
                         f"{str(err).splitlines()[0][:200]})") from None


def _local_folder(name: str) -> tuple[Path | None, str]:
    """(folder holding config.json, what it is): an embedded model's, a folder given by path, or the HF-cache
    snapshot of a hub id; (None, "") when there is none."""
    from medix.models import known, resolve

    where = "folder"
    if (entry := known(name)) is not None and entry.embedded:
        name, where = resolve(name), "embedded"  # embedded models live in packages (SmolLM2 converted once)
    if (Path(name) / "config.json").is_file():
        return Path(name), where
    if Path(name).exists() or name.count("/") != 1:
        return None, ""
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(name, "config.json")
    return (Path(cached).parent, "HF cache") if isinstance(cached, str) else (None, "")


def meta_model(config):
    """The model class its config names (`architectures`, else the first Auto class that knows the config),
    built on the meta device: shapes only, no memory, no weights."""
    import transformers
    from accelerate import init_empty_weights
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForImageTextToText

    named = getattr(transformers, (config.architectures or [""])[0], None)
    autos = [a for a in (AutoModelForImageTextToText, AutoModelForCausalLM, AutoModel)
             if type(config) in a._model_mapping]
    if named is None and not autos:
        raise MedixError(f"model type '{config.model_type}' has no transformers model class to size")
    with init_empty_weights():
        model = named._from_config(config) if named is not None else autos[0].from_config(config)
    model.tie_weights()  # from_config leaves tied embeddings as two tensors; parameters() then counts one
    return model


def lora_adapter_params(model, r: int, targets: str | list[str]) -> int:
    """Parameters LoRA adds: r × (in + out) per adapted nn.Linear. 'all-linear' is peft's rule: every linear
    layer except the output head; a list matches module names by their last component (peft's suffix rule).
    Fused MoE expert tensors are not nn.Linear, so peft leaves them out, and so does this count."""
    import torch

    head = model.get_output_embeddings()
    total = 0
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear) or module is head:
            continue
        if targets == "all-linear" or name.rsplit(".", 1)[-1] in targets:
            total += r * (module.in_features + module.out_features)
    return total


def largest_block(model) -> int:
    """Parameters of the largest unit a sharded run gathers at once: one layer of any layer list, or one
    parameter on its own (an embedding matrix, the output head)."""
    import torch

    sizes = [p.numel() for p in model.parameters()]
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList):
            sizes += [sum(p.numel() for p in child.parameters()) for child in module]
    return max(sizes)


@lru_cache(maxsize=16)
def model_size(name: str, lora: tuple[int, str | tuple[str, ...]] | None = None) -> ModelSize:
    """Count `name`'s parameters exactly (see module docstring); `lora` = (rank, target modules)."""
    config, source = find_config(name)
    model = meta_model(config)
    text = config.get_text_config()
    vision = getattr(config, "vision_config", None)
    heads = text.num_attention_heads
    adapters = 0
    if lora:
        r, targets = lora
        adapters = lora_adapter_params(model, r, targets if isinstance(targets, str) else list(targets))
    return ModelSize(
        name=name, source=source,
        params=sum(p.numel() for p in model.parameters()),
        vision_params=sum(p.numel() for n, p in model.named_parameters() if ".visual." in f".{n}"),
        hidden=text.hidden_size, layers=text.num_hidden_layers, vocab=text.vocab_size,
        kv_heads=getattr(text, "num_key_value_heads", None) or heads,
        head_dim=getattr(text, "head_dim", None) or text.hidden_size // heads,
        max_positions=getattr(text, "max_position_embeddings", None) or 0,
        largest_block=largest_block(model), adapter_params=adapters,
        vision_hidden=getattr(vision, "hidden_size", 0) or 0, vision_layers=getattr(vision, "depth", 0) or 0,
        vision_patch=getattr(vision, "patch_size", 0) or 0)
