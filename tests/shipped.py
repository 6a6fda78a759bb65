"""The shipped scenarios, changed for a test: one place that every test module builds its configs from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scenarios.loader import load_scenario
from world.config import PopulationConfig, ScenarioConfig

ROOT = Path(__file__).resolve().parents[1]
CITY_BLOCK = ROOT / "scenarios" / "city_block.yaml"
# feedback.llm.timeout_s of tests that ask the real model: a bound on a hang, never on speed. With both cores
# busy beside the suite's two workers, a first answer of the 1.5B (23.7 s median alone) can take minutes, and one
# failed in a run would change what the test compares.
HANG_S = 900.0


def merged(data: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`data` with `changes` merged in, nested mappings key by key."""
    for key, value in changes.items():
        data[key] = merged(data[key], value) if isinstance(value, dict) else value
    return data


def shipped(changes: dict[str, Any] | None = None, path: Path = CITY_BLOCK) -> ScenarioConfig:
    """A shipped scenario with some fields changed, validated like any scenario.

    Images are profiled (`imagegen.render: profile`) unless `changes` ask for real rendering: the
    shipped city block draws every image for real, which is slow for tests that are about something else.
    The base station is the fixed policy unless `changes` name another: the shipped city block's trained
    G-DDPG hands most steps to the phones, so images take ~40 s, longer than most tests run.
    """
    data = merged(load_scenario(path).model_dump(),
                  {"imagegen": {"render": "profile"}, "base_station": {"policy": "fixed", "checkpoint": None}})
    data = merged(data, changes or {})
    population = data["users"]["population"]
    if population["personas"]:      # a listed population: the shipped sampling settings do not go with it
        defaults = PopulationConfig()
        population["trait_means"] = defaults.trait_means.model_dump()
        population["concentration"] = defaults.concentration
    return ScenarioConfig.model_validate(data)


def silent_copy(tmp_path: Path, path: Path = CITY_BLOCK) -> Path:
    """A copy of a shipped scenario file whose users stay silent (no language model) and whose images are
    profiled, for fast runs."""
    text = path.read_text()
    assert "  mode: live" in text, f"{path.name} no longer says 'mode: live'"
    copy = tmp_path / path.name
    copy.write_text(text.replace("  mode: live", "  mode: silent", 1).replace("  render: real", "  render: profile", 1))
    return copy
