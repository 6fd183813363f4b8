"""Protocols and backends as objects: the protocol table holds what docs/fidelity.md says each protocol
does, a backend is one registration, and a judge whose circuit opened leaves typed, unrecorded verdicts."""

import json

import pytest

from helpers.cli_runner import cli
from helpers.eval_data import four_items_one_failing, stub_eval, stub_judge
from medix.backends import BACKENDS, Backend, get_backend, register
from medix.config import build
from medix.judge.config import JudgeConfig
from medix.errors import MedixError
from medix.eval.config import EvalConfig
from medix.eval.protocol import MEDIX_PROTOCOL, PAPER_PROTOCOL, get_protocol
from medix.eval.runner import run_eval
from medix.eval.shapes.mcq import LAYOUTS as MCQ_LAYOUTS
from medix.judge import Judge, JudgeRequest, Verdict
from medix.testing.stub_server import JudgeStub


@pytest.mark.parametrize("name,tokens,format_prompt,image,side,zero", [
    ("paper", 2048, False, "JPEG", None, True),  # the official client: full-size JPEG, 2048 tokens, failures = 0
    ("medix", 1024, True, "PNG", 1536, False),
])
def test_protocol_table_matches_the_documented_protocols(name, tokens, format_prompt, image, side, zero):
    p = get_protocol(name)
    assert (p.max_new_tokens, p.format_prompt, p.image_format, p.image_max_side, p.failures_count_zero) == \
        (tokens, format_prompt, image, side, zero)
    cfg = EvalConfig(model="m", protocol=name)
    assert cfg.protocol is p and cfg.max_new_tokens == tokens and cfg.model_dump()["protocol"] == name


def test_candidates_and_layouts_differ_as_documented():
    raw = "<X_RAY> <think>a</think> <answer>pneumonia</answer>"
    assert PAPER_PROTOCOL.candidate(raw, "pneumonia") == "<answer>pneumonia</answer>"  # after the last </think>
    assert MEDIX_PROTOCOL.candidate(raw, "pneumonia") == "pneumonia"
    assert MEDIX_PROTOCOL.candidate("<CT_SCAN> <think>x</think> effusion", None) == "effusion"
    assert MCQ_LAYOUTS["paper"].question("Q?", "A. x") == "Q?\n\nChoices:\nA. x"
    assert MCQ_LAYOUTS["medix"].reference("B", {"A": "x", "B": "ulnar."}, None) == "B. ulnar"
    long = "w" * 3000
    assert PAPER_PROTOCOL.judge_question(long) == long and len(MEDIX_PROTOCOL.judge_question(long)) < 1300


def test_an_unknown_protocol_or_backend_is_named_with_the_choices():
    with pytest.raises(MedixError, match=r"unknown protocol 'papr'; did you mean 'paper'\? known: paper, medix"):
        build(EvalConfig, {"model": "m", "protocol": "papr"}, "eval.yaml")
    with pytest.raises(MedixError, match="unknown judge backend 'vlm'; .*known: local, openai"):
        build(JudgeConfig, {"backend": "vlm"}, "reward.yaml")


class ToyBackend:
    """A judge backend that says YES when candidate text is in the prompt twice (a stand-in implementation)."""

    def __init__(self, config):
        self.config = config

    async def verdicts(self, prompts):
        return [Verdict(1.0, p_yes=0.9, attempts=1) for _ in prompts]

    async def aclose(self):
        pass


def test_a_new_backend_is_one_registration(tmp_path):
    register(Backend("toy", served=False, judge_method="logits", judge_class=f"{__name__}:ToyBackend",
                     description="test backend"))
    try:
        config = JudgeConfig(backend="toy", cache=False)
        with Judge(config) as judge:
            assert isinstance(judge.backend, ToyBackend) and judge.identity["method"] == "logits"
            assert "endpoints" not in judge.identity  # not served: no servers in its identity
            [verdict] = judge.judge([JudgeRequest(candidate="a", reference="b")])
        assert verdict.score == 1.0 and get_backend("toy").served is False
    finally:
        BACKENDS.pop("toy")


def test_an_in_process_backend_gets_the_dtype_and_the_shipped_threshold(monkeypatch):
    """What the local backend gets for running in this process comes from its trait, not its name."""
    import medix.models
    from medix.models import QWEN_CODER, known

    monkeypatch.setattr(medix.models, "runtime_dtype", lambda device, dtype: "bfloat16")
    register(Backend("toy-inproc", served=False, judge_method="logits", judge_class=f"{__name__}:ToyBackend",
                     description="test backend", in_process=True))
    try:
        config = JudgeConfig(backend="toy-inproc", model=QWEN_CODER, cache=False)
        assert config.threshold == known(QWEN_CODER).judge_threshold != 0.5
        with Judge(config) as judge:
            assert judge.identity["dtype"] == "bfloat16"
    finally:
        BACKENDS.pop("toy-inproc")


def test_verdicts_after_the_circuit_opened_are_typed_and_not_recorded(tmp_path):
    """The breaker opens on a judge that stopped answering: the conversations it never asked carry `circuit_open`
    and are left out of the judgments (the same command judges them once the judge is back), never stored failed."""
    root = tmp_path / "data" / "mmlu_anatomy"
    root.mkdir(parents=True)
    root.joinpath("test.jsonl").write_text("".join(json.dumps({"question": f"q{i}?", "choices": ["x", "y"],
                                                               "answer": 0}) + "\n" for i in range(12)))
    with JudgeStub(role="policy") as policy, JudgeStub(hang=1.0, hang_s=30) as hanging:
        judge = JudgeConfig(backend="openai", model="j", base_urls=[hanging.url], timeout_s=0.5, backoff_s=0.01,
                            max_retries=0, max_concurrency=2, max_consecutive_failures=1, logprobs=False)
        cfg = EvalConfig(model="p", backend="openai", base_urls=[policy.url], data_dir=str(tmp_path / "data"),
                         output_dir=str(tmp_path / "run"), judge=judge, tasks=["mmlu_anatomy"], judge_rounds=1,
                         protocol="medix", bootstrap=0)
        with pytest.raises(MedixError, match="were not attempted"):
            run_eval(cfg)
    [folder] = (tmp_path / "run" / "judgments").iterdir()
    file = folder / "mmlu_anatomy.jsonl"
    records = [json.loads(line) for line in file.open()] if file.is_file() else []
    assert len(records) < 12 and all("circuit open" not in (r["error"] or "") for r in records)


def test_an_eval_run_reads_each_records_file_once(tmp_path, monkeypatch):
    """The phases hand records over in memory: a fresh run reads its generations file once (for the judge
    and score phases and the report) and its judgments file once (score and report), nothing more."""
    import collections

    import medix.eval.records as records

    reads = collections.Counter()
    original = records.iter_jsonl

    def counting(path, *args, **kwargs):
        reads[path.relative_to(tmp_path / "run").parts[0]] += 1
        return original(path, *args, **kwargs)

    monkeypatch.setattr(records, "iter_jsonl", counting)
    root = tmp_path / "data" / "path_vqa"
    root.mkdir(parents=True)
    root.joinpath("test.jsonl").write_text("".join(json.dumps({"image": None, "question": f"q{i}", "answer": "a",
                                                               "answer_type": "OPEN"}) + "\n" for i in range(3)))
    with JudgeStub(role="policy", policy_answer="a") as policy, JudgeStub() as judge:
        cfg = EvalConfig(model="p", backend="openai", base_urls=[policy.url], data_dir=str(tmp_path / "data"),
                         output_dir=str(tmp_path / "run"), tasks=["path_vqa"], allow_text_only=True, bootstrap=0,
                         judge=JudgeConfig(backend="openai", model="j", base_urls=[judge.url]), protocol="medix")
        result = run_eval(cfg)
    assert result.scores["tasks"]["path_vqa"]["score"] == 1.0
    assert dict(reads) == {"generations": 1, "judgments": 1}
    assert result.report == (tmp_path / "run" / "scores.md").read_text()  # what the CLI prints, no re-read


def test_a_server_flag_with_an_in_process_backend_is_refused(tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"reference": "a", "candidate": "a", "label": True}) + "\n")
    for args in (["eval", "run", "--model", "m", "--backend", "local", "--base-url", "http://127.0.0.1:8000/v1",
                  "--tasks", "mmlu_anatomy", "--output-dir", str(tmp_path / "run")],
                 ["eval", "run", "--model", "m", "--backend", "openai", "--judge-backend", "local",
                  "--judge-url", "http://127.0.0.1:8000/v1", "--tasks", "mmlu_anatomy", "--output-dir",
                  str(tmp_path / "run")],
                 ["judge", "audit", "--pairs", str(pairs), "--judge-backend", "local", "--judge-url",
                  "http://127.0.0.1:8000/v1"]):
        code, output, error = cli(*args)
        assert code != 0 and error is not None and "runs the model in this process" in str(error), args


@pytest.mark.parametrize("protocol,score,counted_as", [
    # paper: every item is in the denominator, the failed generation scores 0 → (1 + 1 + 0 + 1) / 4
    ("paper", 0.75, "0 (in the denominator)"),
    # medix: failures are left out → 3 judged items, all right → 3 / 3
    ("medix", 1.0, "excluded"),
])
def test_the_protocol_decides_how_a_failed_item_is_scored(tmp_path, failing_policy, yes_judge, protocol, score,
                                                          counted_as):
    four_items_one_failing(tmp_path)
    result = run_eval(stub_eval(tmp_path, failing_policy.url, stub_judge(yes_judge.url, timeout_s=5),
                                protocol=protocol))
    assert result.failures["generate/mmlu_anatomy"] == 1
    scores = json.loads((tmp_path / "run" / "scores.json").read_text())
    entry = scores["tasks"]["mmlu_anatomy"]
    assert (scores["protocol"], scores["failures_counted_as"]) == (protocol, counted_as)
    assert (entry["score"], entry["n"], entry["generation_failures"]) == (score, 4 if protocol == "paper" else 3, 1)
    assert scores["overall"] == score
    from medix.eval.compare import compare_runs  # `eval compare` counts items as the task score does

    same = compare_runs(tmp_path / "run", tmp_path / "run")["tasks"]["mmlu_anatomy"]
    assert (same["a"], same["n"], same["diff"]) == (score, 4 if protocol == "paper" else 3, 0.0)
