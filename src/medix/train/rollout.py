"""What the rollout engine is handed, where TRL 1.16 hands it the wrong thing or more than it needs.

Shared prompt prefixes. Without vLLM, TRL calls transformers' `generate` on every prompt `num_generations`
times, and every prompt starts with the same system prompt and worked examples: that prefix is run once and its
key/value cache repeated (`shared_prefix_rollouts`, `medix.generation.generate_ids`; same tokens). On the
demo's CPU rollouts this was most of the prompt work (docs/performance.md).

Image prompts. TRL tokenises a vision prompt with the processor, which expands each image placeholder into
one token per merged patch (`<|image_pad|>` × N for Qwen-VL), and sends those ids with the raw image to
vLLM, whose own multimodal processor expands the placeholders again: prompts longer than
`vllm_max_model_length` (the run stops) or silently garbled (huggingface/trl#6294, #6401; the fix #6718 is
not merged). In colocate mode vLLM expects one placeholder per image, so each run of placeholder tokens is
collapsed to one before the call; the training forward pass keeps TRL's expanded ids. (Server mode is left
as TRL has it: there TRL computes the image features itself and places them by the expanded runs.)

    with unexpanded_image_prompts(trainer.vllm_generation, image_token_id):
        ...  # TRL's own generation step

Weights of fused MoE experts. transformers 5 transposes some fused expert tensors when it loads a checkpoint
(Qwen3-VL-MoE: `mlp.experts.gate_up_proj` and `down_proj`, its conversion mapping) and TRL pushes the
parameters to vLLM as they are in memory; vLLM's loader expects the checkpoint's layout and transposes itself,
so a 30B-A3B run fails at the first weight sync on shapes (reported for verl, volcengine/verl#6210). Those
tensors are handed back in the checkpoint's layout, read from transformers' own mapping for the model type:

    checkpoint_layout(trainer.vllm_generation, model.config.model_type)
"""

from __future__ import annotations

import contextlib
import functools
import re


def collapse_runs(ids: list[int], token_id: int) -> list[int]:
    """`ids` with every run of consecutive `token_id` reduced to one token."""
    out: list[int] = []
    for token in ids:
        if token == token_id and out and out[-1] == token_id:
            continue
        out.append(token)
    return out


def generation_context(trainer, images):
    """The context for one of TRL's generation calls: on colocated vLLM with images, each image's placeholder
    once (`unexpanded_image_prompts`); on transformers' `generate`, the prompt prefix all rows share run once
    (`shared_prefix_rollouts`), except under ZeRO-3 / FSDP, where every forward is a collective and every
    process must run the same passes; else nothing."""
    token = getattr(trainer, "_image_pad_token_id", None)
    if trainer.use_vllm:
        if trainer.vllm_mode == "colocate" and images is not None and token is not None:
            return unexpanded_image_prompts(trainer.vllm_generation, token)
        return contextlib.nullcontext()
    if (trainer.is_deepspeed_enabled or trainer.is_fsdp_enabled
            or getattr(trainer.args, "use_transformers_paged", False)):
        return contextlib.nullcontext()
    return shared_prefix_rollouts(trainer.model)


@contextlib.contextmanager
def shared_prefix_rollouts(model):
    """For the duration: `model.generate` is `medix.generation.generate_ids` (same tokens, the shared prefix
    computed once)."""
    from medix.generation import generate_ids

    model.generate = functools.partial(generate_ids, model)
    try:
        yield
    finally:
        del model.generate  # back to the class's method


@contextlib.contextmanager
def unexpanded_image_prompts(vllm_generation, image_token_id: int):
    """For the duration: `vllm_generation.generate` receives each image's placeholder once."""
    generate, own = vllm_generation.generate, "generate" in vars(vllm_generation)

    def collapsed(prompts, *args, **kwargs):
        return generate([collapse_runs(list(p), image_token_id) for p in prompts], *args, **kwargs)

    vllm_generation.generate = collapsed
    try:
        yield
    finally:
        if own:
            vllm_generation.generate = generate
        else:
            del vllm_generation.generate  # back to the class's method


def load_transposes(model_type: str) -> list[tuple[re.Pattern, int, int]]:
    """(name pattern, dim0, dim1) of every tensor transformers transposes in place when it loads a checkpoint of
    `model_type` (a converter that keeps the name and only transposes); [] for most models."""
    from transformers.conversion_mapping import get_checkpoint_conversion_mapping
    from transformers.core_model_loading import Transpose, WeightConverter

    out = []
    for converter in get_checkpoint_conversion_mapping(model_type) or []:
        ops = getattr(converter, "operations", None)
        if not isinstance(converter, WeightConverter) or not ops or not all(isinstance(op, Transpose) for op in ops):
            continue
        if list(converter.source_patterns) != list(converter.target_patterns):
            continue
        for pattern in converter.target_patterns:
            for op in ops:
                out.append((re.compile(re.escape(pattern) + "$"), op.dim0, op.dim1))
    return out


def in_checkpoint_layout(named_params, transposes: list[tuple[re.Pattern, int, int]]):
    """(name, tensor) pairs with the load-time transposes undone (a transpose is its own inverse)."""
    for name, param in named_params:
        for pattern, dim0, dim1 in transposes:
            if pattern.search(name):
                param = param.transpose(dim0, dim1).contiguous()
        yield name, param


def checkpoint_layout(vllm_generation, model_type: str) -> bool:
    """Make TRL's weight sync hand vLLM the checkpoint's layout for `model_type`; False when nothing differs."""
    transposes = load_transposes(model_type)
    if not transposes:
        return False
    named = vllm_generation._iter_named_params  # TRL 1.16: the one iterator behind server and colocate syncs
    vllm_generation._iter_named_params = lambda: in_checkpoint_layout(named(), transposes)
    return True


@contextlib.contextmanager
def _sampling(vllm_generation, **settings):
    """TRL's VLLMGeneration reads its sampling settings from attributes at each call: set them for the block."""
    before = {name: getattr(vllm_generation, name) for name in settings}
    for name, value in settings.items():
        setattr(vllm_generation, name, value)
    try:
        yield
    finally:
        for name, value in before.items():
            setattr(vllm_generation, name, value)


def engine_answers(trainer, conversations: list, images: list | None, max_new_tokens: int, temperature: float,
                   top_p: float) -> list[str]:
    """Validation answers from the run's own vLLM engine (a 256-item, 4,096-token validation through HF generate
    takes hours on one GPU). Weights are synced first if the policy moved since the last sync; every process
    calls it with as many conversations as the others (colocated tensor-parallel groups and server mode gather)."""
    from trl.data_utils import prepare_multimodal_messages

    generation = trainer.vllm_generation
    if images is not None:
        conversations = [prepare_multimodal_messages(c, images=list(i or [])) for c, i in zip(conversations, images)]
    prompt_ids, prompt_images, _ = trainer._tokenize_prompts(conversations)
    if trainer.state.global_step != trainer._last_loaded_step:
        generation.sync_weights()
        trainer._last_loaded_step = trainer.state.global_step
    sampling = _sampling(generation, temperature=temperature or 0.0, top_p=top_p, max_completion_length=max_new_tokens)
    with generation_context(trainer, prompt_images), sampling:
        _, completion_ids, _, _ = generation.generate(prompts=prompt_ids, images=prompt_images, num_generations=1)
    tokenizer = getattr(trainer.processing_class, "tokenizer", trainer.processing_class)
    return tokenizer.batch_decode(completion_ids, skip_special_tokens=True)
