"""CityBlock: the Mesa model of an image service at the edge of a city block."""

from __future__ import annotations

import math

import mesa
import numpy as np
import simpy

from agents.base_station import AllocationPolicy, BaseStation, Limits
from agents.gpu_server import ComputeModel, GpuServer
from agents.persona import BigFive
from agents.request import ImageRequest
from agents.user import MobileUser
from world.compute import ProfiledCost
from world.config import ScenarioConfig
from world.prompts import PromptCatalog
from world.radio import Radio
from world.streets import ManhattanMobility, RandomWaypointMobility, StreetGrid

SLOT_METRICS = (
    "slot", "time_s", "requests_issued", "requests_delivered", "in_flight",
    "mean_wait_s", "mean_steps", "mean_power_w", "mean_rate_bps",
    "gpu_energy_j", "tx_energy_j", "device_energy_j", "service_energy_j", "over_budget_j",
    "gpu_utilisation", "gpu_queue",
)


class CityBlock(mesa.Model):
    """Users walk, ask for images, a GPU server denoises, the base station sends the results.

    One SimPy environment is the clock; `step()` advances it by one slot.

    Args:
        cfg: the scenario.
        policy: the base station's allocation policy.
        seed: overrides `cfg.seed` when given.
        compute: one compute engine per GPU server; default: the profiled cost model.
    """

    def __init__(self, cfg: ScenarioConfig, policy: AllocationPolicy, seed: int | None = None,
                 compute: list[ComputeModel] | None = None) -> None:
        self.seed = cfg.seed if seed is None else seed
        super().__init__(rng=self.seed)
        self.cfg = cfg
        self.slot_s = cfg.slot_s
        self.slot = 0
        self.env = simpy.Environment()
        self.streets = StreetGrid(cfg.streets)
        mobility = {"manhattan": ManhattanMobility, "random_waypoint": RandomWaypointMobility}
        self.mobility = mobility[cfg.streets.mobility](self.streets)
        self.radio = Radio(cfg.radio, self.env, self.rng, cfg.base_station.position_m)
        self.prompts = PromptCatalog(cfg.prompts)
        self.phone = cfg.phone
        self._request_ids = 0
        self.delivered: list[ImageRequest] = []       # delivered during the current slot
        self.in_flight = 0

        bs = cfg.base_station
        self.base_station = BaseStation(
            self, bs.position_m, policy,
            Limits(bs.min_steps, bs.max_steps, cfg.radio.min_power_w, cfg.radio.max_power_w))
        engines = compute or [ProfiledCost(s) for s in cfg.gpu_servers]
        if len(engines) != len(cfg.gpu_servers):
            raise ValueError(f"got {len(engines)} compute engines for {len(cfg.gpu_servers)} GPU servers")
        self.gpu_servers = [GpuServer(self, s.name, s.position_m, engine, s.max_batch)
                            for s, engine in zip(cfg.gpu_servers, engines)]
        self.users = self._populate()
        self.user_list: list[MobileUser] = sorted(self.users, key=lambda u: u.index)
        self.users_by_id = {u.unique_id: u for u in self.user_list}

        self._last = {"gpu_busy_s": 0.0, "gpu_energy_j": 0.0, "tx_energy_j": 0.0}
        self.slot_metrics: dict[str, float] = dict.fromkeys(SLOT_METRICS, 0.0)
        self.datacollector = mesa.DataCollector(
            model_reporters={k: (lambda m, k=k: m.slot_metrics[k]) for k in SLOT_METRICS})
        self.radio.redraw(self.positions_m())

    def _populate(self) -> mesa.agent.AgentSet:
        ucfg = self.cfg.users
        for index in range(ucfg.count):
            here, there, offset = self.streets.random_segment(self.random)
            traits = BigFive(*self.rng.uniform(0.0, 1.0, size=5))
            user = MobileUser(self, index, traits, float(self.rng.uniform(*ucfg.speed_mps)),
                              ucfg.request_rate_per_s, here, there)
            user.offset_m = offset
        return self.agents_by_type[MobileUser]

    def next_request_id(self) -> int:
        """A fresh request id."""
        self._request_ids += 1
        self.in_flight += 1
        return self._request_ids

    def positions_m(self) -> np.ndarray:
        """(n_users, 2) coordinates of every user in index order, m."""
        return np.array([u.pos_m for u in self.user_list], dtype=float).reshape(-1, 2)

    def deliver(self, request: ImageRequest) -> None:
        """A request is complete: count it for this slot's records."""
        self.delivered.append(request)
        self.in_flight -= 1

    def step(self) -> None:
        """One slot: users move, the channel changes, the base station allocates the
        requests that came in, the clock runs (requests go out, GPUs denoise, images are
        sent and finished), data is collected."""
        self.delivered = []
        issued_before = self._request_ids
        self.users.shuffle_do("move")
        self.radio.redraw(self.positions_m())
        self.base_station.allocate()
        self.env.run(until=(self.slot + 1) * self.slot_s)
        self.slot += 1
        self._measure(self._request_ids - issued_before)
        self.datacollector.collect(self)

    def _measure(self, issued: int) -> None:
        done = self.delivered
        busy = sum(s.busy_time_s() for s in self.gpu_servers)
        gpu_energy = sum(s.energy_j for s in self.gpu_servers)
        tx_energy = self.base_station.tx_energy_j
        device_energy = sum(r.device_energy_j for r in done)
        gpu_slot = gpu_energy - self._last["gpu_energy_j"]
        tx_slot = tx_energy - self._last["tx_energy_j"]
        service = gpu_slot + tx_slot
        self.slot_metrics = {
            "slot": self.slot,
            "time_s": self.env.now,
            "requests_issued": issued,
            "requests_delivered": len(done),
            "in_flight": self.in_flight,
            "mean_wait_s": _mean([r.wait_s for r in done]),
            "mean_steps": _mean([r.steps for r in done]),
            "mean_power_w": _mean([r.power_w for r in done]),
            "mean_rate_bps": _mean([r.rate_bps for r in done]),
            "gpu_energy_j": gpu_slot,
            "tx_energy_j": tx_slot,
            "device_energy_j": device_energy,
            "service_energy_j": service,
            "over_budget_j": max(0.0, service - self.cfg.base_station.energy_budget_j_per_slot),
            "gpu_utilisation": (busy - self._last["gpu_busy_s"]) / (self.slot_s * len(self.gpu_servers)),
            "gpu_queue": sum(len(s.waiting) for s in self.gpu_servers),
        }
        self._last = {"gpu_busy_s": busy, "gpu_energy_j": gpu_energy, "tx_energy_j": tx_energy}


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan
