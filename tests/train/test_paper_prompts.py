"""The paper configs' training prompt and reward judge against the official ones (docs/fidelity.md, Training).

Written from the official files: `format_prompt/medical_format.jinja` (its instruction, then `Question:`,
then `<image>` and the problem), EasyR1's `_build_messages` (the text split at `<image>`, an image part in
its place) and `reward_function/medical.py` (the judge sees the predicted and the reference answer only,
predicted first, and may write 4 tokens).
"""

import pytest
from helpers import REPO

from medix.data.response import MODALITY_TAGS
from medix.judge import Judge, JudgeRequest
from medix.train.config import load_train_config
from medix.train.trl_rows import messages

CONFIGS = sorted(p.stem for p in (REPO / "configs").glob("medix-r1-*.yaml"))
SAMPLE = ("  What does the arrow point to?  ", 1)  # problem, number of images


@pytest.mark.parametrize("name", CONFIGS)
def test_training_prompt_follows_the_official_layout(name):
    cfg = load_train_config(REPO / "configs" / f"{name}.yaml")
    [user] = messages(*SAMPLE, cfg.data, vision=True)
    parts = user["content"]
    # official order: [instruction ... "Question:"] [image] [problem, trimmed]
    assert [p["type"] for p in parts] == ["text", "image", "text"]
    instruction, problem = parts[0]["text"], parts[2]["text"]
    assert instruction.rstrip().endswith("Question:") and problem == "What does the arrow point to?"
    assert all(f"<{tag}>" in instruction for tag in MODALITY_TAGS) and len(MODALITY_TAGS) == 16
    assert "<thinking>" in instruction and "</thinking>" in instruction and "<answer>" in instruction
    # a text-only sample: the same text, no image part and no "<image>" left in it
    [text_user] = messages("Q?", 0, cfg.data, vision=True)  # a vision policy's turns are lists of parts
    [only] = text_user["content"]
    assert only["type"] == "text" and "<image>" not in only["text"] and only["text"].rstrip().endswith("Question:\nQ?")


@pytest.mark.parametrize("name", CONFIGS)
def test_reward_judge_has_the_official_shape(name):
    cfg = load_train_config(REPO / "configs" / f"{name}.yaml")
    assert cfg.reward.judge.max_tokens == 4
    with Judge(cfg.reward.judge) as judge:
        prompt = judge.render(JudgeRequest(candidate="CAND-X", reference="REF-Y", question="UNSEEN QUESTION TEXT"))
    assert "UNSEEN QUESTION TEXT" not in prompt  # the official judge never sees the question
    assert prompt.index("CAND-X") < prompt.index("REF-Y")  # predicted first, then the ground truth
    assert "YES" in prompt and "NO" in prompt


def test_medix_default_prompt_and_judge_are_unchanged():
    from medix.judge.config import JudgeConfig
    from medix.train.config import DataConfig

    [user] = messages(*SAMPLE, DataConfig(train="x"), vision=True)
    assert [p["type"] for p in user["content"]] == ["image", "text"]  # medix: images first, its own instruction
    with Judge(JudgeConfig()) as judge:  # medix's default judge: no question either (measured: docs/judge.md),
        prompt = judge.render(JudgeRequest(candidate="CAND-X", reference="REF-Y", question="UNSEEN"))
    assert "UNSEEN" not in prompt and prompt.index("REF-Y") < prompt.index("CAND-X")  # but the candidate last


def test_the_official_length_filter_measures_characters_with_one_image_placeholder(tmp_path):
    """EasyR1's filter is `len(processor.apply_chat_template(messages, add_generation_prompt=True))`; a
    processor returns the templated text there, so the official limit counts characters, each image one
    placeholder; medix counts tokens with the image expanded (`prompt_tokens`)."""
    from PIL import Image

    from medix.testing.tiny import tiny_qwen3_vl
    from medix.train.trl_rows import prompt_tokens

    _, processor = tiny_qwen3_vl()
    Image.new("RGB", (64, 64)).save(tmp_path / "x.png")
    [user] = messages("Which organ?", 1, load_train_config(REPO / "configs" / "medix-r1-8b-dapo.yaml").data,
                      vision=True)
    official = processor.apply_chat_template([user], add_generation_prompt=True)
    assert isinstance(official, str) and official.count("<|image_pad|>") == 1
    text_tokens = len(processor.tokenizer(official, add_special_tokens=False)["input_ids"])
    assert prompt_tokens(processor, [user], [str(tmp_path / "x.png")]) == text_tokens - 1 + 4  # 64x64 → 4 visual tokens
    assert len(official) != text_tokens  # characters are not tokens
