"""The judge a training run talks to: a managed server on GPUs of its own, or a URL checked before any load.

    judge_serve: {enabled: true, engine: vllm, gpus: [6, 7], tensor_parallel_size: 2,
                  gpu_memory_utilization: 0.97, max_model_len: 8192}
    accelerate launch --num_processes 6 -m medix train --config my.yaml   # training on GPUs 0-5

Training processes use the first LOCAL_WORLD_SIZE visible GPUs of the node (one each; a colocated vLLM rollout
shares them). The judge server gets its own CUDA_VISIBLE_DEVICES and is refused on any of those GPUs, as the
official recipe serves the judge on GPUs that training does not use.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import TYPE_CHECKING

from medix.backends import get_backend
from medix.errors import MedixError
from medix.serving.config import JudgeServeConfig

if TYPE_CHECKING:  # training owns its config; serving only reads it
    from medix.train.config import TrainConfig

log = logging.getLogger(__name__)


def visible_gpus() -> list[int]:
    """Physical ids of the GPUs this process may use (CUDA_VISIBLE_DEVICES, else all), [] without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return []
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is None:
        return list(range(torch.cuda.device_count()))
    try:
        return [int(x) for x in listed.split(",") if x.strip()]
    except ValueError:  # UUIDs or MIG names: no numeric overlap check possible
        return []


def training_gpus(visible: list[int], local_processes: int) -> list[int]:
    """The GPUs the training processes of this node use: one per local process, in visible order."""
    return visible[:max(1, local_processes)]


def judge_server_env(serve: JudgeServeConfig, training: list[int], cuda: bool) -> dict[str, str]:
    """Environment of the judge server: its own CUDA_VISIBLE_DEVICES; MedixError when it would share GPUs."""
    env = os.environ.copy()
    if serve.gpus is None:
        if cuda and not serve.allow_shared_gpus:
            raise MedixError(f"judge_serve.gpus is not set, so the judge server would start on the training GPUs "
                             f"{training}: give it GPUs of its own (e.g. judge_serve.gpus=[6,7] with 6 training "
                             "processes), point reward.judge.base_urls at a judge on another node with "
                             "judge_serve.enabled=false, or set judge_serve.allow_shared_gpus=true")
        return env
    shared = sorted(set(serve.gpus) & set(training))
    if shared and not serve.allow_shared_gpus:
        raise MedixError(f"judge_serve.gpus {serve.gpus} overlaps the training GPUs {training} (shared: {shared}); "
                         "give the judge other GPUs, launch fewer training processes (accelerate launch "
                         "--num_processes), or set judge_serve.allow_shared_gpus=true")
    env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in serve.gpus)
    return env


def judge_server_args(serve: JudgeServeConfig) -> list[str]:
    """vLLM arguments from the placement fields, before the free extra_args."""
    if serve.engine != "vllm":
        return list(serve.extra_args)
    from medix.serving.engines import vllm_layout_args

    return [*vllm_layout_args(serve), *serve.extra_args]


@contextlib.contextmanager
def managed_judge(cfg: "TrainConfig"):
    """Start the judge server when judge_serve.enabled; always stop it (crash and Ctrl-C included).

    Under `accelerate launch` only the first process of each node starts it; the others wait for it.
    """
    if not cfg.judge_serve.enabled:
        yield
        return
    from medix.serving.engines import server_command
    from medix.serving.process import ManagedServer

    s = cfg.judge_serve
    visible = visible_gpus()
    training = training_gpus(visible, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    env = judge_server_env(s, training, cuda=bool(visible))
    url = f"http://127.0.0.1:{s.port}/v1"
    server = ManagedServer(server_command(cfg.reward.judge.model, s.engine, s.port, judge_server_args(s)), url,
                           s.startup_timeout_s, env=env)
    cfg.reward.judge.base_urls = [url]
    if int(os.environ.get("LOCAL_RANK", "0")) != 0:
        server.wait_for(None)
        yield
        return
    with server:
        log.info("judge server up at %s on GPUs %s (training on %s)", url, s.gpus or "-", training or "CPU")
        yield


def check_judge_reachable(cfg: "TrainConfig") -> None:
    """Fail before any model loads when an HTTP judge does not answer (a run with no judge would learn
    from the other components only)."""
    judge = cfg.reward.judge
    if not get_backend(judge.backend).served or cfg.reward.weights.judge == 0:
        return
    from medix.safe_text import display_url
    from medix.serving.process import models_error

    for url in judge.base_urls:
        if (error := models_error(url, timeout_s=10)) is not None:
            raise MedixError(
                f"judge at {display_url(url)} is not reachable ({error}). Start it with `medix judge serve "
                f"--model {judge.model} --engine vllm --port PORT` (on its own GPUs: CUDA_VISIBLE_DEVICES=...), "
                "set judge_serve.enabled=true with judge_serve.gpus, or use reward.judge.backend=local.")
