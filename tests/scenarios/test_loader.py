"""Scenario files: the shipped one validates; each kind of bad input gets one clear message."""

from __future__ import annotations

import re
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
    assert "control characters" in error_of(bad("- a red striped circle on a dotted blue background", '- "a red\\u0007 circle"'))
    assert "characters; at most" in error_of(bad("- a red striped circle on a dotted blue background", "- " + "x" * 400))


def test_not_a_mapping_and_missing_file(tmp_path: Path) -> None:
    assert "must be a mapping" in error_of("- just\n- a list\n")
    with pytest.raises(ScenarioError, match="not found"):
        load_scenario(tmp_path / "nope.yaml")


# --- hardening: each impossible or hostile input gets one message naming the field ------------

def one_line(message: str) -> str:
    assert "\n" not in message, message
    return message


def alias_bomb(levels: int) -> str:
    """YAML flow list of 10^(levels + 1) values in a few hundred characters: each level repeats the last ten times."""
    text = "&a0 [x, x, x, x, x, x, x, x, x, x]"
    for i in range(1, levels + 1):
        text = f"&a{i} [{text}, {', '.join([f'*a{i - 1}'] * 9)}]"
    return text


def test_alias_bomb_is_refused_without_expanding_it() -> None:
    message = one_line(error_of(bad("  trend_share: 0.6", f"  trend_share: {alias_bomb(9)}")))     # 10^10 values
    assert message.startswith("s.yaml: prompts.trend_share.0.0.0")
    assert "more than 200,000 values once YAML aliases (*name) are expanded" in message
    message = one_line(error_of(f"bomb: {alias_bomb(9)}\n" + TEXT))
    assert message.startswith("s.yaml: bomb.") and "more than 200,000 values" in message


def test_an_alias_used_a_few_times_is_fine() -> None:
    text = bad("  trend_share: 0.6", f"  trend_share: {alias_bomb(3)}")                         # 10^4 values
    assert one_line(error_of(text)).startswith("s.yaml: prompts.trend_share: got [[[['x', 'x'")


def test_deep_nesting_is_refused() -> None:
    assert "nested deeper than 32 levels" in one_line(error_of(TEXT + "x: " + "[" * 40 + "]" * 40 + "\n"))
    assert "nested deeper than the parser can follow" in one_line(error_of("x: " + "[" * 5000 + "]" * 5000))


def test_too_long_text_is_refused_before_parsing(tmp_path: Path) -> None:
    assert "longer than 1,000,000 characters" in error_of(TEXT + "#" * 1_000_000)
    path = tmp_path / "huge.yaml"
    path.write_text(TEXT + "#" * 2_000_000)
    with pytest.raises(ScenarioError, match="longer than 1,000,000 characters"):
        load_scenario(path)


@pytest.mark.parametrize(("old", "new", "field", "given"), [
    ("slot_s: 1.0 ", "slot_s: .nan", "slot_s", "nan"),
    ("alpha: 3.76", "alpha: .inf", "radio.alpha", "inf"),
    ("speed_mps: [0.8, 1.6]", "speed_mps: [0.8, .inf]", "users.speed_mps.1", "inf"),
    ("temperature: 0.0", "temperature: .nan", "feedback.llm.temperature", "nan"),
    ("weight: 3", "weight: -.inf", "prompts.topics.0.weight", "-inf"),
])
def test_nan_and_infinity_are_refused(old: str, new: str, field: str, given: str) -> None:
    message = one_line(error_of(bad(old, new)))
    assert message.startswith(f"s.yaml: {field}: got {given}; Input should be a finite number")


@pytest.mark.parametrize(("old", "new", "field", "rule"), [
    ("count: 30 ", "count: 1000000000 ", "users.count", "less than or equal to 100000"),
    ("columns: 4 ", "columns: 100000 ", "streets.columns", "less than or equal to 200"),
    ("max_steps: 50 ", "max_steps: 100000000 ", "base_station.max_steps", "less than or equal to 1000"),
    ("slots: 120 ", "slots: 10000000000 ", "slots", "less than or equal to 1000000"),
    ("instances: 2 ", "instances: 1000 ", "feedback.instances", "less than or equal to 64"),
    ("seed: 42", "seed: " + "9" * 4000, "seed", "less than or equal to 4294967295"),
    ("speed_mps: [0.8, 1.6]", "speed_mps: [0.8, 1.0e9]", "users.speed_mps", "high <= 100"),
    ("request_rate_per_s: 0.02", "request_rate_per_s: 1.0e6", "users.request_rate_per_s", "less than or equal"),
    ("trend_period_s: 60.0", "trend_period_s: 1.0e-9", "prompts.trend_period_s", "greater than or equal to 1"),
    ("- name: red striped circle on dotted blue", "- name: " + "t" * 100, "prompts.topics.0.name", "at most 60 characters"),
])
def test_huge_numbers_and_texts_are_refused(old: str, new: str, field: str, rule: str) -> None:
    message = one_line(error_of(bad(old, new)))
    assert message.startswith(f"s.yaml: {field}: got ") and rule in message


def test_ten_thousand_users_are_allowed() -> None:
    assert parse_scenario(bad("count: 30 ", "count: 10000 ")).users.count == 10_000


def test_no_street_is_refused() -> None:
    assert one_line(error_of(bad("rows: 4 ", "rows: 0 "))).startswith("s.yaml: streets.rows: got 0;")
    assert one_line(error_of(bad("columns: 4 ", "columns: 0 "))).startswith("s.yaml: streets.columns: got 0;")
    assert one_line(error_of(bad("block_m: 100.0", "block_m: 0.0"))).startswith("s.yaml: streets.block_m: got 0.0;")


def test_budget_below_one_denoising_step_is_refused() -> None:
    message = one_line(error_of(bad("energy_budget_j_per_slot: 150.0", "energy_budget_j_per_slot: 5.0")))
    assert message.startswith("s.yaml: base_station.energy_budget_j_per_slot: got 5 J;")
    assert "'edge-0': step_energy_j) costs 9 J" in message and "at least 9 J" in message
    assert parse_scenario(bad("energy_budget_j_per_slot: 150.0", "energy_budget_j_per_slot: 9.0"))


@pytest.mark.parametrize(("old", "new", "field", "given", "hint"), [
    ("count: 30 ", "count: true ", "users.count", "True", "Input should be a valid integer, not true or false"),
    ("count: 30 ", "count: 30.5 ", "users.count", "30.5", "Input should be a valid integer"),
    ("count: 30 ", "count: '30' ", "users.count", "'30'", "Input should be a valid integer, without quotes"),
    ("slot_s: 1.0 ", "slot_s: yes ", "slot_s", "True", "Input should be a valid number, not true or false"),
    ("max_batch: 16 ", "max_batch: 16.0 ", "gpu_servers.0.max_batch", "16.0", "Input should be a valid integer"),
    ("share: true ", "share: 1 ", "imagegen.share", "1", "Input should be a valid boolean"),
    ("position_m: [200.0, 200.0]", "position_m: [true, 200.0]", "base_station.position_m.0", "True",
     "Input should be a valid number"),
])
def test_a_bool_or_float_or_text_where_a_number_goes_is_refused(old: str, new: str, field: str, given: str,
                                                                 hint: str) -> None:
    message = one_line(error_of(bad(old, new)))
    assert message.startswith(f"s.yaml: {field}: got {given}; {hint}")


def test_exponent_without_a_dot_or_sign_is_a_number() -> None:
    cfg = parse_scenario(bad("bandwidth_hz: 2.0e5", "bandwidth_hz: 1e6"))
    assert cfg.radio.bandwidth_hz == 1.0e6 and parse_scenario(TEXT).radio.payload_bits == 8.0e5


@pytest.mark.parametrize(("value", "problem"), [
    ("2020-13-01", "month must be in 1..12"),
    ("!!int x", "invalid literal"),
    ("1" + "0" * 5000, "Exceeds the limit (4300 digits)"),
    ("!!python/name:os.system", "could not determine a constructor"),
])
def test_yaml_values_pyyaml_cannot_build_are_named_by_line(value: str, problem: str) -> None:
    message = one_line(error_of(bad("seed: 42", f"seed: {value}")))
    assert message.startswith("s.yaml: not valid YAML at line 5, column") and problem in message


def test_names_that_would_break_a_run_folder_or_a_table_are_refused() -> None:
    message = one_line(error_of(bad("name: city_block", "name: ../up")))
    assert message.startswith("s.yaml: name: got '../up'; use letters")
    assert "contains control characters" in error_of(bad("- name: edge-0", '- name: "edge\\t0"'))
    assert "contains control characters" in error_of(bad("cache: .cache/aigcsim/feedback.sqlite", 'cache: "\\0x.db"'))
    assert "unknown key" in one_line(error_of(TEXT + "2020-01-01: x\n"))      # a date as a key


def test_answer_must_fit_the_language_models_context() -> None:
    message = one_line(error_of(bad("    timeout_s: 60.0", "    timeout_s: 60.0\n    max_tokens: 4000\n"
                                                          "    context_tokens: 2048")))
    assert message.startswith("s.yaml: feedback.llm: max_tokens (4000) must be less than context_tokens (2048)")


def test_many_errors_are_summed_up() -> None:
    text = TEXT
    for field in ("seed", "slots", "slot_s", "columns", "rows", "block_m", "p_straight", "count", "min_steps",
                  "max_steps", "pl0_db", "alpha"):
        text = re.sub(rf"^(\s*{field}): ", r"\1: x  # ", text, count=1, flags=re.MULTILINE)
    lines = error_of(text).splitlines()
    assert len(lines) == 11 and lines[-1] == "  ... and 2 more errors"


def test_an_unknown_scheduler_names_the_field_and_the_samplers() -> None:
    message = error_of(bad("scheduler: ddim", "scheduler: plms"))
    assert message.startswith("s.yaml: imagegen.scheduler: got 'plms'")
    for name in ("ddim", "dpm++", "euler_a", "ddpm"):
        assert name in message


@pytest.mark.parametrize("path", sorted(SHIPPED.parent.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_prompt_catalogs_ask_only_for_what_the_world_draws(path: Path) -> None:
    from world.imagegen.shapes import parse

    cfg = load_scenario(path)
    for topic in cfg.prompts.topics:
        for prompt in topic.prompts:
            assert parse(prompt) is not None, f"{path.name}: {prompt!r}"


def test_a_raw_control_character_is_named_by_line_and_column() -> None:
    text = bad("slots: 120 ", "slots: 120\x01")
    line = TEXT[:TEXT.index("slots: 120 ")].count("\n") + 1
    message = one_line(error_of(text))
    assert f"line {line}, column 11" in message and "U+0001" in message


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_an_empty_file_says_so(text: str) -> None:
    message = one_line(error_of(text))
    assert "holds no fields" in message and "NoneType" not in message and "scenarios new" in message


@pytest.mark.parametrize(("old", "new", "field"), [
    ("checkpoint: checkpoints/gddpg_city_block.pt", "checkpoint: ''", "base_station.checkpoint"),
    ("learned_start: feedback_fits/city_block.json", "learned_start: ''", "feedback.learned_start"),
    ("learned_start: feedback_fits/city_block.json", "learned_start: '  '", "feedback.learned_start"),
])
def test_an_empty_path_is_refused_where_validate_checks(old: str, new: str, field: str) -> None:
    message = one_line(error_of(bad(old, new)))
    assert message.startswith(f"s.yaml: {field}: got") and "empty path" in message


def test_personas_with_sampling_settings_is_refused() -> None:
    persona = ("\n    personas:\n      - {name: Ana, openness: 0.4, conscientiousness: 0.9, extraversion: 0.3, "
               "agreeableness: 0.3, neuroticism: 0.9}")
    message = one_line(error_of(bad("    concentration: 1.0 ", "    concentration: 1.0" + persona + "\n   ")))
    assert "users.population" in message and "personas lists the users" in message and "concentration" in message
    listed = bad("    trait_means: {openness: 0.5, conscientiousness: 0.5, extraversion: 0.5, agreeableness: 0.5, "
                 "neuroticism: 0.5}\n", "").replace("    concentration: 1.0 ", persona[1:] + "\n   ")
    assert [p.name for p in parse_scenario(listed).users.population.personas] == ["Ana"]
