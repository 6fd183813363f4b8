#!/usr/bin/env bash
# GPU smoke check (bench/gpu_smoke.py): tiny random-weight Qwen3-VL, 2 training steps in bf16 with sdpa and the
# loopback judge, then the eval generate phase on 4 sample items; one-screen summary; under 5 minutes.
#   bench/gpu_smoke.sh --prepare   # here, with the project's venv: wheels + tokenizer files into .gpu_smoke/
#   bench/gpu_smoke.sh             # on the GPU machine (bare PyTorch + transformers), from the repo root
#   bench/gpu_smoke.sh --smoke     # the same flow on CPU in float32 (CI runs this)
# A bare GPU machine lacks TRL, datasets, pydantic, openai and medix's own small dependencies, and has an older
# transformers: --prepare downloads their wheels (no deps, Python 3.12, manylinux x86-64) and copies the embedded
# tokenizer's files (not the weights: the tiny models only need the tokenizer).
set -euo pipefail
cd "$(dirname "$0")/.."
KIT=.gpu_smoke
WHEELS="trl==1.16.0 datasets==5.2.0 transformers==5.24.0 huggingface_hub==1.33.0 tokenizers==0.23.3
  pydantic==2.14.4 pydantic_core==2.50.5 typing_inspection==0.4.5 annotated_types==0.8.0 openai==3.57.0 jiter==0.19.0
  distro==1.9.0 sniffio==1.3.1 dill==0.4.1 multiprocess==0.70.19 gguf==0.19.0 starlette==1.10.0 uvicorn==0.54.0"
if [[ "${1:-}" == "--prepare" ]]; then
  mkdir -p "$KIT/wheels" "$KIT/cache/models"
  python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform any -d "$KIT/wheels" $WHEELS
  folder=$(python -c "from medix.models import smollm2_folder; print(smollm2_folder())")
  mkdir -p "$KIT/cache/models/$(basename "$folder")"
  cp "$folder"/*.json "$folder"/*.jinja "$KIT/cache/models/$(basename "$folder")/"
  du -sh "$KIT"
  exit 0
fi
if [[ -d "$KIT/wheels" && "${1:-}" != "--smoke" ]]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$KIT"/wheels/*.whl
  export PYTHONPATH=/tmp/site MEDIX_CACHE="$PWD/$KIT/cache"
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
exec python3 bench/gpu_smoke.py "$@"
