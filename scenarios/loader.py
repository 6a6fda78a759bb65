"""Scenario YAML -> `ScenarioConfig`, with errors a person can act on; the command line's --policy and --checkpoint
applied to one (`with_options`)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from world.config import LEARNER_NAMES, ScenarioConfig

SHIPPED = Path(__file__).resolve().parent
MAX_CHARS = 1_000_000     # a scenario is a few kB; the limit bounds the YAML parser's time (about 3 s a MB)
# PyYAML builds an alias as a reference to its anchor, so a few lines ("billion laughs") can stand for
# more values than validation could ever walk; a scenario with 10,000 explicit personas has about 160,000.
MAX_VALUES = 200_000
MAX_DEPTH = 32            # a scenario nests 5 levels; deeper data would only exhaust the stack
MAX_ERRORS = 10           # errors named in one message


class ScenarioError(Exception):
    """Bad input: the message says what is wrong and how to fix it."""


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, with every error a YAMLError that says where, and YAML 1.2's `1e6` a number."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError, AttributeError, OverflowError, LookupError) as exc:
            # PyYAML's own constructors raise these for '2020-13-01', '!!int x', '!!bool x', '!!float' or 5000 digits
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read this value: {str(exc).split(';')[0]}", node.start_mark) from None


# YAML 1.1 reads 1e6 and 2.0e5 (an exponent without a sign) as text; YAML 1.2 and every person read a number.
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def load_scenario(path: str | Path, overrides: dict[str, Any] | None = None) -> ScenarioConfig:
    """Read and validate a scenario file.

    Args:
        path: the YAML file.
        overrides: fields to replace (for example from the command line), by their dotted path in
            the YAML tree: "slots", "users.count", "gpu_servers.0.name".

    Raises:
        ScenarioError: the file is missing, is not YAML, or does not fit the schema.
    """
    path = Path(path)
    if not path.is_file():
        hint = f"; shipped scenarios: {', '.join(sorted(p.name for p in SHIPPED.glob('*.yaml')))}"
        raise ScenarioError(f"scenario file '{path}' not found{hint}")
    try:
        with path.open(encoding="utf-8") as f:
            text = f.read(MAX_CHARS + 1)       # enough to tell that a file is too long, never more
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"cannot read scenario file '{path}': {exc}") from None
    return parse_scenario(text, source=str(path), overrides=overrides)


def parse_scenario(text: str, source: str = "<scenario>",
                   overrides: dict[str, Any] | None = None) -> ScenarioConfig:
    """Validate scenario YAML text; see `load_scenario`."""
    if len(text) > MAX_CHARS:
        raise ScenarioError(f"{source}: longer than {MAX_CHARS:,} characters; a scenario is a few kB of YAML "
                            f"(a list of thousands of personas still fits)")
    try:
        data = yaml.load(text, Loader=_Loader)      # a SafeLoader: no Python objects from tags
    except yaml.reader.ReaderError as exc:      # a character YAML does not allow: say where and which
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        char = exc.character if isinstance(exc.character, str) else chr(exc.character)
        raise ScenarioError(f"{source}: not valid YAML at line {line}, column {column}: the control character "
                            f"U+{ord(char):04X} is not allowed in YAML; delete it") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ScenarioError(f"{source}: not valid YAML{where}: {problem}") from None
    except RecursionError:
        raise ScenarioError(f"{source}: not valid YAML: nested deeper than the parser can follow; "
                            f"values may nest {MAX_DEPTH} levels at most") from None
    if data is None:
        raise ScenarioError(f"{source}: the file holds no fields (it is empty or only comments); start from a "
                            f"commented scenario with `python -m scenarios new NAME`")
    if not isinstance(data, dict):
        raise ScenarioError(f"{source}: a scenario must be a mapping of fields (name: ..., users: ...), "
                            f"got {type(data).__name__}")
    for key, value in (overrides or {}).items():
        _set(data, key, value, source)
    _check_size(data, source)
    try:
        return ScenarioConfig.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        # An error inside a list also fails the list's own length check; name only the inner one.
        errors = [e for e in errors if not any(
            len(o["loc"]) > len(e["loc"]) and tuple(o["loc"][:len(e["loc"])]) == tuple(e["loc"]) for o in errors)]
        lines = [_explain(err) for err in errors[:MAX_ERRORS]]
        if len(errors) > MAX_ERRORS:
            lines.append(f"... and {len(errors) - MAX_ERRORS} more errors")
        raise ScenarioError(f"{source}: " + "\n  ".join(lines)) from None


def parse_value(text: str) -> Any:
    """One value written as in a scenario file (`100`, `1e6`, `true`, `[1, 2]`, `text`).

    Raises:
        yaml.YAMLError: the text is not a YAML value.
    """
    return yaml.load(text, Loader=_Loader)


def _set(data: dict[str, Any], key: str, value: Any, source: str) -> None:
    """Put `value` at the dotted path `key` of the YAML tree; a missing mapping on the way is created."""
    parts = key.split(".")
    node: Any = data
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if isinstance(node, list):
            if not (part.isdigit() and int(part) < len(node)):
                raise ScenarioError(f"{source}: cannot set '{key}': '{'.'.join(parts[:depth]) or key}' is a list of "
                                    f"{len(node)}; name an item by its index, 0 to {len(node) - 1}")
            index = int(part)
            if last:
                node[index] = value
            else:
                node = node[index]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
        else:
            raise ScenarioError(f"{source}: cannot set '{key}': '{'.'.join(parts[:depth])}' is the value "
                                f"{_show(node)}, not a group of fields")


def _check_size(data: Any, source: str) -> None:
    """Refuse data with more than MAX_VALUES values once aliases are expanded, or nested deeper than MAX_DEPTH.

    Counting walks the data as validation would, visiting an alias once per use, and stops at the limit:
    an alias bomb costs MAX_VALUES steps, never its exponential size. The message names where the walk stopped.
    """
    count = 0
    # one level per entry: (the level's remaining (key, value) pairs, the level's path)
    stack: list[tuple[Iterator[tuple[Any, Any]], tuple[Any, ...]]] = [(iter([(None, data)]), ())]
    while stack:
        children, path = stack[-1]
        item = next(children, None)
        if item is None:
            stack.pop()
            continue
        key, value = item
        where = path if key is None else (*path, key)
        count += 1
        if count > MAX_VALUES:
            raise ScenarioError(f"{source}: {_where(where)}: more than {MAX_VALUES:,} values once YAML aliases "
                                f"(*name) are expanded; a scenario has a few hundred: is an alias repeated "
                                f"inside what it refers to?")
        if isinstance(value, dict):
            grandchildren: Iterator[tuple[Any, Any]] = iter(value.items())
        elif isinstance(value, (list, tuple, set, frozenset)):
            grandchildren = enumerate(value)
        else:
            continue
        if len(stack) > MAX_DEPTH:
            raise ScenarioError(f"{source}: {_where(where)}: values nested deeper than {MAX_DEPTH} levels; "
                                f"a scenario nests 5")
        stack.append((grandchildren, where))


def _where(loc: tuple[Any, ...]) -> str:
    """A location as 'users.population.personas.3', clipped."""
    return _clip(".".join(_clip(str(p), 40) for p in loc), 100) or "(top level)"


def _explain(err: dict[str, Any]) -> str:
    """One validation error as 'field.path: got X; what is allowed (doc, unit)'."""
    loc = tuple(err["loc"])
    path = _where(loc)
    given = err.get("input")
    if err["type"] in ("extra_forbidden", "invalid_key"):       # invalid_key: a number, date or null as a key
        parent = _model_at(loc[:-1])
        allowed = sorted(parent.model_fields) if parent else []
        close = difflib.get_close_matches(str(loc[-1])[:100], allowed, n=1)
        hint = f" did you mean '{close[0]}'?" if close and err["type"] == "extra_forbidden" else ""
        return f"{path}: unknown key.{hint} Allowed keys here: {', '.join(allowed)}"
    if err["type"] == "missing":
        return f"{path}: required field is missing{_doc(loc)}"
    message = err["msg"].removeprefix("Value error, ")
    if isinstance(given, dict) and not loc:      # a check across sections: the message names the fields
        return message
    if isinstance(given, dict) and err["type"] == "value_error":      # a check across fields
        return f"{path}: {message}"
    if err["type"] in ("int_type", "float_type") and isinstance(given, bool):
        message += ", not true or false"
    elif err["type"] in ("int_type", "float_type") and isinstance(given, str) and _is_number(given):
        message += ", without quotes"
    return f"{path}: got {_show(given)}; {message}{_doc(loc)}"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


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
    if isinstance(value, int) and value.bit_length() > 64:     # repr refuses integers of over 4300 digits
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"
    return _clip(repr(value), 80)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def with_options(cfg: ScenarioConfig, policy: str | None, checkpoint: Path | None) -> ScenarioConfig:
    """The scenario with --policy and --checkpoint applied; a checkpoint only goes with a learner."""
    bs = cfg.base_station
    if policy is not None and policy != bs.policy:
        # another policy than the scenario's: the scenario's checkpoint belongs to its own policy
        bs = bs.model_copy(update={"policy": policy, "checkpoint": None})
    if checkpoint is not None:
        if bs.policy not in LEARNER_NAMES:
            raise ScenarioError(
                f"--checkpoint {checkpoint}: policy '{bs.policy}' is a heuristic and loads no weights; "
                f"checkpoints belong to the learners ({', '.join(LEARNER_NAMES)}): add --policy gddpg or --policy ddpg")
        if not checkpoint.is_file():
            raise ScenarioError(f"--checkpoint {checkpoint}: no such file; give a checkpoint written by "
                                f"`python -m scenarios.train` (its run folder's policy.pt)")
        bs = bs.model_copy(update={"checkpoint": str(checkpoint.resolve())})
    return cfg.model_copy(update={"base_station": bs})
