"""The run folder claimed before any model loads (medix/train/run_folder.py): a previous run is refused,
`--resume` continues from the last complete checkpoint, `--overwrite` deletes only that run's files."""

from pathlib import Path

import pytest

from helpers.cli_runner import medix
from medix.errors import MedixError
from medix.train.config import TrainerConfig
from medix.train.run_folder import claim_output_dir


def _previous_run(out: Path) -> None:
    (out / "checkpoint-2").mkdir(parents=True)
    (out / "checkpoint-2" / "trainer_state.json").write_text("{}")
    (out / "metrics.jsonl").write_text('{"step": 1}\n')
    (out / "completions.jsonl").write_text("{}\n")
    (out / "notes.txt").write_text("mine")


def test_train_into_a_previous_run_is_refused(tmp_path):
    _previous_run(tmp_path / "run")
    cfg = tmp_path / "train.yaml"
    cfg.write_text(f"data: {{train: {tmp_path / 'd.jsonl'}}}\ntrainer: {{output_dir: {tmp_path / 'run'}}}\n")
    result = medix("train", "--config", str(cfg), "rollout.num_generations=5")
    assert result.returncode == 2 and "holds a previous run (checkpoint-2, completions.jsonl, metrics.jsonl)" in \
        " ".join(result.stderr.split())
    assert "--resume" in result.stderr and "--overwrite" in result.stderr
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == '{"step": 1}\n'


def test_train_resume_and_overwrite(tmp_path):
    out = tmp_path / "run"
    _previous_run(out)
    resumed = TrainerConfig(output_dir=str(out))
    claim_output_dir(resumed, resume=True)
    assert resumed.resume_from_checkpoint == str(out / "checkpoint-2") and (out / "metrics.jsonl").exists()
    claim_output_dir(TrainerConfig(output_dir=str(out)), overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]  # only the run's own files went
    with pytest.raises(MedixError, match="nothing to resume"):
        claim_output_dir(TrainerConfig(output_dir=str(out)), resume=True)
    with pytest.raises(MedixError, match="exclude each other"):
        claim_output_dir(TrainerConfig(output_dir=str(out)), resume=True, overwrite=True)
    claim_output_dir(TrainerConfig(output_dir=str(tmp_path / "new" / "run")))  # a fresh folder is fine


def test_resume_falls_back_to_the_last_complete_checkpoint(tmp_path, caplog):
    out = tmp_path / "run"
    for step, complete in ((2, True), (4, False)):
        (out / f"checkpoint-{step}").mkdir(parents=True)
        if complete:
            (out / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    trainer = TrainerConfig(output_dir=str(out))
    claim_output_dir(trainer, resume=True)
    assert trainer.resume_from_checkpoint == str(out / "checkpoint-2")
    assert "checkpoint-4 lacks trainer_state.json" in caplog.text


def test_other_accelerate_processes_resume_the_same_checkpoint_and_clear_nothing(tmp_path):
    out = tmp_path / "run"
    for step in (2, 4):
        (out / f"checkpoint-{step}").mkdir(parents=True)
        (out / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    (out / "metrics.jsonl").write_text("{}\n")
    trainer = TrainerConfig(output_dir=str(out))
    claim_output_dir(trainer, overwrite=True, rank=1)  # process 0 clears; process 1 must not race it
    assert (out / "metrics.jsonl").exists() and (out / "checkpoint-4").exists()
    claim_output_dir(trainer, resume=True, rank=1)
    assert trainer.resume_from_checkpoint == str(out / "checkpoint-4")
    with pytest.raises(MedixError, match="holds a previous run"):  # process 0 decides
        claim_output_dir(TrainerConfig(output_dir=str(out)), rank=0)
