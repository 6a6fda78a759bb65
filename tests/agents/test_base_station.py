"""The base station: actions decode to steps, split and power within bounds; bad actions fail loudly."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from agents.base_station import ACTION_FEATURES, OBS_FEATURES, TRAIT_COLUMNS
from agents.request import ImageRequest
from policies.heuristics import FixedPolicy, RandomPolicy
from tests.shipped import shipped
from world.city import CityBlock
from world.config import ScenarioConfig

BASE = shipped()          # min_steps 5, max_steps 50, power 0.1-1.0 W
LIM = BASE.base_station


class Recording:
    """Wraps a real policy and keeps what it saw."""

    def __init__(self, policy: Any) -> None:
        self.policy = policy
        self.seen: list[np.ndarray] = []

    def predict(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        self.seen.append(obs.copy())
        return self.policy.predict(obs, deterministic)


class Returns:
    """A policy that answers with a fixed array, whatever it is asked."""

    def __init__(self, action: Any) -> None:
        self.action = action

    def predict(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        return np.asarray(self.action, dtype=float)


def ask(model: CityBlock, n: int) -> list[ImageRequest]:
    """n users ask for an image right now."""
    return [model.user_list[i % len(model.user_list)].request_image() for i in range(n)]


def two_servers() -> ScenarioConfig:
    first = BASE.gpu_servers[0].model_dump()
    return shipped({"gpu_servers": [{**first, "name": "edge-0"}, {**first, "name": "edge-1"}]})


def test_action_decodes_by_hand() -> None:
    model = CityBlock(BASE, FixedPolicy(steps=0.2, server_share=0.5, power=0.2))
    requests = ask(model, 3)
    assert model.base_station.allocate() == requests
    for r in requests:
        # steps 5 + 0.2 * 45 = 14; half on the GPU; power 0.1 + 0.2 * 0.9 = 0.28 W
        assert (r.steps, r.server_steps, r.device_steps) == (14, 7, 7)
        assert r.power_w == pytest.approx(0.28)
        assert r.allocated_s == 0.0
        assert r.server == "edge-0" and r.state.value == "queued"
    assert model.base_station.inbox == []
    assert model.gpu_servers[0].queued_steps == 21


@pytest.mark.parametrize(("action", "steps", "server", "power"), [
    ((0.0, 1.0, 0.0), 5, 5, 0.1),
    ((1.0, 1.0, 1.0), 50, 50, 1.0),
    ((1.0, 0.0, 1.0), 50, 0, 1.0),
    ((0.0, 0.0, 0.5), 5, 0, 0.55),
    ((0.6, 0.25, 1.0), 32, 8, 1.0),          # 5 + 27 = 32 steps, a quarter on the GPU
])
def test_action_corners(action: tuple[float, float, float], steps: int, server: int, power: float) -> None:
    model = CityBlock(BASE, FixedPolicy(*action))
    (r,) = ask(model, 1)
    model.base_station.allocate()
    assert (r.steps, r.server_steps, r.device_steps) == (steps, server, steps - server)
    assert r.power_w == pytest.approx(power)


def test_random_actions_stay_within_bounds() -> None:
    model = CityBlock(two_servers(), RandomPolicy(np.random.default_rng(0)))
    requests = ask(model, 400)
    model.base_station.allocate()
    steps = np.array([r.steps for r in requests])
    assert steps.min() >= LIM.min_steps and steps.max() <= LIM.max_steps
    assert steps.min() < 10 and steps.max() > 45            # the whole range is reachable
    for r in requests:
        assert 0 <= r.server_steps <= r.steps and r.device_steps == r.steps - r.server_steps
        assert BASE.radio.min_power_w <= r.power_w <= BASE.radio.max_power_w
        assert (r.server != "") == (r.server_steps > 0)
    assert any(r.server_steps == 0 for r in requests)
    assert any(r.device_steps == 0 for r in requests)


def test_observation_rows() -> None:
    spy = Recording(FixedPolicy())
    model = CityBlock(BASE, spy)
    while not spy.seen:
        model.step()
    obs = spy.seen[0]
    assert obs.shape == (len(obs), len(OBS_FEATURES)) and len(OBS_FEATURES) == 13
    assert np.all(np.isfinite(obs))
    assert np.all((obs[:, 1] >= 0) & (obs[:, 1] <= math.hypot(200, 200)))
    assert np.all(obs[:, 2] == 0.0)                          # nothing queued before the first allocation
    assert np.all((obs[:, 3] > 0) & (obs[:, 3] <= BASE.slot_s))   # issued during the last slot
    assert np.all(obs[:, 4] == 0.5)                          # no user has answered yet
    assert np.all(obs[:, 5] == len(obs))                     # requests decided together in this slot
    # a fresh request now: its row is the radio's view of its user
    user = model.user_list[3]
    r = user.request_image()
    row = model.base_station.observe([r])[0]
    assert row[0] == pytest.approx(10 * math.log10(model.radio.gain[user.index]))
    assert row[1] == pytest.approx(model.radio.distance_m[user.index])
    assert row[3] == 0.0 and row[5] == 1
    model.radio.redraw(model.positions_m())
    assert row[1] == pytest.approx(math.dist(user.pos_m, BASE.base_station.position_m))


def test_observation_backlog_and_age() -> None:
    model = CityBlock(BASE, FixedPolicy())
    old = ask(model, 2)
    model.env.run(until=0.5)
    assert model.base_station.observe(old)[:, 3] == pytest.approx([0.5, 0.5])
    model.base_station.allocate()            # 2 x 50 steps queued on the only GPU
    row = model.base_station.observe(ask(model, 1))[0]
    assert row[2] == pytest.approx(100 * BASE.gpu_servers[0].step_latency_s)


def test_requests_join_the_least_loaded_gpu() -> None:
    model = CityBlock(two_servers(), FixedPolicy())
    requests = ask(model, 10)
    model.base_station.allocate()
    servers = [r.server for r in requests]
    assert servers.count("edge-0") == servers.count("edge-1") == 5
    a, b = model.gpu_servers
    assert a.queued_steps == b.queued_steps == 250


def test_empty_inbox_asks_the_policy_nothing() -> None:
    spy = Recording(FixedPolicy())
    model = CityBlock(BASE, spy)
    assert model.base_station.allocate() == []
    assert spy.seen == []


@pytest.mark.parametrize("bad", [
    np.full((3, 2), 0.5),            # too few action columns
    np.full((4, 3), 0.5),            # one row too many
    np.full(3, 0.5),                 # flat
    np.full((3, 3, 1), 0.5),         # extra axis
    [[0.5, 0.5, 1.5]] * 3,           # power above 1
    [[-0.1, 0.5, 0.5]] * 3,          # steps below 0
    [[0.5, math.nan, 0.5]] * 3,      # NaN
])
def test_bad_action_raises(bad: Any) -> None:
    model = CityBlock(BASE, Returns(bad))
    ask(model, 3)
    with pytest.raises(ValueError, match=r"expected shape \(3, 3\) in \[0, 1\]"):
        model.base_station.allocate()


def test_empty_action_raises_the_helpful_error() -> None:
    model = CityBlock(BASE, Returns(np.zeros((0, len(ACTION_FEATURES)))))
    ask(model, 2)
    with pytest.raises(ValueError, match=r"expected shape \(2, 3\)"):
        model.base_station.allocate()


def test_phone_only_requests_skip_the_gpu() -> None:
    # 5 + 0.2 * 45 = 14 steps, none on the GPU: 14 * 0.8 s on the phone after the transfer
    model = CityBlock(BASE, FixedPolicy(steps=0.2, server_share=0.0, power=1.0))
    delivered: list[ImageRequest] = []
    device_energy = 0.0
    for _ in range(40):
        model.step()
        delivered += model.delivered
        device_energy += model.slot_metrics["device_energy_j"]
    assert len(delivered) > 5
    phone = BASE.phone
    for r in delivered:
        assert (r.server_steps, r.device_steps) == (0, 14)
        assert r.server == "" and r.batch_size == 0 and r.server_energy_j == 0.0
        assert math.isnan(r.started_s) and math.isnan(r.finished_s)
        assert r.device_energy_j == pytest.approx(14 * phone.step_energy_j)
        assert r.delivered_s == pytest.approx(r.allocated_s + r.tx_s + 14 * phone.step_latency_s)
    assert device_energy == pytest.approx(len(delivered) * 14 * phone.step_energy_j)
    server = model.gpu_servers[0]
    assert server.batches == 0 and server.energy_j == 0.0 and server.busy_s == 0.0
    assert (model.datacollector.get_model_vars_dataframe()["gpu_energy_j"] == 0).all()


def test_split_requests_finish_on_the_phone() -> None:
    model = CityBlock(BASE, FixedPolicy(steps=0.2, server_share=0.5, power=1.0))
    delivered: list[ImageRequest] = []
    for _ in range(40):
        model.step()
        delivered += model.delivered
    assert len(delivered) > 5
    for r in delivered:
        assert (r.server_steps, r.device_steps) == (7, 7)
        assert r.allocated_s <= r.started_s < r.finished_s
        assert r.delivered_s == pytest.approx(r.finished_s + r.tx_s + 7 * BASE.phone.step_latency_s)
        assert r.device_energy_j == pytest.approx(7 * BASE.phone.step_energy_j)
        assert r.server_energy_j > 0


def test_transmit_energy_is_accounted() -> None:
    model = CityBlock(BASE, FixedPolicy(power=0.5))
    delivered: list[ImageRequest] = []
    for _ in range(30):
        model.step()
        delivered += model.delivered
    assert delivered
    # every transfer that finished is in the total; some may have finished after their request was counted
    assert model.base_station.tx_energy_j >= sum(r.tx_energy_j for r in delivered) - 1e-12
    for r in delivered:
        assert r.power_w == pytest.approx(0.55)
        assert r.tx_energy_j == pytest.approx(0.55 * r.tx_s)


def column(name: str) -> int:
    return OBS_FEATURES.index(name)


def test_traits_are_the_asking_users() -> None:
    """Each row's trait columns are the Big Five of the user who asked, in TRAITS order."""
    model = CityBlock(BASE, FixedPolicy())
    requests = [model.user_list[i].request_image() for i in (3, 0, 7)]
    rows = model.base_station.observe(requests)
    for r, row in zip(requests, rows):
        traits = model.users_by_id[r.user_id].persona.traits.as_tuple()
        assert row[TRAIT_COLUMNS].tolist() == pytest.approx(list(traits))
    assert len({tuple(row[TRAIT_COLUMNS]) for row in rows}) == 3       # three users, three personalities


def test_traits_hidden_when_the_scenario_says_so() -> None:
    model = CityBlock(shipped({"base_station": {"observe_traits": False}}), FixedPolicy())
    rows = model.base_station.observe(ask(model, 4))
    assert np.all(rows[:, TRAIT_COLUMNS] == 0.5)
    assert rows.shape[1] == len(OBS_FEATURES)          # the layout stays: a base station that does not know


def test_similar_requests_follow_the_gpu_clusters() -> None:
    """Two wordings of one scene count each other; another scene stands alone; no sharing, no clusters."""
    model = CityBlock(BASE, FixedPolicy())
    requests = ask(model, 3)
    prompts = ("a red striped circle on a dotted blue background",
               "dotted blue backdrop with a red striped circle",
               "a white triangle on a wavy black background")
    for r, prompt in zip(requests, prompts):
        r.prompt = prompt
    assert model.base_station.observe(requests)[:, column("similar_requests")].tolist() == [2, 2, 1]
    alone = CityBlock(shipped({"imagegen": {"share": False}}), FixedPolicy())
    requests = ask(alone, 3)
    for r, prompt in zip(requests, prompts):
        r.prompt = prompt
    assert alone.base_station.observe(requests)[:, column("similar_requests")].tolist() == [1, 1, 1]


def test_gpu_waiting_counts_the_queue() -> None:
    model = CityBlock(BASE, FixedPolicy())
    server = model.gpu_servers[0]
    assert model.base_station.observe(ask(model, 1))[0, column("gpu_waiting")] == 0
    model.base_station.allocate()
    queued = ask(model, 5)
    server.submit(queued)           # five requests wait for the GPU (the clock has not run)
    rows = model.base_station.observe(ask(model, 2))
    assert rows[:, column("gpu_waiting")].tolist() == [len(server.waiting)] * 2 and len(server.waiting) >= 5
