"""Dynamic sampling with a failing judge under reward.on_judge_error=skip_group (issue 17, item 7).

skip_group means: a group holding a completion whose judge verdict failed is left out of the update. With
dynamic sampling on, such a group must count as dropped and never take a trained slot, even when the mean
of its scorable rewards lies inside (low, high) — the filter's nanmean would keep it on its own.
"""

import json

from red_servers import reply_server, user_text
from scripted_run import question, record, scripted_run, train

from medix.testing.stub_server import stub_reply

EXACT, NO_ANSWER = "<think>x</think> <answer>Radial nerve</answer>", "<think>x</think>"
BROKEN = "<think>x</think> <answer>JUDGEFAILS nerve</answer>"  # the judge answers HTTP 500 for this one
FAILING_ROWS = {0, 2, 5}  # the other rows are all-or-nothing groups (1, 1, 0, 0): mean 0.5, kept


def writer(prompt: str, k: int) -> str:
    """Rows in FAILING_ROWS: exact, exact, no answer, and one the judge fails on — scorable rewards
    1, 1, 0 (mean 2/3, inside (0.01, 0.99)) plus a failed verdict; other rows: 1, 1, 0, 0. The exact answer
    and the missing one never reach the judge (exact match; format bracket), so only BROKEN does."""
    if k < 2:
        return EXACT
    return BROKEN if k == 3 and question(prompt) in FAILING_ROWS else NO_ANSWER


def test_a_group_with_a_failed_verdict_is_dropped_by_dynamic_sampling(tmp_path):
    judge = reply_server(lambda body: None if "JUDGEFAILS" in user_text(body) else stub_reply(body["messages"]))
    with judge:
        run = scripted_run(tmp_path, judge.url, writer, 8, "reward.on_judge_error=skip_group", "trainer.max_steps=3",
                           "algorithm.dynamic_sampling.max_attempts=3")
        generated, batches = [], []
        record(run.trainer, "_score_round", generated, inputs=True)
        record(run.trainer, "_generate_and_score_completions", batches)
        train(run)
    logged = [json.loads(line) for line in (tmp_path / "run" / "dynamic_sampling.jsonl").open()]
    rounds = iter([rows[i]["id"] for i in range(0, len(rows), 4)] for rows in generated)
    failing_seen = 0
    for line, batch in zip(logged, batches, strict=True):
        ids = [i for _ in range(line["rounds"]) for i in next(rounds)]  # groups generated this step, in order
        passes = [i for i in ids if int(i[1:]) not in FAILING_ROWS]
        fails = [i for i in ids if int(i[1:]) in FAILING_ROWS]
        failing_seen += len(fails)
        assert (line["kept"], line["dropped"]) == (len(passes), len(fails)), line
        assert line["trained"] == (passes + fails)[:2]  # kept groups first; a failing one only as padding
        assert line["filled"] == max(0, 2 - len(passes))
        padded = 4 * line["filled"]
        assert batch["advantages"][8 - padded:].abs().sum() == 0  # a padding group teaches nothing
    assert next(rounds, None) is None
    assert failing_seen > 0, "the sampled prompts must include a group with a failed verdict"
