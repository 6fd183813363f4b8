"""How one model is served on this node, for the judge and for the policy alike: the engine, its GPUs and
vLLM's own layout (tensor and data parallelism, API servers), memory, context length and further arguments.

    eval:  policy_server / judge_server (`medix eval run --serve`, flags --serve-* / --judge-serve-*)
    train: judge_serve (`medix train`, the judge beside training: JudgeServeConfig adds `enabled` and the
           GPU-sharing rule)

Field names are vLLM's own (`tensor_parallel_size`, `data_parallel_size`, `api_server_count`); configs written
with the earlier short names (`tensor_parallel`, `data_parallel`, `backend`) still read.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import AliasChoices, Field, model_validator

from medix.config import ConfigModel


class ServeConfig(ConfigModel):
    engine: Literal["vllm", "llamacpp"] = Field("vllm", validation_alias=AliasChoices("engine", "backend"),
                                                description="Serving program: vLLM (GPU nodes; the CPU build in "
                                                "the tests) or llama.cpp (CPU, GGUF).")
    gpus: list[int] | None = Field(None, description="CUDA device ids of this model's server (its "
                                   "CUDA_VISIBLE_DEVICES); None = 0 .. tensor_parallel_size × data_parallel_size − 1.")
    tensor_parallel_size: int = Field(1, ge=1, validation_alias=AliasChoices("tensor_parallel_size", "tensor_parallel"),
                                      description="GPUs per model replica (vLLM --tensor-parallel-size).")
    data_parallel_size: int = Field(1, ge=1, validation_alias=AliasChoices("data_parallel_size", "data_parallel"),
                                    description="Model replicas inside the one server, balanced by vLLM itself "
                                    "(--data-parallel-size); one endpoint, one port.")
    api_server_count: int | None = Field(None, ge=1, description="vLLM front-end processes (--api-server-count): "
                                         "raise it when image preprocessing, not the GPUs, limits throughput; "
                                         "None = vLLM's default.")
    gpu_memory_utilization: float | None = Field(None, gt=0, le=1, description="Share of each GPU's memory vLLM "
                                                 "may take (--gpu-memory-utilization); None = vLLM's (0.9).")
    max_model_len: int | None = Field(None, ge=16, description="Context length (--max-model-len). None: for the "
                                      "policy of an evaluation, derived from the run's longest prompt, its images "
                                      "and the generation budget; otherwise the model's own.")
    extra_args: list[str] = Field(default_factory=list, description="Further server arguments, passed as they "
                                  "are (e.g. --enable-prefix-caching; on a CPU build of vLLM, --enforce-eager).")
    port: int = Field(8000, ge=1, le=65535, description="Port on 127.0.0.1.")
    startup_timeout_s: float = Field(1800.0, gt=0, description="Seconds to wait for the server to answer.")

    # How a wrong GPU list is reported (JudgeServeConfig names its config key).
    _wrong_count: ClassVar[str] = ("gpus lists {n} device(s) {gpus}, but tensor_parallel_size {tp} × "
                                   "data_parallel_size {dp} = {wanted}; list {wanted} ids or change the parallel sizes")
    _repeated: ClassVar[str] = "gpus repeats a device: {gpus}"

    @model_validator(mode="after")
    def _gpus_fit(self) -> "ServeConfig":
        tp, dp = self.tensor_parallel_size, self.data_parallel_size
        if self.gpus is not None and len(self.gpus) != tp * dp:
            raise ValueError(self._wrong_count.format(n=len(self.gpus), gpus=self.gpus, tp=tp, dp=dp, wanted=tp * dp))
        if self.gpus is not None and len(set(self.gpus)) != len(self.gpus):
            raise ValueError(self._repeated.format(gpus=self.gpus))
        return self

    @property
    def devices(self) -> list[int]:
        return self.gpus if self.gpus is not None else list(range(self.tensor_parallel_size * self.data_parallel_size))


class JudgeServeConfig(ServeConfig):
    """The judge server a training run starts beside itself (serving/placement.py keeps it off the training GPUs)."""

    enabled: bool = Field(False, description="Start a judge server for the run and stop it at the end.")
    gpus: list[int] | None = Field(None, description="Physical GPU ids the judge server may use (its own "
                                   "CUDA_VISIBLE_DEVICES), e.g. [6, 7]; they must not be GPUs training uses. None = "
                                   "no GPU of its own: refused on a CUDA machine unless allow_shared_gpus.")
    gpu_memory_utilization: float | None = Field(0.9, gt=0, le=1, description="vLLM memory share of the judge's "
                                                 "GPUs (official: 0.97 on GPUs of its own).")
    max_model_len: int | None = Field(None, ge=16, description="Judge context length (vLLM --max-model-len); "
                                      "None = the model's. Official: 2048, for a prompt without the question.")
    allow_shared_gpus: bool = Field(False, description="Let the judge share the training GPUs (one-GPU machines; "
                                    "give it a small gpu_memory_utilization).")
    startup_timeout_s: float = Field(900.0, gt=0, description="Seconds to wait for the server.")

    _wrong_count: ClassVar[str] = ("judge_serve.gpus {gpus}: {n} GPU(s), but tensor_parallel_size={tp} × "
                                   "data_parallel_size={dp} = {wanted}; list that many")
    _repeated: ClassVar[str] = "judge_serve.gpus {gpus} lists a GPU twice"
