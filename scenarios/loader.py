"""Scenario YAML -> `ScenarioConfig`, with errors a person can act on."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from world.config import ScenarioConfig

SHIPPED = Path(__file__).resolve().parent


class ScenarioError(Exception):
    """Bad input: the message says what is wrong and how to fix it."""


def load_scenario(path: str | Path, overrides: dict[str, Any] | None = None) -> ScenarioConfig:
    """Read and validate a scenario file.

    Args:
        path: the YAML file.
        overrides: top-level fields to replace (for example from the command line).

    Raises:
        ScenarioError: the file is missing, is not YAML, or does not fit the schema.
    """
    path = Path(path)
    if not path.is_file():
        hint = f"; shipped scenarios: {', '.join(sorted(p.name for p in SHIPPED.glob('*.yaml')))}"
        raise ScenarioError(f"scenario file '{path}' not found{hint}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"cannot read scenario file '{path}': {exc}") from None
    return parse_scenario(text, source=str(path), overrides=overrides)


def parse_scenario(text: str, source: str = "<scenario>",
                   overrides: dict[str, Any] | None = None) -> ScenarioConfig:
    """Validate scenario YAML text; see `load_scenario`."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ScenarioError(f"{source}: not valid YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise ScenarioError(f"{source}: a scenario must be a mapping of fields (name: ..., users: ...), "
                            f"got {type(data).__name__}")
    data.update(overrides or {})
    try:
        return ScenarioConfig.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        # An error inside a list also fails the list's own length check; name only the inner one.
        errors = [e for e in errors if not any(
            len(o["loc"]) > len(e["loc"]) and tuple(o["loc"][:len(e["loc"])]) == tuple(e["loc"]) for o in errors)]
        lines = [_explain(err) for err in errors]
        raise ScenarioError(f"{source}: " + "\n  ".join(lines)) from None


def _explain(err: dict[str, Any]) -> str:
    """One validation error as 'field.path: got X; what is allowed (doc, unit)'."""
    loc = tuple(err["loc"])
    path = ".".join(str(p) for p in loc) or "(top level)"
    given = err.get("input")
    if err["type"] == "extra_forbidden":
        parent = _model_at(loc[:-1])
        allowed = sorted(parent.model_fields) if parent else []
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f" did you mean '{close[0]}'?" if close else ""
        return f"{path}: unknown key.{hint} Allowed keys here: {', '.join(allowed)}"
    if err["type"] == "missing":
        return f"{path}: required field is missing{_doc(loc)}"
    message = err["msg"].removeprefix("Value error, ")
    if isinstance(given, dict):      # a check across fields: the message names them
        return f"{path}: {message}"
    return f"{path}: got {_show(given)}; {message}{_doc(loc)}"


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model class that a location inside ScenarioConfig refers to."""
    model: Any = ScenarioConfig
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        if field is None:
            return None
        annotation = field.annotation
        args = getattr(annotation, "__args__", ())
        model = next((a for a in (annotation, *args) if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if model is None:
            return None
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _doc(loc: tuple[Any, ...]) -> str:
    names = [p for p in loc if isinstance(p, str)]
    if not names:
        return ""
    parent = _model_at(tuple(loc[:max(i for i, p in enumerate(loc) if isinstance(p, str))]))
    field = parent.model_fields.get(names[-1]) if parent else None
    return f" ({field.description})" if field is not None and field.description else ""


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
