"""Baseline policies: the right shape, in [0, 1], reproducible."""

from __future__ import annotations

import math

import numpy as np
import pytest

from agents.base_station import ACTION_FEATURES, OBS_FEATURES
from agents.request import ImageRequest
from policies.heuristics import FixedPolicy, GreedyPolicy, OptimumPolicy, RandomPolicy
from tests.shipped import merged, shipped
from world.city import CityBlock
from world.config import ScenarioConfig
from world.feedback_model import FEATURE_NAMES, LearnedFeedback
from world.radio import shannon_rate_bps


def obs(n: int) -> np.ndarray:
    return np.random.default_rng(n).normal(size=(n, len(OBS_FEATURES)))


@pytest.mark.parametrize("n", [0, 1, 7])
def test_fixed_policy_repeats_its_action(n: int) -> None:
    action = FixedPolicy(steps=0.25, server_share=0.5, power=0.75).predict(obs(n))
    assert action.shape == (n, len(ACTION_FEATURES)) == (n, 3)
    assert np.array_equal(action, np.tile([0.25, 0.5, 0.75], (n, 1)))


def test_fixed_policy_default_is_most_steps_on_gpu_at_most_power() -> None:
    action = FixedPolicy().predict(obs(4), deterministic=False)
    assert np.array_equal(action, np.ones((4, 3)))


def test_fixed_policy_rows_are_independent_copies() -> None:
    policy = FixedPolicy(steps=0.5)
    first = policy.predict(obs(3))
    first[0, 0] = 0.9
    assert policy.predict(obs(3))[0, 0] == 0.5


@pytest.mark.parametrize("field", ["steps", "server_share", "power"])
@pytest.mark.parametrize("value", [-0.1, 1.1, math.nan])
def test_fixed_policy_refuses_out_of_range(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        FixedPolicy(**{field: value})


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_fixed_policy_accepts_the_bounds(value: float) -> None:
    assert np.all(FixedPolicy(value, value, value).predict(obs(2)) == value)


def test_random_policy_shape_and_range() -> None:
    action = RandomPolicy(np.random.default_rng(0)).predict(obs(5000))
    assert action.shape == (5000, 3)
    assert np.all((action >= 0) & (action <= 1))
    assert action.mean(axis=0) == pytest.approx([0.5] * 3, abs=0.02)
    assert action.std(axis=0) == pytest.approx([math.sqrt(1 / 12)] * 3, abs=0.01)
    assert RandomPolicy(np.random.default_rng(0)).predict(obs(0)).shape == (0, 3)


def test_random_policy_reproducible_with_seed() -> None:
    a, b, c = (RandomPolicy(np.random.default_rng(s)) for s in (7, 7, 8))
    first_a, first_b = a.predict(obs(10)), b.predict(obs(10))
    np.testing.assert_array_equal(first_a, first_b)
    np.testing.assert_array_equal(a.predict(obs(4)), b.predict(obs(4)))
    assert not np.array_equal(first_a, c.predict(obs(10)))
    assert not np.array_equal(first_a[:4], a.predict(obs(4)))     # the stream moves on


# --- GreedyPolicy -------------------------------------------------------------------------------------------

def slot(n: int, seed: int = 0) -> np.ndarray:
    """Observation rows of one slot with channel gains as the shipped block sees them (-140 to -80 dB)."""
    rng = np.random.default_rng(seed)
    rows = np.zeros((n, len(OBS_FEATURES)))
    rows[:, OBS_FEATURES.index("gain_db")] = rng.uniform(-140.0, -80.0, n)
    rows[:, OBS_FEATURES.index("distance_m")] = rng.uniform(1.0, 280.0, n)
    rows[:, OBS_FEATURES.index("age_s")] = rng.uniform(0.0, 1.0, n)
    rows[:, OBS_FEATURES.index("user_qoe")] = 0.5
    rows[:, OBS_FEATURES.index("slot_requests")] = n
    return rows


def decoded(cfg: ScenarioConfig, action: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Total steps and power (W) the base station makes of action rows."""
    bs, radio = cfg.base_station, cfg.radio
    steps = np.round(bs.min_steps + action[:, 0] * (bs.max_steps - bs.min_steps)).astype(int)
    return steps, radio.min_power_w + action[:, 2] * (radio.max_power_w - radio.min_power_w)


def estimated_energy_j(cfg: ScenarioConfig, steps: np.ndarray, power_w: np.ndarray, gain_db: np.ndarray) -> np.ndarray:
    """GPU steps at batch 1 plus the image's transmission: T e_step + P payload_bits / rate_bps(P, g), J."""
    rate = shannon_rate_bps(power_w, 10.0 ** (gain_db / 10.0), cfg.radio)
    return steps * cfg.gpu_servers[0].step_energy_j + power_w * cfg.radio.payload_bits / rate


def share_j(cfg: ScenarioConfig) -> float:
    expected = cfg.users.count * cfg.users.request_rate_per_s * cfg.slot_s
    return cfg.base_station.energy_budget_j_per_slot / max(1.0, expected)


@pytest.fixture(scope="module")
def cfg() -> ScenarioConfig:
    return shipped({"feedback": {"mode": "silent"}})


@pytest.mark.parametrize("n", [0, 1, 8])
def test_greedy_shape_range_and_all_steps_on_the_gpu(cfg: ScenarioConfig, n: int) -> None:
    action = GreedyPolicy(cfg).predict(slot(n))
    assert action.shape == (n, len(ACTION_FEATURES))
    assert np.all((action >= 0) & (action <= 1))
    assert np.all(action[:, 1] == 1.0)


@pytest.mark.parametrize("seed", range(5))
def test_greedy_better_channel_gets_at_least_as_many_steps_and_power(cfg: ScenarioConfig, seed: int) -> None:
    rows = slot(8, seed)
    rows[0, OBS_FEATURES.index("gain_db")] = -200.0       # a deep fade: its radio energy alone nears the share
    action = GreedyPolicy(cfg).predict(rows)
    steps, power = decoded(cfg, action)
    gain = rows[:, OBS_FEATURES.index("gain_db")]
    for i in range(8):
        for j in range(8):
            if gain[i] > gain[j]:
                assert steps[i] >= steps[j] and power[i] >= power[j], (i, j, steps, power)
    assert power[np.argmax(gain)] == cfg.radio.max_power_w
    assert power[np.argmin(gain)] < power[np.argmax(gain)]
    assert steps[np.argmin(gain)] < steps[np.argmax(gain)]


@pytest.mark.parametrize("seed", range(5))
def test_greedy_energy_fits_the_share_or_steps_are_the_least(cfg: ScenarioConfig, seed: int) -> None:
    rows = slot(6, seed)
    rows[0, OBS_FEATURES.index("gain_db")] = -200.0
    action = GreedyPolicy(cfg).predict(rows)
    steps, power = decoded(cfg, action)
    gain = rows[:, OBS_FEATURES.index("gain_db")]
    energy = estimated_energy_j(cfg, steps, power, gain)
    share = share_j(cfg)
    assert np.all((energy <= share * (1 + 1e-9)) | (steps == cfg.base_station.min_steps)), (energy, steps)
    assert steps[0] == cfg.base_station.min_steps
    # the best channel wants max_steps, which its share (300 J at 9 J a step) cannot pay: it gets all it can
    best = int(np.argmax(gain))
    assert steps[best] < cfg.base_station.max_steps
    more = estimated_energy_j(cfg, steps[best:best + 1] + 1, power[best:best + 1], gain[best:best + 1])
    assert more[0] > share


def test_greedy_holds_a_worse_channel_to_the_steps_of_a_better_one() -> None:
    """The better channel's full power costs 0.198 J of radio, the worse one's 0.55 W 0.115 J: of a 180.15 J
    share that leaves floor(179.95 / 9) = 19 GPU steps to the better and 20 to the worse, which gets 19."""
    tight = shipped({"feedback": {"mode": "silent"}, "base_station": {"energy_budget_j_per_slot": 180.15}})
    rows = slot(2)
    rows[:, OBS_FEATURES.index("gain_db")] = [-90.0, -91.0]
    steps, power = decoded(tight, GreedyPolicy(tight).predict(rows))
    assert power.tolist() == pytest.approx([1.0, 0.55])
    energy = estimated_energy_j(tight, np.array([19, 20]), power, rows[:, OBS_FEATURES.index("gain_db")])
    assert energy[0] > 180.15 - 9.0 and energy[1] <= 180.15        # what each share alone would pay for
    assert steps.tolist() == [19, 19]


def test_greedy_with_a_huge_budget_gives_max_steps_and_ranks_the_rest(cfg: ScenarioConfig) -> None:
    rich = shipped({"feedback": {"mode": "silent"}, "base_station": {"energy_budget_j_per_slot": 1e9}})
    policy = GreedyPolicy(rich)
    np.testing.assert_array_equal(policy.predict(slot(1)), [[1.0, 1.0, 1.0]])
    rows = slot(4, 3)
    action = policy.predict(rows)
    order = np.argsort(rows[:, OBS_FEATURES.index("gain_db")])      # worst channel first
    steps, _ = decoded(rich, action[order])
    assert steps.tolist() == [round(5 + q * 45) for q in (0.25, 0.5, 0.75, 1.0)]     # T_min + q (T_max - T_min)
    np.testing.assert_allclose(action[order, 2], [0.25, 0.5, 0.75, 1.0])


def test_greedy_is_deterministic_and_follows_the_rows(cfg: ScenarioConfig) -> None:
    policy = GreedyPolicy(cfg)
    rows = slot(7, 11)
    first = policy.predict(rows)
    np.testing.assert_array_equal(first, policy.predict(rows, deterministic=False))
    perm = np.random.default_rng(1).permutation(7)
    np.testing.assert_array_equal(policy.predict(rows[perm]), first[perm])


def test_greedy_refuses_malformed_observations(cfg: ScenarioConfig) -> None:
    with pytest.raises(ValueError, match="shape"):
        GreedyPolicy(cfg).predict(np.zeros((3, len(OBS_FEATURES) + 1)))
    rows = slot(2)
    rows[1, 0] = math.nan
    with pytest.raises(ValueError, match="NaN"):
        GreedyPolicy(cfg).predict(rows)


# --- OptimumPolicy ------------------------------------------------------------------------------------------

def hand_made_weights(intercept: float = 1.0, **terms: float) -> np.ndarray:
    """Weights of the learned persona-feedback model by feature name (`world.feedback_model.FEATURE_NAMES`:
    'look', 'neuroticism', 'neuroticism*wait_a_bit_long', ...)."""
    w = np.zeros(len(FEATURE_NAMES))
    w[0] = intercept
    for name, value in terms.items():
        w[FEATURE_NAMES.index(name)] = value
    return w


# rewards a sharp, faithful image, penalises a long wait, and neurotic users more so (rating points)
WEIGHTS = hand_made_weights(1.0, look=2.0, match=1.0, wait_a_bit_long=-0.5, wait_very_long=-1.0,
                            **{"neuroticism*wait_a_bit_long": -1.0, "neuroticism*wait_very_long": -1.0})


def learned(weights: np.ndarray = WEIGHTS) -> LearnedFeedback:
    return LearnedFeedback(None, np.random.default_rng(0), 0.0, 30, start=weights)


def block(changes: dict | None = None, seed: int = 3) -> CityBlock:
    """A silent block whose users ask nothing by themselves (tests issue the requests)."""
    cfg = shipped({"feedback": {"mode": "silent"}, "users": {"request_rate_per_s": 0.0}})
    return CityBlock(shipped(merged(cfg.model_dump(), changes or {})) if changes else cfg, FixedPolicy(), seed=seed)


def asked(model: CityBlock, users: int) -> list[ImageRequest]:
    """A new slot's channel, and one request from each of the first `users` users."""
    model.sense()
    return [u.request_image() for u in model.user_list[:users]]


def test_optimum_refuses_bad_grids_and_an_unfitted_model(cfg: ScenarioConfig) -> None:
    with pytest.raises(ValueError, match="steps_grid"):
        OptimumPolicy(cfg, learned(), steps_grid=1)
    with pytest.raises(ValueError, match="shares"):
        OptimumPolicy(cfg, learned(), shares=(1.0, 1.5))
    unfitted = LearnedFeedback(None, np.random.default_rng(0), 0.0, 30, start=WEIGHTS)
    unfitted.weights = None
    with pytest.raises(ValueError, match="fitted"):
        OptimumPolicy(cfg, unfitted)


def test_optimum_plans_from_the_requests_not_from_rows_alone() -> None:
    model = block()
    optimum = OptimumPolicy(model.cfg, learned())
    requests = asked(model, 3)
    rows = model.base_station.observe(requests)
    with pytest.raises(ValueError, match="one row per request"):
        optimum.plan(model.base_station, requests, rows[:2])
    with pytest.raises(TypeError, match="plan"):
        optimum.predict(rows)


def test_optimum_beats_fixed_and_random_grid_actions_on_its_own_predictor() -> None:
    model = block({"base_station": {"energy_penalty": 10.0}})
    optimum = OptimumPolicy(model.cfg, learned())
    requests = asked(model, 4)
    action = optimum.plan(model.base_station, requests, model.base_station.observe(requests))
    assert action.shape == (4, 3) and np.all((action >= 0) & (action <= 1))
    fixed = FixedPolicy().predict(action)
    # the search is exhaustive over its grid: any action drawn from the grid's values is no better
    rng = np.random.default_rng(5)
    grid = [np.linspace(0, 1, 10), np.array([1.0, 0.8, 0.5]), np.linspace(0, 1, 5)]
    for r, a, f in zip(requests, action, fixed):
        best = optimum.predicted_reward(model.base_station, r, a)
        assert best >= optimum.predicted_reward(model.base_station, r, f)
        for _ in range(20):
            other = np.array([rng.choice(values) for values in grid])
            assert best >= optimum.predicted_reward(model.base_station, r, other), other
    # with ten times the penalty over budget, (1, 1, 1) at 450 J is clearly worse than what was chosen
    assert all(optimum.predicted_reward(model.base_station, r, a) > optimum.predicted_reward(model.base_station, r, f) + 0.5
               for r, a, f in zip(requests, action, fixed))


def test_optimum_buys_the_sharp_look_within_the_share_when_the_penalty_is_steep() -> None:
    # a user for whom only the look counts: "sharp" from about 35 steps with the shipped quality table
    keen = hand_made_weights(1.0, look=4.0)      # "sharp" rates 4, "clean but a bit grainy" 3
    steep = block({"base_station": {"energy_penalty": 10.0, "energy_budget_j_per_slot": 300.0}})
    free = block({"base_station": {"energy_budget_j_per_slot": 1e9, "device_energy_weight": 0.0}})
    for model in (steep, free):
        optimum = OptimumPolicy(model.cfg, learned(keen))
        requests = asked(model, 3)
        action = optimum.plan(model.base_station, requests, model.base_station.observe(requests))
        chosen = [optimum.forecast(model.base_station, r, a) for r, a in zip(requests, action)]
        assert all(c.sharpness >= 0.85 for c in chosen), [c.steps for c in chosen]     # the look it pays for
        if model is steep:      # 300 J pays 33 GPU steps at 9 J: the rest of the 35 or more go to the phone
            assert all(c.energy_j <= share_j(model.cfg) < c.steps * 9.0 for c in chosen)
            assert all(c.device_steps > 0 and c.device_energy_j == c.device_steps * model.cfg.phone.step_energy_j
                       for c in chosen)
        else:                   # energy costs nothing: no reason to leave the GPU
            assert all(c.device_steps == 0 for c in chosen)


def test_optimum_finer_grid_never_does_worse() -> None:
    model = block({"base_station": {"energy_penalty": 10.0}})
    coarse = OptimumPolicy(model.cfg, learned())
    fine = OptimumPolicy(model.cfg, learned(), steps_grid=46, power_grid=9, shares=(1.0, 0.8, 0.5, 0.0))
    requests = asked(model, 2)
    station = model.base_station
    rows = station.observe(requests)
    for r, a, b in zip(requests, coarse.plan(station, requests, rows), fine.plan(station, requests, rows)):
        assert fine.predicted_reward(station, r, b) >= coarse.predicted_reward(station, r, a) - 1e-12


def test_optimum_persona_changes_the_choice() -> None:
    """A user who hates waiting gets fewer steps than one who does not mind (the policy reads the persona)."""
    # 200 J pays 22 GPU steps: the sharp look (about 35 steps or more) needs the phone, which takes its time
    model = block({"base_station": {"energy_budget_j_per_slot": 200.0, "device_energy_weight": 0.001},
                   "users": {"population": {"personas": [
        {"name": "Calm", "openness": 0.5, "conscientiousness": 0.5, "extraversion": 0.5, "agreeableness": 0.5,
         "neuroticism": 0.0},
        {"name": "Edgy", "openness": 0.5, "conscientiousness": 0.5, "extraversion": 0.5, "agreeableness": 0.5,
         "neuroticism": 1.0}]}}})
    weights = hand_made_weights(1.0, look=4.0, **{"neuroticism*wait_a_bit_long": -2.0,
                                                  "neuroticism*wait_very_long": -2.0})
    optimum = OptimumPolicy(model.cfg, learned(weights), steps_grid=46)
    calm, edgy = asked(model, 2)
    action = optimum.plan(model.base_station, [calm, edgy], model.base_station.observe([calm, edgy]))
    assert action[0, 0] > action[1, 0]


def test_optimum_forecast_waits_for_the_gpu_backlog_and_the_age() -> None:
    model = block()
    optimum = OptimumPolicy(model.cfg, learned())
    model.base_station.max_per_slot = 1         # the first request is allocated, the second waits a slot
    first, second = asked(model, 2)
    on_gpu, on_phone = np.array([0.5, 1.0, 1.0]), np.array([0.5, 0.0, 1.0])
    station = model.base_station
    idle = optimum.forecast(station, second, on_gpu), optimum.forecast(station, second, on_phone)
    model.serve()                                # 50 GPU steps of the first request: 1.5 s, still queued at 1 s
    assert first.server_steps == 50 and model.gpu_servers[0].queued_steps == 50
    busy = optimum.forecast(station, second, on_gpu), optimum.forecast(station, second, on_phone)
    step_s = model.cfg.gpu_servers[0].step_latency_s
    assert busy[0].wait_s == pytest.approx(idle[0].wait_s + model.cfg.slot_s + 50 * step_s)
    assert busy[1].wait_s == pytest.approx(idle[1].wait_s + model.cfg.slot_s)      # the phone does not queue


@pytest.mark.parametrize("action", [(0.4, 1.0, 1.0), (0.4, 0.5, 0.3), (0.1, 0.0, 0.6)],
                         ids=["all-gpu", "split", "all-phone"])
def test_optimum_forecast_matches_the_simulator_for_a_lone_request(action: tuple[float, float, float]) -> None:
    """Alone on an idle GPU, within the slot's channel, the forecast is what the block then does."""
    model = block()
    optimum = OptimumPolicy(model.cfg, learned())
    (request,) = asked(model, 1)
    expected = optimum.forecast(model.base_station, request, np.array(action))
    model.base_station.policy = FixedPolicy(*action)
    for _ in range(15):
        model.serve()
        if not math.isnan(request.delivered_s):
            break
        model.sense()
    assert (request.server_steps, request.device_steps) == (expected.server_steps, expected.device_steps)
    assert request.power_w == pytest.approx(expected.power_w)
    assert request.wait_s == pytest.approx(expected.wait_s, rel=1e-9)
    assert (request.sharpness, request.fidelity) == pytest.approx((expected.sharpness, expected.fidelity))
    assert request.energy_j == pytest.approx(expected.energy_j, rel=1e-9)


def test_optimum_allocates_inside_the_block() -> None:
    model = block()
    optimum = OptimumPolicy(model.cfg, learned())
    model.base_station.policy = optimum
    requests = asked(model, 2)
    chosen = optimum.plan(model.base_station, requests, model.base_station.observe(requests))
    model.serve()
    for r, a in zip(requests, chosen):
        np.testing.assert_array_equal(r.decision[1], a)
