"""The paper protocol against the official evaluation code's behaviour, item by item (docs/fidelity.md).

Every expected value below is written from the official `eval/utils.py` + `eval/tasks.yaml` (how they
build a prompt, parse a judge reply, match an option), never from what medix returns.
"""

import json

import pytest
import yaml

from helpers.cli_runner import cli
from helpers.eval_data import write_task
from medix.eval.config import EvalConfig
from medix.eval.items import load_task
from medix.eval.official import apply_official, fixed_questions
from medix.eval.registry import registry, select_tasks
from medix.eval.shapes.mcq import match_option
from medix.testing.stub_server import JudgeStub


PUB_ROW = {"pubid": 1, "QUESTION": "Does X help?", "CONTEXTS": ["first ctx", "second ctx"],
           "final_decision": "yes", "LONG_ANSWER": "It helps."}


def test_pubmedqa_choices_as_the_official_yaml_11_parse_gives_them(tmp_path):
    # The official tasks.yaml lists the choices unquoted; a YAML 1.1 loader (PyYAML, as the official code
    # uses) reads yes / no as booleans, and the prompt writes each with f"{option}".
    official_choices = yaml.safe_load("choices:\n  - yes\n  - no\n  - maybe\n")["choices"]
    listed = "\n".join(f"{'ABC'[i]}. {c}" for i, c in enumerate(official_choices))
    assert listed == "A. True\nB. False\nC. maybe"
    write_task(tmp_path, "pubmedqa", [PUB_ROW])
    [paper] = load_task(registry()["pubmedqa"], tmp_path, protocol="paper").items
    assert paper.question == f"Contexts:\nfirst ctx\n\nQuestion:\nDoes X help?\n\nChoices:\n{listed}"
    assert paper.reference == "yes\nIt helps."  # the decision column is text, not a YAML value
    [own] = load_task(registry()["pubmedqa"], tmp_path, protocol="medix").items
    assert "Choices: yes, no, maybe." in own.question


# A small file of the official tasks.yaml's shape (groups of task mappings, unquoted yes/no) and a loader
# of the official utils.py's shape, with wording written for this test.
OFFICIAL_YAML = """\
llm:
  pubmedqa:
    path: some/eval-sets
    name: pubmedqa
    split: test
    question_column:
      - CONTEXTS
      - QUESTION
    answer:
      - final_decision
      - LONG_ANSWER
    choices:
      - yes
      - no
      - maybe
  mimic_cxr_report_summarization:
    path: some/eval-sets
    name: mimic_cxr
    split: test
    question_column:
    answer_column: summary
vlm:
  mimic_cxr_report_generation:
    path: some/eval-sets
    name: mimic_cxr
    split: test
    question_column:
    answer_column: report
"""
OFFICIAL_UTILS = '''
def load_dataset_with_params(params, dataset_name):
    for sample in ds:
        question = ""
        if dataset_name == 'mimic_cxr_report_generation':
            question = """Test wording: describe this radiograph."""
        if dataset_name == 'mimic_cxr_report_summarization':
            question = f"""Test wording: condense {{this}}.\\n\\nReport:\\n{sample.get("report")}:"""
'''


@pytest.fixture
def official(tmp_path):
    folder = tmp_path / "official" / "eval"
    folder.mkdir(parents=True)
    (folder / "tasks.yaml").write_text(OFFICIAL_YAML)
    (folder / "utils.py").write_text(OFFICIAL_UTILS)
    return folder


def test_official_tasks_supply_the_published_prompt_fields(tmp_path, official):
    specs = {s.name: s for s in apply_official(select_tasks(["pubmedqa", "mimic_cxr_report_summarization",
                                                              "mimic_cxr_report_generation", "medqa"]),
                                               official / "tasks.yaml")}
    assert specs["pubmedqa"].choices["paper"] == ["True", "False", "maybe"]
    assert specs["pubmedqa"].source.hub == "some/eval-sets" and specs["pubmedqa"].source.config == "pubmedqa"
    assert specs["medqa"] == registry()["medqa"]  # not in the file: unchanged
    data = write_task(tmp_path / "data", "mimic_cxr_report_summarization",
                      [{"report": "Lungs clear. ", "summary": "N"}])
    write_task(data, "mimic_cxr_report_generation", [{"report": "No acute findings.", "image": None}])
    [summ] = load_task(specs["mimic_cxr_report_summarization"], data, protocol="paper").items
    # the official f-string evaluated on this row, then .strip(): literal braces kept, the report as stored
    assert summ.question == "Test wording: condense {this}.\n\nReport:\nLungs clear. :"
    [gen] = load_task(specs["mimic_cxr_report_generation"], data, protocol="paper").items
    assert gen.question == "Test wording: describe this radiograph." and gen.reference == "No acute findings."
    # the folder works as well as the file; medix's own protocol keeps its own wording
    assert apply_official(select_tasks(["pubmedqa"]), official)[0].choices["paper"] == ["True", "False", "maybe"]
    [own] = load_task(specs["mimic_cxr_report_summarization"], data, protocol="medix").items
    assert own.question.startswith(registry()["mimic_cxr_report_summarization"].instruction)


def test_eval_run_official_tasks_sends_the_official_question(tmp_path, official):
    from typer.testing import CliRunner

    from medix.cli import app

    data = write_task(tmp_path / "data", "mimic_cxr_report_summarization",
                      [{"report": "Heart normal.", "summary": "N"}])
    with JudgeStub(role="policy", policy_answer="fine") as policy:
        result = CliRunner().invoke(app, [
            "eval", "run", "--model", "stub-policy", "--backend", "openai", "--base-url", policy.url,
            "--data-dir", str(data), "-o", str(tmp_path / "run"), "--tasks", "mimic_cxr_report_summarization",
            "--phases", "generate", "--official-tasks", str(official / "tasks.yaml"), "--max-new-tokens", "8"])
    assert result.exit_code == 0, result.output
    [record] = map(json.loads, (tmp_path / "run" / "generations" / "mimic_cxr_report_summarization.jsonl").open())
    assert record["question"] == "Test wording: condense {this}.\n\nReport:\nHeart normal.:"
    assert record["generator"]["prompts"] == "official tasks file"  # a run without the flag cannot resume here


def test_official_utils_question_that_needs_running_code_is_refused(tmp_path):
    utils = tmp_path / "utils.py"
    utils.write_text("if dataset_name == 'mimic_cxr_report_summarization':\n    question = f'x {helper(sample)}'\n")
    with pytest.raises(Exception, match=r"utils.py, line 2: a question built from an expression"):
        fixed_questions(utils)


# PMC-VQA: the official loader never matches the answer against the options: the reference is the answer
# column as written (stripped) and the options are listed A., B., ... whatever the answer says.
PMC_CASES = [  # answer, options, official reference, does medix find the option (and which)
    ("MRI", ["CT", "MRI", "X-ray"], "MRI", 1),
    ("mri", ["CT", "MRI", "X-ray"], "mri", 1),  # case differs
    ("B:MRI", ["CT", "MRI", "X-ray"], "B:MRI", 1),  # letter form
    ("B", ["CT", "MRI", "X-ray"], "B", 1),
    ("  Ultrasound ", ["CT", "MRI", "X-ray"], "Ultrasound", None),  # names no option
]


@pytest.mark.parametrize("answer,options,reference,position", PMC_CASES)
def test_pmc_vqa_builds_every_item_as_the_official_loader(tmp_path, answer, options, reference, position):
    write_task(tmp_path, "pmc_vqa", [{"question": "Which modality?", "choices": options, "answer": answer,
                                   "image": None}])
    data = load_task(registry()["pmc_vqa"], tmp_path, protocol="paper")
    [item] = data.items
    listed = "\n".join(f"{'ABC'[i]}. {o}" for i, o in enumerate(options))
    assert item.question == f"Which modality?\n\nChoices:\n{listed}" and item.reference == reference
    assert match_option(answer.strip(), options) == position
    assert data.flags.get("answer_unmatched", 0) == (position is None)
    assert item.meta.get("answer_unmatched", False) == (position is None)
    [own] = load_task(registry()["pmc_vqa"], tmp_path, protocol="medix").items
    assert own.reference == (f"{'ABC'[position]}. {options[position]}" if position is not None else reference)


# The official judge call (eval/utils.py `_eval_completion`): temperature 0, top_p 1, 512 tokens, timeout 180 s.
OFFICIAL_JUDGE = {"temperature": 0.0, "max_tokens": 512, "timeout_s": 180.0}


def test_eval_judge_settings_are_the_official_ones():
    judge = EvalConfig(model="m").judge
    assert {k: getattr(judge, k) for k in OFFICIAL_JUDGE} == OFFICIAL_JUDGE
    assert EvalConfig(model="m", judge={"model": "other"}).judge.timeout_s == 180.0  # a partial section too


def test_enable_thinking_leaves_a_non_thinking_judges_prompt_unchanged():
    """medix sends chat_template_kwargs.enable_thinking=false, the official eval does not: for a chat
    template without that switch (the embedded judge's) the prompt, hence the verdict, is identical."""
    from transformers import AutoTokenizer

    from medix.models import resolve

    tokenizer = AutoTokenizer.from_pretrained(resolve("smollm2-135m"))
    messages = [{"role": "user", "content": 'Reference answer: "a"\nCandidate answer: "b" /no_think'}]
    plain = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False,
                                         enable_thinking=False) == plain


TASKS_YAML = ("llm:\n  pubmedqa:\n    path: some/sets\n    name: pubmedqa\n    split: test\n"
              "    choices:\n      - yes\n      - no\n")


UTILS_PY = ('def load(sample, dataset_name):\n    if dataset_name == "mimic_cxr_report_summarization":\n'
            '        question = f"""Summarize.\\n{sample.get("report")}"""\n')


LAUGHS = ("llm:\n  pubmedqa:\n    path: some/sets\n    a: &a [x, x, x, x, x, x, x, x, x]\n"
          "    b: &b [*a, *a, *a, *a, *a, *a, *a, *a]\n"
          "    c: &c [*b, *b, *b, *b, *b, *b, *b, *b]\n    choices: [*c, *c, *c, *c, *c, *c, *c, *c]\n")


OFFICIAL_CASES = {
    # name: (tasks.yaml bytes, utils.py bytes, message)
    "tasks.yaml not UTF-8": (TASKS_YAML.encode().replace(b"test", b"t\xe9st"), UTILS_PY.encode(), "line 5"),
    "utils.py not UTF-8": (TASKS_YAML.encode(), UTILS_PY.encode().replace(b"Summarize", b"Summ\xe9rize"), "utils.py"),
    "utils.py with a syntax error": (TASKS_YAML.encode(), UTILS_PY.encode().replace(b"if dataset_name", b"if if"),
                                     "line 2: not valid Python"),
    "path: [1, 2]": (TASKS_YAML.replace("path: some/sets", "path: [1, 2]").encode(), UTILS_PY.encode(),
                     "task pubmedqa: path is list"),
    "nested aliases as choices": (LAUGHS.encode(), UTILS_PY.encode(), "choice 1 is not one option's text"),
    "a field name with attribute access": (TASKS_YAML.encode(), UTILS_PY.replace('"report"', '"report.__class__"')
                                           .encode(), "column 'report.__class__' is not a plain name"),
    "a field name with a width spec": (TASKS_YAML.encode(), UTILS_PY.replace('"report"', '"report:>99999999"')
                                       .encode(), "column 'report:>99999999' is not a plain name"),
}


@pytest.mark.parametrize("case", list(OFFICIAL_CASES))
def test_a_broken_official_file_is_named_with_line_and_cause(tmp_path, case):
    tasks, utils, message = OFFICIAL_CASES[case]
    folder = tmp_path / "eval"
    folder.mkdir()
    (folder / "tasks.yaml").write_bytes(tasks)
    (folder / "utils.py").write_bytes(utils)
    code, output, error = cli("eval", "run", "--model", "m", "--backend", "openai", "--tasks",
                              "pubmedqa,mimic_cxr_report_summarization", "--official-tasks", str(folder),
                              "--output-dir", str(tmp_path / "run"))
    assert code != 0 and error is not None and message in " ".join(str(error).split()), str(error)
