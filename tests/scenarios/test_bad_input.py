"""Bad input everywhere a user types something: every command, option and file named on the command
line or in a scenario. Each case ends with exit status 2, one message naming what is wrong, no
traceback, and nothing already written changed. (Scenario field values: test_loader.py, test_fuzz.py.)"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from policies.ddpg import DDPG
from scenarios import cli, fit_feedback, train
from scenarios.loader import load_scenario
from tests.shipped import ROOT, silent_copy

Command = Callable[[list[str]], int]
COMMANDS: dict[str, Command] = {"scenarios": cli.main, "train": train.main, "fit": fit_feedback.main}


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a silent scenario, a finished run, a corrupted checkpoint and odd files."""
    root = tmp_path_factory.mktemp("bad-input")
    silent = silent_copy(root)
    assert cli.main(["run", str(silent), "--steps", "3", "--out", str(root / "done"), "--no-live"]) == 0
    assert train.main([str(silent), "--policy", "fixed", "--episodes", "1", "--feedback", "frozen",
                       "--out", str(root / "trained"), "--no-progress"]) == 0
    (root / "broken.pt").write_bytes(b"PK\x03\x04 not a checkpoint")
    (root / "a_file").write_text("x")
    (root / "binary.yaml").write_bytes(bytes(range(256)) * 4)
    (root / "empty.yaml").write_text("")
    (root / "list.yaml").write_text("- name: x\n- users: 3\n")
    (root / "no_fit.yaml").write_text(silent.read_text().replace(
        "learned_start: feedback_fits/city_block.json", "learned_start: nowhere/fit.json", 1))
    (root / "bad_ckpt.yaml").write_text(silent.read_text().replace(
        "checkpoint: checkpoints/gddpg_city_block.pt", f"checkpoint: {root / 'broken.pt'}", 1))
    (root / "no_start.yaml").write_text(silent.read_text().replace(
        "learned_start: feedback_fits/city_block.json", "learned_start: null", 1))
    # a checkpoint of the observation rows before the base station saw traits, clusters and the GPU queue
    old = DDPG(obs_dim=6, seed=0).state_dict()
    old["obs_features"] = ["gain_db", "distance_m", "gpu_backlog_s", "age_s", "user_qoe", "slot_requests"]
    torch.save(old, root / "old_layout.pt")
    (root / "old_fit.json").write_text(json.dumps({"format": "aigcsim-feedback-fit/1", "features": 30,
                                                   "weights": [0.0] * 30}))
    (root / "old_fit.yaml").write_text(silent.read_text().replace(
        "learned_start: feedback_fits/city_block.json", f"learned_start: {root / 'old_fit.json'}", 1))
    for name, value in (("negative_weight", "-0.01"), ("nan_weight", ".nan")):
        (root / f"{name}.yaml").write_text(silent.read_text().replace(
            "device_energy_weight: 0.005", f"device_energy_weight: {value}", 1))
    assert "learned_start: nowhere" in (root / "no_fit.yaml").read_text()
    assert "device_energy_weight: -0.01" in (root / "negative_weight.yaml").read_text()
    assert "broken.pt" in (root / "bad_ckpt.yaml").read_text()
    return root


# (command, arguments with {w} for the work folder, what the message must say)
CASES = [
    ("scenarios", "run {w}/missing.yaml", "not found"),
    ("scenarios", "run {w}/city_block.yaml --steps abc", "must be a whole number"),
    ("scenarios", "run {w}/city_block.yaml --steps -1", "must be at least 1"),
    ("scenarios", "run {w}/city_block.yaml --steps 5000000", "--steps"),
    ("scenarios", "run {w}/city_block.yaml --seed -5", "must be 0 to"),
    ("scenarios", "run {w}/city_block.yaml --seed 1099511627776", "must be 0 to"),
    ("scenarios", "run {w}/city_block.yaml --policy sac", "invalid choice"),
    ("scenarios", "run {w}/city_block.yaml --checkpoint {w}/missing.pt", "no such file"),
    ("scenarios", "run {w}/city_block.yaml --policy fixed --checkpoint {w}/broken.pt", "heuristic"),
    ("scenarios", "run {w}/city_block.yaml --policy ddpg --checkpoint {w}/broken.pt", "corrupted"),
    ("scenarios", "run {w}/city_block.yaml --out {w}/a_file", "is a file"),
    ("scenarios", "run {w}/city_block.yaml --out {w}/a_file/run", "cannot create run folder"),
    ("scenarios", "run {w}/city_block.yaml --out {w}/done", "--force"),
    ("scenarios", "run --resume {w}/nowhere", "holds no run"),
    ("scenarios", "run {w}/city_block.yaml --resume {w}/done", "drop FILE"),
    ("scenarios", "run --resume {w}/done", "finished all 3 slots"),
    ("scenarios", "run", "give a scenario FILE"),
    ("scenarios", "run {w}/no_fit.yaml --policy optimum --out {w}/n1", "learned_start"),
    ("scenarios", "run {w}/bad_ckpt.yaml --out {w}/n2", "corrupted"),
    ("scenarios", "run {w}/city_block.yaml --policy ddpg --checkpoint {w}/old_layout.pt --out {w}/n6",
     "another observation layout; retrain it"),
    ("scenarios", "run {w}/old_fit.yaml --out {w}/n7", "made for other features"),
    ("scenarios", "run {w}/negative_weight.yaml --out {w}/n8", "device_energy_weight"),
    ("scenarios", "run {w}/nan_weight.yaml --out {w}/n9", "device_energy_weight"),
    ("train", "{w}/old_fit.yaml --feedback frozen --out {w}/n10", "made for other features"),
    ("scenarios", "sweep {w}/city_block.yaml --seeds 0", "a count of seeds is 1 to 10000"),
    ("scenarios", "sweep {w}/city_block.yaml --seeds 1,x", "give a count"),
    ("scenarios", "sweep {w}/city_block.yaml --seeds 2,2", "distinct"),
    ("scenarios", "sweep {w}/city_block.yaml --policies greedy,sac", "'sac' is not a policy"),
    ("scenarios", "sweep {w}/city_block.yaml --set users.count", "give key=value"),
    ("scenarios", "sweep {w}/city_block.yaml --set users.count=-4", "users.count"),
    ("scenarios", "sweep {w}/city_block.yaml --set users.cont=4", "unknown key"),
    ("scenarios", "sweep {w}/city_block.yaml --set users.count=5 --set users.count=5", "given twice"),
    ("scenarios", "sweep {w}/city_block.yaml --set slots.x=5", "not a group of fields"),
    ("scenarios", "sweep {w}/city_block.yaml --policies gddpg --checkpoint gddpg={w}/missing.pt", "no such file"),
    ("scenarios", "sweep {w}/city_block.yaml --policies greedy --checkpoint greedy={w}/broken.pt", "is a heuristic"),
    ("scenarios", "sweep {w}/city_block.yaml --policies greedy --checkpoint ddpg={w}/broken.pt", "not in --policies"),
    ("scenarios", "sweep {w}/city_block.yaml --checkpoint {w}/broken.pt", "POLICY=PATH"),
    ("scenarios", "sweep {w}/city_block.yaml --out {w}/a_file", "is a file"),
    ("scenarios", "sweep {w}/city_block.yaml --cpus-per-run 0", "must be more than 0"),
    ("scenarios", "sweep {w}/city_block.yaml --workers 0", "must be at least 1"),
    ("scenarios", "sweep {w}/missing.yaml", "not found"),
    ("scenarios", "validate {w}/binary.yaml", "binary.yaml"),
    ("scenarios", "validate {w}/empty.yaml", "holds no fields"),
    ("scenarios", "validate {w}/list.yaml", "must be a mapping"),
    ("scenarios", "validate {w}", "not found"),
    ("scenarios", "new bad!name", "not a scenario name"),
    ("scenarios", "new {w}/fresh --from nowhere", "no shipped scenario"),
    ("scenarios", "new {w}/city_block", "already exists"),
    ("scenarios", "frobnicate", "invalid choice"),
    ("train", "{w}/city_block.yaml --episodes 0", "must be at least 1"),
    ("train", "{w}/city_block.yaml --policy sac", "invalid choice"),
    ("train", "{w}/city_block.yaml --feedback psychic", "invalid choice"),
    ("train", "{w}/city_block.yaml --out {w}/trained", "--force"),
    ("train", "{w}/city_block.yaml --policy fixed --out {w}/trained --resume", "has finished all 1 episodes"),
    ("train", "--policy fixed --out {w}/trained --resume --episodes 3", "keeps no checkpoint"),
    ("train", "{w}/no_start.yaml --feedback frozen --out {w}/n3", "learned_start"),
    ("train", "{w}/missing.yaml --out {w}/n4", "not found"),
    ("fit", "{w}/city_block.yaml --out {w}/a_file", "already exists"),
    ("fit", "{w}/city_block.yaml --slots 0 --out {w}/n5.json", "must be at least 1"),
    ("fit", "{w}/city_block.yaml", "--out"),
]


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize(("command", "args", "says"), CASES, ids=[f"{c} {a}" for c, a, _ in CASES])
def test_bad_input_exits_2_with_one_message_and_changes_nothing(work: Path, capsys: pytest.CaptureFixture[str],
                                                                command: str, args: str, says: str) -> None:
    before = snapshot(work)
    try:
        status = COMMANDS[command](args.format(w=work).split())
    except SystemExit as stop:          # argparse: a one-line message, status 2
        status = stop.code
    err = capsys.readouterr().err
    assert status == 2, err
    assert says in err and "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"one message, got: {err}"
    assert snapshot(work) == before, "bad input changed what was already written"


def test_debug_shows_the_traceback_behind_the_message(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["validate", str(work / "empty.yaml"), "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.rstrip().endswith("python -m scenarios new NAME`")


@pytest.mark.parametrize("host", ["http://[bad", "http://127.0.0.1:99999", "ftp://127.0.0.1:1", "not a url"])
def test_a_malformed_ollama_host_exits_2_naming_it(work: Path, host: str) -> None:
    ollama = work / f"ollama-{abs(hash(host))}.yaml"
    ollama.write_text((work / "city_block.yaml").read_text().replace("  mode: silent", "  mode: live", 1)
                      .replace("    backend: embedded", "    backend: ollama", 1))
    # a subprocess: the ollama package reads OLLAMA_HOST as it is imported, before any command runs
    done = subprocess.run([sys.executable, "-m", "scenarios", "run", str(ollama), "--out", str(work / "n6")],
                          cwd=ROOT, env={**os.environ, "OLLAMA_HOST": host}, capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: OLLAMA_HOST = ") and len(done.stderr.strip().splitlines()) == 1
    assert not (work / "n6").exists()


def test_a_malformed_ollama_host_is_no_matter_to_a_run_that_asks_no_model(
        work: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    frozen = work / "frozen-ollama.yaml"       # learned, frozen on the shipped fit: no model is started
    frozen.write_text((work / "city_block.yaml").read_text().replace("  mode: silent", "  mode: learned", 1)
                      .replace("    backend: embedded", "    backend: ollama", 1)
                      .replace("  learned_start:", "  learned_live_share: 0.0\n  learned_start:", 1))
    monkeypatch.setenv("OLLAMA_HOST", "http://[bad")
    assert cli.main(["run", str(frozen), "--steps", "2", "--out", str(work / "n7"), "--no-live"]) == 0, \
        capsys.readouterr().err
    ran = load_scenario(work / "n7" / "config.yaml").feedback
    assert (work / "n7" / "slots.csv").is_file() and ran.mode == "learned" and ran.llm.backend == "ollama"
