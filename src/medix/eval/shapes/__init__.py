"""Task shapes: one module per family, each holding its builders, row schemas and per-protocol layouts.

    from medix.eval.shapes import SHAPES
    SHAPES["mcq_list"]          # Shape(name, schema, build, layouts, where)

Adding a shape is adding a module here (see `vqa.py`, the smallest): every module of this package is
imported below, so its `@shape` functions are registered in `SHAPES` and a task YAML can name them.
"""

from __future__ import annotations

import importlib
import pkgutil

from medix.eval.shapes.base import LETTERS, SHAPES, Built, Shape, shape

__all__ = ["LETTERS", "SHAPES", "Built", "Shape", "shape"]

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
