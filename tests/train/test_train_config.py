"""`medix train`'s config as it is read (medix/train/config.py): a run that trains nothing, a key outside its
home section, pass-through TRL fields typed as TRL types them, a key given twice, non-finite numbers."""

import re

import pytest

from medix.errors import MedixError
from medix.train.config import load_train_config


@pytest.mark.parametrize("override,message", [
    ("trainer.max_steps=0", "trainer.max_steps=0 would train nothing"),
    ("trainer.max_steps=-5", "trainer.max_steps: Input should be greater than or equal to -1"),
])
def test_train_max_steps_must_train_something(override, message):
    with pytest.raises(MedixError, match=message):
        load_train_config(None, ["data.train=x.jsonl", override])
    assert load_train_config(None, ["data.train=x.jsonl", "trainer.max_steps=-1"]).trainer.max_steps == -1


@pytest.mark.parametrize("given,message", [
    ("rollout.learning_rate=0.5", "rollout.learning_rate: learning_rate is medix's trainer.learning_rate"),
    ("rollout.max_steps=0", "rollout.max_steps: max_steps is medix's trainer.max_steps"),
    ("algorithm.learning_rate=-1e-5", "algorithm.learning_rate: learning_rate is medix's trainer.learning_rate"),
    ("algorithm.output_dir=/elsewhere/earlier-run", "algorithm.output_dir: output_dir is medix's trainer.output_dir"),
    ("rollout.use_vllm=false", "rollout.use_vllm is set by rollout.engine"),
    ("trainer.warmup_steps=abc", "trainer.warmup_steps='abc': TRL's warmup_steps takes float"),
])
def test_a_key_outside_its_home_or_of_the_wrong_type_is_refused(given, message):
    with pytest.raises(MedixError, match=re.escape(message)):
        load_train_config(None, ["data.train=x.jsonl", given])


def test_the_rollout_engine_is_read_under_its_earlier_name_too():
    # `rollout.backend` was renamed `rollout.engine` ("backend" names the judge's client); older configs still load
    assert load_train_config(None, ["data.train=x.jsonl", "rollout.backend=vllm"]).rollout.engine == "vllm"
    assert load_train_config(None, ["data.train=x.jsonl", "rollout.engine=vllm"]).rollout.engine == "vllm"
    assert load_train_config(None, ["data.train=x.jsonl"]).rollout.engine == "transformers"


def test_a_pass_through_number_is_typed_as_trl_types_it():
    cfg = load_train_config(None, ["data.train=x.jsonl", "trainer.adam_epsilon=1e-8"])  # YAML 1.1: a string
    assert cfg.trainer.model_extra["adam_epsilon"] == 1e-8
    with pytest.raises(MedixError, match="warmup_steps is given twice, as algorithm.warmup_steps and "
                                         "trainer.warmup_steps"):
        load_train_config(None, ["data.train=x.jsonl", "algorithm.warmup_steps=3", "trainer.warmup_steps=4"])


@pytest.mark.parametrize("text,line", [
    ("data: {train: x.jsonl}\ntrainer:\n  max_steps: 3\ntrainer:\n  learning_rate: 0.5\n", "line 4"),
    ("data: {train: x.jsonl}\ntrainer:\n  max_steps: 3\n  max_steps: 5\n", "line 4"),
])
def test_a_key_given_twice_in_a_yaml_file_is_refused_naming_both_lines(tmp_path, text, line):
    config = tmp_path / "train.yaml"
    config.write_text(text)
    with pytest.raises(MedixError, match=f"{line}: .*given twice \\(lines (2|3) and 4\\)"):
        load_train_config(config, [])


def test_non_finite_numbers_are_refused_in_medix_and_trl_fields():
    for given in ("trainer.learning_rate=.nan", "trainer.adam_epsilon=.inf"):
        with pytest.raises(MedixError, match="finite number"):
            load_train_config(None, ["data.train=x.jsonl", given])
