"""One GGUF → transformers conversion for every embedded model (SmolLM2, the CPU judge).

transformers can load a GGUF (`from_pretrained(gguf_file=...)`), but it dequantises every tensor to float32
in memory first (the 1.5B judge: 9 GB peak) and refuses to save the result. Here the tensors are streamed:
read memory-mapped, dequantised one at a time with transformers' own name mapping and tensor processors
(the same weights it would load: tests/models/test_models.py compares them), cast straight to the target dtype and
written to safetensors shards of `SHARD_BYTES`. Peak memory is one float32 tensor plus one shard. The config
and tokenizer come from the GGUF's metadata, as transformers reads them, except the special tokens, which are
set as the file names them (`special_tokens`: transformers releases differ there). Written to a temporary
folder and renamed, so a crash leaves nothing half-done.

The file's metadata is parsed once (`_one_parse`): transformers 5.17 parses the whole file, every vocabulary
string, each time it reads the config or the tokenizer (four times per conversion, plus the tensor table and
the special tokens here), and one parse of the judge's 151k-token vocabulary takes about 8 s on 2 cores.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import sys
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)
SHARD_BYTES = 512 << 20  # bytes of weights per safetensors shard: bounds the conversion's memory
BLOCK_VALUES = 16 << 20  # values dequantised at once within one tensor


def convert(gguf: Path, target: Path, dtype: str, desc: str | None = None) -> Path:
    """Write a transformers folder for `gguf` at `target` with weights in `dtype` ("float32" / "bfloat16");
    returns `target` (kept as is when another process finished first)."""
    import torch
    from tqdm.auto import tqdm

    desc = desc or f"converting {gguf.name} to {dtype}"
    tqdm.write(f"{desc}: reading the GGUF's metadata (config, vocabulary)", file=sys.stderr)
    torch_dtype = getattr(torch, dtype)
    with _one_parse(gguf):
        return _convert(gguf, target, torch_dtype, desc)


def _convert(gguf: Path, target: Path, torch_dtype, desc: str) -> Path:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from tqdm.auto import tqdm

    config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    with torch.device("meta"):  # names and shapes only: no memory
        skeleton = AutoModelForCausalLM.from_config(config)
    tensors = _tensors(gguf, skeleton)
    # The GGUF carries its own output.weight (lm_head) or none (tied to the embedding): keep what it has.
    config.tie_word_embeddings = "lm_head.weight" not in {name for name, _ in tensors.names()}
    config.dtype = torch_dtype
    config.architectures = [type(skeleton).__name__]  # servers (transformers serve, vLLM) pick the class from it
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".convert-"))
    try:
        _write_shards(tensors, tmp, torch_dtype, desc)
        tqdm.write(f"{desc}: writing the tokenizer", file=sys.stderr)
        config.save_pretrained(tmp)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        for name, token in special_tokens(gguf).items():
            setattr(tokenizer, name, token)
        tokenizer.save_pretrained(tmp)
        if skeleton.can_generate():
            skeleton.generation_config.save_pretrained(tmp)
        if not (target / "config.json").is_file():
            shutil.rmtree(target, ignore_errors=True)
            tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


@contextlib.contextmanager
def _one_parse(gguf: Path):
    """For the duration, every `gguf.GGUFReader(gguf)` (transformers' calls included) gets one reader, made
    once: a reader only reads (a read-only memory map and the parsed fields)."""
    import gguf as package

    made = package.GGUFReader
    reader = made(gguf)

    def reuse(path, *args, **kwargs):
        return (reader if Path(path).resolve() == gguf.resolve() and not args and not kwargs
                else made(path, *args, **kwargs))

    package.GGUFReader = reuse
    try:
        yield
    finally:
        package.GGUFReader = made


# GGUF metadata key → the tokenizer attribute it names.
_SPECIAL = {"bos_token_id": "bos_token", "eos_token_id": "eos_token", "padding_token_id": "pad_token",
            "unknown_token_id": "unk_token"}


def special_tokens(gguf: Path) -> dict[str, str]:
    """{"eos_token": "<|im_end|>", ...}: the special tokens the GGUF's own metadata names. Set on the converted
    tokenizer whatever transformers read: transformers 5.17 reads SmolLM2's eos as <|im_start|> and no pad
    token, where the file says <|im_end|> for both (5.25 reads them right)."""
    from gguf import GGUFReader

    fields = GGUFReader(str(gguf)).fields
    tokens = fields["tokenizer.ggml.tokens"]
    named = {}
    for key, name in _SPECIAL.items():
        field = fields.get(f"tokenizer.ggml.{key}")
        if field is not None and field.data:
            token_id = int(field.parts[field.data[0]][0])
            named[name] = bytes(tokens.parts[tokens.data[token_id]]).decode("utf-8")
    return named


class _GGUFTensors:
    """The GGUF's tensors under their transformers names, dequantised one by one on iteration."""

    def __init__(self, reader, processor, mapping: dict, parsed: dict):
        self.reader, self.processor, self.mapping, self.parsed = reader, processor, mapping, parsed

    def names(self):
        """(transformers name, GGUF tensor) of every tensor the model uses, without dequantising."""
        for tensor in self.reader.tensors:
            if tensor.name in self.mapping:
                yield self.mapping[tensor.name], tensor

    def items(self, torch_dtype):
        """(transformers name, tensor in `torch_dtype`) per tensor, in file order."""
        import numpy as np
        import torch
        from gguf import dequantize
        from transformers.modeling_gguf_pytorch_utils import TensorProcessor

        for tensor in self.reader.tensors:
            if type(self.processor) is TensorProcessor and tensor.name in self.mapping:  # it changes nothing:
                yield self.mapping[tensor.name], dequantize_rows(tensor, torch_dtype)  # stream rows, less memory
                continue
            result = self.processor.process(weights=dequantize(tensor.data, tensor.tensor_type), name=tensor.name,
                                            tensor_key_mapping=self.mapping, parsed_parameters=self.parsed)
            if result.name in self.mapping:
                weights = result.weights  # a float32 GGUF tensor is a view of the read-only memory map: copy it
                array = weights if weights.flags.writeable else np.array(weights)
                yield self.mapping[result.name], torch.from_numpy(array).to(torch_dtype)


def dequantize_rows(tensor, torch_dtype, block_values: int = BLOCK_VALUES):
    """One GGUF tensor dequantised block of rows by block of rows into a `torch_dtype` tensor: the float32 copy
    of the whole tensor (the 1.5B judge's embedding: 0.9 GB, plus gguf's temporaries) is never made."""
    import torch
    from gguf import dequantize

    data = tensor.data  # quantised: (rows, bytes per row); float: (rows, values per row); 1-D for vectors
    if data.ndim < 2:
        return torch.from_numpy(dequantize(data, tensor.tensor_type).copy()).to(torch_dtype)
    rows = data.shape[0]
    step = max(1, block_values * rows // max(int(tensor.n_elements), 1))
    out = None
    for start in range(0, rows, step):
        block = torch.from_numpy(dequantize(data[start:start + step], tensor.tensor_type).copy()).to(torch_dtype)
        if out is None:
            out = torch.empty((rows, *block.shape[1:]), dtype=torch_dtype)
        out[start:start + block.shape[0]] = block
    return out


def _tensors(gguf: Path, skeleton) -> _GGUFTensors:
    from gguf import GGUFReader
    from transformers.modeling_gguf_pytorch_utils import (TENSOR_PROCESSORS, TensorProcessor,
                                                          get_gguf_hf_weights_map, load_gguf_checkpoint, read_field)

    parsed = load_gguf_checkpoint(str(gguf), return_tensors=False)  # config + tokenizer metadata only
    parsed["tensors"], parsed["tokenizer"] = {}, {}  # the vocabulary is not needed to map tensors
    reader = GGUFReader(gguf)
    architecture = read_field(reader, "general.architecture")[0]
    processor = TENSOR_PROCESSORS.get(architecture, TensorProcessor)(config=parsed.get("config", {}))
    return _GGUFTensors(reader, processor, get_gguf_hf_weights_map(skeleton, processor), parsed)


def _write_shards(tensors: _GGUFTensors, folder: Path, torch_dtype, desc: str) -> None:
    """Weights as `model-0000k-of-0000n.safetensors` + the index transformers reads (always sharded form)."""
    from safetensors.torch import save_file
    from tqdm.auto import tqdm

    total = sum(1 for _ in tensors.names())
    shard: dict = {}
    shard_bytes, files, weight_map, total_size = 0, [], {}, 0

    def flush() -> None:
        nonlocal shard, shard_bytes
        name = f"model-{len(files) + 1:05d}.safetensors"
        save_file(shard, str(folder / name), metadata={"format": "pt"})
        files.append(name)
        weight_map.update({key: name for key in shard})
        shard, shard_bytes = {}, 0

    with tqdm(total=total, desc=desc, unit="tensor") as bar:
        for name, tensor in tensors.items(torch_dtype):
            shard[name] = tensor
            size = tensor.numel() * tensor.element_size()
            shard_bytes += size
            total_size += size
            if shard_bytes >= SHARD_BYTES:
                flush()
            bar.update(1)
    if shard:
        flush()
    renamed = {}
    for i, name in enumerate(files, start=1):  # the final count is known only now
        final = f"model-{i:05d}-of-{len(files):05d}.safetensors"
        (folder / name).rename(folder / final)
        renamed[name] = final
    index = {"metadata": {"total_size": total_size},
             "weight_map": {k: renamed[v] for k, v in sorted(weight_map.items())}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
