"""The composite reward's values are pinned: every component, detail and overall of a fixed sample set, scored
with the embedded judge (SmolLM2-135M, logit verdicts) and embedder (all-MiniLM-L6-v2), must equal
tests/rewards/reward_golden.json exactly (floats compared with ==, not approx).

The sample set is examples/responses.jsonl (the `medix reward score` example) plus rows that reach every
pre-model guard, text-only rows and an untagged reference; it is scored under five configs: the defaults,
continuous embedding with modality on text-only rows, soft judge scores, and the three `on_judge_error`
policies with a judge that fails on a fixed third of its prompts. The golden file was written by the reward
code before its components moved into one table; regenerate it only when a reward value is meant to change:

    python tests/rewards/test_reward_golden.py --write
"""

from __future__ import annotations

import json
import sys
import zlib
from pathlib import Path

import pytest

from helpers import REPO
from medix.judge.config import JudgeConfig
from medix.rewards.config import RewardConfig
from medix.judge import Judge, Verdict
from medix.rewards.composite import CompositeReward

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "reward_golden.json"
EXAMPLES = REPO / "examples" / "responses.jsonl"

# (response, solution, has_image): every guard, text-only rows, an untagged reference, think / thinking tags.
EDGE = [
    ("<X_RAY> <think>clear</think> <answer>Pneumothorax</answer>", "<X_RAY> Pneumothorax", True),
    ("<X_RAY> <think>clear</think> <answer>pneumothorax.</answer>", "<X_RAY> Pneumothorax", None),
    ("<X_RAY> <think>hmm</think> <answer></answer>", "<X_RAY> Pneumothorax", True),
    ("<X_RAY> <think>hmm</think> <answer>P</answer>", "<X_RAY> Pneumothorax", True),
    ("<X_RAY> <think>hmm</think> <answer>YES</answer>", "<X_RAY> Fracture", True),
    ("<X_RAY> <think>hmm</think> <answer>Yes, this is correct.</answer>", "<X_RAY> Fracture", True),
    ("<X_RAY> <think>hmm</think> <answer>yes</answer>", "<X_RAY> Yes", True),
    ("<X_RAY> <think>hmm</think> no answer block", "<X_RAY> Fracture", True),
    ("<X_RAY> <think>long</think> <answer>" + "effusion " * 600 + "</answer>", "<X_RAY> Effusion", True),
    ("<think>vitamin</think> <answer>Vitamin C</answer>", "Vitamin C", False),
    ("<think>scurvy</think> <answer>Ascorbic acid deficiency</answer>", "Vitamin C", False),
    ("<CT_SCAN> <thinking>appendix</thinking> <answer>Appendicitis</answer>", "<CT_SCAN> Acute appendicitis", False),
    ("<CT_SCAN> <thinking>appendix</thinking> <answer>Appendicitis</answer>", "<CT_SCAN> Acute appendicitis", True),
    ("<MRI_SCAN> <think>mass</think> <answer>Glioblastoma</answer>", "<CT_SCAN> Glioblastoma", True),
    ("<MRI_SCAN><think>mass</think><answer>Meningioma</answer> trailing text", "<MRI_SCAN> Meningioma", True),
    ("<OCT_SCAN> <think>fluid</think> <answer>Macular edema with subretinal fluid</answer>",
     "<OCT_SCAN> Diabetic macular edema", True),
    ("Just the answer: Diabetic macular edema", "<OCT_SCAN> Diabetic macular edema", True),
]

CONFIGS = {
    "default": {},
    "continuous_text_only_modality": {"embed_continuous": True, "text_only_modality": True},
    "soft_judge": {"judge": {"soft": True}},
    "fail_renormalize": {"on_judge_error": "renormalize"},
    "fail_zero": {"on_judge_error": "zero"},
    "fail_skip_group": {"on_judge_error": "skip_group"},
}


def samples() -> list[dict]:
    rows = [json.loads(line) for line in EXAMPLES.read_text().splitlines() if line.strip()]
    out = [{"response": r["response"], "solution": r["solution"], "problem": r.get("problem", ""), "has_image": True}
           for r in rows]
    out += [{"response": r, "solution": s, "problem": "", "has_image": h} for r, s, h in EDGE]
    return out


class PlantedFailures:
    """The embedded judge's backend, failing on every prompt whose CRC-32 is divisible by 3 (a fixed third)."""

    def __init__(self, inner):
        self.inner = inner

    async def verdicts(self, prompts: list[str]) -> list[Verdict]:
        fail = [zlib.crc32(p.encode()) % 3 == 0 for p in prompts]
        real = iter(await self.inner.verdicts([p for p, f in zip(prompts, fail) if not f]))
        return [Verdict(None, error="planted failure") if f else next(real) for f in fail]

    async def aclose(self) -> None:
        await self.inner.aclose()


def config(name: str) -> RewardConfig:
    spec = dict(CONFIGS[name])
    # float32 as when the golden was written: on a CPU with native bf16 the default judge dtype is bfloat16
    judge = JudgeConfig(cache=False, model="smollm2-135m", dtype="float32", **spec.pop("judge", {}))
    return RewardConfig(judge=judge, **spec)


def score_all() -> dict[str, list[dict]]:
    rows = samples()
    out = {}
    for name in CONFIGS:
        cfg = config(name)
        judge = Judge(cfg.judge)
        if name.startswith("fail_"):
            judge = Judge(cfg.judge, backend=PlantedFailures(judge.backend))
        composite = CompositeReward(cfg, judge=judge)
        try:
            results = composite.score([r["response"] for r in rows], [r["solution"] for r in rows],
                                      [r["problem"] for r in rows], [r["has_image"] for r in rows])
        finally:
            composite.close()
        out[name] = [{**r.to_dict(), "weights": r.weights} for r in results]
    return out


@pytest.mark.slow
def test_composite_values_equal_the_golden_file():
    golden = json.loads(GOLDEN.read_text())
    now = score_all()
    assert set(now) == set(golden)
    for name in golden:
        assert len(now[name]) == len(golden[name]) == len(samples())
        for i, (got, want) in enumerate(zip(now[name], golden[name])):
            assert got == want, f"{name}, sample {i}"
    # The set reaches what it is meant to: every guard, a failed verdict, a skipped overall, a text-only row.
    reasons = {r["guard"] for r in golden["default"]}
    assert {"exact_match", "empty", "too_short", "verdict_word", "no_answer_block", "too_long"} <= reasons
    assert any(r["judge_error"] for r in golden["fail_zero"]) and any(r["overall"] is None
                                                                      for r in golden["fail_skip_group"])
    assert any(r["modality"] is None for r in golden["default"])


if __name__ == "__main__":
    if "--write" not in sys.argv:
        sys.exit("usage: python tests/rewards/test_reward_golden.py --write   "
                 "(rewrites tests/rewards/reward_golden.json)")
    GOLDEN.write_text(json.dumps(score_all(), indent=1) + "\n")
    print(f"wrote {GOLDEN}")
