"""A local Hugging Face hub for the tests: olah (a self-hosted hub mirror, from PyPI) in offline mode on 127.0.0.1,
serving plain git repositories built here from the benchmark mirrors in hub form.

    with LocalHub(tmp) as hub:                 # builds the dataset repositories, starts the server, stops it
        hub.add_models()                       # the tiny models, when a test needs them
        env = hub.env(tmp / "home")            # HF_ENDPOINT, a fresh HF_HOME and MEDIX_CACHE for a subprocess
        hub.sha("datasets/hails/mmlu_no_train", "v0")

The repositories: datasets written by `datasets` with the hub's features (`Image()` columns holding the image
bytes, `ClassLabel` columns, one config per MMLU subject, SLAKE's json rows beside its image archive), a training
set shaped like MBZUAI/medix-rl-data, and tiny models of each kind medix loads by id. Each repository is a git
repository with a `main` branch; `hails/mmlu_no_train` also has a tag `v0` on an older commit whose first
anatomy question differs. olah is installed apart from the test environment (its fastapi range and vLLM's do not
meet): `pip install --target .venv/hub-server olah==0.5.4`, or MEDIX_TEST_HUB_SERVER=<that folder>.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx

from helpers import REPO as REPO_ROOT, cli_runner
from helpers.distributed import VLLM_TORCHVISION
from medix.testing.stub_server import free_port

SHIMS = Path(__file__).parent / "shims"
SERVER_PACKAGES = Path(os.environ.get("MEDIX_TEST_HUB_SERVER", REPO_ROOT / ".venv" / "hub-server"))
ORG = "medix-test"  # the tiny models' organisation
MODELS = {"text": f"{ORG}/tiny-text", "vl": f"{ORG}/tiny-vl", "judge": f"{ORG}/tiny-judge",
          "embed": f"{ORG}/tiny-embed"}
TRAIN_DATA = "MBZUAI/medix-rl-data"
MMLU_SUBJECTS = ("anatomy", "college_biology")
ROWS = 3  # per task: enough to see order, ids and images, small enough to build in seconds


def server_installed() -> bool:
    return (SERVER_PACKAGES / "olah").is_dir() and shutil.which("git") is not None


def _git(folder: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "medix tests", "GIT_AUTHOR_EMAIL": "tests@localhost",
           "GIT_COMMITTER_NAME": "medix tests", "GIT_COMMITTER_EMAIL": "tests@localhost"}
    return subprocess.run(["git", "-C", str(folder), *args], check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


def _commit(folder: Path, message: str) -> None:
    if not (folder / ".git").is_dir():
        _git(folder, "init", "-q", "-b", "main")
    _git(folder, "add", "-A")
    _git(folder, "commit", "-q", "-m", message)


def _readme(configs: dict[str, dict[str, str]]) -> str:
    """A dataset card whose YAML names each config's data files per split, as `push_to_hub` writes it."""
    lines = ["---", "configs:"]
    for name, splits in configs.items():
        lines += [f"- config_name: {name}", "  data_files:"]
        lines += [f"  - split: {split}\n    path: {path}" for split, path in splits.items()]
    return "\n".join(lines + ["---", "", "A small copy for tests.", ""])


def _rows(benchmarks: Path, task: str, n: int = ROWS) -> list[dict]:
    with (benchmarks / task / "test.jsonl").open(encoding="utf-8") as handle:
        return [json.loads(line) for _, line in zip(range(n), handle)]


def _mmlu(root: Path, benchmarks: Path) -> None:
    from datasets import ClassLabel, Dataset, Features, List, Value

    folder = root / "datasets" / "hails" / "mmlu_no_train"
    features = Features({"question": Value("string"), "subject": Value("string"), "choices": List(Value("string")),
                         "answer": ClassLabel(names=list("ABCD"))})

    def write(change_first: bool) -> None:
        for subject in MMLU_SUBJECTS:
            rows = _rows(benchmarks, f"mmlu_{subject}")
            if change_first and subject == "anatomy":
                rows[0] = {**rows[0], "question": "An older wording of the first question"}
            (folder / subject).mkdir(parents=True, exist_ok=True)
            Dataset.from_list(rows, features=features).to_parquet(folder / subject / "test-00000-of-00001.parquet")
        (folder / "README.md").write_text(_readme({s: {"test": f"{s}/test-*"} for s in MMLU_SUBJECTS}))

    write(change_first=True)
    _commit(folder, "older copy")
    _git(folder, "tag", "v0")
    write(change_first=False)
    _commit(folder, "current copy")


def _rad_vqa(root: Path, benchmarks: Path) -> None:
    """VQA-RAD's test split with the image bytes in an `Image()` column and `answer_type` as a `ClassLabel`
    (the local mirror has the path and the label's name)."""
    from datasets import ClassLabel, Dataset, Features, Image, Value

    folder = root / "datasets" / "flaviagiammarino" / "vqa-rad"
    rows = _rows(benchmarks, "rad_vqa")
    text = {k: Value("string") for k in ("question", "answer", "question_type", "image_organ", "phrase_type")}
    features = Features({"image": Image(), **text, "answer_type": ClassLabel(names=["CLOSED", "OPEN"]),
                         "qid": Value("int64")})
    for row in rows:
        path = benchmarks / "rad_vqa" / row["image"]
        row["image"] = {"bytes": path.read_bytes(), "path": path.name}
    (folder / "data").mkdir(parents=True)
    Dataset.from_list(rows, features=features).to_parquet(folder / "data" / "test-00000-of-00001.parquet")
    (folder / "README.md").write_text(_readme({"default": {"test": "data/test-*"}}))
    _commit(folder, "test split")


def _slake(root: Path, benchmarks: Path) -> None:
    """SLAKE: json rows (one Chinese row, which the task's filter drops) and imgs.zip holding the images its
    `img_name` column names (here the VQA-RAD mirror's pictures stand in for SLAKE's)."""
    folder = root / "datasets" / "BoKelvin" / "SLAKE"
    folder.mkdir(parents=True)
    rows = _rows(benchmarks, "slake_vqa", 40)
    chosen = [r for r in rows if r["q_lang"] == "en"][:ROWS]
    chosen.insert(1, {**chosen[0], "q_lang": "zh", "qid": 999999, "question": "这是什么模态？"})
    pictures = sorted((benchmarks / "rad_vqa" / "images").iterdir())
    with zipfile.ZipFile(folder / "imgs.zip", "w") as zf:
        for n, name in enumerate(sorted({r["img_name"] for r in chosen})):
            zf.writestr(f"imgs/{name}", pictures[n].read_bytes())
    (folder / "test.json").write_text(json.dumps(chosen, ensure_ascii=False))
    (folder / "README.md").write_text(_readme({"default": {"test": "test.json"}}))
    _commit(folder, "test split and images")


def _train_data(root: Path, benchmarks: Path) -> None:
    """The shape of MBZUAI/medix-rl-data: `images` (a list of images), `problem`, `solution`."""
    from datasets import Dataset, Features, Image, List, Value

    folder = root / "datasets" / TRAIN_DATA
    pictures = sorted((benchmarks / "rad_vqa" / "images").iterdir())[:2]
    rows = [{"images": [{"bytes": pictures[i % 2].read_bytes(), "path": pictures[i % 2].name}] if i % 2 == 0 else [],
             "problem": f"Question {i}: which nerve is injured in wrist drop?",
             "solution": "<X_RAY> Radial nerve" if i % 2 == 0 else "Radial nerve"} for i in range(4)]
    features = Features({"images": List(Image()), "problem": Value("string"), "solution": Value("string")})
    (folder / "data").mkdir(parents=True)
    Dataset.from_list(rows, features=features).to_parquet(folder / "data" / "train-00000-of-00001.parquet")
    (folder / "README.md").write_text(_readme({"default": {"train": "data/train-*"}}))
    _commit(folder, "train split")


def _models(root: Path) -> None:
    from medix.testing.tiny import save_tiny

    for kind, name in MODELS.items():
        folder = root / "models" / name
        folder.mkdir(parents=True)
        if kind == "embed":
            _tiny_embedder(folder)
        elif kind == "vl":  # the full Qwen3-VL processor, video half included, as a hub repository holds it
            subprocess.run([sys.executable, "-c", "import sys; from medix.testing.tiny import save_tiny; "
                            "save_tiny(sys.argv[1], vision=True, video=True)", str(folder)], check=True,
                           env=LocalHub.env_for("http://127.0.0.1:9", folder), capture_output=True)
        else:
            save_tiny(folder, seed={"text": 0, "judge": 1}[kind])
        _commit(folder, "tiny random weights")


def _tiny_embedder(folder: Path) -> None:
    """A sentence-transformers folder: a 1-layer, 32-wide random BERT with MiniLM's tokenizer, mean pooling."""
    from sentence_transformers import SentenceTransformer, models
    from transformers import AutoTokenizer, BertConfig, BertModel

    from medix.models import minilm_folder

    tokenizer = AutoTokenizer.from_pretrained(minilm_folder())
    bert = BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1,
                                num_attention_heads=2, intermediate_size=64))
    staging = folder.parent / (folder.name + ".bert")
    bert.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    word = models.Transformer(str(staging))
    SentenceTransformer(modules=[word, models.Pooling(word.get_embedding_dimension())]).save(str(folder))
    shutil.rmtree(staging)


def build(root: Path, benchmarks: Path) -> Path:
    """The dataset repositories under root/mirrors/datasets/<org>/<name>; returns root/mirrors. The models come
    with `LocalHub.add_models` (the server reads the folders as it is asked, so they may come later)."""
    mirrors = root / "mirrors"
    for make in (_mmlu, _rad_vqa, _slake, _train_data):
        make(mirrors, benchmarks)
    return mirrors


class LocalHub:
    """The olah server over `build`'s repositories, on a free loopback port, for the length of a `with`."""

    def __init__(self, root: Path, benchmarks: Path):
        self.root, self.benchmarks = Path(root), Path(benchmarks)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "LocalHub":
        self.mirrors = build(self.root, self.benchmarks)
        config = self.root / "hub.toml"
        config.write_text(
            f'[basic]\nhost = "127.0.0.1"\nport = {self.port}\nrepos-path = "{self.root / "cache"}"\n'
            f'mirrors-path = ["{self.mirrors}"]\nmirror-netloc = "127.0.0.1:{self.port}"\n'
            f'mirror-lfs-netloc = "127.0.0.1:{self.port}"\n[accessibility]\noffline = true\n')
        self.log = (self.root / "hub.log").open("w")
        env = {**os.environ, "PYTHONPATH": str(SERVER_PACKAGES)}
        self.process = subprocess.Popen([sys.executable, str(SHIMS / "hub_server.py"), "--config", str(config),
                                         "--log-path", str(self.root / "logs")], cwd=self.root, env=env,
                                        stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # olah's index page fails with today's starlette: ask an API route
            if self.process.poll() is not None:
                raise RuntimeError(f"the hub server exited: {(self.root / 'hub.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/api/datasets/{TRAIN_DATA}", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        self.__exit__()
        raise RuntimeError("the hub server did not answer in 60 s")

    def __exit__(self, *exc) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

    def sha(self, repo: str, revision: str = "main") -> str:
        """The commit of `repo` ("datasets/org/name" or "models/org/name") at `revision`."""
        return _git(self.mirrors / repo, "rev-parse", f"{revision}^{{commit}}")

    def add_models(self) -> None:
        """The tiny models (about 40 s: Qwen3-VL's full processor is written in a process with torchvision)."""
        if not (self.mirrors / "models").is_dir():
            _models(self.mirrors)

    def commit(self, repo: str, name: str, text: str) -> str:
        """A new commit on `repo`'s main that writes `text` into file `name`; its SHA."""
        (self.mirrors / repo / name).write_text(text)
        _commit(self.mirrors / repo, f"update {name}")
        return self.sha(repo)

    def env(self, home: Path, **extra: str) -> dict:
        """The environment of a subprocess that reads this hub: a fresh HF_HOME and MEDIX_CACHE under `home`."""
        return self.env_for(self.url, home, **extra)

    @staticmethod
    def env_for(url: str, home: Path, **extra: str) -> dict:
        """The environment of a subprocess whose hub is `url` (any server, or a closed port)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("HF_") and k != "MEDIX_CACHE"}
        # torchvision, which Qwen3-VL's full processor (as a hub repository holds it) needs: helpers/distributed.py
        path = os.pathsep.join(filter(None, [str(SHIMS), str(VLLM_TORCHVISION), env.get("PYTHONPATH", "")]))
        return {**env, "PYTHONPATH": path, "MEDIX_TEST_TORCHVISION_OPS": "1", "HF_ENDPOINT": url,
                "HF_HOME": str(home / "hf"), "MEDIX_CACHE": str(home / "medix"),
                "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", **extra}


def medix(env: dict, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """`python -m medix ARGS` in `env`."""
    return cli_runner.medix(*args, env=env, timeout=timeout)
