"""Interruptions: Ctrl-C or SIGTERM during a run or a training keeps every finished result, and
`--resume` goes on to the same end as a run that was never interrupted."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import scenarios.assemble as assemble_module
import scenarios.run as run_module
from scenarios.loader import ScenarioError
from scenarios.replay import NOT_REPLAYED
from scenarios.run import run_scenario
from scenarios.tables import RunFolder
from tests.scenarios.test_train_cli import short_block
from tests.shipped import ROOT, shipped, silent_copy
from tests.world.scripted import ScriptedBackend

# what differs between two runs of the same seed: wall-clock latency, and whether an answer came from the record
VARYING = {*NOT_REPLAYED, "feedback_latency_s", "feedback_cached", "wall_s"}


def table(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return [{k: v for k, v in row.items() if k not in VARYING} for row in csv.DictReader(f)]


def quiet(line: str) -> None:
    pass


def interrupt_at(slot: int):  # noqa: ANN201
    def log(line: str) -> None:
        if line.startswith(f"slot {slot}/"):
            raise KeyboardInterrupt
    return log


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> ScriptedBackend:
    """Persona answers from a scripted backend (the resume logic is under test, not the model)."""
    backend = ScriptedBackend()
    monkeypatch.setattr(assemble_module, "build_backends", lambda cfg, n: ([backend], lambda: None))
    return backend


def test_a_resumed_run_ends_as_an_uninterrupted_one(tmp_path: Path, scripted: ScriptedBackend) -> None:
    cfg = shipped({"feedback": {"mode": "live", "cache": None}})
    run_scenario(cfg, steps=60, out=tmp_path / "whole", log=quiet)
    calls_whole = scripted.calls
    with pytest.raises(KeyboardInterrupt):
        run_scenario(cfg, steps=60, out=tmp_path / "split", log=interrupt_at(30))
    assert json.loads((tmp_path / "split" / "run.json").read_text())["status"] == "interrupted"
    # a crash in the middle of a write: half a row at the end of each table
    for name in ("slots.csv", "requests.csv"):
        with (tmp_path / "split" / name).open("a") as f:
            f.write("31,31.0,2")
    calls_before = scripted.calls
    result = run_scenario(RunFolder(tmp_path / "split").read_config(), out=tmp_path / "split", log=quiet, resume=True)
    assert result.slots == 60
    whole, split = (table(tmp_path / d / "slots.csv") for d in ("whole", "split"))
    assert len(split) == 60 and split == whole
    requests = table(tmp_path / "split" / "requests.csv")
    assert requests == table(tmp_path / "whole" / "requests.csv") and any(r["rating"] for r in requests)
    # the replayed slots took their answers from requests.csv: the model was asked only about the rest
    assert any(int(r["finished_slot"]) <= 30 and r["rating"] for r in requests)
    assert scripted.calls - calls_before < calls_whole
    assert json.loads((tmp_path / "split" / "run.json").read_text()) == {
        "status": "finished", "slots_done": 60, "slots": 60, "seed": cfg.seed, "error": ""}


def test_a_run_that_does_not_replay_as_recorded_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    cfg = shipped({"feedback": {"mode": "silent"}})
    out = tmp_path / "r"
    with pytest.raises(KeyboardInterrupt):
        run_scenario(cfg, steps=40, out=out, log=interrupt_at(20))
    path = out / "slots.csv"
    lines = path.read_text().splitlines(keepends=True)
    fields = lines[0].strip().split(",")
    cells = lines[5].rstrip("\n").split(",")
    cells[fields.index("requests_issued")] = str(int(float(cells[fields.index("requests_issued")])) + 1)
    lines[5] = ",".join(cells) + "\n"
    path.write_text("".join(lines))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(ScenarioError, match=r"slot 5 does not replay as recorded .*requests_issued"):
        run_scenario(RunFolder(out).read_config(), out=out, log=quiet, resume=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_finished_run_or_a_folder_without_a_run_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "r"
    run_scenario(shipped({"feedback": {"mode": "silent"}}), steps=5, out=out, log=quiet)
    with pytest.raises(ScenarioError, match="finished all 5 slots.*--steps"):
        run_scenario(RunFolder(out).read_config(), out=out, log=quiet, resume=True)
    longer = run_scenario(RunFolder(out).read_config(), steps=8, out=out, log=quiet, resume=True)
    assert longer.slots == 8 and len(table(out / "slots.csv")) == 8
    with pytest.raises(ScenarioError, match="holds no run"):
        RunFolder(tmp_path).read_config()


def started(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_rows(path: Path, rows: int, proc: subprocess.Popen[str], timeout_s: float = 900) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.is_file() and path.read_text().count("\n") > rows:
            return
        if proc.poll() is not None:
            raise AssertionError(f"ended before {rows} rows: {proc.communicate()}")
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"no {rows} rows in {path} within {timeout_s} s")


def test_a_signal_stops_a_run_that_resume_finishes_as_if_never_stopped(tmp_path: Path) -> None:
    silent = str(silent_copy(tmp_path))
    whole = subprocess.run([sys.executable, "-m", "scenarios", "run", silent, "--steps", "1000", "--out",
                            str(tmp_path / "whole"), "--no-live"], cwd=ROOT, capture_output=True, text=True)
    assert whole.returncode == 0, whole.stderr
    for sig in (signal.SIGTERM,):     # Ctrl-C (SIGINT) is Python's KeyboardInterrupt, as in the tests above
        out = tmp_path / sig.name
        proc = started("scenarios", "run", silent, "--steps", "1000", "--out", str(out), "--no-live")
        wait_for_rows(out / "slots.csv", 10, proc)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 130 and "Traceback" not in err
        assert f"go on with: python -m scenarios run --resume {out}" in err
        kept = table(out / "slots.csv")
        assert 10 <= len(kept) < 1000 and kept == table(tmp_path / "whole" / "slots.csv")[:len(kept)]
        resumed = subprocess.run([sys.executable, "-m", "scenarios", "run", "--resume", str(out), "--no-live"],
                                 cwd=ROOT, capture_output=True, text=True)
        assert resumed.returncode == 0, resumed.stderr
        assert f"replayed slots 1-{len(kept)} as recorded" in resumed.stdout
        assert table(out / "slots.csv") == table(tmp_path / "whole" / "slots.csv")
        assert table(out / "requests.csv") == table(tmp_path / "whole" / "requests.csv")


def test_resume_refuses_options_that_would_change_the_run(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "scenarios", "run", "--resume", str(tmp_path), "--seed", "3"],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2 and "drop --seed" in done.stderr and "Traceback" not in done.stderr


def test_an_interrupted_training_writes_its_checkpoint_and_resumes_to_the_same_end(tmp_path: Path) -> None:
    block = short_block(tmp_path)
    common = ["scenarios.train", block, "--policy", "ddpg", "--episodes", "4", "--seed", "3", "--feedback", "frozen",
              "--no-progress", "--learning-starts", "64", "--checkpoint-every", "100"]
    whole = subprocess.run([sys.executable, "-m", *common, "--out", str(tmp_path / "whole")], cwd=ROOT,
                           capture_output=True, text=True)
    assert whole.returncode == 0, whole.stderr
    out = tmp_path / "split"
    proc = started(*common, "--out", str(out))
    wait_for_rows(out / "curve.csv", 1, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 130 and "Traceback" not in err
    assert (out / "checkpoints" / "last.pt").is_file(), "the interruption writes the checkpoint"
    assert f"--out {out} --resume" in err
    resumed = subprocess.run([sys.executable, "-m", *common, "--out", str(out), "--resume"], cwd=ROOT,
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    keys = ("episode", "reward_per_slot", "total_qoe_per_slot", "energy_j_per_slot", "updates", "qf_loss",
            "actor_loss", "transitions")
    final = [[r[k] for k in keys] for r in table(out / "curve.csv")]
    assert len(final) == 4 and final == [[r[k] for k in keys] for r in table(tmp_path / "whole" / "curve.csv")]


def test_a_full_disk_stops_the_run_with_its_file_named_and_resume_finishes_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The disk fills at slot 6 and closing the tables fails too: the message names the table and the command
    that goes on, run.json says the run failed, and the resumed run ends as one never stopped."""
    import errno

    from scenarios.cli import main

    silent = str(silent_copy(tmp_path))
    assert main(["run", silent, "--steps", "12", "--out", str(tmp_path / "whole"), "--no-live"]) == 0
    real_append, real_close = run_module.RunWriter._append, run_module.RunWriter.close
    writes = []

    def full(self, path, rows, fields):  # noqa: ANN001, ANN202
        writes.append(path)
        if len([p for p in writes if p.name == "slots.csv"]) > 6:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real_append(self, path, rows, fields)

    def close(self):  # noqa: ANN001, ANN202
        real_close(self)
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "full" / "requests.csv"))

    out = tmp_path / "full"
    capsys.readouterr()
    with monkeypatch.context() as patch:
        patch.setattr(run_module.RunWriter, "_append", full)
        patch.setattr(run_module.RunWriter, "close", close)
        assert main(["run", silent, "--steps", "12", "--out", str(out), "--no-live"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"cannot write {out / 'slots.csv'}: No space left on device" in err
    assert f"go on with: python -m scenarios run --resume {out}" in err
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "failed" and record["slots_done"] == 5 and "No space" in record["error"]
    assert main(["run", "--resume", str(out), "--no-live"]) == 0
    for name in ("slots.csv", "requests.csv"):
        assert table(out / name) == table(tmp_path / "whole" / name), name


def test_report_redraws_a_run_folders_plots_and_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from scenarios.cli import main

    out = tmp_path / "run"
    assert main(["run", str(silent_copy(tmp_path)), "--steps", "8", "--out", str(out), "--no-live"]) == 0
    capsys.readouterr()
    for name in ("energy.png", "latency.png", "qoe_by_persona.png"):
        (out / name).unlink()
    sheet = (out / "image_sheet.png").read_bytes()
    assert main(["run", "--resume", str(out), "--no-live"]) == 2
    assert f"python -m scenarios report {out}" in capsys.readouterr().err
    assert main(["report", str(out)]) == 0
    printed = capsys.readouterr().out
    assert all((out / name).is_file() for name in ("energy.png", "latency.png", "qoe_by_persona.png"))
    assert (out / "image_sheet.png").read_bytes() == sheet
    assert "slots: 8" in printed and "image sheet" in printed
    assert main(["report", str(tmp_path)]) == 2
    assert "is not a run folder" in capsys.readouterr().err
