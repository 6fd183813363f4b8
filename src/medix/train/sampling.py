"""DAPO dynamic sampling on top of TRL's GRPOTrainer (TRL has none).

After a generation batch is scored, prompt groups whose mean overall reward is <= low or >= high carry
no learning signal (every answer equally right or wrong); with `min_std > 0`, so do groups whose rewards
barely differ. They are dropped, random training prompts are generated and scored until every process
has a full batch, at most `max_attempts` rounds (the official 20); then the run stops with an error, or
(`on_exhausted: pad`) the batch is filled with dropped groups at zero advantage. Per step:
dynamic_sampling/{kept,dropped,zero_std_kept,resampled,filled,rounds} and one line of trained prompt ids
in OUTPUT/dynamic_sampling.jsonl. The refill generator is saved in checkpoints, so a resumed run trains the
same prompts as an uninterrupted one.

Each step's scored completions (all rounds) also feed the reward-hacking monitor (`train/monitor.py`), whose
monitor/* metrics join TRL's. Only TRL's generate-and-score and RNG save/load hooks are overridden; loss,
optimiser and generation are TRL's.
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import torch
from accelerate.utils import gather_object
from trl import GRPOTrainer
from trl.trainer.utils import split_pixel_values_by_grid, unsplit_pixel_values_by_grid

from medix.errors import MedixError
from medix.train.config import DynamicSamplingConfig
from medix.train.monitor import RewardMonitor
from medix.train.rollout import checkpoint_layout, generation_context
from medix.files import read_json

log = logging.getLogger(__name__)

MONITOR_STATE = "reward_monitor.json"
_LEFT_PADDED = ("prompt_ids", "prompt_mask")
# Per-token fields TRL extends over the completion (prompt part, then zeros for the completion): one row is
# prompt + completion wide, so it is split at the prompt's width and each half padded on its own side.
_PROMPT_AND_COMPLETION = ("token_type_ids", "mm_token_type_ids")


def group_stats(overall: torch.Tensor, group_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) of each group's overall reward, NaN rows ignored; std is Bessel-corrected, as TRL's.

    overall: (num_groups * group_size,) → two (num_groups,) tensors.
    """
    grouped = overall.view(-1, group_size)
    mean = torch.nanmean(grouped, dim=1)
    count = (~torch.isnan(grouped)).sum(dim=1)
    var = torch.nansum((grouped - mean.unsqueeze(1)) ** 2, dim=1) / (count - 1).clamp(min=1)
    return mean, var.sqrt()


def keep_mask(overall: torch.Tensor, group_size: int, low: float, high: float, min_std: float = 0.0) -> torch.Tensor:
    """Per completion: True if its group's mean overall reward lies strictly between low and high (the official
    rule) and, when min_std > 0, the group's reward std is at least min_std.

    overall: (num_groups * group_size,) with NaN for unscorable rows (ignored).
    """
    mean, std = group_stats(overall, group_size)
    keep = (mean > low) & (mean < high)
    if min_std > 0:
        keep &= std >= min_std
    return keep.repeat_interleave(group_size)


def zero_std(overall: torch.Tensor, group_size: int) -> torch.Tensor:
    """Per completion: True if every scorable reward of its group is the same (zero advantage, no signal)."""
    grouped = overall.view(-1, group_size)
    low = torch.where(torch.isnan(grouped), torch.inf, grouped).min(dim=1).values
    high = torch.where(torch.isnan(grouped), -torch.inf, grouped).max(dim=1).values
    return torch.isclose(low, high).repeat_interleave(group_size)


def select_rows(batch: dict, rows: list[int]) -> dict:
    """Rows of a (pixel-values-split) TRL batch; scalars are kept as they are."""
    index = torch.tensor(rows, dtype=torch.long)
    out = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor) and value.dim() > 0:
            out[key] = value[index.to(value.device)]
        elif isinstance(value, list):
            out[key] = [value[i] for i in rows]
        else:
            out[key] = value
    return out


def on_device(batch: dict, device) -> dict:
    """`batch` with every tensor on `device`."""
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _pad_to(t: torch.Tensor, length: int, left: bool, value) -> torch.Tensor:
    pad = length - t.size(1)
    if pad <= 0:
        return t
    filler = torch.full((t.size(0), pad, *t.shape[2:]), value, dtype=t.dtype, device=t.device)
    return torch.cat([filler, t] if left else [t, filler], dim=1)


def concat_batches(parts: list[dict], pad_token_id: int) -> dict:
    """Concatenate TRL batches from several generation rounds; sequence tensors are re-padded (prompts on the
    left, completions and per-token values on the right, prompt-and-completion fields split at the prompt)."""
    prompt_width = max(p["prompt_ids"].size(1) for p in parts) if "prompt_ids" in parts[0] else 0
    completion_width = max(p["completion_ids"].size(1) for p in parts) if "completion_ids" in parts[0] else 0
    out = {}
    for key, first in parts[0].items():
        values = [p[key] for p in parts]
        if isinstance(first, list):
            out[key] = [x for v in values for x in v]
        elif key in _PROMPT_AND_COMPLETION and isinstance(first, torch.Tensor) and prompt_width:
            out[key] = torch.cat([_repad_prompt_and_completion(v, p["prompt_ids"].size(1), prompt_width,
                                                               completion_width) for v, p in zip(values, parts)])
        elif isinstance(first, torch.Tensor) and first.dim() >= 2 and key not in ("image_grid_thw",):
            length = max(v.size(1) for v in values)
            pad_value = pad_token_id if key.endswith("_ids") else 0
            out[key] = torch.cat([_pad_to(v, length, key in _LEFT_PADDED, pad_value) for v in values])
        elif isinstance(first, torch.Tensor) and first.dim() >= 1:
            out[key] = torch.cat(values)
        else:
            out[key] = first
    return out


def _repad_prompt_and_completion(t: torch.Tensor, prompt: int, prompt_width: int, completion_width: int):
    """(rows, prompt + completion) → (rows, prompt_width + completion_width): the prompt part padded on the left,
    the completion part on the right, so each value stays over its own token of prompt_ids + completion_ids."""
    head, tail = t[:, :prompt], t[:, prompt:]
    return torch.cat([_pad_to(head, prompt_width, True, 0), _pad_to(tail, completion_width, False, 0)], dim=1)


class DynamicSamplingGRPOTrainer(GRPOTrainer):
    """GRPOTrainer plus DAPO dynamic sampling and a per-completion record of every reward component.

    reward_source: the `overall` reward function (`rewards/composite.OverallReward`); the records take each
    component's value from its results."""

    def __init__(self, *args, dynamic_sampling: DynamicSamplingConfig | None = None, skip_failed_groups: bool = False,
                 monitor: RewardMonitor | None = None, reward_source=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.reward_source = reward_source  # the `overall` reward function: its `last` results name each component
        self.dynamic_sampling = dynamic_sampling or DynamicSamplingConfig()
        self.skip_failed_groups = skip_failed_groups  # reward.on_judge_error == "skip_group"
        self.monitor = monitor  # reward-hacking signals (train/monitor.py), fed after every scoring round
        # Refill prompts come from a generator of their own, one per process (processes refill different prompts),
        # saved in checkpoints so a resumed run refills exactly as the uninterrupted one.
        self._refill_rng = random.Random(self.args.seed * 1_000_003 + self.accelerator.process_index)
        self.completion_records: list[dict] = []  # filled per generation, drained by the completions logger
        if self.use_vllm:  # fused MoE experts go to vLLM in the checkpoint's layout (train/rollout.py)
            checkpoint_layout(self.vllm_generation, self.accelerator.unwrap_model(self.model).config.model_type)

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        weights = self.reward_weights.to(rewards_per_func.device)
        # The reward TRL trains on, per completion of the global batch: its weighted nansum, NaN where every
        # function returned None (TRL's "unscorable"; under skip_group, a failed judge verdict).
        self._last_overall = (rewards_per_func * weights).nansum(dim=1)  # (global batch,)
        self._last_overall[torch.isnan(rewards_per_func).all(dim=1)] = float("nan")
        start = self.accelerator.process_index * len(prompts)
        local = rewards_per_func[start:start + len(prompts)].tolist()
        results = self.reward_source.last if self.reward_source is not None else [None] * len(prompts)
        for row, completion, values, total, result in zip(inputs, completions, local,
                                                          self._last_overall[start:].tolist(), results):
            record = {"step": self.state.global_step, "id": row.get("id"), "completion": completion}
            record.update({name: (None if v != v else v) for name, v in zip(self.reward_func_names, values)})
            record["overall"] = None if total != total else total  # what TRL trains on (extra functions included)
            if result is not None:  # each component's own value, the guard, the parsed answer, the similarity
                record.update({k: v for k, v in result.to_dict().items() if k != "overall"})
            self.completion_records.append(record)
        if self.monitor is not None and self.model.training:  # every completion of the round, all processes
            self.monitor.add(gather_object(self.monitor.facts()))
        return rewards_per_func

    def _skipped_rows(self) -> torch.Tensor:
        """(global batch,) True for every completion of a group that holds an unscorable completion, under
        reward.on_judge_error=skip_group; all False otherwise."""
        group = self.num_generations
        bad = torch.isnan(self._last_overall).view(-1, group).any(dim=1)  # (num_groups,)
        if not self.skip_failed_groups:
            bad = torch.zeros_like(bad)
        return bad.repeat_interleave(group)

    def _score_round(self, inputs) -> dict:
        """One TRL generation + scoring round; groups skipped for a failed judge get no advantage and no loss
        tokens (they are left out of the update), and are counted in judge/skipped_groups."""
        batch = super()._generate_and_score_completions(inputs)
        if not self.model.training:
            return batch
        skipped = self._skipped_rows()
        start = self.accelerator.process_index * len(inputs)
        local = skipped[start:start + len(inputs)].to(batch["advantages"].device)
        self._metrics["train"]["judge/skipped_groups"].append(skipped.sum().item() / self.num_generations)
        if local.any():
            batch["advantages"] = batch["advantages"].masked_fill(local, 0.0)
            batch["completion_mask"] = (batch["completion_mask"]
                                        * (~local).unsqueeze(1).to(batch["completion_mask"].dtype))
        if skipped.any():  # every process recounts, so the collective below runs on all of them
            mask = batch["completion_mask"] * batch.get("tool_mask", 1)
            batch["num_items_in_batch"] = self.accelerator.gather(mask.sum()).sum()
        return batch

    def _generate_and_score_completions(self, inputs):
        if not self.model.training:
            return self._score_round(inputs)
        batch = self._dynamic_batch(inputs) if self.dynamic_sampling.enabled else self._score_round(inputs)
        if self.monitor is not None:
            metrics = self.monitor.end_step(self.state.global_step + 1, warn=self.accelerator.is_main_process)
            for name, value in metrics.items():
                self._metrics["train"][name].append(value)
        return batch

    def _dynamic_batch(self, inputs):
        """Generation rounds until every process has a full batch of groups that pass the filter."""
        cfg = self.dynamic_sampling
        need, group = len(inputs), self.num_generations
        kept, dropped, kept_ids, dropped_ids = [], [], [], []
        stats = {"kept": 0, "dropped": 0, "zero_std_kept": 0, "resampled": 0, "filled": 0, "rounds": 0}
        batch_inputs = inputs
        for attempt in range(cfg.max_attempts):
            batch = split_pixel_values_by_grid(self._score_round(batch_inputs))
            start = self.accelerator.process_index * len(batch_inputs)
            keep = keep_mask(self._last_overall, group, cfg.low, cfg.high, cfg.min_std) & ~self._skipped_rows()
            rows = keep[start:start + len(batch_inputs)].tolist()
            flat = zero_std(self._last_overall, group)[start:start + len(batch_inputs)].tolist()
            ids = [row.get("id") for row in batch_inputs]
            # Each round's rows wait in host memory (pixel values of a 320-image batch are GBs at the paper's
            # max_pixels); only the merged batch goes back to the device.
            kept.append(on_device(select_rows(batch, [i for i, k in enumerate(rows) if k]), "cpu"))
            dropped.append(on_device(select_rows(batch, [i for i, k in enumerate(rows) if not k]), "cpu"))
            del batch
            kept_ids += [ids[i] for i in range(0, len(rows), group) if rows[i]]
            dropped_ids += [ids[i] for i in range(0, len(rows), group) if not rows[i]]
            stats["kept"] += sum(rows) // group
            stats["dropped"] += (len(rows) - sum(rows)) // group
            stats["zero_std_kept"] += sum(k and f for k, f in zip(rows, flat)) // group
            stats["rounds"] += 1
            have = torch.tensor(sum(len(b["advantages"]) for b in kept), device=self.accelerator.device)
            fewest = self.accelerator.gather(have).min().item()
            if fewest >= need:
                break  # every process is full (all must run the same number of generation rounds)
            if attempt + 1 < cfg.max_attempts:
                batch_inputs = self._refill(need)
                stats["resampled"] += need // group
        else:
            if cfg.on_exhausted == "error":
                raise MedixError(
                    f"dynamic sampling: after {cfg.max_attempts} generation rounds (algorithm.dynamic_sampling."
                    f"max_attempts) a process has only {fewest // group} of the {need // group} prompt groups it "
                    f"needs with a mean reward inside ({cfg.low}, {cfg.high})"
                    + (f" and a reward std >= {cfg.min_std}" if cfg.min_std else "")
                    + f" (this process: kept {stats['kept']}, dropped {stats['dropped']}). Raise max_attempts, widen "
                    "low/high, or set algorithm.dynamic_sampling.on_exhausted=pad to fill the batch with dropped "
                    "groups (trained with zero advantage).")
        have = sum(len(b["advantages"]) for b in kept)
        stats["filled"] = max(0, need - have) // group
        merged = on_device(select_rows(concat_batches([*kept, *dropped], self._pad_id()), list(range(need))),
                           self.accelerator.device)
        if have < need:  # dropped groups fill the batch but teach nothing: the filter ruled them out
            merged["advantages"][have:] = 0.0
        mask = merged["completion_mask"] * merged.get("tool_mask", 1)
        merged["num_items_in_batch"] = self.accelerator.gather(mask.sum()).sum()
        for name, value in stats.items():
            self._metrics["train"][f"dynamic_sampling/{name}"].append(float(value))
        self._log_trained_groups((kept_ids + dropped_ids)[:need // group], stats)
        return unsplit_pixel_values_by_grid(merged)

    def _log_trained_groups(self, ids: list, stats: dict) -> None:
        """Append {step, trained prompt ids (all processes), counts} to OUTPUT/dynamic_sampling.jsonl."""
        everyone = gather_object([{"ids": ids, **stats}])  # one entry per process, on every process
        if not self.accelerator.is_main_process:
            return
        record = {"step": self.state.global_step + 1, "trained": [i for e in everyone for i in e["ids"]],
                  **{k: sum(e[k] for e in everyone) for k in stats if k != "rounds"}, "rounds": stats["rounds"],
                  "rounds_by_process": [e["rounds"] for e in everyone]}  # equal, or the collectives would hang
        path = Path(self.args.output_dir) / "dynamic_sampling.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")

    def _refill(self, size: int) -> list[dict]:
        """`size` new rows: random prompts from the training set, each repeated group-size times.

        The draw comes from this process's own generator, saved in every checkpoint (`_save_rng_state`)."""
        dataset, group = self.train_dataset, self.num_generations
        picks = [self._refill_rng.randrange(len(dataset)) for _ in range(size // group)]
        return [dataset[i] for i in picks for _ in range(group)]

    def _refill_state_file(self, folder: str) -> Path:
        return Path(folder) / f"dynamic_sampling_rng_{self.args.process_index}.json"

    def _save_rng_state(self, output_dir: str) -> None:
        """HF saves Python / numpy / torch generators; the refill generator goes beside them, one per process."""
        super()._save_rng_state(output_dir)
        path = self._refill_state_file(output_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self._refill_rng.getstate()))
        if self.monitor is not None and self.accelerator.is_main_process:  # its baseline and warnings so far
            (Path(output_dir) / MONITOR_STATE).write_text(json.dumps(self.monitor.state_dict()))

    def _load_rng_state(self, checkpoint: str | None) -> None:
        super()._load_rng_state(checkpoint)
        if checkpoint is None:
            return
        if self.monitor is not None and (Path(checkpoint) / MONITOR_STATE).is_file():
            self.monitor.load_state_dict(read_json(Path(checkpoint) / MONITOR_STATE))
        path = self._refill_state_file(checkpoint)
        if not path.is_file():
            log.warning("%s has no dynamic-sampling refill state: refilled prompts after this resume will differ "
                        "from an uninterrupted run", checkpoint)
            return
        version, internal, gauss = read_json(path)
        self._refill_rng.setstate((version, tuple(internal), gauss))

    def _generate_single_turn(self, prompt_ids, images, *args, **kwargs):
        """TRL's generation step; colocated vLLM gets each image's placeholder once, transformers' `generate`
        runs the shared prompt prefix once (`train/rollout.generation_context`)."""
        with generation_context(self, images):
            return super()._generate_single_turn(prompt_ids, images, *args, **kwargs)

    def _pad_id(self) -> int:
        tokenizer = getattr(self.processing_class, "tokenizer", self.processing_class)
        return tokenizer.pad_token_id or 0
