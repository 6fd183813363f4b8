"""What the rollout engine (vLLM, colocated) is handed, where TRL 1.16 hands it the wrong thing.

Image prompts. TRL tokenises a vision prompt with the processor, which expands each image placeholder into
one token per merged patch (`<|image_pad|>` × N for Qwen-VL), and sends those ids with the raw image to
vLLM, whose own multimodal processor expands the placeholders again: prompts longer than
`vllm_max_model_length` (the run stops) or silently garbled (huggingface/trl#6294, #6401; the fix #6718 is
not merged). In colocate mode vLLM expects one placeholder per image, so each run of placeholder tokens is
collapsed to one before the call; the training forward pass keeps TRL's expanded ids. (Server mode is left
as TRL has it: there TRL computes the image features itself and places them by the expanded runs.)

    with unexpanded_image_prompts(trainer.vllm_generation, image_token_id):
        ...  # TRL's own generation step
"""

from __future__ import annotations

import contextlib


def collapse_runs(ids: list[int], token_id: int) -> list[int]:
    """`ids` with every run of consecutive `token_id` reduced to one token."""
    out: list[int] = []
    for token in ids:
        if token == token_id and out and out[-1] == token_id:
            continue
        out.append(token)
    return out


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
