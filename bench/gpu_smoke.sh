#!/usr/bin/env bash
# GPU smoke check (bench/gpu_smoke.py): tiny random-weight Qwen3-VL, 2 training steps in bf16 with sdpa and the
# loopback judge, then the eval generate phase on 4 sample items; one-screen summary; under 5 minutes.
#   bench/gpu_smoke.sh --prepare   # here, with the project's venv: wheels + tokenizer files into .gpu_smoke/
#   bench/gpu_smoke.sh             # on the GPU machine (bare PyTorch + transformers), from the repo root
#   bench/gpu_smoke.sh --smoke     # the same flow on CPU in float32 (CI runs this)
# A bare GPU machine lacks TRL, datasets, pydantic, openai and medix's own small dependencies, and has an older
# transformers: --prepare resolves the whole closure of what the smoke imports for Python 3.12 on manylinux
# x86-64, downloads the wheels a bare machine lacks into .gpu_smoke/wheels-1, wheels-2, ... (each at most 60 MiB:
# carry one part per call where transfers are capped) and copies the embedded tokenizer's files (not the
# weights: the tiny models only need the tokenizer). `python bench/gpu_smoke_kit.py check` proves the closure.
set -euo pipefail
cd "$(dirname "$0")/.."
KIT=.gpu_smoke
if [[ "${1:-}" == "--prepare" ]]; then
  python bench/gpu_smoke_kit.py prepare --out "$KIT"
  folder=$(python -c "from medix.models import smollm2_folder; print(smollm2_folder())")
  mkdir -p "$KIT/cache/models/$(basename "$folder")"
  cp "$folder"/*.json "$folder"/*.jinja "$KIT/cache/models/$(basename "$folder")/"
  du -sh "$KIT"
  exit 0
fi
if compgen -G "$KIT/wheels-*/*.whl" >/dev/null && [[ "${1:-}" != "--smoke" ]]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$KIT"/wheels-*/*.whl
  export PYTHONPATH=/tmp/site MEDIX_CACHE="$PWD/$KIT/cache"
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
exec python3 bench/gpu_smoke.py "$@"
