"""One registry idiom: every table of named things is a `medix.registry.Registry`, and an unknown name is
refused with the kind, the close matches, every known name and where a new one goes."""

from __future__ import annotations

import pytest

from medix.backends import BACKENDS
from medix.eval.protocol import PROTOCOLS
from medix.eval.registry import registry
from medix.eval.shapes import SHAPES
from medix.errors import MedixError
from medix.models import ZOO
from medix.registry import Registry, UnknownName
from medix.rewards.config import REWARD_PRESETS
from medix.rewards.table import COMPONENTS
from medix.serving.engines import ENGINES
from medix.serving.flags import SERVE_FLAGS
from medix.train.config import RECIPES


def test_an_unknown_name_gets_the_close_matches_the_choices_and_where_to_add_one():
    colours = Registry("colour", add="a line in colours.py", entries=[("crimson", 1), ("green", 2), ("blue", 3)])
    with pytest.raises(UnknownName) as err:
        colours["gren"]
    assert str(err.value) == ("unknown colour 'gren'; did you mean 'green'? known: crimson, green, blue "
                              "(a new one is a line in colours.py)")
    assert isinstance(err.value, MedixError) and isinstance(err.value, KeyError)
    assert colours.get("gren") is None and "gren" not in colours  # the dict reads stay quiet
    with pytest.raises(ValueError, match="unknown colour 'purple'; known: crimson, green, blue"):
        colours.check("purple")  # nothing close: no suggestion
    assert "did you mean 'all'" in colours.unknown("al", extra=["all"])


def test_register_as_call_or_decorator_and_a_name_twice_is_refused():
    shapes = Registry("shape")

    @shapes.register("square")
    def square():
        return 4

    assert shapes.register("circle", 0) == 0 and list(shapes) == ["square", "circle"] and shapes["square"] is square
    with pytest.raises(ValueError, match="shape 'circle' is registered twice"):
        shapes.register("circle", 1)
    assert shapes.register("circle", 1, replace=True) == 1


@pytest.mark.parametrize("table, misspelt, meant", [
    (BACKENDS, "locl", "local"), (PROTOCOLS, "papr", "paper"), (SHAPES, "mcq_lists", "mcq_list"),
    (REWARD_PRESETS, "lm", "llm"), (COMPONENTS, "accuracy_lm", "accuracy_llm"), (RECIPES, "dapoo", "dapo"),
    (ZOO, "MediX-R1-8", "MediX-R1-8B"), (registry(), "medqaa", "medqa"), (ENGINES, "vlm", "vllm"),
    (SERVE_FLAGS, "gpu", "gpus"),
])
def test_every_table_is_a_registry_that_suggests(table, misspelt, meant):
    assert isinstance(table, Registry)
    with pytest.raises(UnknownName, match=f"did you mean '{meant}'"):
        table[misspelt]
