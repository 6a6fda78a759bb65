"""CityBlock: the Mesa model of an image service at the edge of a city block."""

from __future__ import annotations

import math

import mesa
import numpy as np
import simpy

from agents.base_station import AllocationPolicy, BaseStation, Limits
from agents.feedback import Delivery, FeedbackService
from agents.gpu_server import ComputeModel, GpuServer
from agents.persona import TRAITS, BigFive, Persona
from agents.request import ImageRequest
from agents.user import MobileUser
from world.compute import ProfiledQuality
from world.imagegen.render import CooperativeRender, make_engines
from world.config import ScenarioConfig
from world.prompts import PromptCatalog
from world.radio import Radio
from world.streets import ManhattanMobility, RandomWaypointMobility, StreetGrid

SLOT_METRICS = (
    "slot", "time_s", "requests_issued", "requests_delivered", "requests_rated", "in_flight",
    "mean_wait_s", "mean_steps", "mean_power_w", "mean_rate_bps",
    "gpu_energy_j", "tx_energy_j", "device_energy_j", "service_energy_j", "over_budget_j",
    "gpu_utilisation", "gpu_queue",
    "total_qoe", "mean_qoe", "feedback_invalid", "feedback_failed",
)

NAMES = ("Ana", "Ben", "Chloe", "Dev", "Eva", "Farid", "Grace", "Hiro", "Ines", "Jon", "Kemi", "Luca",
         "Mina", "Noah", "Olga", "Pablo", "Qiu", "Rosa", "Sami", "Tara", "Uma", "Viktor", "Wen", "Ximena",
         "Yusuf", "Zoe")


class CityBlock(mesa.Model):
    """Users walk, ask for images, a GPU server denoises, the base station sends the results.

    One SimPy environment is the clock; `step()` advances it by one slot.

    Args:
        cfg: the scenario.
        policy: the base station's allocation policy.
        seed: overrides `cfg.seed` when given.
        compute: one compute engine per GPU server; default: the profiled cost model.
        feedback: the personas' language model service: users submit to it and the block hands it each rated
            delivery (`learn`); refitting it and reading its statistics is the runner's (`world.runner`).
            None: users stay silent (world-only runs).
    """

    def __init__(self, cfg: ScenarioConfig, policy: AllocationPolicy, seed: int | None = None,
                 compute: list[ComputeModel] | None = None,
                 feedback: FeedbackService | None = None) -> None:
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
        self.quality = ProfiledQuality(cfg.quality)
        self.feedback = feedback
        self._request_ids = 0
        self.delivered: list[ImageRequest] = []       # images that reached a phone during the current slot
        self.completed: list[ImageRequest] = []       # requests finished (rated, or delivered to a silent user)
        self.booked: list[tuple[ImageRequest, float]] = []   # energy spent for each request during the current slot, J
        self.in_flight = 0
        self.closing = False        # True: users ask for nothing more; requests in flight are still finished

        bs = cfg.base_station
        self.base_station = BaseStation(
            self, bs.position_m, policy,
            Limits(bs.min_steps, bs.max_steps, cfg.radio.min_power_w, cfg.radio.max_power_w))
        engines = compute or make_engines(cfg, self.seed)
        if len(engines) != len(cfg.gpu_servers):
            raise ValueError(f"got {len(engines)} compute engines for {len(cfg.gpu_servers)} GPU servers")
        self.gpu_servers = [GpuServer(self, s.name, s.position_m, engine, s.max_batch)
                            for s, engine in zip(cfg.gpu_servers, engines)]
        # the phones run the same image model as the servers (here, on the simulation host); the engine draws
        # them only when it really renders
        self._phone_render = next((e.render_on_phone for e in engines if isinstance(e, CooperativeRender)), None)
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
            user = MobileUser(self, index, self._persona(index), float(self.rng.uniform(*ucfg.speed_mps)),
                              ucfg.request_rate_per_s, here, there, feedback=self.feedback,
                              think_s=self.cfg.feedback.think_s)
            user.offset_m = offset
        return self.agents_by_type[MobileUser]

    def _persona(self, index: int) -> Persona:
        """The index-th user's persona: from the explicit list in turn, or sampled from Beta per trait. When the
        list is shorter than the users, each listed persona is numbered (Ana 1, Ana 2, ...): every user has a name."""
        pop = self.cfg.users.population
        if pop.personas:
            p = pop.personas[index % len(pop.personas)]
            name = p.name if self.cfg.users.count <= len(pop.personas) else f"{p.name} {index // len(pop.personas) + 1}"
            return Persona(name, BigFive(*(getattr(p, t) for t in TRAITS)), p.background)
        means = np.array([getattr(pop.trait_means, t) for t in TRAITS])
        traits = self.rng.beta(means * pop.concentration, (1.0 - means) * pop.concentration)
        name = NAMES[index % len(NAMES)] + (f" {index // len(NAMES) + 1}" if index >= len(NAMES) else "")
        return Persona(name, BigFive(*(float(t) for t in traits)))

    def next_request_id(self) -> int:
        """A fresh request id."""
        self._request_ids += 1
        self.in_flight += 1
        return self._request_ids

    def positions_m(self) -> np.ndarray:
        """(n_users, 2) coordinates of every user in index order, m."""
        return np.array([u.pos_m for u in self.user_list], dtype=float).reshape(-1, 2)

    def render_on_phone(self, requests: list[ImageRequest]) -> None:
        """Requests whose every step runs on their phone, as the base station sends them: drawn and judged
        when the image model really renders; otherwise their quality comes from the profile on delivery."""
        if self._phone_render is not None:
            self._phone_render(requests)

    def book_energy(self, request: ImageRequest, energy_j: float) -> None:
        """Service energy (a finished GPU batch's share, a finished transmission) spent for a request, J."""
        self.booked.append((request, energy_j))

    def deliver(self, request: ImageRequest) -> None:
        """An image has reached its user's phone."""
        self.delivered.append(request)

    def complete(self, request: ImageRequest, persona: Persona | None = None,
                 delivery: Delivery | None = None) -> None:
        """A request is finished (its user has answered, or stays silent): record it."""
        self.completed.append(request)
        self.in_flight -= 1
        if self.feedback and request.feedback and persona and delivery:
            self.feedback.learn(persona, delivery, request.feedback)

    def step(self) -> None:
        """One slot: users move, the channel changes, the base station allocates the
        requests that came in, the clock runs (requests go out, GPUs denoise, images are
        sent and finished), data is collected."""
        self.sense()
        self.serve()

    def sense(self) -> None:
        """First half of a slot: users move and the channel is redrawn; the base station can now observe."""
        self.users.shuffle_do("move")
        self.radio.redraw(self.positions_m())

    def serve(self) -> None:
        """Second half of a slot: the base station allocates, the clock runs to the slot's end, data is collected."""
        self.delivered, self.completed, self.booked = [], [], []
        issued_before = self._request_ids
        self.base_station.allocate()
        self.env.run(until=(self.slot + 1) * self.slot_s)
        self.slot += 1
        self._measure(self._request_ids - issued_before)
        self.datacollector.collect(self)

    def _measure(self, issued: int) -> None:
        done = self.delivered
        rated = [r for r in self.completed if r.feedback is not None]
        qoe = [r.qoe for r in rated if not math.isnan(r.qoe)]
        for s in self.gpu_servers:     # a batch that runs on past the slot's end books the part it has used
            s.meter()
        busy = sum(s.busy_time_s() for s in self.gpu_servers)
        gpu_energy = sum(s.energy_used_j() for s in self.gpu_servers)
        tx_energy = self.base_station.tx_energy_j
        device_energy = sum(r.device_energy_j for r in done)
        gpu_slot = gpu_energy - self._last["gpu_energy_j"]
        tx_slot = tx_energy - self._last["tx_energy_j"]
        service = gpu_slot + tx_slot
        budget = self.cfg.base_station.energy_budget_j_per_slot
        over = max(0.0, service - budget)
        if over > 0:    # the slot's penalty, shared by the requests whose energy was spent in it
            penalty = self.cfg.base_station.budget_penalty(over)
            for r, energy in self.booked:
                r.energy_penalty += penalty * energy / service
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
            "over_budget_j": over,
            "gpu_utilisation": (busy - self._last["gpu_busy_s"]) / (self.slot_s * len(self.gpu_servers)),
            "gpu_queue": sum(len(s.waiting) for s in self.gpu_servers),
            "requests_rated": len(rated),
            "total_qoe": float(sum(qoe)),
            "mean_qoe": _mean(qoe),
            "feedback_invalid": sum(1 for r in rated if not r.feedback.valid and not r.feedback.failed),
            "feedback_failed": sum(1 for r in rated if r.feedback.failed),
        }
        self._last = {"gpu_busy_s": busy, "gpu_energy_j": gpu_energy, "tx_energy_j": tx_energy}


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan
