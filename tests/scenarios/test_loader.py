"""Scenario files: the shipped one validates; each kind of bad input gets one clear message."""

from __future__ import annotations

from pathlib import Path

import pytest

from scenarios.loader import ScenarioError, load_scenario, parse_scenario

SHIPPED = Path(__file__).resolve().parents[2] / "scenarios" / "city_block.yaml"
TEXT = SHIPPED.read_text()


def bad(old: str, new: str) -> str:
    assert old in TEXT, f"test setup: {old!r} not in the shipped scenario"
    return TEXT.replace(old, new, 1)


def error_of(text: str) -> str:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, source="s.yaml")
    return str(info.value)


def test_shipped_scenario_validates() -> None:
    cfg = load_scenario(SHIPPED)
    assert cfg.name == "city_block"
    assert cfg.users.count > 0 and len(cfg.gpu_servers) >= 1


def test_yaml_syntax_error_names_line_and_column() -> None:
    message = error_of("name: x\nusers: [\n")
    assert "not valid YAML" in message and "line 3" in message and "column" in message


@pytest.mark.parametrize(("old", "new", "field", "given"), [
    ("max_power_w: 1.0 ", "max_power_w: -1.0", "radio.max_power_w", "-1.0"),
    ("speed_mps: [0.8, 1.6]", "speed_mps: [-1.0, 1.6]", "users.speed_mps", "[-1.0, 1.6]"),
    ("count: 30 ", "count: lots", "users.count", "'lots'"),
    ("step_latency_s: 0.03 ", "step_latency_s: fast", "gpu_servers.0.step_latency_s", "'fast'"),
    ("slot_s: 1.0 ", "slot_s: 0", "slot_s", "0"),
    ("mobility: manhattan", "mobility: teleport", "streets.mobility", "'teleport'"),
])
def test_bad_value_names_field_value_and_rule(old: str, new: str, field: str, given: str) -> None:
    message = error_of(bad(old, new))
    assert message.startswith(f"s.yaml: {field}: got {given}")
    assert "\n" not in message          # one error, one line


def test_unknown_key_is_named_with_a_suggestion() -> None:
    message = error_of(bad("bandwidth_hz:", "bandwith_hz:"))
    assert "radio.bandwith_hz: unknown key" in message
    assert "did you mean 'bandwidth_hz'" in message


def test_cross_field_rules() -> None:
    assert "min_power_w (2.0) must not exceed max_power_w (1.0)" in error_of(bad("min_power_w: 0.1 ", "min_power_w: 2.0"))
    assert "min_steps (60) must not exceed max_steps (50)" in error_of(bad("min_steps: 5 ", "min_steps: 60"))
    assert "outside the block" in error_of(bad("position_m: [200.0, 200.0]", "position_m: [900.0, 200.0]"))


def test_zero_servers_and_missing_sections() -> None:
    text = TEXT.split("gpu_servers:")[0] + "gpu_servers: []\n" + "prompts:" + TEXT.split("prompts:")[1]
    assert "gpu_servers: got []" in error_of(text)
    assert "prompts: required field is missing" in error_of(TEXT.split("prompts:")[0])


def test_control_characters_and_huge_prompts_are_refused() -> None:
    assert "control characters" in error_of(bad("- a red circle on a blue background", '- "a red\\u0007 circle"'))
    assert "characters; at most" in error_of(bad("- a red circle on a blue background", "- " + "x" * 400))


def test_not_a_mapping_and_missing_file(tmp_path: Path) -> None:
    assert "must be a mapping" in error_of("- just\n- a list\n")
    with pytest.raises(ScenarioError, match="not found"):
        load_scenario(tmp_path / "nope.yaml")
