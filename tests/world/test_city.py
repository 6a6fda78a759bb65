"""CityBlock end to end: the shipped scenario runs, requests flow, GPUs queue, runs reproduce."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import numpy as np
import pandas as pd
import pytest

from agents.request import ImageRequest
from policies.heuristics import FixedPolicy
from tests.shipped import shipped
from world.city import CityBlock
from world.compute import ProfiledCost
from world.config import ScenarioConfig

BASE = shipped()


def scenario(changes: dict[str, Any] | None = None, gpu: dict[str, Any] | None = None,
             servers: int = 1) -> ScenarioConfig:
    """The shipped scenario with some fields changed; `gpu` changes every GPU server."""
    first = BASE.gpu_servers[0].model_dump()
    servers_changed = [{**first, "name": f"edge-{k}", **(gpu or {})} for k in range(servers)]
    return shipped({**(changes or {}), "gpu_servers": servers_changed})


def run(model: CityBlock, slots: int) -> list[ImageRequest]:
    """Step the model; every request delivered meanwhile, in order."""
    delivered = []
    for _ in range(slots):
        model.step()
        delivered.extend(model.delivered)
    return delivered


def drain(model: CityBlock, horizon_s: float = 1000.0) -> list[ImageRequest]:
    """Run the clock on with no new allocations until all allocated work is delivered."""
    before = len(model.delivered)
    model.env.run(until=model.env.now + horizon_s)
    return model.delivered[before:]


def metrics(model: CityBlock) -> pd.DataFrame:
    return model.datacollector.get_model_vars_dataframe()


def assert_timeline(r: ImageRequest) -> None:
    assert r.issued_s <= r.allocated_s <= r.started_s <= r.finished_s <= r.delivered_s, r
    assert r.wait_s == r.delivered_s - r.issued_s


# --- smoke: the shipped scenario ---------------------------------------------------

def test_shipped_scenario_smoke() -> None:
    model = CityBlock(BASE, FixedPolicy())
    assert model.seed == 42
    delivered = run(model, 40)
    df = metrics(model)
    assert len(df) == 40
    assert list(df["slot"]) == list(range(1, 41))
    assert model.env.now == 40 * BASE.slot_s
    assert df["requests_issued"].sum() > 5
    assert len(delivered) > 5
    assert df["requests_delivered"].sum() == len(delivered)
    assert df["in_flight"].iloc[-1] == df["requests_issued"].sum() - len(delivered)
    names = {s.name for s in BASE.gpu_servers}
    for r in delivered:
        assert_timeline(r)
        assert r.state.value == "delivered"
        # FixedPolicy(): the most steps, all on the GPU, the most power
        assert (r.server_steps, r.device_steps, r.power_w) == (50, 0, BASE.radio.max_power_w)
        assert r.server in names and 1 <= r.batch_size <= BASE.gpu_servers[0].max_batch
        assert r.tx_s == pytest.approx(BASE.radio.payload_bits / r.rate_bps)
        assert r.tx_energy_j == pytest.approx(r.power_w * r.tx_s)
        assert r.delivered_s == pytest.approx(r.finished_s + r.tx_s)
        assert r.server_energy_j > 0 and r.device_energy_j == 0.0
        assert 0 < r.distance_m < 300
    assert sum(len(u.received) for u in model.user_list) > 0


def test_slot_metrics_match_the_requests() -> None:
    model = CityBlock(BASE, FixedPolicy(steps=0.6, server_share=0.5, power=0.3))
    waits, energies = [], []
    for _ in range(40):
        model.step()
        done = model.delivered
        row = model.slot_metrics
        assert row["requests_delivered"] == len(done)
        if done:
            waits.append(row["mean_wait_s"])
            assert row["mean_wait_s"] == pytest.approx(np.mean([r.delivered_s - r.issued_s for r in done]))
            assert row["mean_power_w"] == pytest.approx(0.1 + 0.3 * 0.9)
            assert row["device_energy_j"] == pytest.approx(sum(r.device_energy_j for r in done))
        else:
            assert math.isnan(row["mean_wait_s"])
        assert 0.0 <= row["gpu_utilisation"] <= 1.0 + 1e-12
        assert row["service_energy_j"] == pytest.approx(row["gpu_energy_j"] + row["tx_energy_j"])
        energies.append((row["gpu_energy_j"], row["tx_energy_j"]))
    assert waits
    gpu_total, tx_total = np.sum(energies, axis=0)
    assert gpu_total == pytest.approx(sum(s.energy_j for s in model.gpu_servers))
    assert tx_total == pytest.approx(model.base_station.tx_energy_j)


# --- GPU queueing -------------------------------------------------------------------

def batches_of(requests: list[ImageRequest]) -> dict[str, list[list[ImageRequest]]]:
    """Requests grouped into batches per server, by start time."""
    by_start: dict[tuple[str, float], list[ImageRequest]] = defaultdict(list)
    for r in requests:
        by_start[(r.server, r.started_s)].append(r)
    out: dict[str, list[list[ImageRequest]]] = defaultdict(list)
    for (server, _), batch in sorted(by_start.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        out[server].append(batch)
    return out


def test_slow_gpu_queues_requests() -> None:
    # one batch of two takes 50 steps * 0.2 s * 1.15 = 11.5 s; 30 users ask 1.5 images/s
    cfg = scenario({"users": {"request_rate_per_s": 0.05}, "imagegen": {"share": False}},   # plain lockstep batches
                   gpu={"step_latency_s": 0.2, "max_batch": 2})
    model = CityBlock(cfg, FixedPolicy())
    delivered = run(model, 30)
    df = metrics(model)
    assert df["gpu_queue"].iloc[-1] > 10
    assert (df["gpu_queue"] > 0).sum() > 20
    assert df["gpu_utilisation"].iloc[-20:].tolist() == pytest.approx([1.0] * 20)
    server = model.gpu_servers[0]
    assert len(server.waiting) == df["gpu_queue"].iloc[-1]
    allocated = df["requests_issued"].sum() - len(model.base_station.inbox)
    delivered += drain(model)
    assert len(delivered) == allocated                 # draining finishes everything allocated
    assert not server.waiting and server.queued_steps == 0

    batches = batches_of(delivered)["edge-0"]
    assert len(batches) == server.batches > 5
    waited = 0
    for earlier, later in zip(batches, batches[1:]):
        end = max(r.finished_s for r in earlier)
        start = later[0].started_s
        assert start >= end - 1e-9                      # one GPU: batches never overlap
        batch_s = 50 * 0.2 * (1 + 0.15 * (len(later) - 1))      # 50 lockstep steps of t_step(b)
        assert all(r.finished_s == pytest.approx(start + batch_s) for r in later)
        assert all(r.batch_size == len(later) for r in later)
        if min(r.allocated_s for r in later) < end:     # someone in it was waiting for the GPU
            assert start == pytest.approx(end, abs=1e-9)
            waited += 1
    assert waited > 10
    assert all(len(b) <= 2 for b in batches)
    assert sum(len(b) == 2 for b in batches) > 0.8 * len(batches)   # a long queue fills every batch
    assert max(r.started_s - r.allocated_s for r in delivered) > 20.0
    for r in delivered:
        assert_timeline(r)


def test_fast_gpu_hardly_queues() -> None:
    cfg = scenario(gpu={"step_latency_s": 0.001})
    model = CityBlock(cfg, FixedPolicy())
    delivered = run(model, 40)
    assert (metrics(model)["gpu_queue"] == 0).all()
    assert all(r.started_s == r.allocated_s for r in delivered)


def test_two_gpu_servers_share_the_load() -> None:
    cfg = scenario({"users": {"request_rate_per_s": 0.05}},
                   gpu={"step_latency_s": 0.1, "max_batch": 4}, servers=2)
    model = CityBlock(cfg, FixedPolicy())
    delivered = run(model, 30) + drain(model)
    a, b = model.gpu_servers
    assert a.batches > 3 and b.batches > 3
    per_server = {name: sum(r.server == name for r in delivered) for name in ("edge-0", "edge-1")}
    assert sum(per_server.values()) == len(delivered)
    assert abs(per_server["edge-0"] - per_server["edge-1"]) < 0.2 * len(delivered)
    for name, batches in batches_of(delivered).items():
        for earlier, later in zip(batches, batches[1:]):
            assert later[0].started_s >= max(r.finished_s for r in earlier) - 1e-9, name


def test_compute_engines_must_match_servers() -> None:
    cfg = scenario(servers=2)
    with pytest.raises(ValueError, match="1 compute engines for 2 GPU servers"):
        CityBlock(cfg, FixedPolicy(), compute=[ProfiledCost(cfg.gpu_servers[0])])


# --- reproducibility ------------------------------------------------------------------

def test_same_seed_same_run_other_seed_other_run() -> None:
    def frame(seed: int | None) -> pd.DataFrame:
        model = CityBlock(BASE, FixedPolicy(steps=0.5, server_share=0.7, power=0.6), seed=seed)
        run(model, 40)
        return metrics(model)

    first = frame(42)
    pd.testing.assert_frame_equal(first, frame(42))
    pd.testing.assert_frame_equal(first, frame(None))         # cfg.seed is 42
    other = frame(43)
    assert not first.equals(other)
    assert not np.allclose(first["mean_rate_bps"].fillna(0), other["mean_rate_bps"].fillna(0))


def test_same_seed_same_requests() -> None:
    def requests(seed: int) -> list[tuple[float, ...]]:
        model = CityBlock(BASE, FixedPolicy(), seed=seed)
        return [(r.request_id, r.user_id, r.issued_s, r.delivered_s, r.gain) for r in run(model, 40)]

    assert requests(7) == requests(7)
    assert requests(7) != requests(8)


# --- requests are a Poisson process --------------------------------------------------------

@pytest.mark.parametrize(("rate", "seed", "slot_s"), [(0.02, 42, 1.0), (0.02, 1, 1.0), (0.1, 42, 1.0),
                                                (0.05, 3, 0.5)])
def test_request_count_matches_poisson_rate(rate: float, seed: int, slot_s: float) -> None:
    cfg = scenario({"slot_s": slot_s, "users": {"request_rate_per_s": rate}}, gpu={"step_latency_s": 0.001})
    model = CityBlock(cfg, FixedPolicy(steps=0.0), seed=seed)
    slots = 1500
    run(model, slots)
    counts = metrics(model)["requests_issued"].to_numpy()
    assert model.env.now == pytest.approx(slots * slot_s)
    expected = rate * cfg.users.count * slots * slot_s
    assert abs(counts.sum() - expected) < 4 * math.sqrt(expected)
    # per-slot counts are Poisson: variance equals mean
    assert counts.mean() == pytest.approx(rate * cfg.users.count * slot_s, rel=0.15)
    assert counts.var() / counts.mean() == pytest.approx(1.0, abs=0.15)


def test_no_requests_at_rate_zero() -> None:
    model = CityBlock(scenario({"users": {"request_rate_per_s": 0.0}}), FixedPolicy())
    run(model, 30)
    df = metrics(model)
    assert df["requests_issued"].sum() == 0 and df["gpu_energy_j"].sum() == 0


# --- other mobility ---------------------------------------------------------------------

def test_random_waypoint_scenario_runs() -> None:
    cfg = scenario({"streets": {"mobility": "random_waypoint"}})
    model = CityBlock(cfg, FixedPolicy())
    start = model.positions_m().copy()
    delivered = run(model, 40)
    assert len(delivered) > 5
    for r in delivered:
        assert_timeline(r)
    moved = np.linalg.norm(model.positions_m() - start, axis=1)
    assert (moved > 0).sum() > cfg.users.count // 2
    width, height = model.streets.size_m
    pos = model.positions_m()
    assert np.all((pos >= 0) & (pos <= [width, height]))
