"""An edge GPU server that denoises batches of requests."""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Protocol

import mesa
import simpy

from agents.request import ImageRequest, RequestState


@dataclass(frozen=True)
class BatchTiming:
    """What running one batch cost.

    Attributes:
        finish_s: per request, seconds from the batch's start to its last server step.
        energy_j: per request, its share of the batch's energy, J.
        busy_s: seconds the GPU was held by the batch.
    """

    finish_s: list[float]
    energy_j: list[float]
    busy_s: float


class ComputeModel(Protocol):
    """How long a batch takes and what it costs: profiled, or measured by real denoising."""

    def step_latency_s(self, batch: int) -> float:
        """Latency of one denoising step for a batch of `batch` images, s."""
        ...

    def serve(self, batch: Sequence[ImageRequest]) -> BatchTiming:
        """Run (or cost) one batch; may set each request's quality, image and extras."""
        ...


class GpuServer(mesa.Agent):
    """One GPU behind the base station, a `simpy.Resource` of capacity 1.

    Args:
        model: the model; provides `env` and `base_station`.
        name: label used in records.
        position_m: coordinates, m (for the view; the backhaul is not modelled).
        compute: the engine that times (or runs) a batch.
        max_batch: most requests per batch.
    """

    def __init__(self, model: mesa.Model, name: str, position_m: tuple[float, float],
                 compute: ComputeModel, max_batch: int) -> None:
        super().__init__(model)
        self.name = name
        self.position_m = position_m
        self.compute = compute
        self.max_batch = max_batch
        self.gpu = simpy.Resource(model.env, capacity=1)
        self.waiting: list[ImageRequest] = []     # allocated, not yet on the GPU
        self.queued_steps = 0           # server steps allocated but not yet finished
        self.busy_s = 0.0               # GPU time of finished batches, s
        self.energy_j = 0.0             # energy of finished batches, J
        self.batches = 0
        self.requests_served = 0
        self._batch_started_s: float | None = None
        self._running: tuple[float, float, list[ImageRequest], list[float]] | None = None
        self._metered = 0.0             # share of the running batch's energy already booked


    @property
    def backlog_s(self) -> float:
        """The steps queued here at the batch-1 step latency, s: what the base station balances on."""
        return self.queued_steps * self.compute.step_latency_s(1)
    def submit(self, requests: list[ImageRequest]) -> None:
        """Queue requests for denoising.

        Batching is dynamic: whoever gets the GPU next takes up to `max_batch`
        of the requests waiting at that moment, including later arrivals.
        """
        for r in requests:
            r.server, r.state = self.name, RequestState.QUEUED
            self.queued_steps += r.server_steps
        self.waiting.extend(requests)
        for _ in range(0, len(requests), self.max_batch):
            self.model.env.process(self.denoise())

    def denoise(self) -> Generator[simpy.Event, None, None]:
        """SimPy process: wait for the GPU, run a batch of waiting requests, hand each image on."""
        env = self.model.env
        with self.gpu.request() as turn:
            yield turn
            batch, self.waiting = self.waiting[:self.max_batch], self.waiting[self.max_batch:]
            if not batch:           # an earlier turn already took these requests
                return
            start = env.now
            self._batch_started_s = start
            timing = self.compute.serve(batch)
            self._running = (start, timing.busy_s, batch, list(timing.energy_j))
            self._metered = 0.0
            for r, energy in zip(batch, timing.energy_j):
                r.state, r.started_s, r.batch_size = RequestState.DENOISING, start, len(batch)
                r.server_energy_j = energy
            for finish, r in sorted(zip(timing.finish_s, batch), key=lambda pair: pair[0]):
                yield env.timeout(start + finish - env.now)
                r.finished_s = env.now
                self.queued_steps -= r.server_steps
                self.model.base_station.send(r)
            yield env.timeout(start + timing.busy_s - env.now)
            self._book(1.0)
            self._running = None
            self.busy_s += timing.busy_s
            self.energy_j += sum(timing.energy_j)
            self.batches += 1
            self.requests_served += len(batch)
            self._batch_started_s = None

    @property
    def clusters_formed(self) -> int | None:
        """Prompt clusters that shared a prefix so far; None when the engine does not share."""
        return getattr(self.compute, "clusters_formed", None)

    @property
    def shared_steps_saved(self) -> int | None:
        """Server UNet evaluations saved by shared prefixes so far; None when the engine does not share."""
        return getattr(self.compute, "shared_steps_saved", None)

    def meter(self) -> None:
        """Book the energy the running batch has used since the last reading (it is spent evenly over the batch)."""
        if self._running is not None:
            start, busy_s, _, _ = self._running
            self._book(min(1.0, (self.model.env.now - start) / busy_s) if busy_s > 0 else 1.0)

    def _book(self, done: float) -> None:
        """Book each request's share of the running batch's energy between the last reading and `done` (0-1)."""
        _, _, batch, energies = self._running
        if done > self._metered:
            for r, energy in zip(batch, energies):
                self.model.book_energy(r, (done - self._metered) * energy)
            self._metered = done

    def energy_used_j(self) -> float:
        """Energy used so far, including the running batch's part, J."""
        if self._running is None:
            return self.energy_j
        start, busy_s, _, energies = self._running
        share = min(1.0, (self.model.env.now - start) / busy_s) if busy_s > 0 else 1.0
        return self.energy_j + share * sum(energies)

    def busy_time_s(self) -> float:
        """GPU time used so far, including the running batch's elapsed part, s."""
        running = 0.0 if self._batch_started_s is None else self.model.env.now - self._batch_started_s
        return self.busy_s + running


def least_loaded(servers: Sequence[GpuServer]) -> int:
    """Index of the server with the least work queued (the first of equals): where a request goes."""
    return min(range(len(servers)), key=lambda k: servers[k].backlog_s)
