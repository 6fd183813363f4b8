"""The training run's folder: refuse to mix a new run into a previous one's logs and checkpoints, resume from the
last complete checkpoint, or clear the previous run's files (`--resume` / `--overwrite`).

    claim_output_dir(cfg.trainer, resume, overwrite, rank=int(os.environ.get("RANK", "0")))   # before any load
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from medix.errors import MedixError
from medix.train.config import TrainerConfig

log = logging.getLogger(__name__)


# What a finished or interrupted run leaves in trainer.output_dir (besides config.json, rewritten each run).
RUN_FILES = ("metrics.jsonl", "completions.jsonl", "dynamic_sampling.jsonl", "summary.json", "final")


def previous_run(output_dir: str | Path) -> list[str]:
    """Names in `output_dir` that an earlier run left: its logs, summary, final policy and checkpoints."""
    out = Path(output_dir)
    if not out.is_dir():
        return []
    return sorted(p.name for p in out.iterdir() if p.name in RUN_FILES or p.name.startswith("checkpoint-"))


def last_complete_checkpoint(out: Path, found: list[str]) -> Path:
    """The newest checkpoint-N holding trainer_state.json; a newer one without it (a save cut short) is passed
    over with a warning naming both."""
    steps = sorted((int(n.split("-", 1)[1]), n) for n in found
                   if n.startswith("checkpoint-") and n.split("-", 1)[1].isdigit())
    if not steps:
        raise MedixError(f"nothing to resume in {out}: it has no checkpoint-* folder (pass --overwrite, or "
                         "set trainer.output_dir to a new folder)")
    complete = [name for _, name in steps if (out / name / "trainer_state.json").is_file()]
    if not complete:
        raise MedixError(f"nothing to resume in {out}: no checkpoint holds trainer_state.json "
                         f"({', '.join(n for _, n in steps)} "
                         "were cut short); pass --overwrite to start again")
    if complete[-1] != steps[-1][1]:
        log.warning("%s lacks trainer_state.json (its save was cut short); resuming from %s instead",
                    out / steps[-1][1], out / complete[-1])
    return out / complete[-1]


def claim_output_dir(trainer: TrainerConfig, resume: bool = False, overwrite: bool = False, rank: int = 0) -> None:
    """Before any model loads: refuse to mix a new run into a previous one's logs and checkpoints.

    resume: continue the previous run from its latest checkpoint (its logs are appended to).
    overwrite: delete the previous run's files listed by `previous_run` (nothing else in the folder).
    rank: this process under accelerate (env RANK). Process 0 checks and clears alone; the others only resolve
    the checkpoint to resume, the same one."""
    from medix.files import check_writable_dir

    if rank != 0:
        if resume or trainer.resume_from_checkpoint is True:
            out = Path(trainer.output_dir)
            trainer.resume_from_checkpoint = str(last_complete_checkpoint(out, previous_run(out)))
        return
    if resume and overwrite:
        raise MedixError("--resume and --overwrite exclude each other: continue the previous run, or replace it")
    out = Path(trainer.output_dir)
    check_writable_dir(out, f"trainer.output_dir {out} cannot be written")
    found = previous_run(out)
    if isinstance(trainer.resume_from_checkpoint, str):  # a named checkpoint: the user chose what to continue
        if not Path(trainer.resume_from_checkpoint).is_dir():
            raise MedixError(f"trainer.resume_from_checkpoint: no checkpoint folder {trainer.resume_from_checkpoint}")
        return
    if resume or trainer.resume_from_checkpoint:
        trainer.resume_from_checkpoint = str(last_complete_checkpoint(out, found))
        return
    if found and not overwrite:
        raise MedixError(f"{out} holds a previous run ({', '.join(found[:6])}): pass --resume to continue it from "
                         "its last checkpoint, --overwrite to replace it, or set trainer.output_dir=NEW_FOLDER")
    for name in found:
        path = out / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
