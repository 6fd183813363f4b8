"""The reward ablation: presets against the paper's formula, the report from run folders with known curves (volatility
and alert steps worked out by hand), bad input, and (slow) a real two-arm run on the embedded models that is
killed and resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from helpers.cli_runner import cli
from medix.rewards.config import RewardConfig
from medix.rewards.composite import combine, sample_weights

# One image sample: the judge says yes, cosine 0.3, the modality tag right, the format right.
VALUES = {"accuracy_llm": 1.0, "accuracy_embed": 0.3, "modality": 1.0, "format": 1.0}


@pytest.mark.parametrize("preset, expected", [
    # overall = (1 − w_f)·(w_j·llm + w_e·embed + w_m·modality) + w_f·format, the weights of each preset
    ("composite", 0.9 * (0.575 * 1.0 + 0.375 * 0.3 + 0.05 * 1.0) + 0.1 * 1.0),  # 0.76375
    ("llm", 1.0),
    ("embed", 0.3),
    ("llm+embed", (0.575 * 1.0 + 0.375 * 0.3) / 0.95),  # the paper's ratio, normalised to 1
])
def test_each_preset_gives_the_formula_with_its_weights(preset, expected):
    cfg = RewardConfig(preset=preset)
    assert combine(sample_weights(cfg, dict(VALUES), set()), VALUES) == pytest.approx(expected)


def test_single_signal_presets_pay_nothing_for_format_or_the_other_signal():
    for preset, signal_name in (("llm", "accuracy_llm"), ("embed", "accuracy_embed")):
        cfg = RewardConfig(preset=preset)
        wrong = {**VALUES, signal_name: 0.0}
        assert combine(sample_weights(cfg, dict(wrong), set()), wrong) == 0.0  # format 1 and the other signal: 0


def test_explicit_weights_win_over_the_preset_field_by_field():
    w = RewardConfig(preset="llm", weights={"format": 0.2}).weights
    assert (w.format, w.judge, w.embed, w.modality) == (0.2, 1.0, 0.0, 0.0)
    again = RewardConfig.model_validate(RewardConfig(preset="embed").model_dump())  # a dumped config reloads the same
    assert again.weights.embed == 1.0 and again.weights.judge == 0.0


def test_an_unknown_preset_is_named_with_the_nearest():
    with pytest.raises(ValueError, match="unknown reward preset 'lm'; did you mean 'llm'"):
        RewardConfig(preset="lm")


def test_a_preset_reaches_the_training_config_as_an_override():
    from medix.train.config import load_train_config

    cfg = load_train_config(None, ["reward.preset=llm+embed", "model.name=smollm2-135m", "data.train=x.jsonl"])
    assert cfg.reward.weights.format == 0.0 and cfg.reward.weights.judge == pytest.approx(0.575 / 0.95)


# ---- the report, from synthetic run folders -------------------------------------------------------------------

MONITOR = {"enabled": True, "max_judge_embed_disagreement": 0.3, "warmup_steps": 3, "max_length_ratio": 3.0,
           "baseline_steps": 2}


def _step(step, reward, llm, tokens=None, share=0.0, ratio=None):
    return {"step": step, "loss": 0.0, "reward": reward, "rewards/overall/mean": reward,
            "rewards/accuracy_llm/mean": llm, "rewards/accuracy_embed/mean": 0.5, "rewards/format/mean": 1.0,
            "monitor/judge_accepts_embed_rejects": share, "monitor/answer_tokens_mean": tokens,
            "monitor/answer_length_ratio": ratio}


def _arm(out: Path, name: str, steps: list[dict], held: list[float], judge: str = "judge-a"):
    folder = out / name
    (folder / "final").mkdir(parents=True)
    preset, seed = name.rsplit("-s", 1)
    (folder / "summary.json").write_text("{}")
    (folder / "config.json").write_text(json.dumps({"monitor": MONITOR}))
    (folder / "arm.json").write_text(json.dumps({"preset": preset, "seed": int(seed), "weights": {},
                                                 "config_hash": name, "shared_hash": "same"}))
    (folder / "metrics.jsonl").write_text("".join(json.dumps(s) + "\n" for s in steps)
                                          + '{"step": 6, "train_runtime": 1}\n')
    _held(folder, held, judge)


def _held(folder: Path, held: list[float], judge: str = "judge-a"):
    folder.mkdir(parents=True, exist_ok=True)
    records = [{"id": f"q{i}", "accuracy_llm": v, "overall": v} for i, v in enumerate(held)]
    (folder / "heldout.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    summary = {"rows": len(held), "accuracy_llm": sum(held) / len(held), "overall": sum(held) / len(held)}
    (folder / "heldout.json").write_text(json.dumps({"policy": str(folder), "summary": summary,
                                                     "judge": {"model": judge, "backend": "local"}}))


@pytest.fixture
def ablation_dir(tmp_path):
    out = tmp_path / "abl"
    out.mkdir()
    plan = {"config": None, "overrides": [], "presets": ["composite", "llm"], "seeds": [1], "base": None,
            "eval_judge": {"model": "judge-a"}}
    (out / "ablation.json").write_text(json.dumps(plan))
    # composite: a steady climb; llm: see-saw, a disagreement spike at step 2 (warm-up) and 4, a length blow-up at 5
    _arm(out, "composite-s1", [_step(s, 0.1 * (s - 1), 0.5, tokens=4.0, ratio=1.0) for s in range(1, 6)],
         held=[1, 1, 0, 0])
    llm = [_step(1, 0.0, 0.0, tokens=4.0, ratio=1.0), _step(2, 1.0, 1.0, tokens=4.0, share=0.5, ratio=1.0),
           _step(3, 0.0, 0.0, tokens=8.0, ratio=2.0), _step(4, 1.0, 1.0, tokens=8.0, share=0.4, ratio=2.0),
           _step(5, 0.0, 0.0, tokens=14.0, ratio=3.5)]
    llm.insert(3, _step(3, 0.0, 0.0, tokens=8.0, ratio=2.0))  # a resumed run logs step 3 twice: counted once
    _arm(out, "llm-s1", llm, held=[0, 1, 0, 0])
    _held(out / "base", [0, 0, 0, 0])
    return out


def test_volatility_is_the_spread_of_step_changes_of_the_smoothed_reward():
    from medix.train.ablation_report import volatility

    # changes [1, -1, 1, -1, 1]: mean .2, std sqrt((3·.8² + 2·1.2²) / 5) = sqrt(.96)
    assert volatility([0, 1, 0, 1, 0, 1], window=1) == pytest.approx(0.96 ** 0.5)
    # trailing mean of 2: [0, .5, .5, .5, .5, .5] → changes [.5, 0, 0, 0, 0]: mean .1, std sqrt(.04) = .2
    assert volatility([0, 1, 0, 1, 0, 1], window=2) == pytest.approx(0.2)
    # a steady climb: [0, .05, .15, .25, .35] → changes [.05, .1, .1, .1]: std sqrt(.00046875)
    assert volatility([0, 0.1, 0.2, 0.3, 0.4], window=2) == pytest.approx(0.00046875 ** 0.5)
    assert volatility([0.5, None, 0.5]) is None  # under 3 logged steps


def test_report_reads_curves_alerts_and_paired_held_out_changes(ablation_dir):
    from medix.train.ablation_report import write

    report = write(ablation_dir, window=1)
    composite, llm = report["arms"]["composite-s1"], report["arms"]["llm-s1"]
    assert llm["steps"] == 5 and llm["curves"]["step"] == [1, 2, 3, 4, 5]
    # rewards 0,1,0,1,0: changes [1,-1,1,-1], mean 0 → std 1; the climb 0,.1,.2,.3,.4: equal changes → 0
    assert llm["volatility"] == pytest.approx(1.0) and composite["volatility"] == pytest.approx(0.0)
    # disagreement 0.5 at step 2 is inside the 3 warm-up steps; 0.4 at step 4 fires. The baseline is complete
    # after 2 steps; the ratio passes 3.0 first at step 5.
    assert llm["alerts"] == {"judge_embed_disagreement": 4, "answer_length": 5}
    assert composite["alerts"] == {}
    change = llm["vs_composite"]["accuracy_llm"]
    assert change["delta"] == pytest.approx(-0.25) and change["n"] == 4  # [0,1,0,0] − [1,1,0,0]
    assert "vs_composite" not in composite and report["base"]["held_out"]["accuracy_llm"] == 0.0
    assert (ablation_dir / "ablation.png").stat().st_size > 10_000
    assert json.loads((ablation_dir / "ablation_report.json").read_text())["same_settings"] is True


def test_report_command_prints_the_table(ablation_dir):
    code, out, err = cli("ablate", "report", str(ablation_dir))
    assert code == 0 and err is None, out
    assert "composite-s1" in out and "llm-s1" in out and "judge≠embed@4" in out and "length@5" in out
    assert "untrained policy" in out


def test_report_refuses_arms_scored_by_different_judges(ablation_dir):
    _held(ablation_dir / "llm-s1", [0, 1, 0, 0], judge="judge-b")
    code, out, err = cli("ablate", "report", str(ablation_dir))
    assert code != 0 and err is not None and "different judges" in str(err) and "llm-s1" in str(err)


def test_bad_input_is_named(tmp_path):
    code, _, err = cli("ablate", "report", str(tmp_path))
    assert err is not None and "no ablation.json" in str(err)
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump({"model": {"name": "smollm2-135m"}, "data": {"train": "x.jsonl"}}))
    code, _, err = cli("ablate", "--config", str(config), "--output-dir", str(tmp_path / "o"))
    assert err is not None and "data.eval" in str(err)  # no held-out rows: nothing to compare arms on
    code, _, err = cli("ablate", "--config", str(config), "--output-dir", str(tmp_path / "o"), "--presets",
                       "composite,llm-only", "data.eval=y.jsonl")
    assert err is not None and "llm-only" in str(err) and "did you mean" in str(err)
    code, _, err = cli("ablate", "--config", str(config), "--output-dir", str(tmp_path / "o"), "--seeds", "1,x",
                       "data.eval=y.jsonl")
    assert err is not None and "--seeds" in str(err)


def test_a_second_call_with_another_experiment_is_refused(tmp_path):
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump({"model": {"name": "smollm2-135m"},
                                      "data": {"train": "x.jsonl", "eval": "y.jsonl"}}))
    out = tmp_path / "o"
    code, printed, err = cli("ablate", "--config", str(config), "--output-dir", str(out), "--print-launch",
                             "--seeds", "1,2")
    assert code == 0, printed
    lines = [line for line in printed.splitlines() if line.startswith("accelerate launch")]
    assert len(lines) == 8 and lines[0].endswith(f"ablate arm {out} composite-s1")  # 4 presets × 2 seeds
    code, _, err = cli("ablate", "--config", str(config), "--output-dir", str(out), "--print-launch",
                       "trainer.learning_rate=0.1")
    assert err is not None and "another experiment" in str(err) and "overrides" in str(err)


def test_arm_overrides_differ_only_in_preset_seed_and_folder():
    from medix.train.ablation import ARM_FIELDS, Arm, AblationPlan, config_hash

    plan = AblationPlan(None, ["model.name=smollm2-135m", "data.train=x.jsonl", "data.eval=y.jsonl"],
                        ["composite", "llm"], [1], {}, None)
    out = Path("/tmp/abl")
    a, b = (plan.train_config(Arm(p, 1), out) for p in ("composite", "llm"))
    assert config_hash(a) != config_hash(b) and config_hash(a, ARM_FIELDS) == config_hash(b, ARM_FIELDS)
    assert b.reward.weights.judge == 1.0 and b.trainer.output_dir == str(out / "llm-s1") and b.trainer.seed == 1


# ---- a real run: two arms on the embedded models, killed in the second arm and resumed ----------------------------


def _medix(*args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "medix", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, **kwargs)


@pytest.mark.slow
def test_two_arms_train_and_a_killed_arm_resumes(tmp_path):
    from medix.train.demo import demo_settings

    base, overrides = demo_settings(max_steps=3, eval_limit=4, max_completion_tokens=24, judge_model="smollm2-135m")
    config = tmp_path / "demo.yaml"
    config.write_text(yaml.safe_dump(base))
    out = tmp_path / "abl"
    args = ["ablate", "--config", str(config), "--output-dir", str(out), "--presets", "composite,embed",
            "--seeds", "3", *overrides, "trainer.save_steps=1", "trainer.save_total_limit=3"]
    env = {**os.environ, "MEDIX_CACHE": os.environ.get("MEDIX_CACHE", str(Path.home() / ".cache" / "medix"))}
    first = _medix(*args, env=env)
    checkpoint = out / "embed-s3" / "checkpoint-1" / "trainer_state.json"
    deadline = time.monotonic() + 600
    while not checkpoint.is_file() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert checkpoint.is_file(), first.communicate()[0][-3000:]
    first.send_signal(signal.SIGKILL)
    first.wait()
    composite_final = (out / "composite-s3" / "final" / "config.json").stat().st_mtime
    assert not (out / "embed-s3" / "summary.json").exists()

    second = _medix(*args, env=env)
    printed = second.communicate(timeout=900)[0]
    assert second.returncode == 0, printed[-3000:]
    assert "composite-s3: finished earlier: skipped" in printed and "embed-s3: resuming" in printed
    assert (out / "composite-s3" / "final" / "config.json").stat().st_mtime == composite_final  # not retrained
    state = json.loads((out / "embed-s3" / "summary.json").read_text())
    assert state["global_step"] == 3
    steps = [json.loads(line)["step"] for line in (out / "embed-s3" / "metrics.jsonl").read_text().splitlines()
             if "loss" in json.loads(line)]
    assert max(steps) == 3 and 1 in steps  # the logs of before the kill are kept, the run went on to step 3

    report = json.loads((out / "ablation_report.json").read_text())
    embed = report["arms"]["embed-s3"]
    assert embed["weights"]["embed"] == 1.0 and embed["weights"]["judge"] == 0.0
    # the judge is scored and logged in the embed arm although it does not train on it
    assert any(v is not None for v in embed["curves"]["accuracy_llm"])
    assert embed["held_out"]["rows"] == 4 and "accuracy_llm" in embed["vs_composite"]
    assert report["base"]["held_out"]["rows"] == 4 and report["same_settings"] is True
    assert json.loads((out / "embed-s3" / "heldout.json").read_text())["weights"]["judge"] == 0.575  # composite


def test_clearing_an_ablation_leaves_what_it_did_not_write(ablation_dir):
    from medix.train.ablation import clear

    (ablation_dir / "notes.txt").write_text("the user's own")
    clear(ablation_dir)
    assert sorted(p.name for p in ablation_dir.iterdir()) == ["notes.txt"]
