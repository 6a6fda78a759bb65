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


def observations(rng: np.random.Generator, n: int, neuroticism: float | None = None) -> np.ndarray:
    """n observation rows in the layout of OBS_FEATURES, each value in its natural range."""
    columns = {"gain_db": rng.uniform(-120, -50, n), "distance_m": rng.uniform(0, 300, n),
               "gpu_backlog_s": rng.uniform(0, 5, n), "age_s": rng.uniform(0, 3, n), "user_qoe": rng.uniform(0, 1, n),
               "slot_requests": rng.integers(1, 8, n), "similar_requests": rng.integers(1, 4, n),
               "gpu_waiting": rng.integers(0, 6, n)}
    for trait in ("openness", "conscientiousness", "extraversion", "agreeableness", "neuroticism"):
        columns[trait] = rng.uniform(0, 1, n)
    if neuroticism is not None:
        columns["neuroticism"] = np.full(n, neuroticism)
    return np.column_stack([columns[f] for f in OBS_FEATURES]).astype(np.float32)


@pytest.mark.parametrize("cls", LEARNERS)
def test_predict_stays_in_the_box(cls: type[DDPG]) -> None:
    learner = cls(seed=0)
    rng = np.random.default_rng(0)
    obs = observations(rng, 64)
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


# the best action depends on who asks: the anxious want it fast (few steps, all on the GPU, full power),
# the calm would rather have every step and do not mind the phone finishing some
ANXIOUS_BEST, CALM_BEST = np.array([0.2, 1.0, 0.9]), np.array([0.9, 0.5, 0.3])


@pytest.mark.parametrize("cls", LEARNERS)
def test_learners_find_a_persona_dependent_best_action(cls: type[DDPG]) -> None:
    """On the real observation layout, under a thousand updates move each persona type toward its own best."""
    torch.set_num_threads(1)
    learner = cls(seed=0)
    rng = np.random.default_rng(0)
    probes = {0.9: (observations(np.random.default_rng(7), 16, 0.9), ANXIOUS_BEST),
              0.1: (observations(np.random.default_rng(8), 16, 0.1), CALM_BEST)}
    before = {n: np.abs(learner.predict(obs) - best).mean() for n, (obs, best) in probes.items()}
    for i in range(1000):
        obs = observations(rng, 4)
        anxious = obs[:, OBS_FEATURES.index("neuroticism")] >= 0.5
        best = np.where(anxious[:, None], ANXIOUS_BEST, CALM_BEST)
        action = learner.predict(obs, deterministic=False) if i >= 100 else rng.uniform(size=(4, 3))
        for o, a, b in zip(obs, action, best):
            learner.buffer.add(o, a, -float(((a - b) ** 2).sum()))
        if i >= 50:
            learner.learn()
    assert learner.updates >= 900
    for n, (obs, best) in probes.items():
        after = np.abs(learner.predict(obs) - best).mean()
        assert after < 0.7 * before[n], f"neuroticism {n}: {before[n]:.3f} -> {after:.3f}"
    # and the two types are told apart: the anxious get fewer steps and more of them on the GPU
    anxious, calm = (learner.predict(probes[n][0]).mean(axis=0) for n in (0.9, 0.1))
    assert anxious[0] < calm[0] - 0.4 and anxious[1] > calm[1] + 0.3


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
