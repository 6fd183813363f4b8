"""The hub path for real: medix's commands against a local Hugging Face hub server (tests/helpers/hub.py) holding
hub-form copies of benchmark rows, a training set and tiny models. Every command runs in a subprocess whose only
tie to the test server is HF_ENDPOINT, as a user's run is tied to huggingface.co; HF_HOME and MEDIX_CACHE start
empty."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from helpers.hub import MODELS, ROWS, TRAIN_DATA, LocalHub, medix, server_installed
from medix.testing.stub_server import LoopbackServer, free_port

pytestmark = pytest.mark.skipif(not server_installed(),
                                reason="the hub server is not installed (see tests/helpers/hub.py)")


@pytest.fixture(scope="module")
def hub_server(tmp_path_factory, benchmarks_dir):
    """The server with the dataset repositories (the error tests need no more)."""
    with LocalHub(tmp_path_factory.mktemp("hub"), benchmarks_dir) as hub:
        yield hub


@pytest.fixture(scope="module")
def local_hub(hub_server):
    """The server with the tiny models too."""
    hub_server.add_models()
    return hub_server


def records(folder: Path, task: str) -> list[dict]:
    return [json.loads(line) for line in (folder / "generations" / f"{task}.jsonl").read_text().splitlines()]


def without(record: dict, *keys: str) -> dict:
    return {k: v for k, v in record.items() if k not in keys}


def ok(done) -> None:
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]


EVAL = ["eval", "run", "--backend", "local", "--max-new-tokens", "4", "--limit", str(ROWS),
        "--judge-backend", "local", "--judge-model", MODELS["judge"]]


@pytest.mark.slow
def test_eval_from_the_hub_gives_the_records_of_the_local_mirror(local_hub, benchmarks_dir, tmp_path):
    """A text task (MMLU: per-subject config, ClassLabel answer) and an image task (VQA-RAD: Image() bytes,
    ClassLabel breakdown column) read from the hub give exactly the records the local mirror gives, but for
    the commit each hub record names; the policy and the judge load by hub id; the commits are recorded."""
    env = local_hub.env(tmp_path / "home")
    tasks = ["--tasks", "mmlu_anatomy,rad_vqa", "--model", MODELS["vl"]]
    ok(medix(env, *EVAL, *tasks, "--output-dir", str(tmp_path / "hub")))
    ok(medix(env, *EVAL, *tasks, "--output-dir", str(tmp_path / "mirror"), "--data-dir", str(benchmarks_dir)))
    data = {"mmlu_anatomy": local_hub.sha("datasets/hails/mmlu_no_train"),
            "rad_vqa": local_hub.sha("datasets/flaviagiammarino/vqa-rad")}
    for task, sha in data.items():
        hub, mirror = records(tmp_path / "hub", task), records(tmp_path / "mirror", task)
        assert len(hub) == ROWS and [r["data_revision"] for r in hub] == [sha] * ROWS
        assert [r["data_revision"] for r in mirror] == [None] * ROWS
        assert [without(r, "data_revision") for r in hub] == [without(r, "data_revision") for r in mirror]
    assert records(tmp_path / "hub", "rad_vqa")[0]["meta"]["answer_type"] == "CLOSED"  # the label, not its index
    policy, judge = local_hub.sha(f"models/{MODELS['vl']}"), local_hub.sha(f"models/{MODELS['judge']}")
    assert records(tmp_path / "hub", "rad_vqa")[0]["generator"]["model_revision"] == policy
    run = json.loads((tmp_path / "hub" / "run.json").read_text())
    assert run["hub_revisions"] == {"dataset hails/mmlu_no_train": data["mmlu_anatomy"],
                                    "dataset flaviagiammarino/vqa-rad": data["rad_vqa"],
                                    f"model {MODELS['vl']}": policy, f"model {MODELS['judge']}": judge}
    assert next(iter(run["judges"].values()))["model_revision"] == judge
    scores = json.loads((tmp_path / "hub" / "scores.json").read_text())
    assert {t: scores["tasks"][t]["data_revision"] for t in data} == data
    assert scores["hub_revisions"] == run["hub_revisions"]
    ok(medix(env, "eval", "submit", str(tmp_path / "hub"), "--allow-incomplete"))
    [submission] = (tmp_path / "hub" / "results").glob("*.zip")
    provenance = json.loads(zipfile.ZipFile(submission).comment)
    assert provenance["data_revisions"] == data and provenance["hub_revisions"] == run["hub_revisions"]


@pytest.mark.slow
def test_slake_images_come_from_its_archive_fetched_once_per_commit(local_hub, tmp_path):
    """SLAKE's rows name files inside imgs.zip beside them on the hub; the Chinese row is filtered out."""
    env = local_hub.env(tmp_path / "home")
    sha = local_hub.sha("datasets/BoKelvin/SLAKE")
    args = [*EVAL, "--tasks", "slake_vqa", "--model", MODELS["vl"], "--phases", "generate"]
    ok(medix(env, *args, "--output-dir", str(tmp_path / "one")))
    unpacked = tmp_path / "home" / "medix" / "archives" / "slake_vqa"
    assert [p.name for p in unpacked.iterdir()] == [sha]
    first = (unpacked / sha / ".complete").stat().st_mtime_ns
    got = records(tmp_path / "one", "slake_vqa")
    assert len(got) == ROWS and all(r["error"] is None and "image_missing" not in r["meta"] for r in got)
    assert "999999" not in {r["id"] for r in got}
    ok(medix(env, *args, "--output-dir", str(tmp_path / "two")))
    assert (unpacked / sha / ".complete").stat().st_mtime_ns == first  # not fetched or unpacked again
    assert [r["prompt_sha256"] for r in records(tmp_path / "two", "slake_vqa")] == [r["prompt_sha256"] for r in got]
    # An offline cluster after one online run: the same rows, images and commit, from the caches alone.
    offline = {**env, "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": f"http://127.0.0.1:{free_port()}"}
    ok(medix(offline, *args, "--output-dir", str(tmp_path / "offline")))
    assert [without(r, "generator") for r in records(tmp_path / "offline", "slake_vqa")] == \
        [without(r, "generator") for r in got]


@pytest.mark.slow
def test_a_pinned_revision_is_read_and_a_resume_on_another_commit_is_refused(local_hub, tmp_path):
    env = local_hub.env(tmp_path / "home")
    out = tmp_path / "run"
    base = [*EVAL, "--model", MODELS["text"], "--phases", "generate", "--output-dir", str(out)]
    old = local_hub.sha("datasets/hails/mmlu_no_train", "v0")
    ok(medix(env, *base, "--tasks", "mmlu_anatomy@v0"))
    got = records(out, "mmlu_anatomy")
    assert got[0]["question"].startswith("An older wording") and {r["data_revision"] for r in got} == {old}
    assert json.loads((out / "run.json").read_text())["hub_revisions"]["dataset hails/mmlu_no_train"] == old
    moved = medix(env, *base, "--tasks", "mmlu_anatomy")
    assert moved.returncode != 0 and "Traceback" not in moved.stderr
    said = " ".join((moved.stdout + moved.stderr).split())
    assert old in said and local_hub.sha("datasets/hails/mmlu_no_train") in said
    assert f"mmlu_anatomy@{old}" in said
    assert records(out, "mmlu_anatomy") == got  # nothing mixed in


@pytest.mark.slow
def test_train_a_step_on_hub_data_with_a_hub_policy(local_hub, tmp_path):
    """`data.train: org/name@train` (an image list column, rows with and without images) and the policy, judge
    and embedder by hub id; config.json records every commit read."""
    env = local_hub.env(tmp_path / "home")
    out = tmp_path / "run"
    steps = ["trainer.max_steps=1", "trainer.save_steps=1"]
    config = tmp_path / "train.yaml"
    config.write_text(f"data: {{train: '{TRAIN_DATA}@train'}}\nmodel: {{name: {MODELS['vl']}}}\n")
    command = ["train", "--config", str(config), "algorithm.recipe=grpo",
               f"reward.judge.model={MODELS['judge']}", "reward.judge.backend=local",
               f"reward.embedder.model={MODELS['embed']}", "rollout.num_generations=2",
               "rollout.max_completion_tokens=8", "trainer.per_device_train_batch_size=2",
               f"trainer.output_dir={out}"]
    ok(medix(env, *command, *steps))
    assert json.loads((out / "summary.json").read_text())["global_step"] == 1
    recorded = json.loads((out / "config.json").read_text())["hub_revisions"]
    trained_on = local_hub.sha(f"datasets/{TRAIN_DATA}")
    assert recorded[f"dataset {TRAIN_DATA}"] == trained_on
    assert recorded[f"model {MODELS['vl']}"] == local_hub.sha(f"models/{MODELS['vl']}")
    assert recorded[f"model {MODELS['judge']}"] == local_hub.sha(f"models/{MODELS['judge']}")
    # The dataset gets a new commit on the hub; resuming the run would train its next steps on other data.
    local_hub.commit(f"datasets/{TRAIN_DATA}", "NOTES.md", "A newer note.\n")
    moved = medix(env, *command, "trainer.max_steps=2", "trainer.save_steps=1", "--resume")
    said = " ".join((moved.stdout + moved.stderr).split())
    assert moved.returncode != 0 and "Traceback" not in said, said[-2000:]
    assert trained_on in said and local_hub.sha(f"datasets/{TRAIN_DATA}") in said and "data.revision" in said
    assert json.loads((out / "config.json").read_text())["hub_revisions"] == recorded  # the record kept


@pytest.mark.slow
def test_reward_judge_and_embedder_by_hub_id(local_hub, tmp_path):
    env = local_hub.env(tmp_path / "home")
    rows = tmp_path / "rows.jsonl"
    answer = "<X_RAY><think>It is the radial nerve.</think><answer>Radial nerve</answer>"
    rows.write_text("".join(json.dumps({"response": r, "solution": "<X_RAY> Radial nerve"}) + "\n"
                            for r in (answer, answer.replace("Radial", "Ulnar"))))
    config = tmp_path / "reward.yaml"
    config.write_text(f"judge: {{backend: local, model: {MODELS['judge']}}}\nembedder: {{model: {MODELS['embed']}}}\n")
    ok(medix(env, "reward", "score", "-i", str(rows), "-o", str(tmp_path / "scored.jsonl"), "-c", str(config),
             "--show", "0"))
    scored = [json.loads(line) for line in (tmp_path / "scored.jsonl").read_text().splitlines()]
    embed = [s["components"]["accuracy_embed"] if "components" in s else s["accuracy_embed"] for s in scored]
    assert len(scored) == 2 and all(e in (0.0, 1.0) for e in embed)
    cache = tmp_path / "home" / "hf" / "hub"
    assert {p.name for p in cache.iterdir() if p.name.startswith("models--")} == {
        "models--medix-test--tiny-judge", "models--medix-test--tiny-embed"}


@pytest.mark.slow
def test_infer_list_and_audit_read_the_hub(local_hub, benchmarks_dir, tmp_path):
    env = local_hub.env(tmp_path / "home")
    image = sorted((benchmarks_dir / "rad_vqa" / "images").iterdir())[0]
    ok(medix(env, "infer", "--model", MODELS["vl"], "--image", str(image), "--question", "What is shown?",
             "--max-new-tokens", "4", "--json"))
    listing = medix(env, "eval", "list", "--hub")
    ok(listing)
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in listing.stdout.splitlines() if "│" in line]
    rows = {c[0]: c for c in cells if c and c[0]}  # a row's first line (long notes fold onto more lines)
    for task in ("mmlu_anatomy", "rad_vqa", "slake_vqa"):
        assert rows[task][5] == str(ROWS), rows[task]
    assert rows["medqa"][5] == "—" and "skipped" in rows["medqa"][7]  # not on this hub; the listing goes on
    audit = medix(env, "judge", "audit", "--hub", "--tasks", "mmlu_anatomy,mmlu_college_biology", "--n", "4",
                  "--rounds", "1", "--judge-backend", "local", "--judge-model", MODELS["judge"],
                  "--json", str(tmp_path / "audit.json"))
    ok(audit)
    assert json.loads((tmp_path / "audit.json").read_text())["n"] == 4


# Errors a user can act on: one line naming the repository and the fix, never a traceback.

PROBE = """
import json, sys
from medix import hub
from medix.errors import MedixError
out = {}
for name, call in [
    ("repo", lambda: hub.load_dataset("nobody/nothing", None, "test", local_fix="use --data-dir")),
    ("config", lambda: hub.load_dataset("hails/mmlu_no_train", "astronomy", "test")),
    ("split", lambda: hub.load_dataset("hails/mmlu_no_train", "anatomy", "validation")),
    ("revision", lambda: hub.load_dataset("hails/mmlu_no_train", "anatomy", "test", "v9")),
    ("model", lambda: hub.model_folder("medix-test/nothing")),
]:
    try:
        call()
        out[name] = "loaded"
    except MedixError as err:
        out[name] = str(err)
print(json.dumps(out))
"""


def probe(env: dict) -> dict:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_missing_repo_config_split_revision_and_model_are_named(hub_server, tmp_path):
    said = probe(hub_server.env(tmp_path / "home"))
    assert "dataset 'nobody/nothing' not found on http://127.0.0.1" in said["repo"]
    assert "use --data-dir" in said["repo"] and "HF_TOKEN" in said["repo"]
    assert "no config 'astronomy'" in said["config"] and "anatomy" in said["config"]  # the ones there are
    assert "no split 'validation'" in said["split"] and "test" in said["split"]
    assert "'hails/mmlu_no_train' at revision 'v9'" in said["revision"]
    assert "branch, tag or commit" in said["revision"]
    assert "model 'medix-test/nothing' not found" in said["model"]


def gate(status: int, code: str) -> LoopbackServer:
    """A hub that answers every API call as huggingface.co answers a gated (403) or private (401) repo."""
    async def refuse(request):
        return JSONResponse({"error": f"{code}: refused"}, status_code=status,
                            headers={"X-Error-Code": code, "X-Error-Message": "refused"})

    return LoopbackServer(Starlette(routes=[Route("/{path:path}", refuse, methods=["GET", "HEAD", "POST"])]))


@pytest.mark.parametrize("status,code,expected", [
    (403, "GatedRepo", "is gated on"), (401, "RepoNotFound", "a private one needs a login")])
def test_gated_and_private_repos_say_log_in(status, code, expected, tmp_path):
    with gate(status, code) as server:
        env = LocalHub.env_for(server.url.removesuffix("/v1"), tmp_path / "home")
        said = probe(env)
    assert expected in said["repo"] and "nobody/nothing" in said["repo"]
    assert "hf auth login" in said["repo"] or "HF_TOKEN" in said["repo"]


def test_unreachable_hub_and_offline_without_cache(tmp_path):
    closed = LocalHub.env_for(f"http://127.0.0.1:{free_port()}", tmp_path / "a")
    said = probe(closed)
    assert "is not reachable" in said["repo"] and "HF_ENDPOINT" in said["repo"]
    offline = probe(LocalHub.env_for(f"http://127.0.0.1:{free_port()}", tmp_path / "b", HF_HUB_OFFLINE="1"))
    for name in ("repo", "config", "model"):
        assert "not in the local cache and HF_HUB_OFFLINE=1" in offline[name], offline[name]
        assert "hf download" in offline[name]


@pytest.mark.slow
def test_eval_run_with_no_hub_skips_the_task_with_the_reason(tmp_path):
    env = LocalHub.env_for(f"http://127.0.0.1:{free_port()}", tmp_path / "home")
    done = medix(env, "eval", "run", "--model", "smollm2-135m", "--tasks", "rad_vqa", "--limit", "1",
                 "--output-dir", str(tmp_path / "out"))
    text = " ".join((done.stdout + done.stderr).split())
    assert "Traceback" not in text and "flaviagiammarino/vqa-rad" in text and "--data-dir" in text
    assert "not reachable" in text
