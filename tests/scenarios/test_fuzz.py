"""Fuzzing: whatever a person types, a scenario loads or fails with one clear message; an answer parses or is invalid.

Loading a scenario gives a `ScenarioConfig` or a `ScenarioError` naming what is wrong, never another
exception and never a hang; `parse_answer` returns (text, rating) or raises `InvalidAnswer`. Examples are
few and small so that the file runs in well under 30 s on two shared cores; the example database is off
(Hypothesis still keeps a small cache in .hypothesis/, which it gitignores itself).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from agents.answer import MAX_FEEDBACK_CHARS, RATINGS, InvalidAnswer, parse_answer, sentence_problem
from scenarios.loader import ScenarioError, parse_scenario
from world.config import ScenarioConfig

TEXT = (Path(__file__).resolve().parents[2] / "scenarios" / "city_block.yaml").read_text()
DATA = yaml.safe_load(TEXT)

# Each test says how many examples it runs; no deadline: how long an example takes depends on the machine's
# load (the slowest, 5000 nested brackets, took 0.5 s on a quiet machine and 3 s on a loaded one).
FUZZ = settings(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every location in a loaded YAML tree, the root included."""
    found = [prefix]
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        found += paths(child, (*prefix, key))
    return found


PATHS = paths(DATA)


def check(text: str) -> None:
    """A valid config, or a ScenarioError whose message names something after the source; nothing else."""
    try:
        cfg = parse_scenario(text, source="fuzz.yaml")
    except ScenarioError as exc:
        message = str(exc)
        assert message.startswith("fuzz.yaml: "), message
        assert message.removeprefix("fuzz.yaml: ").strip(), message
        event("refused: " + ("not YAML" if "not valid YAML" in message else "schema"))
        return
    assert isinstance(cfg, ScenarioConfig)
    event("valid")


# --- (a) arbitrary text ------------------------------------------------------------------------

YAML_ISH = st.lists(st.sampled_from(
    [*"[]{}:,-&*!|>'\"#%@`?~ \n\t.0123456789eEaxyz_", "name", "users", "count", ".nan", ".inf", "<<", "!!int",
     "!!float", "true", "null", "2020-13-01", "&a", "*a", "---", "..."]), max_size=80).map("".join)


@settings(FUZZ, max_examples=500)
@given(st.one_of(st.text(st.characters(exclude_categories=())), YAML_ISH))
@example("&a [*a]")
@example("a: &a {b: *a}")
@example("x: " + "[" * 3000 + "]" * 3000)
@example("seed: " + ":".join(["59"] * 3000))
@example("\ufeffname: x")
def test_arbitrary_text(text: str) -> None:
    check(text)


# --- (b) the shipped scenario, mutated ----------------------------------------------------------

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(min_value=-(10**40), max_value=10**40),
                    st.floats(), st.text(st.characters(exclude_categories=()), max_size=20))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
YAML_SCALARS = st.sampled_from([
    "", "~", "null", "true", "no", "on", ".nan", "-.inf", "1e6", "1_000", "0x1F", "0o17", "1:30", "2020-01-01",
    "2020-13-01", "!!int x", "!!float y", "!!binary AAAA", "!!set {a}", "!!timestamp z", "*undefined", "&a 1",
    "[", "{", "'unterminated", '"\\ud800"', '"\\x00"', "|", ">", "@", "`", "%", "1" + "0" * 5000, "-1", "0",
    "[1, 2, 3]", "{a: 1}", "[&b [x, x], *b, *b]", "9" * 30, "1.0e+400", "3.5", "'3'",
])


def mutate(data: Any, path: tuple[Any, ...], action: str, value: Any, key: str) -> Any:
    """`data` with one change at `path`: the node deleted, replaced by `value`, or given a new `key`."""
    if not path:
        return value if action == "replace" else {**data, key: value} if action == "add" else {}
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if action == "delete":
        del parent[last]
    elif action == "replace":
        parent[last] = value
    elif isinstance(parent[last], dict):
        parent[last][key] = value
    else:
        parent[last] = {key: value}
    return data


@settings(FUZZ, max_examples=400)
@given(st.sampled_from(PATHS), st.sampled_from(["delete", "replace", "add"]), VALUES,
       st.one_of(st.sampled_from(sorted({str(p[-1]) for p in PATHS if p and isinstance(p[-1], str)})),
                 st.text(max_size=10)))
def test_shipped_scenario_with_a_node_changed(path: tuple[Any, ...], action: str, value: Any, key: str) -> None:
    data = mutate(yaml.safe_load(TEXT), path, action, value, key)
    try:
        text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    except yaml.YAMLError:       # PyYAML cannot write every Python string; such a scenario cannot be typed either
        return
    check(text)


@settings(FUZZ, max_examples=400)
@given(st.data())
def test_shipped_scenario_with_its_text_changed(data: st.DataObject) -> None:
    lines = TEXT.splitlines(keepends=True)
    kind = data.draw(st.sampled_from(["value", "insert", "truncate", "drop_line"]))
    if kind == "value":      # a value written as any YAML scalar, flow collection or broken token
        valued = [i for i, line in enumerate(lines) if ": " in line and not line.lstrip().startswith("#")]
        i = data.draw(st.sampled_from(valued))
        head = lines[i].split(": ", 1)[0]
        lines[i] = f"{head}: {data.draw(st.one_of(YAML_SCALARS, st.text(max_size=12)))}\n"
        text = "".join(lines)
    elif kind == "insert":   # characters or bytes-as-text typed anywhere
        at = data.draw(st.integers(0, len(TEXT)))
        junk = data.draw(st.one_of(st.text(st.characters(exclude_categories=()), min_size=1, max_size=8),
                                   st.binary(min_size=1, max_size=8).map(lambda b: b.decode("latin-1"))))
        text = TEXT[:at] + junk + TEXT[at:]
    elif kind == "truncate":
        text = TEXT[:data.draw(st.integers(0, len(TEXT)))]
    else:
        del lines[data.draw(st.integers(0, len(lines) - 1))]
        text = "".join(lines)
    check(text)


# --- (c) the persona answer parser ---------------------------------------------------------------

JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(-(10**30), 10**30), st.floats(),
                         st.sampled_from([1, 2, 3, 4, 5, 1.0, 5.0, 0, 6, -1, 2.5]),
                         st.text(st.characters(exclude_categories=()), max_size=30))
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=15)
ANSWERS = st.fixed_dictionaries(
    {"feedback": st.one_of(st.text(st.characters(exclude_categories=()), max_size=200), JSON_VALUES),
     "rating": st.one_of(st.integers(0, 6), JSON_VALUES)},
    optional={"extra": JSON_VALUES})


def expect_answer_or_invalid(raw: str) -> None:
    try:
        text, rating = parse_answer(raw)
    except InvalidAnswer as exc:
        assert str(exc)
        return
    assert type(rating) is int and rating in RATINGS
    assert isinstance(text, str) and text.strip() and len(text) <= MAX_FEEDBACK_CHARS
    assert sentence_problem(text) == ""          # never a cut sentence


def dressed(raw: str, how: str) -> str:
    """An answer as a model might wrap or cut it."""
    return {"plain": raw, "fenced": f"```json\n{raw}\n```", "padded": f"  \n{raw}\t ",
            "cut": raw[:len(raw) // 2], "trailing": raw + " I hope this helps!"}[how]


@settings(FUZZ, max_examples=500)
@given(st.text(st.characters(exclude_categories=())))
@example('{"feedback": "ok", "rating": ' + "1" * 5000 + "}")
@example('{"feedback": "ok", "rating": NaN}')
@example('{"feedback": "ok", "rating": Infinity}')
@example('{"feedback": "ok", "rating": -Infinity}')
@example('{"feedback": "ok", "rating": 1e400}')
@example('{"feedback": "\\ud800", "rating": 3}')
@example('{"feedback": "a\\u0000b", "rating": 3}')
@example('{"feedback": "ok", "rating": ' + "[" * 9000 + "]" * 9000 + "}")        # deeper than json can go
@example('{"feedback": "ok", "rating": ' + "[" * 100_000 + "]" * 100_000 + "}")    # too long to be read
@example("[" * 5000)
@example("```")
@example("x" * 10_000_000)
def test_parse_answer_on_arbitrary_text(raw: str) -> None:
    expect_answer_or_invalid(raw)


@settings(FUZZ, max_examples=500)
@given(st.one_of(ANSWERS, JSON_VALUES), st.sampled_from(["plain", "fenced", "padded", "cut", "trailing"]))
def test_parse_answer_on_json(value: Any, how: str) -> None:
    expect_answer_or_invalid(dressed(json.dumps(value), how))


@settings(FUZZ, max_examples=300)
@given(st.text(st.characters(exclude_categories=("Cc", "Cs")), max_size=250),
       st.sampled_from(RATINGS), st.sampled_from(["plain", "fenced", "padded"]))
def test_parse_answer_accepts_every_proper_answer(middle: str, rating: int, how: str) -> None:
    feedback = f"I saw {middle} today."                  # any text inside a complete sentence
    raw = dressed(json.dumps({"feedback": feedback, "rating": rating}), how)
    assert parse_answer(raw) == (" ".join(feedback.split()), rating)
