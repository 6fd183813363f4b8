"""Models: the zoo of names (zoo.py), the embedded models and their one-time conversion (embedded.py,
gguf.py, cpu_judge.py), the dtype rule (hardware.py) and loading (load.py)."""

from medix.files import cache_dir
from medix.models.embedded import SMOLLM2_GGUF_FILE, minilm_folder, package_dir, resolve, smollm2_folder, smollm2_gguf
from medix.models.hardware import cpu_native_bf16, pick_device, runtime_dtype, training_dtype
from medix.models.load import (has_vision_config, hub_error, is_vision_model, load_causal_lm, load_embedder,
                               load_for_training, load_model, model_path, model_revision)
from medix.models.zoo import (MINILM, PAPER_MODELS, QWEN_CODER, SMOLLM2, ZOO, ZooEntry, canonical, cpu_judge_installed,
                              default_judge, known, served_name, zoo_entry)

__all__ = ["SMOLLM2_GGUF_FILE", "MINILM", "PAPER_MODELS", "QWEN_CODER", "SMOLLM2", "ZOO", "ZooEntry", "cache_dir",
           "canonical", "cpu_judge_installed", "cpu_native_bf16", "default_judge", "has_vision_config", "hub_error",
           "is_vision_model", "known",
           "load_causal_lm", "load_embedder", "load_for_training", "load_model", "minilm_folder", "model_path",
           "model_revision", "package_dir", "pick_device",
           "resolve", "runtime_dtype", "served_name", "smollm2_folder", "smollm2_gguf", "training_dtype", "zoo_entry"]
