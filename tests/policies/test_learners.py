"""DDPG and G-DDPG: actions in the box, learning toward a known best action, checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from agents.base_station import ACTION_FEATURES, OBS_FEATURES
from policies.ddpg import DDPG, CheckpointError, NonFiniteError, read_checkpoint
from policies.gddpg import GDDPG, DiffusionActor, vp_beta_schedule

LEARNERS = (DDPG, GDDPG)
BEST = np.array([0.3, 0.8, 0.6])


@pytest.mark.parametrize("cls", LEARNERS)
def test_predict_stays_in_the_box(cls: type[DDPG]) -> None:
    learner = cls(seed=0)
    rng = np.random.default_rng(0)
    obs = np.column_stack([rng.uniform(-120, -50, 64), rng.uniform(0, 300, 64), rng.uniform(0, 5, 64),
                           rng.uniform(0, 3, 64), rng.uniform(0, 1, 64), rng.integers(1, 8, 64)])
    for deterministic in (True, False):
        action = learner.predict(obs, deterministic=deterministic)
        assert action.shape == (64, len(ACTION_FEATURES))
        assert np.all((action >= 0) & (action <= 1))


def tiny_bandit(learner: DDPG, iterations: int, seed: int = 0) -> None:
    """A deterministic one-step task: reward = -|a - BEST|^2 whatever the state."""
    rng = np.random.default_rng(seed)
    for i in range(iterations):
        obs = rng.normal(size=(4, learner.obs_dim)).astype(np.float32)
        action = learner.predict(obs, deterministic=False) if i >= 100 else rng.uniform(size=(4, 3))
        for o, a in zip(obs, action):
            learner.buffer.add(o, a, -float(((a - BEST) ** 2).sum()))
        if i >= 50:
            learner.learn()


@pytest.mark.parametrize("cls", LEARNERS)
def test_a_few_hundred_updates_move_toward_the_best_action(cls: type[DDPG]) -> None:
    torch.set_num_threads(1)
    learner = cls(obs_dim=2, act_dim=3, seed=0)
    probe = np.random.default_rng(9).normal(size=(32, 2))
    before = np.abs(learner.predict(probe) - BEST).mean()
    tiny_bandit(learner, 500)
    after = learner.predict(probe)
    assert 300 <= learner.updates <= 500
    assert np.abs(after - BEST).mean() < 0.06 < before
    assert np.abs(after - BEST).max() < 0.12


def test_vp_schedule_and_chain_shapes() -> None:
    betas = vp_beta_schedule(5)
    assert betas.shape == (5,) and torch.all((betas > 0) & (betas < 1)) and torch.all(betas[1:] > betas[:-1])
    actor = DiffusionActor(len(OBS_FEATURES), 3, hidden=32, steps=5)
    obs = torch.randn(7, len(OBS_FEATURES))
    a = actor(obs, deterministic=True)
    assert a.shape == (7, 3) and torch.equal(a, actor(obs, deterministic=True))
    assert not torch.equal(actor(obs, deterministic=False), actor(obs, deterministic=False))


def test_actor_gradient_flows_through_the_denoising_chain() -> None:
    actor = DiffusionActor(4, 3, hidden=32, steps=5)
    actor(torch.randn(5, 4), deterministic=False).sum().backward()
    first = actor.model.mid[0].weight.grad
    assert first is not None and float(first.abs().sum()) > 0


@pytest.mark.parametrize("cls", LEARNERS)
def test_save_load_round_trip_gives_identical_actions(cls: type[DDPG], tmp_path: Path) -> None:
    learner = cls(seed=1)
    tiny_bandit_obs = np.random.default_rng(1).normal(size=(20, len(OBS_FEATURES))) * 10 - 80
    for o in tiny_bandit_obs:
        learner.buffer.add(o, np.full(3, 0.5), 0.5)
    learner.batch_size = 16
    for _ in range(5):
        learner.learn()
    learner.save(tmp_path / "p.pt", {"episode": 3})
    loaded, extra = cls.from_checkpoint(tmp_path / "p.pt")
    assert extra == {"episode": 3} and loaded.updates == learner.updates == 5
    np.testing.assert_array_equal(loaded.predict(tiny_bandit_obs), learner.predict(tiny_bandit_obs))
    assert loaded.buffer.size == 20


def test_checkpoints_are_plain_tensors(tmp_path: Path) -> None:
    GDDPG(seed=0).save(tmp_path / "g.pt")
    state = torch.load(tmp_path / "g.pt", weights_only=True)
    assert state["policy"] == "gddpg" and state["action_features"] == list(ACTION_FEATURES)


def test_bad_checkpoints_are_refused_with_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"\x00not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupted"):
        read_checkpoint(tmp_path / "junk.pt")
    DDPG(seed=0).save(tmp_path / "d.pt")
    with pytest.raises(CheckpointError, match="policy 'ddpg', not 'gddpg'"):
        GDDPG.from_checkpoint(tmp_path / "d.pt")
    other = DDPG(obs_dim=3, act_dim=2, seed=0)
    other.save(tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="observation layout"):
        DDPG(seed=0).load_state_dict(read_checkpoint(tmp_path / "other.pt"))
    state = read_checkpoint(tmp_path / "d.pt")
    state["action_features"] = ["steps", "power"]
    with pytest.raises(CheckpointError, match="action layout"):
        DDPG(seed=0).load_state_dict(state)


def test_non_finite_weights_are_reported() -> None:
    learner = DDPG(seed=0)
    with torch.no_grad():
        learner.actor.net[0].weight.fill_(float("nan"))
    with pytest.raises(NonFiniteError, match="NaN"):
        learner.predict(np.zeros((2, len(OBS_FEATURES))))
