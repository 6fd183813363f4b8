"""Plain `generate` against `medix.generation.generate_ids` (the prompt prefix every row shares run once), side by
side on the `medix demo` prompts: a rollout group (one question, G sampled answers) and a batch of held-out
questions (greedy), with the embedded SmolLM2-135M-Instruct policy in float32.

    python bench/shared_prefix.py                # 5 repeats of each workload
    python bench/shared_prefix.py --markdown
    python bench/shared_prefix.py --smoke        # 1 repeat, 8-token answers: every row (CI)

"same tokens" counts rows whose new tokens are identical in both (greedy: they must be; sampled: the same seed,
and logits equal up to float rounding). Speed is never asserted in tests; the table goes to docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from hardware import show as show_hardware  # bench/hardware.py (this script's folder is first on sys.path)

from medix.generation import generate_ids
from medix.train.demo import DEMO_DATA, FEW_SHOT


def conversation(question: str) -> list[dict]:
    messages = [{"role": "system", "content": "You are a concise medical assistant."}]
    for shot in FEW_SHOT:
        messages += [{"role": "user", "content": shot["problem"]}, {"role": "assistant", "content": shot["response"]}]
    prompt = (DEMO_DATA / "prompt.jinja").read_text().split("-#}", 1)[-1].strip()
    text = prompt.replace("{{ problem }}", question).replace("{{ think_tag }}", "think")
    return messages + [{"role": "user", "content": text}]


def timed(fn, repeats: int) -> tuple[float, torch.Tensor]:
    times, out = [], None
    for _ in range(repeats):
        torch.manual_seed(0)
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--group", type=int, default=4, help="Sampled answers per question (G).")
    parser.add_argument("--batch", type=int, default=16, help="Held-out questions per greedy batch.")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.repeats, args.max_tokens, args.group, args.batch = 1, 8, 2, 4
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from medix.models import smollm2_folder

    show_hardware(args.markdown)
    folder = smollm2_folder()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    questions = [json.loads(line)["problem"] for line in (DEMO_DATA / "heldout.jsonl").read_text().splitlines()]
    workloads = {
        f"rollout: 1 question × {args.group} sampled": ([questions[0]] * args.group, {"do_sample": True}),
        f"held-out: {args.batch} questions, greedy": (questions[:args.batch], {"do_sample": False}),
    }
    rows = []
    for name, (batch, sampling) in workloads.items():
        texts = [tokenizer.apply_chat_template(conversation(q), tokenize=False, add_generation_prompt=True)
                 for q in batch]
        enc = tokenizer(texts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
        kwargs = {"max_new_tokens": args.max_tokens, "pad_token_id": tokenizer.pad_token_id, **sampling}
        with torch.inference_mode():
            plain_s, plain = timed(lambda: model.generate(**enc, **kwargs), args.repeats)
            shared_s, shared = timed(lambda: generate_ids(model, enc["input_ids"], enc["attention_mask"], **kwargs),
                                     args.repeats)
        width = enc["input_ids"].shape[1]
        same = sum(torch.equal(a[width:], b[width:]) for a, b in zip(plain, shared))
        rows.append((name, width, f"{plain_s:.2f}", f"{shared_s:.2f}", f"{plain_s / shared_s:.2f}x",
                     f"{same}/{len(batch)}"))
    header = ("workload", "prompt tokens", "plain s", "shared prefix s", "speed-up", "same tokens")
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|---|" + "---:|" * (len(header) - 1))
        for row in rows:
            print("| " + " | ".join(map(str, row)) + " |")
    else:
        print("  ".join(f"{h:>16}" for h in header))
        for row in rows:
            print("  ".join(f"{str(c):>16}" for c in row))


if __name__ == "__main__":
    main()
