"""Benchmarks are data: one YAML per task in `medix/eval/tasks/`, each including a shared template per kind.

    from medix.eval.registry import select_tasks
    select_tasks(["llm", "rad_vqa"])        # -> [TaskSpec, ...] in registry order

A YAML file holds the fields of `TaskSpec`; `include: _mcq.yaml` merges a shared template underneath
(the task's own keys win). Adding a benchmark is adding a YAML file: no core code changes; a benchmark of a
new shape (how a row becomes a question) adds a module in `medix/eval/shapes/` too.
Selectors: `all`, `llm`, `vlm`, or task names; a misspelt name gets a close-match suggestion.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from medix.config import build, deep_merge, read_yaml
from medix.errors import MedixError
from medix.registry import Registry

TASK_DIR = Path(__file__).parent / "tasks"
GROUPS = ("llm", "vlm")


class Source(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hub: str | None = Field(None, description="Hugging Face dataset id; None = only local mirrors (--data-dir).")
    config: str | None = Field(None, description="Dataset config (subset) name.")
    split: str = Field("test", description="The split the paper evaluates on.")
    revision: str | None = Field(None, description="Branch, tag or commit of the hub dataset (`--tasks "
                                 "task@revision`); None = main, resolved to its commit when loaded.")


class TaskSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(..., description="Task name used on the command line and in every record.")
    description: str = Field("", description="One line for `medix eval list`.")
    kind: Literal["mcq", "open", "report"] = Field(..., description="mcq: lettered options; open: free-form "
                                                   "answer; report: a whole report judged on a rubric.")
    judge: Literal["binary", "rubric"] = Field(..., description="Judge template: YES/NO majority or 0-5 mean.")
    group: Literal["llm", "vlm"] = Field(..., description="Column of the paper's table (text vs image tasks).")
    shape: str = Field(..., validation_alias=AliasChoices("shape", "builder"), description="How a row becomes "
                       "a question and a reference: a task shape in medix/eval/shapes/ (see SHAPES). `builder:`, "
                       "its former name, is read too.")
    source: Source = Field(default_factory=Source, description="Where the data lives on the hub.")
    columns: dict[str, str | list[str]] = Field(default_factory=dict, description="Shape role → column name(s) "
                                                "of the hub dataset (and of local mirrors, which keep them).")
    filter: dict[str, str] = Field(default_factory=dict, description="Keep only rows whose column equals this.")
    instruction: str | None = Field(None, description="Fixed instruction for report tasks (medix's own wording).")
    prompt: str | None = Field(None, description="The whole question of a report task as a format string over "
                               "the row's columns ('...{report}...'), used under the paper protocol instead of "
                               "`instruction`; set by `--official-tasks` from the user's copy of the official code.")
    choices: dict[str, list[str]] = Field(default_factory=dict, description="Fixed choices of every row, per "
                                          "protocol (PubMedQA); 'medix' is the fallback of a protocol not listed.")
    breakdowns: list[str] = Field(default_factory=list, description="Columns to break scores down by.")
    stand_in_for: str | None = Field(None, description="The paper task this open data set replaces.")
    test_items: int | None = Field(None, ge=1, description="Items in the full test split (after `filter`), as "
                                   "the hub split holds them; a submission with fewer is incomplete. None = not "
                                   "known here (not checked).")
    image_archive: dict[str, str] | None = Field(
        None, description="Images named by a column inside an archive on the hub (SLAKE): {repo, file, folder, "
        "column}; looked for in DATA_DIR/<task>/<folder>/ first, then downloaded once into the medix cache.")

    @property
    def source_label(self) -> str:
        if not self.source.hub:
            return "local mirror only"
        config = f":{self.source.config}" if self.source.config else ""
        revision = f" at revision {self.source.revision}" if self.source.revision else ""
        return f"{self.source.hub}{config}@{self.source.split}{revision}"


def _load_yaml(path: Path) -> dict:
    data = read_yaml(path)
    if "builder" in data and "shape" not in data:  # the former name, per file: a task's own beats its template's
        data["shape"] = data.pop("builder")
    include = data.pop("include", None)
    if include:
        data = deep_merge(_load_yaml(path.parent / include), data)
    return data


@lru_cache(maxsize=1)
def registry() -> Registry[TaskSpec]:
    """Every packaged task, by name, in file-name order (templates start with '_')."""
    tasks: Registry[TaskSpec] = Registry("task", add="a YAML file in medix/eval/tasks/; `medix eval list` shows them")
    for path in sorted(TASK_DIR.glob("*.yaml")):
        if path.name.startswith("_"):
            continue
        spec = build(TaskSpec, _load_yaml(path), str(path))
        tasks.register(spec.name, spec)
    return tasks


def select_tasks(selectors: list[str] | str) -> list[TaskSpec]:
    """`all` / `llm` / `vlm` / task names (comma-separated strings allowed) → specs, registry order. A task
    name may pin its hub dataset's revision: `rad_vqa@<commit>` (a branch or tag works too)."""
    if isinstance(selectors, str):
        selectors = [selectors]
    names = [s.strip() for item in selectors for s in item.split(",") if s.strip()]
    if not names:
        raise MedixError("no tasks selected; use --tasks all, llm, vlm or task names (see `medix eval list`)")
    tasks = registry()
    wanted: set[str] = set()
    pinned: dict[str, str] = {}
    for name in names:
        name, _, revision = name.partition("@")
        if revision:
            if name not in tasks:
                raise MedixError(f"'{name}@{revision}': a revision pins one task's dataset: {tasks.unknown(name)}")
            if not tasks[name].source.hub:
                raise MedixError(f"task {name} has no hub source to pin (its data is local only)")
            pinned[name] = revision
        if name == "all":
            wanted |= set(tasks)
        elif name in GROUPS:
            wanted |= {t.name for t in tasks.values() if t.group == name}
        elif name in tasks:
            wanted.add(name)
        else:
            raise MedixError(tasks.unknown(name, extra=["all", *GROUPS]))
    return [spec.model_copy(update={"source": spec.source.model_copy(update={"revision": pinned[spec.name]})})
            if spec.name in pinned else spec for spec in tasks.values() if spec.name in wanted]
