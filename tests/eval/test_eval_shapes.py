"""Task shapes: each one a module of `medix/eval/shapes/` (builder, row schema, per-protocol layout), found by
name in one registry; a new shape is a new module, and a protocol a shape has no layout for is refused."""

from __future__ import annotations

import dataclasses
import importlib.util
import pkgutil
import sys
import textwrap

import pytest

import medix.eval.registry as task_registry
import medix.eval.shapes as shapes
from helpers.eval_data import write_task
from medix.errors import MedixError
from medix.eval.items import load_task
from medix.eval.protocol import MEDIX_PROTOCOL
from medix.eval.registry import TaskSpec, registry
from medix.eval.shapes import SHAPES

TOY_MODULE = '''
from medix.eval.rows import Schema, Text
from medix.eval.shapes import Built, shape

LAYOUTS = {"paper": "Say: {}", "medix": "Please say: {}"}


@shape("toy_echo", Schema(word=Text), LAYOUTS)
def toy_echo(row, cols, spec, protocol, layout):
    return Built(layout.format(row[cols["word"]]), row[cols["word"]].upper(), None)
'''


def _toy_task(**fields) -> TaskSpec:
    return TaskSpec(**{"name": "toy", "kind": "open", "judge": "binary", "group": "llm", "shape": "toy_echo",
                       "columns": {"word": "w"}, **fields})


@pytest.fixture
def toy_shape(tmp_path):
    """The shape `toy_echo`, registered by importing a module file written here (as a new file under
    medix/eval/shapes/ is imported by the package); taken out again afterwards."""
    path = tmp_path / "toy_shape.py"
    path.write_text(textwrap.dedent(TOY_MODULE), encoding="utf-8")
    spec = importlib.util.spec_from_file_location("toy_shape", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["toy_shape"] = module
    try:
        spec.loader.exec_module(module)
        yield SHAPES["toy_echo"]
    finally:
        SHAPES.pop("toy_echo", None)
        sys.modules.pop("toy_shape", None)


def test_a_shape_from_a_new_module_loads_a_task_under_each_protocol(tmp_path, toy_shape):
    data = write_task(tmp_path / "data", "toy", [{"w": "hello"}, {"w": ""}])
    assert toy_shape.where == "toy_shape.py"
    paper = load_task(_toy_task(), data, protocol="paper")
    [item] = paper.items  # the empty word breaks the shape's schema: skipped and named
    assert (item.question, item.reference, item.choices) == ("Say: hello", "HELLO", None)
    assert paper.bad_rows == [f"{data / 'toy' / 'test.jsonl'}, line 2: field 'w' = '' (string should have at "
                              "least 1 character)"]
    [own] = load_task(_toy_task(), data, protocol="medix").items
    assert own.question == "Please say: hello"


def test_every_module_of_the_package_is_imported_and_registers_its_shapes():
    modules = {m.name for m in pkgutil.iter_modules(shapes.__path__)} - {"base"}
    assert modules == {"mcq", "pubmedqa", "report", "vqa"}
    assert {s.where for s in SHAPES.values()} == {f"medix/eval/shapes/{m}.py" for m in modules}
    assert {t.shape for t in registry().values()} <= set(SHAPES)  # every packaged task names a known shape


def test_a_protocol_without_a_layout_for_the_shape_is_refused_by_name(tmp_path):
    toy = dataclasses.replace(MEDIX_PROTOCOL, name="toy")
    write_task(tmp_path, "medqa", [{"id": "t1", "sent1": "Q?", "ending0": "a", "ending1": "b", "ending2": "c",
                                    "ending3": "d", "label": 1}])
    with pytest.raises(MedixError) as err:
        load_task(registry()["medqa"], tmp_path, protocol=toy)
    assert str(err.value) == ("task shape 'mcq_columns' has no question layout for protocol 'toy' (it has: paper, "
                              "medix); add a 'toy' entry to its layouts in medix/eval/shapes/mcq.py")
    write_task(tmp_path, "rad_vqa", [{"question": "Q?", "answer": "yes", "image": "x.png"}])
    [item] = load_task(registry()["rad_vqa"], tmp_path, protocol=toy).items  # vqa: one layout for all
    assert (item.question, item.reference) == ("Q?", "yes")


def test_an_unknown_shape_is_named_with_the_task_and_the_close_match(tmp_path):
    write_task(tmp_path, "toy", [{"w": "x"}])
    with pytest.raises(MedixError, match=r"task toy: unknown task shape 'mcq_lists'; did you mean 'mcq_list' .*"
                                         r"known: .* \(a new one is a module in medix/eval/shapes/"):
        load_task(_toy_task(shape="mcq_lists"), tmp_path)


@pytest.fixture
def task_dir(tmp_path, monkeypatch):
    """The packaged task registry read from tmp_path instead (its cache cleared before and after)."""
    monkeypatch.setattr(task_registry, "TASK_DIR", tmp_path)
    registry.cache_clear()
    yield tmp_path
    registry.cache_clear()


def test_builder_is_read_as_the_former_name_of_shape(task_dir):
    (task_dir / "_base.yaml").write_text("kind: open\njudge: binary\ngroup: llm\nshape: vqa\n")
    (task_dir / "old.yaml").write_text("include: _base.yaml\nname: old\nbuilder: mcq_list\n")
    (task_dir / "new.yaml").write_text("include: _base.yaml\nname: new\n")
    tasks = registry()
    assert tasks["old"].shape == "mcq_list"  # the task's own `builder:` beats its template's `shape:`
    assert tasks["new"].shape == "vqa"
    assert TaskSpec.model_validate({"name": "t", "kind": "open", "judge": "binary", "group": "vlm",
                                    "builder": "vqa"}).shape == "vqa"
