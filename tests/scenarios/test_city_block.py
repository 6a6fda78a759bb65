"""`python -m scenarios.city_block` and `python -m scenarios run|validate`, end to end."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from scenarios.loader import load_scenario
from scenarios.run import run_scenario

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "scenarios" / "city_block.yaml"


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_smoke_city_block_seed_42(tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = cli("scenarios.city_block", "--steps", "40", "--seed", "42", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert f"run folder: {out}" in done.stdout
    slots = rows(out / "slots.csv")
    assert [int(r["slot"]) for r in slots] == list(range(1, 41))
    requests = rows(out / "requests.csv")
    assert requests, "40 s of 30 users at 0.02/s should deliver some images"
    for r in requests:
        assert float(r["issued_s"]) <= float(r["started_s"]) <= float(r["finished_s"]) <= float(r["delivered_s"])
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["seed"] == 42 and saved["slots"] == 40
    assert load_scenario(out / "config.yaml").model_dump() == load_scenario(SHIPPED).model_copy(
        update={"slots": 40}).model_dump()


def test_same_seed_same_metrics_other_seed_differs(tmp_path: Path) -> None:
    cfg = load_scenario(SHIPPED)
    quiet = lambda line: None  # noqa: E731
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        run_scenario(cfg, steps=60, seed=seed, out=tmp_path / name, log=quiet)
    a, b, c = ((tmp_path / n / "requests.csv").read_text() for n in "abc")
    assert a == b
    assert a != c
    assert (tmp_path / "a" / "slots.csv").read_text() == (tmp_path / "b" / "slots.csv").read_text()


def test_run_and_validate_any_file(tmp_path: Path) -> None:
    authored = tmp_path / "mine.yaml"
    authored.write_text(SHIPPED.read_text().replace("mobility: manhattan", "mobility: random_waypoint"))
    checked = cli("scenarios", "validate", str(authored))
    assert checked.returncode == 0 and "valid" in checked.stdout
    ran = cli("scenarios", "run", str(authored), "--steps", "5", "--out", str(tmp_path / "r"))
    assert ran.returncode == 0, ran.stderr
    assert len(rows(tmp_path / "r" / "slots.csv")) == 5


@pytest.mark.parametrize(("edit", "expected"), [
    (("max_power_w: 1.0 ", "max_power_w: -1.0"), "radio.max_power_w: got -1.0"),
    (("slot_s: 1.0 ", "slot_lenght: 1.0"), "slot_lenght: unknown key"),
    (("users:", "users: [\n"), "not valid YAML"),
])
def test_bad_input_exits_2_with_one_message_and_no_traceback(tmp_path: Path, edit: tuple[str, str],
                                                             expected: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(SHIPPED.read_text().replace(*edit, 1))
    for args in (("validate", str(bad)), ("run", str(bad), "--out", str(tmp_path / "r"))):
        done = cli("scenarios", *args)
        assert done.returncode == 2
        assert expected in done.stderr
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "r").exists()


def test_missing_file_exits_2(tmp_path: Path) -> None:
    done = cli("scenarios", "run", str(tmp_path / "nope.yaml"))
    assert done.returncode == 2 and "not found" in done.stderr and "Traceback" not in done.stderr


def test_existing_run_folder_is_never_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert cli("scenarios.city_block", "--steps", "3", "--out", str(out)).returncode == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    again = cli("scenarios.city_block", "--steps", "5", "--out", str(out))
    assert again.returncode == 2 and "--force" in again.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    forced = cli("scenarios.city_block", "--steps", "5", "--out", str(out), "--force")
    assert forced.returncode == 0
    assert len(rows(out / "slots.csv")) == 5


def test_interrupted_run_keeps_every_finished_slot(tmp_path: Path) -> None:
    finished = []

    def interrupt_after_third_line(line: str) -> None:
        if line.startswith("slot"):
            finished.append(line)
            if len(finished) == 3:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_scenario(load_scenario(SHIPPED), steps=100, out=tmp_path / "r", log=interrupt_after_third_line)
    slots = rows(tmp_path / "r" / "slots.csv")
    assert [int(r["slot"]) for r in slots] == list(range(1, 31))   # progress lines come every 10 slots
    assert load_scenario(tmp_path / "r" / "config.yaml").slots == 100
