"""The Gymnasium environment over CityBlock: interface, layout, reward and per-request outcomes."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from agents.base_station import ACTION_FEATURES, OBS_FEATURES
from policies.env import AllocationEnv
from tests.shipped import ROOT, shipped
from world.feedback_model import LearnedFeedback, load_fit

FIT = ROOT / "scenarios" / "feedback_fits" / "city_block.json"


def frozen_feedback() -> LearnedFeedback:
    """The shipped persona-feedback fit, frozen: every answer predicted, no LLM."""
    return LearnedFeedback(None, np.random.default_rng(0), 0.0, 30, start=load_fit(FIT))


def make_env(changes: dict | None = None, max_requests: int = 8) -> AllocationEnv:
    cfg = shipped({"slots": 40, "feedback": {"mode": "learned", "learned_live_share": 0.0}, **(changes or {})})
    return AllocationEnv(cfg, frozen_feedback(), max_requests)


def test_passes_gymnasium_env_checker() -> None:
    env = make_env()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*infinity.*")   # gains and queues have no natural bound
        check_env(env, skip_render_check=True)


def test_spaces_follow_the_documented_layout() -> None:
    env = make_env(max_requests=5)
    assert env.observation_space.shape == (5, len(OBS_FEATURES) + 1)
    assert env.action_space.shape == (5, len(ACTION_FEATURES))
    assert float(env.action_space.low.min()) == 0.0 and float(env.action_space.high.max()) == 1.0


def test_mask_marks_waiting_requests_and_rows_match_the_base_station() -> None:
    env = make_env({"users": {"request_rate_per_s": 0.5}}, max_requests=4)
    obs, _ = env.reset(seed=3)
    seen_full = False
    for _ in range(10):
        pending = env.model.base_station.pending()
        mask = obs[:, -1]
        assert mask.sum() == len(pending) <= 4
        assert np.all(obs[mask == 0] == 0)
        if pending:
            rows = env.model.base_station.observe(pending)
            np.testing.assert_allclose(obs[:len(pending), :-1], rows, rtol=1e-5)
        seen_full |= len(pending) == 4 and len(env.model.base_station.inbox) > 4
        obs, *_ = env.step(np.full(env.action_space.shape, 0.5, dtype=np.float32))
    assert seen_full, "at 0.5 requests per user per second some slots must hold more requests than rows"


def test_reward_is_total_qoe_minus_the_energy_penalty_and_the_phones_energy() -> None:
    env = make_env({"base_station": {"energy_budget_j_per_slot": 50.0, "energy_penalty": 2.0,
                                     "device_energy_weight": 0.01}})
    env.reset(seed=1)
    penalised = phones = False
    action = np.tile(np.array([1.0, 0.8, 1.0], dtype=np.float32), (8, 1))     # 40 GPU steps, 10 on the phone
    for _ in range(40):
        _, reward, terminated, truncated, info = env.step(action)
        expected = info["total_qoe"] - 2.0 * info["over_budget_j"] / 50.0 - 0.01 * info["device_energy_j"]
        if truncated:       # the last step also counts the answers the clock ran on for
            assert info["drain_slots"] > 0 and info["drain_rated"] > 0
            expected += (info["drain_qoe"] - 2.0 * info["drain_over_budget_j"] / 50.0
                         - 0.01 * info["drain_device_energy_j"])
        assert reward == pytest.approx(expected)
        penalised |= info["over_budget_j"] > 0
        phones |= info["device_energy_j"] > 0
        assert not terminated
    assert penalised and phones and truncated


def test_moving_steps_to_the_phone_costs_the_documented_battery_term() -> None:
    """Each phone step costs device_energy_weight x phone.step_energy_j of its request's reward."""
    env = make_env({"slots": 30, "base_station": {"device_energy_weight": 0.004}})
    env.reset(seed=6)
    action = np.tile(np.array([1.0, 0.6, 1.0], dtype=np.float32), (8, 1))    # 50 steps, 20 of them on the phone
    checked, done = 0, False
    while not done:
        _, _, _, done, _ = env.step(action)
        if done:        # the last step's outcomes also hold the drain's slots, whose requests are gone
            break
        rated = [r for r in env.model.completed if r.decision is not None and not np.isnan(r.qoe)]
        assert len(rated) == len(env.outcomes)
        for r, o in zip(rated, env.outcomes):
            assert r.device_steps == 20 and r.device_energy_j == pytest.approx(20 * env.cfg.phone.step_energy_j)
            # 0.004 QoE/J x 20 steps x 2 J = 0.16 of the request's reward, on top of its over-budget share
            assert o.reward == pytest.approx(r.qoe - r.energy_penalty - 0.16)
            checked += 1
    assert checked > 0


def test_outcomes_carry_the_decision_and_its_reward_share() -> None:
    env = make_env({"slots": 60})
    env.reset(seed=2)
    outcomes = []
    action = np.tile(np.array([0.3, 1.0, 0.8], dtype=np.float32), (8, 1))
    done = False
    while not done:
        _, _, _, done, _ = env.step(action)
        outcomes += env.outcomes
    assert outcomes, "a minute of the block rates some requests"
    for o in outcomes:
        np.testing.assert_allclose(o.action, [0.3, 1.0, 0.8], rtol=1e-6)
        assert o.obs.shape == (len(OBS_FEATURES),)
        assert 0.0 <= o.qoe <= 1.0 and o.reward <= o.qoe and o.energy_j > 0


def test_penalty_shares_add_up_to_the_slot_penalties() -> None:
    env = make_env({"slots": 1000, "users": {"request_rate_per_s": 0.1},
                    "base_station": {"energy_budget_j_per_slot": 200.0, "energy_penalty": 1.5}})
    env.reset(seed=4)
    slot_penalty = 0.0
    charged = {}
    for _ in range(80):
        _, reward, _, _, info = env.step(np.ones(env.action_space.shape, dtype=np.float32))
        slot_penalty += info["total_qoe"] - reward
        charged.update({r.request_id: r for r, _ in env.model.booked})
    assert slot_penalty > 1.0, "200 J per slot is too little for 50-step images at this rate"
    assert sum(r.energy_penalty for r in charged.values()) == pytest.approx(slot_penalty)


def test_the_last_step_waits_for_every_decided_request() -> None:
    env = make_env({"slots": 20})
    env.reset(seed=5)
    action = np.tile(np.array([1.0, 0.0, 0.5], dtype=np.float32), (8, 1))    # 50 phone steps: 40 s each
    decided = rated = 0
    done = False
    while not done:
        decided += len(env.model.base_station.pending())
        _, _, _, done, info = env.step(action)
        rated += len(env.outcomes)
    assert decided > 0 and rated == decided
    assert info["drain_slots"] >= 40


def test_same_seed_same_episode() -> None:
    rewards = []
    for _ in range(2):
        env = make_env()
        env.reset(seed=11)
        rng = np.random.default_rng(0)
        rewards.append([env.step(rng.uniform(size=env.action_space.shape).astype(np.float32))[1] for _ in range(30)])
    assert rewards[0] == rewards[1] and sum(r != 0 for r in rewards[0]) >= 3     # rated slots, the same twice


def test_step_refuses_non_finite_actions_and_runs_only_after_reset() -> None:
    env = make_env()
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(env.action_space.shape, dtype=np.float32))
    env.reset(seed=0)
    bad = np.zeros(env.action_space.shape, dtype=np.float32)
    bad[0, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        env.step(bad)
