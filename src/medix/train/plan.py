"""`medix train --plan`: each GPU's memory budget for a training config on a node, before anything launches.

    medix train --config configs/medix-r1-8b-dapo.yaml --plan --accelerate-config configs/accelerate/zero3.yaml
    medix train --config my.yaml --plan --gpus 4 --gpu-memory 39.4 --sharding zero2

A plan is one table per GPU role (training GPUs, a training GPU that also holds the judge server, the judge's
own GPUs). Each line is one term of that GPU's memory in the order a step needs it: what stays resident, then
the rollout phase, then the update phase; the running total beside it. A plan whose running total passes the
GPU's memory is refused, naming that line. Figures are arithmetic on exact parameter counts
(`medix.train.model_size`: the model built from its config on the meta device), not measurements.

Training state, mixed-precision AdamW (bf16 training, as the paper configs), per parameter:
  weights     2 B  the bf16 copy forward and backward use, every parameter; ÷ N under ZeRO-3 and FSDP
  gradients   2 B  bf16, trained parameters only; ÷ N under ZeRO-2, ZeRO-3 and FSDP
  optimizer  12 B  fp32 master copy + Adam's two fp32 moments, trained parameters only; ÷ N under ZeRO-1/2/3, FSDP
16 B per trained parameter unsharded. FSDP keeps the sharded fp32 parameters as its master copy and casts the
layers it gathers to bf16: the same 16 B. Trained = all parameters, minus the vision tower with
model.freeze_vision; with LoRA only the adapters are trained (the base keeps its bf16 weights). Offloaded state
(DeepSpeed offload_*_device, FSDP fsdp_offload_params) counts 0 here. ZeRO-3 / FSDP also gather whole units
to compute them: two units of the largest (a layer or an embedding) at a time, the one in use and the one
prefetched. The KL reference model (algorithm.beta > 0) is a second bf16 copy, sharded as the weights; with
LoRA it is the base model with adapters off, no extra memory.

Update phase, per micro-step of b = trainer.per_device_train_batch_size completions of T = prompt + completion
tokens (max_prompt_tokens + max_completion_tokens), hidden size h, L layers, vocabulary V:
  activations  b·T·h·2 B·L with gradient checkpointing: each layer keeps its bf16 input. Without
               checkpointing 34·b·T·h B per layer instead of 2·b·T·h (17×; Korthikanti et al. 2022, "Reducing
               activation recomputation", flash attention so no T² term; an estimate for GQA / SwiGLU / MoE).
  recompute    with checkpointing, the backward pass recomputes one layer at a time in full: 34·b·T·h B once.
  LM head      TRL 1.16 never materialises the logits: its fused LM head computes log-probabilities tile by tile
               (4,096 tokens × 32,768 vocabulary, bf16) and accumulates the backward in fp32: the gradient of the
               N = b·completion hidden states (N·h·4 B) and of the head (V·h·4 B), one tile at a time.
  vision       (vision policies) the tower's activations over b images of max_pixels / patch² patches each, by
               the same rule as the text layers (checkpointed: 2 B per unit per block + one block recomputed).
  pixel values (vision policies) kept from scoring to the last update of a generation batch: G =
               per_device_train_batch_size × steps_per_generation images at model.max_pixels, 6 values a pixel
               (3 channels × 2 temporal copies) in bf16, every image at the largest size (a bound). Dynamic
               sampling's rounds wait in host memory; only the merged batch is on the GPU.
  optimizer    the step's fp32 gradients, trained parameters × 4 B, sharded as the optimizer state.

Rollout: colocated vLLM takes rollout.vllm_gpu_memory_utilization × the GPU's memory; inside it, the rollout
weights (bf16, ÷ tensor parallel) and the KV cache the rest leaves (vLLM's own activation peak and CUDA graphs
also live there, so the real cache is smaller). A share whose cache cannot hold one sequence of
max_model_len tokens (vllm_max_model_length when the config sets it, else prompt + completion) is refused:
vLLM would not start; so is a tensor parallelism that does not divide the training processes. With vLLM
sleep mode (vllm_enable_sleep_mode) the engine releases its memory during the update, so the peak is the
resident state plus the larger of the two phases; without it the share stays resident. Generation without
vLLM holds a KV cache for the process's whole generation batch, and under ZeRO-3 the full bf16 weights TRL
gathers for generate() (FSDP computes layer by layer). Rollouts on a vLLM server take nothing here.

Also resident: the embedder (reward.embedder.model, fp32 as sentence-transformers loads it, on every training
GPU), a judge with backend local (bf16, every training GPU), a managed judge server (judge_serve) either
inside GPU 0's memory (its share, vLLM --gpu-memory-utilization) or on its own GPUs (a separate role: its
share, holding weights ÷ tensor parallel and a KV cache for max_model_len), and a fixed reserve per training
process for the CUDA context, NCCL buffers and allocator fragmentation (RESERVE_GIB).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from medix.backends import get_backend
from medix.train.config import TrainConfig
from medix.train.launch import GIB, Launch, Sharding
from medix.train.model_size import ModelSize, model_size

RESERVE_GIB = 2.0          # CUDA context (~0.5 GiB) + NCCL buffers and allocator fragmentation, per process
CHECKPOINTED_BYTES, FULL_BYTES = 2, 34  # activation bytes per hidden unit per token per layer
Phase = Literal["resident", "rollout", "update"]
PHASES: tuple[Phase, ...] = ("resident", "rollout", "update")


@dataclass(frozen=True)
class Line:
    item: str
    bytes: float
    how: str
    phase: Phase = "resident"


@dataclass
class GpuRole:
    """One kind of GPU in the run and its budget lines (resident first, then rollout, then update)."""

    name: str
    capacity: float
    lines: list[Line]

    def running(self) -> list[float]:
        """Running total at each line: the phases start again from the resident subtotal (they do not overlap)."""
        resident = sum(line.bytes for line in self.lines if line.phase == "resident")
        totals, phase_sum = [], {"resident": 0.0, "rollout": resident, "update": resident}
        for line in self.lines:
            phase_sum[line.phase] += line.bytes
            totals.append(phase_sum[line.phase])
        return totals

    @property
    def peak(self) -> float:
        return max(self.running(), default=0.0)

    @property
    def overflow(self) -> Line | None:
        """The first line at which the running total passes the GPU's memory."""
        return next((line for line, total in zip(self.lines, self.running()) if total > self.capacity), None)


@dataclass
class Plan:
    config: str
    launch: Launch
    processes: int         # training processes the state is sharded over
    policy: ModelSize
    roles: list[GpuRole]
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return not self.problems and all(role.overflow is None for role in self.roles)

    def refusal(self) -> str:
        """Why the plan does not fit: the overflowing line of each role, then the other problems."""
        out = [f"{role.name}: the running total passes {role.capacity / GIB:.1f} GiB at '{role.overflow.item}' "
               f"(peak {role.peak / GIB:.1f} GiB)" for role in self.roles if role.overflow]
        return "; ".join(out + self.problems)


def gib(value: float) -> str:
    return f"{value / GIB:.2f}"


# ---- one function per line item -------------------------------------------------------------------------------

def trained_params(policy: ModelSize, cfg: TrainConfig) -> int:
    """The parameters the optimizer updates: LoRA's adapters, else all but a frozen vision tower."""
    if cfg.model.lora.enabled:
        return policy.adapter_params
    return policy.params - (policy.vision_params if cfg.model.freeze_vision else 0)


def training_state_lines(policy: ModelSize, cfg: TrainConfig, sharding: Sharding, n: int) -> list[Line]:
    lora = cfg.model.lora.enabled
    trained = trained_params(policy, cfg)
    stored = policy.params + (policy.adapter_params if lora else 0)
    what = "LoRA adapters" if lora else "frozen vision tower excluded" if cfg.model.freeze_vision else "all parameters"

    def line(item, count, per, sharded, offloaded, how):
        if offloaded:
            return Line(item, 0.0, f"offloaded to CPU ({sharding.name})")
        return Line(item, count * per / (n if sharded else 1),
                    f"{count:,} × {per} B{f' ÷ {n}' if sharded else ''} — {how}")

    return [line("weights (bf16)", stored, 2, sharding.weights, sharding.offload_params, "every parameter"),
            line("gradients (bf16)", trained, 2, sharding.grads, sharding.offload_params, f"trained: {what}"),
            line("optimizer: fp32 master + Adam m, v", trained, 12, sharding.optimizer, sharding.offload_optimizer,
                 f"trained: {what}")]


def reference_line(policy: ModelSize, cfg: TrainConfig, sharding: Sharding, n: int) -> Line | None:
    if not cfg.algorithm.beta or cfg.model.lora.enabled:
        return None  # no KL term, or LoRA: the reference is the base model with its adapters off
    div = n if sharding.weights else 1
    return Line("KL reference model (bf16)", policy.params * 2 / div,
                f"algorithm.beta={cfg.algorithm.beta}: {policy.params:,} × 2 B{f' ÷ {n}' if div > 1 else ''}")


def embedder_line(cfg: TrainConfig) -> Line | None:
    if cfg.reward.weights.embed <= 0 or (cfg.reward.embedder.device or "cuda").startswith("cpu"):
        return None
    size = model_size(cfg.reward.embedder.model)
    return Line(f"embedder {cfg.reward.embedder.model} (fp32)", size.params * 4, f"{size.params:,} × 4 B")


def local_judge_line(cfg: TrainConfig) -> Line | None:
    judge = cfg.reward.judge
    if get_backend(judge.backend).served or cfg.reward.weights.judge <= 0 or (judge.device or "cuda").startswith("cpu"):
        return None
    size = model_size(cfg.reward.judge.model)
    return Line(f"judge {cfg.reward.judge.model} in process (bf16)", size.params * 2, f"{size.params:,} × 2 B")


def reserve_line() -> Line:
    return Line("CUDA context, NCCL, allocator reserve", RESERVE_GIB * GIB, f"fixed {RESERVE_GIB} GiB per process")


def gathered_line(policy: ModelSize, sharding: Sharding) -> Line | None:
    if not sharding.weights:
        return None
    return Line("gathered units (ZeRO-3 / FSDP)", 2 * policy.largest_block * 2,
                f"2 × largest unit {policy.largest_block:,} × 2 B (in use + prefetched)", "update")


def activation_lines(policy: ModelSize, cfg: TrainConfig) -> list[Line]:
    b, t, h, layers = cfg.trainer.per_device_train_batch_size, _seq_len(cfg), policy.hidden, policy.layers
    if not cfg.model.gradient_checkpointing:
        return [Line("activations (no checkpointing)", b * t * h * FULL_BYTES * layers,
                     f"{b} × {t:,} tok × {h} × {FULL_BYTES} B × {layers} layers (estimate)", "update")]
    return [Line("activations (checkpointed)", b * t * h * CHECKPOINTED_BYTES * layers,
                 f"{b} × {t:,} tok × {h} × 2 B × {layers} layers", "update"),
            Line("one layer recomputed in backward", b * t * h * FULL_BYTES,
                 f"{b} × {t:,} tok × {h} × {FULL_BYTES} B (estimate)", "update")]


TOKEN_TILE, VOCAB_TILE = 4096, 32768  # TRL 1.16's fused LM head tile (trl/kernels/chunked_logprob.py)
QWEN_VL_MAX_PIXELS = 16_777_216  # Qwen-VL processors' default longest_edge when model.max_pixels is unset


def lm_head_lines(policy: ModelSize, cfg: TrainConfig) -> list[Line]:
    b, c, h, v = cfg.trainer.per_device_train_batch_size, cfg.rollout.max_completion_tokens, policy.hidden, policy.vocab
    n = b * c
    tile = min(n, TOKEN_TILE) * min(v, VOCAB_TILE) * 2
    out = [Line("LM head: one logits tile (bf16)", tile, f"min({n:,}, {TOKEN_TILE:,}) tok × min({v:,}, "
                f"{VOCAB_TILE:,}) vocab × 2 B (TRL's fused log-probs)", "update"),
           Line("LM head backward: fp32 hidden-state gradient", n * h * 4, f"{b} × {c:,} tok × {h} × 4 B", "update")]
    if not cfg.model.lora.enabled:
        out.append(Line("LM head backward: fp32 head gradient", v * h * 4, f"{v:,} vocab × {h} × 4 B", "update"))
    return out


def vision_lines(policy: ModelSize, cfg: TrainConfig) -> list[Line]:
    if not policy.vision_layers:
        return []
    t, pixels = cfg.trainer, cfg.model.max_pixels or QWEN_VL_MAX_PIXELS
    where = "model.max_pixels" if cfg.model.max_pixels else "the processor's default, model.max_pixels unset"
    images = t.per_device_train_batch_size * (t.steps_per_generation or t.gradient_accumulation_steps)
    patches = pixels // policy.vision_patch ** 2
    hv, blocks, b = policy.vision_hidden, policy.vision_layers, t.per_device_train_batch_size
    per_unit = CHECKPOINTED_BYTES * blocks + FULL_BYTES if cfg.model.gradient_checkpointing else FULL_BYTES * blocks
    return [Line("pixel values kept for the update (bf16)", images * pixels * 12,
                 f"{images} images × {pixels:,} px ({where}) × 6 × 2 B", "update"),
            Line("vision tower activations", b * patches * hv * per_unit,
                 f"{b} images × {patches:,} patches × {hv} × {per_unit} B (estimate)", "update")]


def optimizer_step_line(policy: ModelSize, cfg: TrainConfig, sharding: Sharding, n: int) -> Line | None:
    trained = trained_params(policy, cfg)
    if sharding.offload_optimizer:
        return None
    div = n if sharding.optimizer else 1
    return Line("optimizer step: fp32 gradients", trained * 4 / div,
                f"{trained:,} × 4 B{f' ÷ {n}' if div > 1 else ''}", "update")


def _seq_len(cfg: TrainConfig) -> int:
    return cfg.data.max_prompt_tokens + cfg.rollout.max_completion_tokens


def rollout_lines(policy: ModelSize, cfg: TrainConfig, launch: Launch, n: int) -> tuple[list[Line], list[str]]:
    """The rollout engine's memory on a training GPU, and its problems; a vLLM server takes none here."""
    r = cfg.rollout
    if r.engine == "transformers":
        return generate_lines(policy, cfg, launch, n), []
    if r.vllm_mode == "server":
        return [], []
    return vllm_lines(policy, cfg, launch, n)


def generate_lines(policy: ModelSize, cfg: TrainConfig, launch: Launch, n: int) -> list[Line]:
    """Rollouts with transformers' generate(): a KV cache for the process's whole generation batch, and under
    ZeRO-3 the full weights TRL gathers for it."""
    t = cfg.trainer
    batch = t.per_device_train_batch_size * (t.steps_per_generation or t.gradient_accumulation_steps)
    lines = [Line("KV cache of generate()", batch * _seq_len(cfg) * policy.kv_bytes_per_token(),
                  f"{batch} seq × {_seq_len(cfg):,} tok × {policy.kv_bytes_per_token():,} B", "rollout")]
    if launch.sharding.gathers_to_generate:
        lines.insert(0, Line("full weights gathered to generate", policy.params * 2 * (1 - 1 / n),
                             f"{policy.params:,} × 2 B less the resident shard", "rollout"))
    return lines


def vllm_lines(policy: ModelSize, cfg: TrainConfig, launch: Launch, n: int) -> tuple[list[Line], list[str]]:
    """Colocated vLLM: its share of the GPU, the KV cache left after the rollout weights, and whether that
    holds one max_model_len sequence."""
    r, cap = cfg.rollout, launch.gpu_gib * GIB
    tp, util = r.vllm_tensor_parallel_size, r.vllm_gpu_memory_utilization
    if n % tp:
        return [], [(f"rollout.vllm_tensor_parallel_size={tp} must divide the {n} training processes: colocated "
                     "vLLM groups them by tensor parallelism")]
    sleep = r.vllm_enable_sleep_mode
    max_len = r.vllm_max_model_length or _seq_len(cfg)
    share, weights = util * cap, policy.params * 2 / tp
    tokens = max(0.0, share - weights) / policy.kv_bytes_per_token(tp)
    how = (f"{util} × {launch.gpu_gib} GiB: weights {gib(weights)} (÷ TP {tp}) + KV {gib(max(0.0, share - weights))}"
           f" GiB ≈ {tokens:,.0f} tok{'; sleeps in the update' if sleep else ''}")
    problems = [] if tokens >= max_len else [(
        f"rollout.vllm_gpu_memory_utilization={util}: the {gib(share)} GiB share leaves a KV cache of "
        f"{tokens:,.0f} tokens after the rollout weights, less than one sequence of {max_len:,} tokens: raise "
        "the share or rollout.vllm_tensor_parallel_size")]
    return [Line("vLLM rollout engine (colocated)", share, how, "rollout" if sleep else "resident")], problems


# ---- the judge, where it is placed ----------------------------------------------------------------------------

@dataclass(frozen=True)
class JudgeServer:
    """The managed judge server (judge_serve) as the config places it."""

    model: ModelSize
    gpus: tuple[int, ...]  # its own GPUs; () = on the first training GPU(s), beside training
    tensor_parallel: int
    utilization: float
    max_len: int


def judge_server(cfg: TrainConfig) -> JudgeServer | None:
    """judge_serve's placement (its own GPUs, or beside training on the first GPUs when it has none)."""
    js = cfg.judge_serve
    if not js.enabled or js.engine != "vllm":
        return None
    size = model_size(cfg.reward.judge.model)
    return JudgeServer(size, tuple(js.gpus or ()), js.tensor_parallel_size, js.gpu_memory_utilization,
                       js.max_model_len or size.max_positions)


def judge_server_line(judge: JudgeServer, gpu_gib: float) -> tuple[Line, list[str]]:
    """The judge server's share of each GPU it runs on, and whether that share holds one max_len sequence."""
    share, weights = judge.utilization * gpu_gib * GIB, judge.model.params * 2 / judge.tensor_parallel
    tokens = max(0.0, share - weights) / judge.model.kv_bytes_per_token(judge.tensor_parallel)
    line = Line(f"judge server {judge.model.name} (vLLM)", share,
                f"{judge.utilization} × {gpu_gib} GiB: weights {gib(weights)} (÷ TP {judge.tensor_parallel}) + KV "
                f"{gib(max(0.0, share - weights))} GiB ≈ {tokens:,.0f} tok")
    problems = [] if tokens >= judge.max_len else [(
        f"judge server: its {gib(share)} GiB share (gpu_memory_utilization {judge.utilization}) leaves a KV cache "
        f"of {tokens:,.0f} tokens, less than one sequence of max_model_len {judge.max_len:,}: lower max_model_len "
        "or raise the share / tensor parallelism")]
    return line, problems


# ---- the plan -------------------------------------------------------------------------------------------------

def plan_training(cfg: TrainConfig, launch: Launch, config_name: str = "config") -> Plan:
    """Every GPU role's budget for `cfg` on `launch` (see the module docstring for each term)."""
    lora = (cfg.model.lora.r, cfg.model.lora.target_modules if isinstance(cfg.model.lora.target_modules, str)
            else tuple(cfg.model.lora.target_modules)) if cfg.model.lora.enabled else None
    policy = model_size(cfg.model.name, lora)
    judge = judge_server(cfg)
    judge_own = judge.gpus if judge else ()
    per_node = (launch.processes // launch.machines if launch.processes
                else launch.gpus_per_node - len(judge_own))
    n = launch.processes or per_node
    problems = _placement_problems(launch, per_node, judge_own)
    rollout, rollout_problems = rollout_lines(policy, cfg, launch, n)
    lines = [*training_state_lines(policy, cfg, launch.sharding, n), reference_line(policy, cfg, launch.sharding, n),
             embedder_line(cfg), local_judge_line(cfg), reserve_line(), *rollout,
             gathered_line(policy, launch.sharding),
             *activation_lines(policy, cfg), *lm_head_lines(policy, cfg), *vision_lines(policy, cfg),
             optimizer_step_line(policy, cfg, launch.sharding, n)]
    lines = sorted((x for x in lines if x is not None), key=lambda x: PHASES.index(x.phase))
    cap = launch.gpu_gib * GIB
    roles, notes = [], []
    if judge and not judge.gpus:  # beside training, on the GPUs the server process sees first
        jline, jproblems = judge_server_line(judge, launch.gpu_gib)
        problems += jproblems
        shared = _gpu_range(0, min(judge.tensor_parallel, per_node))
        roles.append(GpuRole(f"training GPU {shared} + judge server", cap, _with_resident(lines, jline)))
        if per_node > judge.tensor_parallel:
            roles.append(GpuRole(f"training GPU {_gpu_range(judge.tensor_parallel, per_node)}", cap, lines))
    else:
        roles.append(GpuRole(f"training GPU {_gpu_range(0, per_node)}", cap, lines))
    if judge and judge.gpus:
        jline, jproblems = judge_server_line(judge, launch.gpu_gib)
        problems += jproblems
        roles.append(GpuRole(f"judge GPU {', '.join(map(str, judge.gpus))}", cap, [jline]))
    if not judge and get_backend(cfg.reward.judge.backend).served:
        from medix.safe_text import display_url

        notes.append(f"judge at {', '.join(map(display_url, cfg.reward.judge.base_urls))}: not on this node's "
                     "training GPUs")
    if cfg.rollout.engine == "vllm" and cfg.rollout.vllm_mode == "server":
        notes.append(f"rollouts on the vLLM server at {cfg.rollout.vllm_server_base_url}: not counted here")
    return Plan(config_name, launch, n, policy, roles, problems + rollout_problems, notes)


def _with_resident(lines: list[Line], extra: Line) -> list[Line]:
    """`lines` with `extra` added as the last resident line."""
    last = max((i for i, x in enumerate(lines) if x.phase == "resident"), default=-1)
    return [*lines[:last + 1], extra, *lines[last + 1:]]


def _gpu_range(first: int, end: int) -> str:
    return str(first) if end - first == 1 else f"{first}–{end - 1}"


def _placement_problems(launch: Launch, per_node: int, judge_gpus: tuple[int, ...]) -> list[str]:
    out = []
    if per_node < 1:
        out.append(f"no GPU left for training: {launch.gpus_per_node} per node, the judge takes {list(judge_gpus)}")
    elif per_node + len(judge_gpus) > launch.gpus_per_node:
        out.append(f"{launch.source} starts {per_node} training processes per node and judge_serve.gpus takes "
                   f"{list(judge_gpus)}: {per_node + len(judge_gpus)} GPUs needed, {launch.gpus_per_node} per node")
    bad = [g for g in judge_gpus if not 0 <= g < launch.gpus_per_node]
    if bad:
        out.append(f"judge_serve.gpus {bad}: a node has GPUs 0–{launch.gpus_per_node - 1}")
    return out


def render(plan: Plan, console) -> None:
    """The plan as Rich tables, one per GPU role, with the verdict under each."""
    from rich.table import Table

    p, launch = plan.policy, plan.launch
    console.print(f"{plan.config}: {p.name}, {p.params:,} parameters ({p.source})\n{launch.sharding.name} over "
                  f"{plan.processes} processes ({launch.source}); {launch.gpus_per_node} GPUs per node × "
                  f"{launch.gpu_gib} GiB",
                  highlight=False, markup=False)
    shown: list[GpuRole] = []
    for role in plan.roles:
        verdict = "fits" if role.overflow is None else f"DOES NOT FIT from '{role.overflow.item}'"
        wider = next((r for r in shown if set(role.lines) < set(r.lines)), None)
        if wider:  # e.g. the training GPUs without the judge server: say what differs, not the whole table
            left = ", ".join(x.item for x in wider.lines if x not in role.lines)
            console.print(f"{role.name}: the lines above without {left}: peak {gib(role.peak)} of "
                          f"{role.capacity / GIB:.1f} GiB: {verdict}", highlight=False, markup=False)
            continue
        shown.append(role)
        table = Table(title=role.name, title_justify="left")
        for name, justify in (("phase", "left"), ("item", "left"), ("GiB", "right"), ("total GiB", "right"),
                              ("how it is counted", "left")):
            table.add_column(name, justify=justify)
        for line, total in zip(role.lines, role.running()):
            over = total > role.capacity
            table.add_row(line.phase, line.item, gib(line.bytes), f"[red]{gib(total)}[/red]" if over else gib(total),
                          line.how)
        console.print(table)
        console.print(f"peak {gib(role.peak)} of {role.capacity / GIB:.1f} GiB: {verdict}", highlight=False,
                      markup=False)
    for text in plan.problems:
        console.print(f"problem: {text}", highlight=False, markup=False)
    for text in plan.notes:
        console.print(f"note: {text}", highlight=False, markup=False)
