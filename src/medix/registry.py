"""One registry idiom for every table of named things: tasks, task shapes, protocols, judge backends, reward
components, reward presets, recipes, serving engines and the model zoo.

    BACKENDS = Registry("judge backend", add="a `BACKENDS.register(Backend(...))` call in medix/backends.py")
    BACKENDS.register("local", Backend(...))       # or as a decorator: @SHAPES.register("vqa")
    BACKENDS["locl"]   # UnknownName: unknown judge backend 'locl'; did you mean 'local'? known: local, openai

A `Registry` is an ordered dict (iteration, `in`, `.get`, `.items()` as usual) whose missing key raises
`UnknownName` — a `MedixError` (the CLI prints it without a traceback) and a `KeyError` — naming the kind,
the closest known names, every known name and where a new one is added. `check` is the same test for a
pydantic field validator (a `ValueError`, so the message lands under the field's dotted path).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Callable, TypeVar

from medix.errors import MedixError

T = TypeVar("T")


class UnknownName(MedixError, KeyError):
    """A name no registry entry has; the message says what it is closest to."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def did_you_mean(name: str, choices: Iterable[str], n: int = 3) -> str:
    """"did you mean 'a' or 'b'? " for the close matches of `name`, or ""."""
    close = difflib.get_close_matches(str(name), list(choices), n=n, cutoff=0.5)
    return f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""


class Registry(dict[str, T]):
    """Named entries of one kind, in registration order; see the module docstring."""

    def __init__(self, kind: str, add: str = "", entries: Iterable[tuple[str, T]] = ()):
        super().__init__()
        self.kind, self.add = kind, add
        for name, entry in entries:
            self.register(name, entry)

    def register(self, name: str, entry: T | None = None, replace: bool = False):
        """Add `entry` under `name` and return it; without `entry`, a decorator that registers what it wraps.
        A name registered twice is refused unless `replace` (two modules claiming one name is a bug)."""
        if entry is None:
            def decorate(obj: Callable) -> Callable:
                self.register(name, obj, replace)
                return obj
            return decorate
        if name in self and not replace:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self[name] = entry
        return entry

    def unknown(self, name: object, extra: Iterable[str] = ()) -> str:
        """The message for a name that is not here (`extra`: other words the caller also accepts)."""
        known = [*extra, *self]
        where = f" (a new one is {self.add})" if self.add else ""
        return f"unknown {self.kind} {name!r}; {did_you_mean(str(name), known)}known: {', '.join(known)}{where}"

    def __missing__(self, name: str) -> T:
        raise UnknownName(self.unknown(name))

    def check(self, name: str) -> str:
        """Pydantic field validator body: `name` if registered, else a ValueError with the message above."""
        if name not in self:
            raise ValueError(self.unknown(name))
        return name
