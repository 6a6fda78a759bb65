"""The base station: decides steps and power per request and sends the images."""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import mesa
import numpy as np
import simpy

from agents.gpu_server import least_loaded
from agents.request import ImageRequest, RequestState

# Per-request observation row (what the policy sees), in this order.
OBS_FEATURES = (
    "gain_db",          # channel power gain to the user this slot, dB
    "distance_m",       # distance to the user, m
    "gpu_backlog_s",    # server steps already queued on the least loaded GPU x its step latency, s
    "age_s",            # time since the request was issued, s
    "user_qoe",         # the user's recent QoE (average of its last answers, weight 1/2 each), 0-1; 0.5 before any
    "slot_requests",    # requests being allocated in this slot, count
    # who asks: the user's Big Five traits, 0-1 (0.5 each when base_station.observe_traits is off)
    "openness", "conscientiousness", "extraversion", "agreeableness", "neuroticism",
    "similar_requests", # requests of this slot whose prompt shares a cluster with this one, itself included, count
    "gpu_waiting",      # requests queued on the least loaded GPU, not yet started, count
)
TRAIT_COLUMNS = slice(OBS_FEATURES.index("openness"), OBS_FEATURES.index("neuroticism") + 1)
# Fixed standardisation of OBS_FEATURES, (value - OBS_CENTER) / OBS_SCALE: a typical request lands near 0 with
# a spread near 1 (gain -90 dB +- 15, distance 150 m +- 100, ...). Fixed, not running statistics, so a trained
# policy means the same on any run; the learners and `policies.library` scale with it.
OBS_CENTER = np.array([-90.0, 150.0, 0.0, 0.5, 0.5, 1.0, *[0.5] * 5, 1.0, 0.0], dtype=np.float32)
OBS_SCALE = np.array([15.0, 100.0, 2.0, 0.5, 0.25, 2.0, *[0.25] * 5, 2.0, 4.0], dtype=np.float32)
assert len(OBS_CENTER) == len(OBS_FEATURES) == len(OBS_SCALE)
# Per-request action row (what the policy returns), each in [0, 1], in this order.
ACTION_FEATURES = (
    "steps",            # 0 -> min_steps, 1 -> max_steps
    "server_share",     # share of the steps run on the GPU; the phone runs the rest
    "power",            # 0 -> min_power_w, 1 -> max_power_w
)


class AllocationPolicy(Protocol):
    """Anything that maps per-request observations to per-request actions."""

    def predict(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """obs: (n_requests, len(OBS_FEATURES)); returns (n_requests, len(ACTION_FEATURES)) in [0, 1]."""
        ...


@runtime_checkable
class Planner(Protocol):
    """A policy that plans from the requests themselves and the block a base station serves, beyond their
    observation rows (a reference that peeks at what a base station cannot observe); the base station, or
    whoever drives it, hands it all three."""

    def plan(self, station: BaseStation, requests: list[ImageRequest], obs: np.ndarray) -> np.ndarray:
        """Actions for `requests`, whose observation rows are `obs`, as `AllocationPolicy.predict` returns."""
        ...


@dataclass(frozen=True)
class Limits:
    """Bounds of the decision: steps in [min_steps, max_steps], power in [min_power_w, max_power_w]."""

    min_steps: int
    max_steps: int
    min_power_w: float
    max_power_w: float

    def decode(self, action: np.ndarray) -> tuple[int, int, float]:
        """An action row in [0, 1] (ACTION_FEATURES) -> (server steps, phone steps, power W), rounded as served."""
        steps_frac, share, power_frac = (float(a) for a in action)
        total = int(round(self.min_steps + steps_frac * (self.max_steps - self.min_steps)))
        server_steps = int(round(total * share))
        return server_steps, total - server_steps, self.min_power_w + power_frac * (self.max_power_w - self.min_power_w)


class BaseStation(mesa.Agent):
    """Collects requests, allocates steps and power once per slot, and transmits results.

    Args:
        model: the model; provides `env`, `radio`, `gpu_servers`, `phone`, `quality`,
            `users_by_id`, `render_on_phone`, `book_energy` and `deliver`.
        position_m: coordinates, m.
        policy: the allocation policy.
        limits: bounds of the actions.
    """

    def __init__(self, model: mesa.Model, position_m: tuple[float, float],
                 policy: AllocationPolicy, limits: Limits) -> None:
        super().__init__(model)
        self.position_m = position_m
        self.policy = policy
        self.limits = limits
        self.deterministic = True      # a learner in training explores: it sets this to False
        self.max_per_slot: int | None = None   # most requests allocated per slot; the rest wait (None: all)
        self.inbox: list[ImageRequest] = []
        self.tx_energy_j = 0.0          # energy of finished transmissions, J

    def receive(self, request: ImageRequest) -> None:
        """A user's request reaches the base station (the prompt's uplink is negligible)."""
        self.inbox.append(request)

    def pending(self) -> list[ImageRequest]:
        """The requests the next allocation will decide, in arrival order."""
        return self.inbox if self.max_per_slot is None else self.inbox[:self.max_per_slot]

    def observe(self, requests: list[ImageRequest]) -> np.ndarray:
        """Observation rows for `requests`, laid out as OBS_FEATURES."""
        radio = self.model.radio
        users = self.model.users_by_id
        rows = np.zeros((len(requests), len(OBS_FEATURES)))
        least = self.model.gpu_servers[least_loaded(self.model.gpu_servers)]
        backlog = least.backlog_s
        similar = self.similar_counts(requests)
        known = self.model.cfg.base_station.observe_traits
        for i, r in enumerate(requests):
            user = users[r.user_id]
            u = user.index
            traits = user.persona.traits.as_tuple() if known else (0.5,) * 5
            rows[i] = (10 * np.log10(radio.gain[u]), radio.distance_m[u], backlog,
                       self.model.env.now - r.issued_s, user.recent_qoe, len(requests),
                       *traits, similar[i], len(least.waiting))
        return rows

    def similar_counts(self, requests: list[ImageRequest]) -> np.ndarray:
        """Per request, how many of `requests` the GPU would put in its prompt cluster, itself included
        (the engine's `cluster_sizes`, as if they were one batch); 1 each when the engine does not share."""
        sizes = getattr(self.model.gpu_servers[0].compute, "cluster_sizes", None)
        if sizes is None or len(requests) < 2:
            return np.ones(len(requests))
        return np.asarray(sizes([r.prompt for r in requests]), dtype=float)

    def allocate(self) -> list[ImageRequest]:
        """Decide steps, split and power for every waiting request, then dispatch them."""
        requests = list(self.pending())
        if not requests:
            return []
        obs = self.observe(requests)
        if isinstance(self.policy, Planner):
            action = np.asarray(self.policy.plan(self, requests, obs), dtype=float)
        else:
            action = np.asarray(self.policy.predict(obs, deterministic=self.deterministic), dtype=float)
        self.inbox = self.inbox[len(requests):]
        expected = (len(requests), len(ACTION_FEATURES))
        if action.shape != expected or not np.all((action >= 0) & (action <= 1)):
            span = f" with range [{action.min():.3g}, {action.max():.3g}]" if action.size else ""
            raise ValueError(f"policy returned an action of shape {action.shape}{span}; "
                             f"expected shape {expected} in [0, 1]")
        lim = self.limits
        radio = self.model.radio
        servers = self.model.gpu_servers
        backlog_s = [s.backlog_s for s in servers]
        to_gpu: dict[int, list[ImageRequest]] = {}
        for r, o, a in zip(requests, obs, action):
            r.decision = (o, a)
            u = self.model.users_by_id[r.user_id].index
            r.server_steps, r.device_steps, r.power_w = lim.decode(a)
            r.allocated_s = self.model.env.now
            r.distance_m = float(radio.distance_m[u])
            if r.server_steps > 0:     # join the GPU with the least work queued
                k = min(range(len(servers)), key=backlog_s.__getitem__)
                backlog_s[k] += r.server_steps * servers[k].compute.step_latency_s(1)
                to_gpu.setdefault(k, []).append(r)
        on_phone = [r for r in requests if r.server_steps == 0]
        if on_phone:
            self.model.render_on_phone(on_phone)
        for r in on_phone:
            self.send(r)
        for k, batch in to_gpu.items():
            servers[k].submit(batch)
        return requests

    def send(self, request: ImageRequest) -> None:
        """Start transmitting a request's result to its user."""
        self.model.env.process(self.deliver(request))

    def deliver(self, request: ImageRequest) -> Generator[simpy.Event, None, None]:
        """SimPy process: radio transfer, then the phone's own steps, then hand-over."""
        env = self.model.env
        user = self.model.users_by_id[request.user_id]
        request.state = RequestState.TRANSMITTING
        bits = None if math.isnan(request.payload_bits) else request.payload_bits
        transfer = yield from self.model.radio.transmit(user.index, request.power_w, bits)
        request.rate_bps, request.gain = transfer.rate_bps, transfer.gain
        request.tx_s, request.tx_energy_j = transfer.end_s - transfer.start_s, transfer.energy_j
        self.tx_energy_j += transfer.energy_j
        self.model.book_energy(request, transfer.energy_j)
        if request.device_steps > 0:
            request.state = RequestState.FINISHING
            phone = self.model.phone
            yield env.timeout(request.device_steps * phone.step_latency_s)
            request.device_energy_j = request.device_steps * phone.step_energy_j
        request.delivered_s = env.now
        if math.isnan(request.fidelity):      # the compute engine did not measure it
            request.sharpness, request.fidelity = self.model.quality.assess(request.steps)
        request.state = RequestState.DELIVERED
        self.model.deliver(request)
        user.receive_image(request)
