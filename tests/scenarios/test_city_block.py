"""`python -m scenarios.city_block` and `python -m scenarios run|validate`, end to end."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from scenarios.cli import main
from scenarios.loader import load_scenario
from scenarios.run import run_scenario
from tests.shipped import CITY_BLOCK, ROOT, shipped, silent_copy
from world.config import ScenarioConfig



def scenario(**feedback: object) -> ScenarioConfig:
    """The shipped scenario with feedback settings replaced (default: silent users, no LLM)."""
    return shipped({"feedback": feedback or {"mode": "silent"}})


def cli(*args: str, cwd: Path = ROOT, timeout_s: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout_s)


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m scenarios ARGS` in this process (the interpreter's start, torch's import among it, is
    paid once per test process, not once per call): the exit status and what it printed."""
    capsys.readouterr()
    status = main(list(args))
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["python", "-m", "scenarios", *args], status, out, err)


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.llm
def test_smoke_city_block_seed_42(tmp_path: Path) -> None:
    """The real entry point with the real embedded LLM: users rate what they receive."""
    out = tmp_path / "run"
    # the fixed base station: the trained one hands steps to the phones, whose images take ~40 s
    # a bound on a hang, not a speed test: each persona's first answer reads its whole rubric and examples
    # (23.7 s median on one thread, benchmarks/persona_fidelity.py); four slots issue four requests here
    done = cli("scenarios.city_block", "--steps", "4", "--seed", "42", "--policy", "fixed", "--out", str(out),
               timeout_s=1200)
    assert done.returncode == 0, done.stderr
    assert f"run folder: {out}" in done.stdout
    slots = rows(out / "slots.csv")
    assert [int(r["slot"]) for r in slots] == list(range(1, 5))
    requests = rows(out / "requests.csv")
    assert len(requests) >= 2, "4 s of 30 users at 0.02/s should finish a few requests"
    for r in requests:
        assert float(r["issued_s"]) <= float(r["started_s"]) <= float(r["finished_s"]) <= float(r["delivered_s"])
        assert float(r["delivered_s"]) <= float(r["feedback_s"])
        assert r["state"] == "rated" and r["feedback_backend"].startswith("embedded:")
    valid = [r for r in requests if r["feedback_valid"] == "True"]
    assert len(valid) == len(requests)
    # the summary counts every answer, those given after the last slot too
    calls, hits = re.search(r"^language model: (\d+) calls, (\d+) cache hits, 0 invalid, 0 failed", done.stdout,
                            re.M).groups()
    assert int(calls) + int(hits) == len(requests), done.stdout
    assert all(r["feedback_text"].strip() and 1 <= int(r["rating"]) <= 5 for r in valid)
    assert all(0.0 <= float(r["qoe"]) <= 1.0 for r in valid)
    # requests.csv also holds the requests finished after the last slot (no new requests then)
    in_slots = [r for r in valid if int(r["finished_slot"]) <= 4]
    assert sum(float(r["total_qoe"]) for r in slots) == pytest.approx(sum(float(r["qoe"]) for r in in_slots))
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["seed"] == 42 and saved["slots"] == 4
    shipped_cfg = load_scenario(CITY_BLOCK)
    fixed = shipped_cfg.base_station.model_copy(update={"policy": "fixed", "checkpoint": None})
    assert load_scenario(out / "config.yaml").model_dump() == shipped_cfg.model_copy(
        update={"slots": 4, "base_station": fixed}).model_dump()


def test_same_seed_same_metrics_other_seed_differs(tmp_path: Path) -> None:
    cfg = scenario()
    quiet = lambda line: None  # noqa: E731
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        run_scenario(cfg, steps=60, seed=seed, out=tmp_path / name, log=quiet)
    a, b, c = ((tmp_path / n / "requests.csv").read_text() for n in "abc")
    assert a == b
    assert a != c
    assert (tmp_path / "a" / "slots.csv").read_text() == (tmp_path / "b" / "slots.csv").read_text()


FROZEN = {"mode": "learned", "learned_live_share": 0.0}    # the shipped persona-feedback fit answers, no LLM


def test_a_run_finishes_the_requests_in_flight(tmp_path: Path) -> None:
    """After the last slot nobody asks for more, and the clock runs on until every request is answered."""
    result = run_scenario(shipped({"feedback": FROZEN}), steps=8, seed=5, out=tmp_path / "r", log=lambda line: None)
    slots, requests = rows(tmp_path / "r" / "slots.csv"), rows(tmp_path / "r" / "requests.csv")
    assert [int(r["slot"]) for r in slots] == list(range(1, 9)) and result.slots == 8
    issued = sum(int(r["requests_issued"]) for r in slots)
    assert issued > 0 and len(requests) == issued == result.requests_rated   # every one of them answered
    assert all(r["state"] == "rated" for r in requests)
    assert any(int(r["finished_slot"]) > 8 for r in requests)                 # some only after the last slot


def test_the_shipped_base_station_uses_the_gpu_and_rates_within_five_slots(tmp_path: Path) -> None:
    """The default scenario's trained G-DDPG, a short run: GPU batches run and two requests or more are rated."""
    cfg = shipped({"feedback": FROZEN, "base_station": {"policy": "gddpg",
                                                        "checkpoint": "checkpoints/gddpg_city_block.pt"}})
    result = run_scenario(cfg, steps=5, out=tmp_path / "r", log=lambda line: None)
    requests = rows(tmp_path / "r" / "requests.csv")
    assert result.requests_rated >= 2
    on_gpu = [r for r in requests if int(r["server_steps"]) > 0]
    assert on_gpu and all(r["server"] == "edge-0" and int(r["batch_size"]) >= 1 for r in on_gpu)
    assert float(result.mean_wait_s) <= 10.0          # the GPU's steps, not the phone's 0.8 s each


def test_run_and_validate_any_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    authored = tmp_path / "mine.yaml"
    authored.write_text(silent_copy(tmp_path).read_text().replace("mobility: manhattan", "mobility: random_waypoint"))
    checked = cli("scenarios", "validate", str(authored))
    assert checked.returncode == 0 and "valid" in checked.stdout
    ran = run_cli(capsys, "run", str(authored), "--steps", "5", "--out", str(tmp_path / "r"))
    assert ran.returncode == 0, ran.stderr
    assert len(rows(tmp_path / "r" / "slots.csv")) == 5


@pytest.mark.parametrize(("edit", "expected"), [
    (("max_power_w: 1.0 ", "max_power_w: -1.0"), "radio.max_power_w: got -1.0"),
    (("slot_s: 1.0 ", "slot_lenght: 1.0"), "slot_lenght: unknown key"),
    (("users:", "users: [\n"), "not valid YAML"),
])
def test_bad_input_exits_2_with_one_message_and_no_traceback(tmp_path: Path, edit: tuple[str, str],
                                                             expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(CITY_BLOCK.read_text().replace(*edit, 1))
    for done in (cli("scenarios", "validate", str(bad)),
                 run_cli(capsys, "run", str(bad), "--out", str(tmp_path / "r"))):
        assert done.returncode == 2
        assert expected in done.stderr
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "r").exists()


def test_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    done = run_cli(capsys, "run", str(tmp_path / "nope.yaml"))
    assert done.returncode == 2 and "not found" in done.stderr and "Traceback" not in done.stderr


def test_existing_run_folder_is_never_overwritten(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    silent = str(silent_copy(tmp_path))
    assert run_cli(capsys, "run", silent, "--steps", "3", "--out", str(out)).returncode == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    again = run_cli(capsys, "run", silent, "--steps", "5", "--out", str(out))
    assert again.returncode == 2 and "--force" in again.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    forced = run_cli(capsys, "run", silent, "--steps", "5", "--out", str(out), "--force")
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
        run_scenario(scenario(), steps=100, out=tmp_path / "r", log=interrupt_after_third_line)
    slots = rows(tmp_path / "r" / "slots.csv")
    assert [int(r["slot"]) for r in slots] == list(range(1, 31))   # progress lines come every 10 slots
    assert load_scenario(tmp_path / "r" / "config.yaml").slots == 100


def test_unreachable_ollama_exits_2_with_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as s:              # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = tmp_path / "ollama.yaml"
    path.write_text(CITY_BLOCK.read_text().replace("    backend: embedded", "    backend: ollama", 1)
                    .replace("    ollama_model: qwen2.5:3b", f"    ollama_model: qwen2.5:3b\n"
                                                              f"    ollama_host: http://127.0.0.1:{port}", 1))
    done = run_cli(capsys, "run", str(path), "--steps", "3", "--out", str(tmp_path / "r"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "ollama serve" in done.stderr and str(port) in done.stderr
    assert not (tmp_path / "r").exists(), "a model that cannot start leaves no run folder behind"


def test_traits_outside_unit_interval_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(CITY_BLOCK.read_text().replace(
        "    concentration: 1.0", "    personas: [{name: Ana, openness: 1.3, conscientiousness: 0.5, "
        "extraversion: 0.5, agreeableness: 0.5, neuroticism: 0.5}]\n    concentration: 1.0", 1))
    done = cli("scenarios", "validate", str(path))
    assert done.returncode == 2
    assert "users.population.personas.0.openness: got 1.3" in done.stderr


def test_failed_feedback_is_counted_or_stops_the_run_with_fail_fast(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import scenarios.assemble as assemble_module
    from scenarios.run import FeedbackFailed
    from tests.world.scripted import ScriptedBackend

    monkeypatch.setattr(assemble_module, "build_backends", lambda cfg, n: ([ScriptedBackend(down=True)], lambda: None))
    cfg = scenario(mode="live", cache=None)
    quiet = lambda line: None  # noqa: E731
    went_on = run_scenario(cfg, steps=60, out=tmp_path / "a", log=quiet)
    assert went_on.slots == 60 and went_on.feedback_failed > 0 and went_on.requests_rated == went_on.feedback_failed
    with pytest.raises(FeedbackFailed, match="did not answer"):
        run_scenario(cfg, steps=60, out=tmp_path / "b", fail_fast=True, log=quiet)
    stopped = rows(tmp_path / "b" / "slots.csv")
    assert 0 < len(stopped) < 60 and float(stopped[-1]["feedback_failed"]) > 0


def test_a_missing_image_model_folder_exits_2_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(CITY_BLOCK.read_text().replace("model: shipped", f"model: {tmp_path / 'nowhere'}", 1))
    done = run_cli(capsys, "run", str(bad), "--steps", "2", "--out", str(tmp_path / "r"))
    assert done.returncode == 2, done.stderr
    assert "nowhere does not exist" in done.stderr and "Traceback" not in done.stderr


def test_a_model_that_cannot_start_on_its_first_call_ends_the_run_with_one_message(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # instances start when first asked (a run from the answer cache loads none): one that cannot start then
    # is bad input (exit 2, its message as is, not "a bug"), and the slots before it are kept
    import scenarios.assemble as assemble_module
    from world.llm_config import LlmSetupError

    class CannotStart:
        name = "embedded:broken"

        def give_feedback(self, persona: object, delivery: object) -> None:
            raise LlmSetupError("llama.cpp could not start the model broken.gguf (out of memory)")

    monkeypatch.setattr(assemble_module, "build_backends", lambda cfg, n: ([CannotStart()], lambda: None))
    path = tmp_path / "live.yaml"
    path.write_text(CITY_BLOCK.read_text().replace("cache: .cache/aigcsim/feedback.sqlite", "cache: null", 1))
    out = tmp_path / "r"
    assert main(["run", str(path), "--steps", "60", "--out", str(out), "--no-live"]) == 2
    err = capsys.readouterr().err
    assert "could not start the model broken.gguf (out of memory)" in err and "bug" not in err, err
    assert 0 < len(rows(out / "slots.csv")) < 60
