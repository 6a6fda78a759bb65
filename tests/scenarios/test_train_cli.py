"""`python -m scenarios.train`: run folder, checkpoints, resume, learning curve, bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

import numpy as np

from policies.ddpg import DDPG, read_checkpoint
from policies.gddpg import GDDPG
import scenarios.assemble as assemble_module
from scenarios.cli import main as run_main
from scenarios.loader import load_scenario
from scenarios.run import run_scenario
from scenarios.train import main
from tests.shipped import CITY_BLOCK
from tests.world.scripted import ScriptedBackend


def short_block(tmp_path: Path, slots: int = 30) -> str:
    """The shipped city block with short episodes and silent users outside training (training sets its feedback)."""
    text = CITY_BLOCK.read_text()
    assert "slots: 120" in text and "  render: real" in text and "request_rate_per_s: 0.02 " in text
    path = tmp_path / "block.yaml"
    text = text.replace("slots: 120", f"slots: {slots}", 1).replace("  render: real", "  render: profile", 1)
    text = text.replace("  mode: live", "  mode: silent", 1)
    text = text.replace("request_rate_per_s: 0.02 ", "request_rate_per_s: 0.1 ", 1)   # more transitions per episode
    path.write_text(text.replace("learned_start: feedback_fits/", f"learned_start: {CITY_BLOCK.parent}/feedback_fits/"))
    return str(path)


def curve(out: Path) -> list[dict[str, str]]:
    with (out / "curve.csv").open() as f:
        return list(csv.DictReader(f))


def train(tmp_path: Path, *extra: str, policy: str = "ddpg", episodes: int = 2, out: Path | None = None) -> int:
    out = out or tmp_path / "run"
    return main([short_block(tmp_path), "--policy", policy, "--episodes", str(episodes), "--seed", "3",
                 "--feedback", "frozen", "--out", str(out), "--no-progress", "--checkpoint-every", "1", "--learning-starts", "64", *extra])


def test_training_writes_the_run_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert train(tmp_path, episodes=3) == 0
    out = tmp_path / "run"
    rows = curve(out)
    assert [int(float(r["episode"])) for r in rows] == [0, 1, 2]
    assert all(float(r["requests_rated"]) > 0 for r in rows)
    assert int(float(rows[-1]["updates"])) > 0, "by the third episode the buffer holds a batch and the learner updates"
    for name in ("config.yaml", "train.json", "policy.pt", "checkpoints/last.pt", "learning_curve.png"):
        assert (out / name).is_file(), name
    record = json.loads((out / "train.json").read_text())
    assert record["policy"] == "ddpg" and record["feedback"] == "frozen"
    assert record["feedback_mode"] == "learned" and record["learned_live_share"] == 0.0
    assert "buffer" not in torch.load(out / "policy.pt", weights_only=True)
    assert "episode 3/3" in capsys.readouterr().out


def test_resume_continues_from_the_saved_step(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert train(tmp_path, episodes=3, out=out) == 0
    saved = read_checkpoint(out / "checkpoints" / "last.pt")
    first = curve(out)
    assert train(tmp_path, "--resume", episodes=5, out=out) == 0
    rows = curve(out)
    assert [int(float(r["episode"])) for r in rows] == [0, 1, 2, 3, 4]
    assert rows[:3] == first, "resuming keeps the finished episodes as they were"
    resumed = read_checkpoint(out / "checkpoints" / "last.pt")
    assert resumed["extra"]["episode"] == 4
    assert resumed["updates"] == saved["updates"] + sum(int(float(r["updates"])) for r in rows[3:])
    assert len(resumed["buffer"]["reward"]) > len(saved["buffer"]["reward"])


def test_heuristics_run_the_same_episodes_without_weights(tmp_path: Path) -> None:
    assert train(tmp_path, policy="fixed", episodes=1) == 0
    out = tmp_path / "run"
    assert len(curve(out)) == 1 and not (out / "policy.pt").exists()
    assert float(curve(out)[0]["mean_steps"]) == 50.0


def test_bad_input_exits_2_and_keeps_what_is_there(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main([short_block(tmp_path), "--policy", "sac"])
    assert stop.value.code == 2 and "invalid choice" in capsys.readouterr().err
    out = tmp_path / "run"
    assert train(tmp_path, episodes=1) == 0
    before = (out / "curve.csv").read_bytes()
    assert train(tmp_path, episodes=1) == 2
    assert "already holds files" in capsys.readouterr().err
    assert (out / "curve.csv").read_bytes() == before
    (out / "checkpoints" / "last.pt").write_bytes(b"garbage")
    assert train(tmp_path, "--resume", episodes=2) == 2
    err = capsys.readouterr().err
    assert "corrupted" in err and err.count("\n") == 1
    assert (out / "curve.csv").read_bytes() == before
    assert train(tmp_path, "--resume", policy="gddpg", episodes=2) == 2
    assert "trains ddpg" in capsys.readouterr().err


def test_city_block_runs_a_trained_base_station(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert train(tmp_path, episodes=2) == 0
    policy = tmp_path / "run" / "policy.pt"
    block = short_block(tmp_path)
    out = tmp_path / "sim"
    assert run_main(["run", block, "--steps", "3", "--policy", "ddpg", "--checkpoint", str(policy), "--out", str(out),
                     "--no-live"]) == 0
    assert Path(json.loads(json.dumps(__import__("yaml").safe_load((out / "config.yaml").read_text())))
                ["base_station"]["checkpoint"]) == policy.resolve()
    assert run_main(["run", block, "--steps", "3", "--policy", "gddpg", "--checkpoint", str(policy),
                     "--out", str(tmp_path / "wrong"), "--no-live"]) == 2
    assert "policy 'ddpg', not 'gddpg'" in capsys.readouterr().err
    assert run_main(["run", block, "--steps", "3", "--policy", "fixed", "--checkpoint", str(policy),
                     "--out", str(tmp_path / "fixed"), "--no-live"]) == 2
    assert "heuristic" in capsys.readouterr().err
    assert isinstance(DDPG.from_checkpoint(policy)[0], DDPG)


def test_shipped_city_block_runs_its_trained_g_ddpg(tmp_path: Path) -> None:
    """The default run's base station is the shipped checkpoint, acting without exploration."""
    cfg = load_scenario(Path(short_block(tmp_path, slots=120)))
    seen = []
    result = run_scenario(cfg, steps=90, seed=5, out=tmp_path / "sim", log=lambda line: None,
                          observer=lambda run: seen.append(run.model.base_station))
    assert result.requests_delivered > 0
    station = seen[-1]
    assert isinstance(station.policy, GDDPG) and station.deterministic
    shipped_actor, _ = GDDPG.from_checkpoint(CITY_BLOCK.parent / "checkpoints" / "gddpg_city_block.pt")
    # gain, distance, backlog, age, recent QoE, requests this slot, five traits, cluster size, GPU queue
    probe = np.column_stack([np.linspace(-110, -60, 9), np.linspace(20, 280, 9), np.zeros(9), np.full(9, 0.5),
                             np.linspace(0.2, 0.9, 9), np.ones(9), *(np.linspace(0.1, 0.9, 9) for _ in range(5)),
                             np.ones(9), np.zeros(9)])
    np.testing.assert_array_equal(station.policy.predict(probe), shipped_actor.predict(probe))


def test_live_feedback_is_recorded_and_rates_every_delivery(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = ScriptedBackend()
    monkeypatch.setattr(assemble_module, "build_backends", lambda cfg, n: ([backend], lambda: None))
    out = tmp_path / "live"
    block = Path(short_block(tmp_path))
    text = block.read_text()
    assert "  cache: .cache/aigcsim/feedback.sqlite" in text
    block.write_text(text.replace("  cache: .cache/aigcsim/feedback.sqlite", "  cache: null", 1))  # keep scripted answers out
    code = main([str(block), "--policy", "ddpg", "--episodes", "1", "--seed", "1", "--feedback", "live",
                 "--out", str(out), "--no-progress"])
    assert code == 0
    record = json.loads((out / "train.json").read_text())
    assert record["feedback"] == "live" and record["feedback_mode"] == "live"
    rated = int(float(curve(out)[0]["requests_rated"]))
    assert rated > 0 and backend.calls >= rated     # every rating came from the (scripted) language model


def test_a_resumed_run_ends_as_an_uninterrupted_one(tmp_path: Path) -> None:
    assert train(tmp_path, episodes=4, out=tmp_path / "whole") == 0
    assert train(tmp_path, episodes=2, out=tmp_path / "split") == 0
    assert train(tmp_path, "--resume", episodes=4, out=tmp_path / "split") == 0
    whole, split = curve(tmp_path / "whole"), curve(tmp_path / "split")
    keys = ("reward_per_slot", "qf_loss", "actor_loss", "updates", "transitions")
    assert [[r[k] for k in keys] for r in whole] == [[r[k] for k in keys] for r in split]
    assert float(whole[-1]["updates"]) > 0


def test_a_checkpoint_with_non_finite_weights_is_refused_before_anything_is_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    learner = DDPG(seed=0)
    with torch.no_grad():
        learner.actor.net[2].weight[0, 0] = float("inf")
    learner.save(tmp_path / "broken.pt")
    out = tmp_path / "sim"
    assert run_main(["run", short_block(tmp_path), "--steps", "3", "--policy", "ddpg",
                     "--checkpoint", str(tmp_path / "broken.pt"), "--out", str(out), "--no-live"]) == 2
    err = capsys.readouterr().err
    assert "NaN or infinite weights" in err and err.count("\n") == 1
    assert not out.exists()


def interrupted_at(monkeypatch: pytest.MonkeyPatch, episode: int) -> None:
    """Ctrl-C while episode `episode` (from 0) runs."""
    import scenarios.training as train_module

    real, calls = train_module.run_episode, []

    def stopping(*args, **kwargs):
        calls.append(1)
        if len(calls) == episode + 1:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "run_episode", stopping)


@pytest.mark.parametrize("stop_at", [2, 0])
def test_the_printed_resume_command_goes_on_with_the_recorded_options(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], stop_at: int) -> None:
    """Stopped mid-run (or before its first episode finished), the run goes on as printed, without repeating its
    options: --feedback frozen, --learning-starts and the rest stay as recorded, and the curve is the
    uninterrupted run's."""
    import shlex

    assert train(tmp_path, episodes=4, out=tmp_path / "whole") == 0
    capsys.readouterr()
    with monkeypatch.context() as patch:
        interrupted_at(patch, stop_at)
        assert train(tmp_path, episodes=4, out=tmp_path / "split") == 130
    err = capsys.readouterr().err
    command = shlex.split(err.split("go on with: ")[1])
    assert command[:3] == ["python", "-m", "scenarios.train"] and "--feedback" not in command
    assert main([*command[3:], "--no-progress"]) == 0
    keys = ("reward_per_slot", "qf_loss", "actor_loss", "updates", "transitions", "requests_rated")
    whole, split = curve(tmp_path / "whole"), curve(tmp_path / "split")
    assert [[r[k] for k in keys] for r in whole] == [[r[k] for k in keys] for r in split]


def test_resume_refuses_options_that_contradict_the_recorded_ones(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert train(tmp_path, episodes=1, out=out) == 0
    capsys.readouterr()
    before = (out / "curve.csv").read_bytes()
    for option in (["--feedback", "live"], ["--learning-starts", "10"], ["--render", "real"], ["--threads", "2"]):
        assert main(["--out", str(out), "--resume", "--episodes", "2", *option]) == 2
        err = capsys.readouterr().err
        assert f"with {option[0]} " in err and "drop " + option[0] in err and err.count("\n") == 1, err
    assert (out / "curve.csv").read_bytes() == before
    assert main(["--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "holds no training run" in capsys.readouterr().err


def test_an_unreadable_or_missing_train_json_is_one_message_from_the_command_and_the_loop(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--resume` and `scenarios.training.train(resume=True)` read train.json the same way (RunFolder.read_options)."""
    from scenarios.loader import ScenarioError
    from scenarios.train_options import TrainOptions
    from scenarios.training import train as train_loop

    out = tmp_path / "run"
    assert train(tmp_path, episodes=1, out=out) == 0
    capsys.readouterr()
    (out / "train.json").write_text("{cut off", encoding="utf-8")
    assert main(["--out", str(out), "--resume", "--episodes", "2"]) == 2
    err = capsys.readouterr().err
    assert "cannot read" in err and "train.json" in err and err.count("\n") == 1, err
    opts = TrainOptions(policy="ddpg", episodes=2, feedback="frozen")
    with pytest.raises(ScenarioError, match="cannot read .*train.json"):
        train_loop(out / "config.yaml", opts, out, resume=True)
    (out / "train.json").unlink()
    with pytest.raises(ScenarioError, match="holds no training run"):
        train_loop(out / "config.yaml", opts, out, resume=True)
