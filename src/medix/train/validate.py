"""Answers on held-out samples (greedy unless a temperature is given), scored with the composite reward
(validation, demo before/after).

Under several training processes every process validates: each answers its own shard of the held-out rows
and the results are gathered, so every process reaches the same summary. Under ZeRO-3 and FSDP a forward
pass is a collective, so a process that sat validation out would leave the others waiting in `generate`
(the deadlock of validating on rank 0 alone). Shards are made equal in length (the shorter ones repeat an
item, dropped after the gather) so every process runs the same number of `generate` calls.
"""

from __future__ import annotations

import contextlib

from medix.generation import generate
from medix.rewards.components import image_present
from medix.rewards.composite import CompositeReward
from medix.rewards.score_file import summarize


def shard(n: int, index: int, count: int) -> tuple[list[int], int]:
    """(row indices for process `index` of `count`, how many of them are its own): every `count`-th row from
    `index`, padded by repeating one row so that every process holds ceil(n / count)."""
    own = list(range(index, n, count))
    width = -(-n // count)
    filler = own[-1:] if own else [0]
    return own + filler * (width - len(own)), len(own)


@contextlib.contextmanager
def unwrapped_for_generation(model, accelerator):
    """The whole policy for `generate` under TRL's own rules: ZeRO-3 weights gathered (hooks off), FSDP1 full
    parameters summoned; FSDP2 and DDP as they are."""
    if accelerator is None or accelerator.num_processes == 1 and not hasattr(model, "module"):
        yield model
        return
    from trl.distributed import DistributedBackend
    from trl.models import unwrap_model_for_generation

    with unwrap_model_for_generation(model, accelerator) as unwrapped, \
            DistributedBackend(accelerator).summon_full_params(model, recurse=False):
        yield unwrapped


class Validator:
    def __init__(self, dataset, processing, composite: CompositeReward, max_new_tokens: int, limit: int | None,
                 temperature: float = 0.0, top_p: float = 1.0, batch_size: int = 8):
        rows = dataset.select(range(min(len(dataset), limit or len(dataset))))
        self.rows, self.processing, self.composite, self.max_new_tokens = rows, processing, composite, max_new_tokens
        self.temperature, self.top_p, self.batch_size = temperature, top_p, batch_size  # per process (TRL's eval batch)

    def run(self, model, accelerator=None, trainer=None) -> dict:
        """The summary over every held-out row. With an `accelerator`, call it on every process: each answers
        its shard, and every process returns the same summary (results gathered). With a `trainer` that rolls
        out on vLLM, the answers come from that engine (`train/rollout.engine_answers`)."""
        index, count = (accelerator.process_index, accelerator.num_processes) if accelerator else (0, 1)
        picks, own = shard(len(self.rows), index, count)
        rows = self.rows.select(picks)
        images = rows["images"] if "images" in rows.column_names else None
        if trainer is not None and getattr(trainer, "use_vllm", False):
            from medix.train.rollout import engine_answers

            responses = engine_answers(trainer, rows["prompt"], images, self.max_new_tokens, self.temperature,
                                       self.top_p)
        else:
            with unwrapped_for_generation(model, accelerator) as policy:
                responses = generate(policy, self.processing, rows["prompt"], images, self.max_new_tokens,
                                     self.temperature, self.top_p, self.batch_size)
        has_image = [image_present(i) for i in images] if images else [False] * len(responses)
        results = self.composite.score(responses[:own], rows["solution"][:own], rows["problem"][:own], has_image[:own])
        mine = [(i, {"id": row_id, "response": r, **res.to_dict()}, res)
                for i, row_id, r, res in zip(picks, rows["id"], responses, results)]
        if count > 1:
            from accelerate.utils import gather_object

            mine = gather_object(mine)  # every process's own rows, on every process
        mine.sort(key=lambda item: item[0])
        self.last = [record for _, record, _ in mine]
        return summarize([res for _, _, res in mine])
