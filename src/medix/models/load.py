"""Loading models: the dtype rules of hardware.py, one "text or vision" rule (a zoo model by its kind, any
other by its config: `has_vision_config`), one error for every load failure.

Dtype: on CUDA the checkpoint's own (transformers' dtype="auto"); on CPU float32, except where asked for
"auto" (the local judge's default): `runtime_dtype`. A policy to train: `load_for_training`, `training_dtype`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from functools import lru_cache

from medix.errors import MedixError
from medix.models.embedded import resolve
from medix.models.hardware import pick_device, runtime_dtype, training_dtype
from medix.models.zoo import MINILM, SMOLLM2, known, served_name

log = logging.getLogger(__name__)


# One load at a time in a process: transformers' lazy imports are not thread-safe, and the judge loads its model
# on its own thread while the embedder loads on the trainer's ("cannot import name 'AutoModelForCausalLM'").
_LOADING = threading.RLock()


def _one_at_a_time(load):
    @functools.wraps(load)
    def serialized(*args, **kwargs):
        with _LOADING:
            return load(*args, **kwargs)
    return serialized


@contextlib.contextmanager
def whole_weights():
    """Load inference models whole while transformers' DeepSpeed ZeRO-3 hook is armed.

    Building a `GRPOConfig` under a ZeRO-3 accelerate config arms `zero.Init` for the rest of the process, on
    purpose, so the policy loads sharded. The reward's embedder and an in-process judge load lazily, at the first
    scored answer, inside that armed context: their parameters came out partitioned (local shape (0,)) and
    nothing gathers them ("'weight' must be 2-D" at the first step; ranks deadlock when only one loads).
    The hook is unset for the load and restored after. Every model load holds `_LOADING`, so no other load
    sees the gap; a thread that is not loading never asks transformers whether ZeRO-3 is on."""
    try:
        from transformers.integrations import deepspeed as hf_deepspeed
    except ImportError:  # transformers without its DeepSpeed integration: nothing is armed
        yield
        return
    armed = hf_deepspeed.deepspeed_config() and hf_deepspeed._hf_deepspeed_config_weak_ref()  # a strong reference
    if not armed:
        yield
        return
    hf_deepspeed.unset_hf_deepspeed_config()
    try:
        yield
    finally:
        hf_deepspeed.set_hf_deepspeed_config(armed)


def _inference_load(load):
    """One load at a time, and whole weights under an armed ZeRO-3 hook (`whole_weights`)."""
    @functools.wraps(load)
    def whole(*args, **kwargs):
        with _LOADING, whole_weights():
            return load(*args, **kwargs)
    return whole


def _torch_dtype(device: str, dtype: str | None):
    """from_pretrained's dtype: None (float32) / "auto" / a torch dtype."""
    import torch

    if dtype is None:
        return "auto" if device.startswith("cuda") else None
    return "auto" if dtype == "auto" else getattr(torch, dtype)


def hub_error(name: str, err: Exception, kind: str) -> MedixError:
    """A load failure for a hub id: say the hub may be unreachable and name the offline profile."""
    local = {"language model": SMOLLM2, "embedding model": MINILM}.get(kind, SMOLLM2)
    return MedixError(
        f"cannot load {kind} '{name}' ({err.__class__.__name__}: {str(err).splitlines()[0][:200]}). "
        f"If the model hub is unreachable, use the embedded '{local}' (the offline `local` profile)."
    )


def model_path(name: str, dtype: str | None = None, kind: str = "model") -> str:
    """Where a model's files are: an embedded model's folder, a folder given, or a hub id's snapshot at one
    commit (`medix.hub.model_folder`: `org/name@revision` pins one; the commit is recorded)."""
    from medix import hub

    return hub.model_folder(resolve(name, dtype), kind)


def model_revision(name: str, kind: str = "model") -> str | None:
    """The hub commit `name` loads at (`medix.hub.model_commit`); None for an embedded model or a folder."""
    from medix import hub

    entry = known(name)
    if entry is not None and entry.embedded:
        return None
    return hub.model_commit(served_name(name), kind)


def is_vision_model(name: str) -> bool:
    """A zoo model by its kind; any other from its config (a `vision_config` → image-text-to-text)."""
    entry = known(name)
    if entry is not None:
        return entry.vision
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(model_path(name))
    except OSError as err:
        raise hub_error(name, err, "model") from None
    except Exception as err:  # a config.json transformers cannot read (bad JSON, unknown model_type, ...)
        first = str(err).splitlines()[0][:200] if str(err) else ""
        raise MedixError(f"cannot read the config of model '{name}' ({err.__class__.__name__}: {first})") from None
    return has_vision_config(config)


def has_vision_config(config) -> bool:
    """An image-text-to-text model's config carries a `vision_config` (Qwen2/2.5/3-VL, LLaVA, ...)."""
    return getattr(config, "vision_config", None) is not None


@lru_cache(maxsize=4)
@_inference_load
def load_causal_lm(name: str, device: str | None = None, dtype: str | None = None):
    """(model, tokenizer) in eval mode; shared across callers in one process. dtype None: float32 on CPU,
    the checkpoint's on CUDA; "float32" / "bfloat16" / "auto" as `runtime_dtype`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = pick_device(device)
    chosen = None if dtype is None else runtime_dtype(device, dtype)
    path = model_path(name, chosen, "language model")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=_torch_dtype(device, chosen)).to(device).eval()
    except OSError as err:
        raise hub_error(name, err, "language model") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


@lru_cache(maxsize=4)
@_inference_load
def load_embedder(name: str, device: str | None = None):
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(model_path(name, kind="embedding model"), device=pick_device(device))
    except OSError as err:
        raise hub_error(name, err, "embedding model") from None


@_inference_load
def load_model(name: str, vision: bool | None = None, device: str | None = None):
    """(model, tokenizer or processor) in eval mode: a text LM, or an image-text-to-text model for a vision
    model (None: `is_vision_model`). Any load failure becomes one MedixError naming the model."""
    try:
        if vision is None:
            vision = is_vision_model(name)
        return _load_vision(name, device) if vision else load_causal_lm(name, device)
    except MedixError:
        raise
    except Exception as err:  # a broken folder, unsupported architecture, out of memory...
        first = str(err).splitlines()[0][:200] if str(err) else ""
        raise MedixError(f"cannot load model '{name}' ({err.__class__.__name__}: {first})") from None


@_one_at_a_time
def load_for_training(name: str, dtype: str = "auto", attn_implementation: str | None = None):
    """(model, tokenizer or processor) of a policy to train: image-text-to-text when its config has a vision
    config, else a causal LM; in `training_dtype(dtype)`; left where it loads (the trainer / accelerate places
    it) and in train mode."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor, AutoTokenizer

    path = model_path(name)
    kwargs = {"dtype": getattr(torch, training_dtype(dtype))}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    try:
        vision = has_vision_config(AutoConfig.from_pretrained(path))
        if vision:
            processor = vision_processor(AutoProcessor.from_pretrained(path), name)
            return AutoModelForImageTextToText.from_pretrained(path, **kwargs), processor
        return AutoModelForCausalLM.from_pretrained(path, **kwargs), AutoTokenizer.from_pretrained(path)
    except OSError as err:
        raise hub_error(name, err, "model") from None


def vision_processor(processor, name: str):
    """`processor` when it can read images. AutoProcessor falls back to the bare tokenizer when the model's
    processor cannot be built, and a vision model would then run on the text alone, every image silently
    dropped: refuse that, naming the likely cause."""
    if getattr(processor, "image_processor", None) is None:
        raise MedixError(f"vision model '{name}': its processor could not be built (transformers returned only "
                         f"the tokenizer, {type(processor).__name__}), so its images would be ignored. Qwen-VL "
                         "processors need torchvision for their video half: `pip install torchvision` matching "
                         "your torch, then run again")
    return processor


def _load_vision(name: str, device: str | None):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    device = pick_device(device)
    try:
        path = model_path(name, kind="vision-language model")
        processor = vision_processor(AutoProcessor.from_pretrained(path), name)
        model = AutoModelForImageTextToText.from_pretrained(path, dtype=_torch_dtype(device, None))
        model = model.to(device).eval()
    except OSError as err:
        raise hub_error(name, err, "vision-language model") from None
    return model, processor
