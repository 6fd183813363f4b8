"""`medix eval run`'s flags → a partial `EvalConfig` (`flag_overrides`), merged over the YAML file by
`EvalConfig.from_sources`: where each flag goes, tested without the CLI. The `--serve-*` / `--judge-serve-*`
flags are the serving package's one flag set (`medix.serving.flags`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medix.errors import MedixError
from medix.serving.flags import flag_names, serve_section

# The first judge server's port when `--judge-serve-*` flags lay out judge servers and nothing names a port: next
# to the policy's 8000 (the default of `medix eval run --judge-serve-port`).
JUDGE_SERVER_PORT = 8100


# `medix eval run` flags named as an EvalConfig field (paths become strings); the others are mapped below.
_FIELD_FLAGS = ("model", "protocol", "limit", "output_dir", "backend", "serve", "max_new_tokens", "system_prompt",
                "retry_failed", "refresh_changed", "allow_text_only", "official_tasks", "data_dir")
_JUDGE_FLAGS = {"judge_backend": "backend", "judge_model": "model", "judge_url": "base_urls",
                "judge_key_env": "api_key_env", "judge_template": "template", "rubric_template": "rubric_template"}
_OTHER_FLAGS = {"tasks", "phases", "base_url", "sample", "no_format_prompt", "judge_serve_port",
                *_JUDGE_FLAGS, *flag_names("serve_"), *flag_names("judge_serve_")}


def flag_overrides(flags: dict[str, Any], base: dict | None = None) -> dict:
    """The given `medix eval run` flags as a partial EvalConfig, to merge over the YAML file `base`.

    `--judge-serve-port` goes with the other `--judge-serve-*` flags (alone it only moves a judge_server the file
    lays out); without it their servers start at the file's judge_server.port, else at JUDGE_SERVER_PORT."""
    unknown = set(flags) - set(_FIELD_FLAGS) - _OTHER_FLAGS
    if unknown:
        raise ValueError(f"not a flag of medix eval run: {', '.join(sorted(unknown))}")
    if flags.get("sample") is not None and flags.get("data_dir") is not None:
        raise MedixError("--sample and --data-dir both choose the data; give one")
    out = {key: str(value) if isinstance(value, Path) else value for key, value in flags.items() if key in _FIELD_FLAGS}
    if flags.get("sample") is not None:
        out["data_dir"] = str(flags["sample"])
    if "tasks" in flags:
        out["tasks"] = [flags["tasks"]]
    if "phases" in flags:
        out["phases"] = [p.strip() for p in flags["phases"].split(",") if p.strip()]
    if "base_url" in flags:
        out["base_urls"] = flags["base_url"]
    if "no_format_prompt" in flags:
        out["format_prompt"] = not flags["no_format_prompt"]
    judge = {key: flags[name] for name, key in _JUDGE_FLAGS.items() if name in flags}
    if judge:
        out["judge"] = {k: str(v) if isinstance(v, Path) else v for k, v in judge.items()}
    if policy := serve_section(flags, "serve_"):
        out["policy_server"] = policy
    judge_server, port = serve_section(flags, "judge_serve_"), flags.get("judge_serve_port")
    file_server = (base or {}).get("judge_server")
    if judge_server or (port is not None and isinstance(file_server, dict)):
        file_port = file_server.get("port") if isinstance(file_server, dict) else None
        out["judge_server"] = {**judge_server, "port": port or file_port or JUDGE_SERVER_PORT}
    return out
