"""The Hugging Face hub: every dataset and model medix loads by id is pinned to one commit, recorded, and a
failure is one line that names the repository and what to do.

    from medix import hub
    rows, sha = hub.load_dataset("hails/mmlu_no_train", "anatomy", "test")   # sha: the commit read
    folder = hub.model_folder("Qwen/Qwen3-VL-8B-Instruct@<revision>")       # a local snapshot folder
    hub.loaded()   # {"dataset hails/mmlu_no_train": "<sha>", "model Qwen/...": "<sha>"} of this process

A revision (branch, tag or commit) is asked for with `id@revision`; without one the hub's `main` is resolved to
its commit first, so the files read all come from that one commit, and the commit is what runs record. The
endpoint, token and offline mode are huggingface_hub's own: `HF_ENDPOINT`, `HF_TOKEN` / `hf auth login`,
`HF_HUB_OFFLINE=1` (then the commit comes from the local cache).
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from pathlib import Path

from medix.errors import MedixError

log = logging.getLogger(__name__)

_LOADED: dict[str, str] = {}
_SHA = re.compile(r"[0-9a-f]{40}")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
# Weights a snapshot skips when the repository also has safetensors (what from_pretrained would read).
_OTHER_WEIGHTS = ["*.bin", "*.pth", "*.pt", "*.msgpack", "*.h5", "*.onnx", "*.ot", "*.gguf", "original/*", "onnx/*",
                  "openvino/*", "coreml/*"]


def split_revision(ref: str) -> tuple[str, str | None]:
    """`org/name@revision` → ("org/name", "revision"); no `@` → (ref, None)."""
    name, sep, revision = ref.partition("@")
    if sep and not revision:
        raise MedixError(f"'{ref}': nothing after '@' (give a branch, tag or commit, or drop the '@')")
    return name, (revision or None)


def is_hub_id(name: str) -> bool:
    """`org/name` or `org/name@revision` that is not a local path."""
    repo, _ = split_revision(name)
    return bool(_HUB_ID.fullmatch(repo)) and not Path(repo).exists()


def loaded() -> dict[str, str]:
    """Every hub repository this process read, `"<kind> <repo>"` → commit SHA."""
    return dict(_LOADED)


def _record(kind: str, repo: str, sha: str | None) -> str | None:
    if sha:
        _LOADED[f"{kind} {repo}"] = sha
    return sha


def endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def explain(err: BaseException, repo: str, kind: str, revision: str | None = None, local_fix: str = "") -> MedixError:
    """One line for a hub failure: what happened to `repo` and what the user can do. `local_fix`: the
    no-hub alternative of the command at hand (e.g. "use --data-dir with a local mirror")."""
    from huggingface_hub import errors

    name = f"{kind} '{repo}'" + (f" at revision '{revision}'" if revision else "")
    alt = f"; or {local_fix}" if local_fix else ""
    status = getattr(getattr(err, "response", None), "status_code", None)
    text = str(err).strip().splitlines()[0][:200] if str(err).strip() else err.__class__.__name__
    if isinstance(err, errors.GatedRepoError) or "gated" in text.lower():
        why = (f"{name} is gated on {endpoint()}: accept its terms on its page there, then log in "
               f"(`hf auth login` or HF_TOKEN){alt}")
    elif isinstance(err, errors.RevisionNotFoundError):
        why = f"{name}: no such revision on {endpoint()} (check the branch, tag or commit after '@')"
    elif isinstance(err, (errors.RepositoryNotFoundError, errors.DisabledRepoError)) or _is_dataset_not_found(err):
        check = "the id and the branch, tag or commit after '@'" if revision else "the id"
        why = (f"{name} not found on {endpoint()}: check {check} (a repository that moved needs its new id); a "
               f"private one needs a login (`hf auth login` or HF_TOKEN){alt}")
    elif isinstance(err, errors.RemoteEntryNotFoundError):
        why = f"{name} has no such file ({text}){alt}"
    elif status in (401, 403):
        why = f"{name}: access denied (HTTP {status}): log in with `hf auth login` or set HF_TOKEN{alt}"
    elif offline():
        why = (f"{name} is not in the local cache and HF_HUB_OFFLINE=1: download it first where the hub is "
               f"reachable (`hf download {repo}{' --repo-type dataset' if kind == 'dataset' else ''}`, docs/eval.md "
               f"'Offline clusters'){alt}")
    elif _unreachable(err):
        why = (f"{name}: the hub at {endpoint()} is not reachable ({err.__class__.__name__}); check the network "
               f"or HF_ENDPOINT, or pre-download and set HF_HUB_OFFLINE=1{alt}")
    else:
        why = f"{name} could not be loaded ({err.__class__.__name__}: {text}){alt}"
    return MedixError(why)


def _is_dataset_not_found(err: BaseException) -> bool:
    return err.__class__.__name__ in ("DatasetNotFoundError", "DataFilesNotFoundError")


def _unreachable(err: BaseException) -> bool:
    import httpx

    seen = err
    while seen is not None:
        if isinstance(seen, (httpx.TransportError, ConnectionError, TimeoutError)):
            return True
        if seen.__class__.__name__ in ("ConnectionError", "ConnectTimeout", "ReadTimeout", "LocalEntryNotFoundError"):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def resolve_commit(repo: str, repo_type: str, revision: str | None = None) -> tuple[str | None, object | None]:
    """(commit SHA, repo info) of `revision` (None: main). Offline: the SHA the local cache holds for it, or
    None (datasets then finds its own cache), and no info."""
    if revision and _SHA.fullmatch(revision):
        return revision, None
    from huggingface_hub import HfApi

    if offline():
        return _cached_sha(repo, repo_type, revision or "main"), None
    info = HfApi().repo_info(repo, repo_type=repo_type, revision=revision)
    if info.id and info.id != repo:
        log.warning("hub %s '%s' now answers as '%s' (it moved); records name the commit %s", repo_type, repo,
                    info.id, info.sha)
    if info.sha:
        _remember_ref(repo, repo_type, revision or "main", info.sha)
    return info.sha, info


def _ref_file(repo: str, repo_type: str, revision: str) -> Path:
    """Where huggingface_hub's cache says which commit a branch or tag was last seen at."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE) / f"{repo_type}s--{repo.replace('/', '--')}" / "refs" / revision


def _remember_ref(repo: str, repo_type: str, revision: str, sha: str) -> None:
    """Files are fetched by commit, which leaves the branch's ref unwritten: write it, as a download by branch
    name would, so an offline run (HF_HUB_OFFLINE=1) finds the same commit."""
    file = _ref_file(repo, repo_type, revision)
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        if not file.is_file() or file.read_text().strip() != sha:
            file.write_text(sha)
    except OSError as err:  # a read-only shared cache: the online run still works
        log.debug("could not note %s@%s in the hub cache: %s", repo, revision, err)


def _cached_sha(repo: str, repo_type: str, revision: str) -> str | None:
    file = _ref_file(repo, repo_type, revision)
    return file.read_text().strip() if file.is_file() else None


def load_dataset(repo: str, config: str | None, split: str, revision: str | None = None, local_fix: str = ""):
    """(datasets.Dataset, commit SHA) of one split of a hub dataset, at `revision` (None: main), read from one
    commit. Any failure: `explain`; a missing config or split names the ones there are."""
    import datasets

    try:
        sha, _ = resolve_commit(repo, "dataset", revision)
        data = datasets.load_dataset(repo, config, split=split, revision=sha or revision)
    except ValueError as err:  # datasets' "BuilderConfig 'x' not found. Available: [...]" / "Unknown split"
        what = f"config '{config}'" if "BuilderConfig" in str(err) else f"split '{split}'"
        raise MedixError(f"dataset '{repo}'{f' at revision {revision!r}' if revision else ''} has no {what}: "
                         f"{str(err).splitlines()[0][:300]}") from None
    except Exception as err:  # noqa: BLE001 — huggingface_hub, datasets and httpx raise many types
        raise explain(err, repo, "dataset", revision, local_fix) from None
    sha = sha or _sha_of_cache(data)
    return data, _record("dataset", repo, sha)


def _sha_of_cache(data) -> str | None:
    """The commit a dataset loaded offline came from: datasets names its cache folder by it."""
    for file in getattr(data, "cache_files", []) or []:
        for part in Path(file.get("filename", "")).parts:
            if _SHA.fullmatch(part):
                return part
    return None


def download(repo: str, filename: str, repo_type: str, revision: str | None = None, local_fix: str = "") -> \
        tuple[Path, str | None]:
    """(local path, commit SHA) of one file of a hub repository."""
    from huggingface_hub import hf_hub_download

    try:
        sha, _ = resolve_commit(repo, repo_type, revision)
        path = Path(hf_hub_download(repo, filename, repo_type=repo_type, revision=sha or revision or "main"))
    except Exception as err:  # noqa: BLE001
        raise explain(err, repo, repo_type, revision, local_fix) from None
    return path, _record(repo_type, repo, sha or _sha_of_path(path))


def _sha_of_path(path: Path) -> str | None:
    parts = [p for p in path.parts if _SHA.fullmatch(p)]
    return parts[-1] if parts else None


@lru_cache(maxsize=64)
def _pin_model(repo: str, revision: str | None, kind: str) -> tuple[str | None, tuple[str, ...]]:
    """(commit SHA, file names) of a model repository at `revision`, asked once per process, so every load and
    every record of a run names the same commit."""
    try:
        sha, info = resolve_commit(repo, "model", revision)
    except Exception as err:  # noqa: BLE001 — huggingface_hub and httpx raise many types
        raise explain(err, repo, kind, revision) from None
    return sha, tuple(s.rfilename for s in (getattr(info, "siblings", None) or []))


def model_commit(name: str, kind: str = "model") -> str | None:
    """The commit SHA a hub model id (`org/name[@revision]`) is loaded at; None for anything else (a folder, an
    embedded model, or offline with nothing cached, where the load itself then says what is missing)."""
    if not is_hub_id(name):
        return None
    repo, revision = split_revision(name)
    return _record("model", repo, _pin_model(repo, revision, kind)[0])


def model_folder(name: str, kind: str = "model") -> str:
    """A hub model id (`org/name` or `org/name@revision`) → the local folder of its snapshot at one commit
    (downloaded once into the Hugging Face cache: configs, tokenizer, processor and the safetensors weights);
    anything else (a folder) unchanged. The commit is recorded (`loaded`)."""
    if not is_hub_id(name):
        return name
    from huggingface_hub import snapshot_download

    repo, revision = split_revision(name)
    sha, files = _pin_model(repo, revision, kind)
    skip = _OTHER_WEIGHTS if any(f.endswith(".safetensors") for f in files) else None
    try:
        folder = snapshot_download(repo, revision=sha or revision, ignore_patterns=skip)
    except Exception as err:  # noqa: BLE001
        raise explain(err, repo, kind, revision) from None
    _record("model", repo, sha or _sha_of_path(Path(folder)))
    return folder
