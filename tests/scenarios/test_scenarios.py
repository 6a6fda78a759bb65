"""Every shipped scenario validates and runs; `list`, `new`, `reference` and the run options behave."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from scenarios.cli import main
from scenarios.loader import load_scenario
from scenarios.reference import reference_markdown
from tests.shipped import silent_copy

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "scenarios").glob("*.yaml"))
NAMES = [p.stem for p in SHIPPED]


def test_the_issue_scenarios_are_shipped() -> None:
    assert {"city_block", "rush_hour", "suburb", "two_servers"} <= set(NAMES)


@pytest.mark.parametrize("path", SHIPPED, ids=NAMES)
def test_shipped_scenario_validates(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", path.stem]) == 0
    assert "valid" in capsys.readouterr().out


@pytest.mark.parametrize("path", SHIPPED, ids=NAMES)
def test_smoke_shipped_scenario_seed_42(path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    code = main(["run", str(silent_copy(tmp_path, path)), "--steps", "4", "--seed", "42", "--out", str(out),
                 "--no-live"])
    assert code == 0
    with (out / "slots.csv").open() as f:
        assert [int(r["slot"]) for r in csv.DictReader(f)] == [1, 2, 3, 4]
    for name in ("config.yaml", "users.csv", "requests.csv", "energy.png", "latency.png", "qoe_by_persona.png",
                 "image_sheet.png"):
        assert (out / name).is_file(), name
    assert f"run folder: {out}" in capsys.readouterr().out


def test_scenarios_differ_where_a_researcher_cares() -> None:
    city, rush, suburb, two = (load_scenario(ROOT / "scenarios" / f"{n}.yaml")
                               for n in ("city_block", "rush_hour", "suburb", "two_servers"))
    assert rush.users.count * rush.users.request_rate_per_s > 2 * city.users.count * city.users.request_rate_per_s
    assert rush.prompts.trend_share > city.prompts.trend_share
    assert suburb.users.count < city.users.count and suburb.radio.alpha > city.radio.alpha
    assert suburb.streets.columns * suburb.streets.block_m > city.streets.columns * city.streets.block_m
    a, b = two.gpu_servers
    assert len(two.gpu_servers) == 2 and a.step_latency_s != b.step_latency_s and a.step_energy_j != b.step_energy_j


@pytest.mark.llm
def test_smoke_suburb_with_the_real_language_model(tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "scenarios", "run", "suburb", "--steps", "10", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout and f"run folder: {out}" in done.stdout
    with (out / "requests.csv").open() as f:
        rated = [r for r in csv.DictReader(f) if r["feedback_valid"] == "True"]
    assert rated and all(r["feedback_text"].strip() for r in rated)
    assert (out / "image_sheet.png").is_file()


def test_list_names_every_shipped_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in NAMES)


def test_new_writes_a_commented_file_that_validates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["new", "my_street"]) == 0
    written = tmp_path / "my_street.yaml"
    text = written.read_text()
    assert text.startswith("# my_street:") and "# side of one block, m" in text
    assert load_scenario(written).name == "my_street"
    assert main(["validate", str(written)]) == 0
    assert main(["new", "my_street"]) == 2                      # never overwritten without --force
    assert "already exists" in capsys.readouterr().err
    assert main(["new", "hills", "--from", "suburb"]) == 0
    assert load_scenario(tmp_path / "hills.yaml").streets.block_m == 200.0
    assert main(["new", "bad name!"]) == 2
    assert main(["new", "x", "--from", "nope"]) == 2
    assert "shipped:" in capsys.readouterr().err


def test_reference_in_the_readme_is_up_to_date() -> None:
    readme = (ROOT / "scenarios" / "README.md").read_text()
    assert readme == reference_markdown(), "run: python -m scenarios reference > scenarios/README.md"
    for field in ("bandwidth_hz", "energy_budget_j_per_slot", "trend_share", "max_batch", "think_s"):
        assert f"`{field}`" in readme


def test_policy_option_is_applied_and_checkpoint_is_checked(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    silent = str(silent_copy(tmp_path))
    assert main(["run", silent, "--steps", "2", "--policy", "random", "--out", str(tmp_path / "r")]) == 0
    saved = yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())["base_station"]
    assert saved["policy"] == "random" and saved["checkpoint"] is None
    ckpt = tmp_path / "actor.pt"
    ckpt.write_bytes(b"")
    assert main(["run", silent, "--policy", "fixed", "--checkpoint", str(ckpt), "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "heuristic" in err and err.count("\n") == 1
    assert main(["run", silent, "--policy", "gddpg", "--checkpoint", str(ckpt), "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "corrupted or not a checkpoint" in err and err.count("\n") == 1
    assert not (tmp_path / "c").exists()
    with pytest.raises(SystemExit) as stop:
        main(["run", silent, "--policy", "sac"])
    assert stop.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_help_documents_every_option() -> None:
    done = subprocess.run([sys.executable, "-m", "scenarios.city_block", "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0
    for option in ("--steps", "--seed", "--policy", "--checkpoint", "--out", "--no-live", "--force", "--fail-fast"):
        assert option in done.stdout
    assert "fixed, random" in done.stdout and "Exit status" in done.stdout
