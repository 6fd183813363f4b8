"""Weights handed to the rollout engine are in the checkpoint's layout.

transformers 5 transposes Qwen3-VL-MoE's fused expert tensors at load; vLLM's Qwen3-VL-MoE loader reads the
checkpoint's layout (experts.gate_up_proj: (experts, hidden, 2 x moe_intermediate), experts.down_proj:
(experts, moe_intermediate, hidden), as in the published Qwen3-VL-30B-A3B files) and transposes itself.
The expected shapes below are that layout, written from the checkpoint format, not from the code under test.
"""

import torch
from transformers import Qwen3VLMoeConfig, Qwen3VLMoeForConditionalGeneration

from medix.testing.tiny import tiny_qwen3_vl
from medix.train.rollout import checkpoint_layout

E, H, F = 4, 32, 24  # experts, hidden, moe intermediate: every dimension distinct, so no transpose hides


def tiny_qwen3_vl_moe():
    torch.manual_seed(0)
    config = Qwen3VLMoeConfig(
        text_config=dict(vocab_size=128, hidden_size=H, intermediate_size=64, moe_intermediate_size=F,
                         num_experts=E, num_experts_per_tok=2, num_hidden_layers=2, num_attention_heads=2,
                         num_key_value_heads=1, head_dim=16,
                         rope_scaling={"rope_type": "default", "mrope_section": [2, 3, 3], "mrope_interleaved": True}),
        vision_config=dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=H,
                           patch_size=16, spatial_merge_size=2, temporal_patch_size=2, deepstack_visual_indexes=[0],
                           num_position_embeddings=64))
    return Qwen3VLMoeForConditionalGeneration(config)


class Sync:
    """TRL's VLLMGeneration as far as the weight sync goes: the named parameters it pushes."""

    def __init__(self, model):
        self.model = model

    def _iter_named_params(self):
        yield from self.model.named_parameters()


def test_fused_moe_experts_reach_the_engine_in_the_checkpoint_layout():
    model = tiny_qwen3_vl_moe()
    sync = Sync(model)
    assert checkpoint_layout(sync, model.config.model_type)
    pushed = dict(sync._iter_named_params())
    memory = dict(model.named_parameters())
    experts = [n for n in pushed if ".mlp.experts." in n]
    assert len(experts) == 4  # gate_up and down in both layers
    for name in experts:
        expected = (E, H, 2 * F) if name.endswith("gate_up_proj") else (E, F, H)
        assert tuple(pushed[name].shape) == expected, name
        assert torch.equal(pushed[name], memory[name].transpose(1, 2))
    for name in pushed:  # everything else untouched
        if name not in experts:
            assert pushed[name] is memory[name]


def test_dense_models_are_pushed_as_they_are():
    model, _ = tiny_qwen3_vl()
    sync = Sync(model)
    assert not checkpoint_layout(sync, model.config.model_type)
    assert all(p is q for (_, p), (_, q) in zip(sync._iter_named_params(), model.named_parameters()))
