"""The config loader every package's configuration builds on: the strict pydantic base (`ConfigModel`), the
YAML reader (`read_yaml`: a key given twice is refused), the merge (`deep_merge`) and the error message
(`validation_message`: the file and the dotted field path of every problem).

Each package owns its configuration beside its code: `judge/config.py` (JudgeConfig), `rewards/config.py`
(RewardConfig, its weights derived from the component table, presets, profiles), `serving/config.py`,
`train/config.py` and `eval/config.py`. Where a command's flags and a YAML file both set a value, the merge is
a function of that package (`load_reward_config`, `JudgeConfig.from_sources`, `EvalConfig.from_sources`), so it
is tested without the CLI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from medix.errors import MedixError
from medix.files import read_text
from medix.safe_text import check_url, without_credentials


# Every URL field: http(s) with a host, refused otherwise (`medix.safe_text.check_url`).
ServerURL = Annotated[str, AfterValidator(check_url)]


class ConfigModel(BaseModel):
    """Every config section: unknown keys, nan and inf refused; assignments validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)  # nan / inf refused


T = TypeVar("T", bound=BaseModel)


def _valid_keys(cls: type[BaseModel] | None, loc: tuple) -> list[str]:
    """Field names of the config section that `loc` (minus its last part) points into."""
    for part in loc[:-1]:
        field = cls.model_fields.get(str(part)) if cls else None
        annotation = getattr(field, "annotation", None)
        cls = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return sorted(cls.model_fields) if cls else []


def validation_message(err: ValidationError, source: str, cls: type[BaseModel] | None = None) -> str:
    """Turn a pydantic error into lines naming the source and each dotted field."""
    lines = [f"invalid config in {source}:"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            valid = _valid_keys(cls, e["loc"])
            msg = "unknown key" + (f" (valid: {', '.join(valid)})" if valid else "")
        # A whole section as the input (a cross-field check) is noise: the message names the key.
        value = e.get("input")  # a URL's password stays out of the message
        shown = repr(without_credentials(value)) if isinstance(value, str) else without_credentials(repr(value))
        got = "" if e["type"] == "missing" or isinstance(value, dict) else f" (got {shown[:80]})"
        lines.append(f"  {loc}: {msg}{got}")
    return "\n".join(lines)


def build(cls: type[T], data: dict, source: str) -> T:
    try:
        return cls.model_validate(data)
    except ValidationError as err:
        raise MedixError(validation_message(err, source, cls)) from None


def deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


class _UniqueKeys(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (YAML keeps the last silently)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.setdefault(key, key_node.start_mark.line + 1)
            except TypeError:  # an unhashable key: the base loader says what is wrong with it
                break
            if first != key_node.start_mark.line + 1:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice (lines {first} and {key_node.start_mark.line + 1}); "
                    "keep one", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str | Path) -> dict:
    """A YAML mapping from a file; a key given twice in one mapping is refused, naming both lines."""
    file = Path(path)
    if not file.is_file():
        raise MedixError(f"config file not found: {file}")
    try:
        data = yaml.load(read_text(file), Loader=_UniqueKeys) or {}
    except yaml.YAMLError as err:
        mark, problem = getattr(err, "problem_mark", None), getattr(err, "problem", None)
        if mark is not None and problem:
            raise MedixError(f"{file}, line {mark.line + 1}: not valid YAML: {problem}") from None
        raise MedixError(f"{file}: not valid YAML ({' '.join(str(err).split())})") from None
    if not isinstance(data, dict):
        raise MedixError(f"{file}: expected a mapping at the top level")
    return data
