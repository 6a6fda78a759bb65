"""The environment as RL libraries expect it: checkers, units, seeding, the per-request view and SB3 on it."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from agents.base_station import ACTION_FEATURES, OBS_FEATURES
from policies.env import EPISODE_METRICS, AllocationEnv, episode_seed
from policies.library import LibraryEnv, RequestView, scale_rows, to_unit
from tests.policies.test_env import frozen_feedback
from tests.shipped import shipped

sb3 = pytest.importorskip("stable_baselines3", reason="the sb3 extra: pip install -e '.[sb3]'")


def config(changes: dict | None = None):
    return shipped({"slots": 40, "feedback": {"mode": "learned", "learned_live_share": 0.0}, **(changes or {})})


def test_gymnasium_and_sb3_checkers_pass_without_warnings() -> None:
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(LibraryEnv(config(), frozen_feedback()), skip_render_check=True)
        sb3_check_env(LibraryEnv(config(), frozen_feedback()), warn=True)


def test_spaces_are_flat_scaled_and_symmetric() -> None:
    env = LibraryEnv(config(), frozen_feedback(), max_requests=5)
    width = len(OBS_FEATURES) + 1
    assert env.observation_space.shape == (5 * width,)
    assert env.action_space.shape == (5 * len(ACTION_FEATURES),)
    assert env.action_space.low.min() == -1.0 and env.action_space.high.max() == 1.0
    masks = env.observation_space.high.reshape(5, width)[:, -1]
    assert np.all(masks == 1.0)


def test_observations_are_the_scaled_rows_and_actions_map_to_the_environments_box() -> None:
    cfg = config({"users": {"request_rate_per_s": 0.2}})
    raw, lib = AllocationEnv(cfg, frozen_feedback()), LibraryEnv(cfg, frozen_feedback())
    raw_obs, _ = raw.reset(seed=5)
    lib_obs, _ = lib.reset(seed=5)
    rng = np.random.default_rng(0)
    scaled_seen = False
    for _ in range(15):
        rows = lib_obs.reshape(raw_obs.shape)
        filled = raw_obs[:, -1] > 0
        np.testing.assert_array_equal(rows[:, -1], raw_obs[:, -1])
        np.testing.assert_allclose(rows[filled, :-1], scale_rows(raw_obs[filled, :-1]), rtol=1e-6)
        assert np.all(rows[~filled] == 0)
        scaled_seen |= bool(filled.any()) and float(np.abs(rows[filled, 0]).max()) < 10   # gain near -90 dB -> near 0
        action = rng.uniform(-1, 1, size=lib.action_space.shape).astype(np.float32)
        raw_obs, raw_r, *_ = raw.step(to_unit(action.reshape(raw.action_space.shape)))
        lib_obs, lib_r, *_ = lib.step(action)
        assert lib_r == pytest.approx(raw_r)
    assert scaled_seen
    decided = [r.decision[1] for r in lib.model.completed + lib.model.delivered if r.decision is not None]
    assert all(np.all((a >= 0) & (a <= 1)) for a in decided)


def test_action_minus_one_is_the_low_end_of_every_decision() -> None:
    env = LibraryEnv(config({"users": {"request_rate_per_s": 0.2}}), frozen_feedback())
    env.reset(seed=1)
    lim = env.model.base_station.limits
    decided = []
    for _ in range(10):
        before = list(env.model.base_station.pending())
        env.step(np.full(env.action_space.shape, -1.0, dtype=np.float32))
        decided += before
    assert decided, "no request in 10 slots at 0.2 requests per user per second"
    for r in decided:
        assert r.server_steps + r.device_steps == lim.min_steps and r.server_steps == 0
        assert r.power_w == pytest.approx(lim.min_power_w)


def test_reset_without_a_seed_walks_the_benchmarks_episode_blocks() -> None:
    cfg = config()
    lib = LibraryEnv(cfg, frozen_feedback(), seed=3)
    raw = AllocationEnv(cfg, frozen_feedback())
    for k in range(3):
        lib.reset()
        raw.reset(seed=episode_seed(3, k))
        assert [u.persona.traits for u in lib.model.users] == [u.persona.traits for u in raw.model.users]
        np.testing.assert_array_equal(lib.model.radio.distance_m, raw.model.radio.distance_m)
    assert lib.episode == 3


def test_request_view_hands_over_every_rated_request_with_the_slot_rewards() -> None:
    env = AllocationEnv(config({"users": {"request_rate_per_s": 0.1}}), frozen_feedback())
    view = RequestView(env)
    got = []
    row = view.run_episode(lambda rows: np.zeros((len(rows), 3)), seed=2, learn=got.extend)
    assert set(row) == set(EPISODE_METRICS)
    assert len(got) == row["requests_rated"] > 10
    assert sum(t.reward for t in got) == pytest.approx(row["reward_per_slot"] * row["slots"], abs=1e-6)
    for t in got:
        assert t.obs.shape == (len(OBS_FEATURES),) and t.obs.dtype == np.float32
        assert view.observation_space.contains(t.obs) and view.action_space.contains(t.action)
        np.testing.assert_allclose(t.action, 0.0, atol=1e-6)      # 0 in [-1, 1]: the middle of each decision


def test_project_learners_and_sb3_meet_the_same_blocks(tmp_path: Path) -> None:
    """Before learning starts both act uniformly at random from the same stream: with the same blocks their
    episodes must be identical, row for row."""
    from policies.sb3 import SB3Learner
    from scenarios.train_options import TrainOptions
    from scenarios.training import train, training_env
    from tests.shipped import CITY_BLOCK

    path = tmp_path / "block.yaml"
    path.write_text(CITY_BLOCK.read_text().replace("slots: 120 ", "slots: 30 "))
    opts = TrainOptions(policy="ddpg", episodes=3, seed=4, feedback="frozen", learning_starts=10_000)
    ours = train(path, opts, tmp_path / "run")
    env, close = training_env(path, opts.seed, "frozen")
    view = RequestView(env)
    agent = SB3Learner("td3", view, seed=opts.seed, learning_starts=10_000)
    theirs = [view.run_episode(agent.act, episode_seed(opts.seed, k), agent.learn) for k in range(3)]
    close()
    assert len({r["requests_rated"] for r in theirs}) > 1, "three episodes on one block"
    for a, b in zip(ours, theirs):
        for key in EPISODE_METRICS:
            assert a[key] == pytest.approx(b[key], nan_ok=True), key


def test_a_few_hundred_sb3_steps_move_toward_the_gpu() -> None:
    """On a quiet block the GPU is idle: every step on the phone costs battery (device_energy_weight) and
    a 0.8 s wait, so the best server share is 1 (+1 in [-1, 1]). TD3 on the per-request view must move
    its deterministic share toward it within a few hundred rated requests."""
    from policies.sb3 import SB3Learner

    env = AllocationEnv(config({"slots": 60, "users": {"count": 10, "request_rate_per_s": 0.1}}), frozen_feedback())
    view = RequestView(env)
    agent = SB3Learner("td3", view, seed=0, learning_starts=64, batch_size=64, updates_per_request=2)
    probe = []
    view.run_episode(lambda rows: (probe.append(rows), np.zeros((len(rows), 3)))[1], seed=episode_seed(99, 0))
    probe = np.concatenate(probe)
    agent.exploring = False
    before = agent.act(probe)[:, 1].mean()
    agent.exploring = True
    episode = 0
    while agent.transitions < 300:
        view.run_episode(agent.act, episode_seed(0, episode), agent.learn)
        episode += 1
    agent.exploring = False
    after = agent.act(probe)[:, 1].mean()
    assert agent.updates > 300
    assert after > before + 0.3 and after > 0.5, (before, after)
