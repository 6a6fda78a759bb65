"""Cooperative denoising: similar prompts share the first k steps of one trajectory, then branch.

For a group of requests with the same number of steps T:

    1. Requests are clustered by the cosine similarity of their prompts' MiniLM
       embeddings (`cluster`).
    2. Each cluster with k > 0 runs one trajectory for its first k steps, from
       its first request's noise, under the model's `prefix_condition`: the
       shipped model (token conditioning) follows the cluster's first prompt; a
       pooled-only model follows the centroid (mean of the members' vectors).
    3. At step k the trajectory branches: every member continues from the
       shared latents under its own prompt. A cluster with k = 0 starts every
       member from its own noise, so it equals independent generation.
    4. All trajectories of the group that are at the same step go through the
       UNet in one batched call: the prefixes of some clusters beside the
       branches of others.
    5. A branch may be handed off to the phone after `server_steps`: its
       latents go over the radio and the phone runs the rest. Those steps are
       computed here too (the image is real) but counted as the phone's.

`plan` lays out which UNet calls the server makes and who is in each; the
real engine executes that plan with a UNet, the profiled engine only costs it.
The cost of a group on the server is k_c + n_c (T - k_c) evaluations per
cluster c, against n T for independent runs.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from world.imagegen.text import cosine


class DenoiseError(ValueError):
    """Steps, shared steps or hand-off points that do not fit together."""


def cluster(embeddings: np.ndarray, threshold: float) -> list[list[int]]:
    """Leader clustering: each prompt joins the first cluster whose leader it resembles at `threshold`.

    Args:
        embeddings: (n, d) prompt embeddings.
        threshold: least cosine similarity to a cluster's leader (its first member), in [-1, 1].

    Returns:
        Clusters as lists of row indices, in order of first appearance.
    """
    if not -1.0 <= threshold <= 1.0:
        raise DenoiseError(f"similarity threshold {threshold} is outside [-1, 1]")
    clusters: list[list[int]] = []
    leaders: list[np.ndarray] = []
    for i, e in enumerate(np.asarray(embeddings, dtype=np.float64)):
        if leaders:
            sims = cosine(e[None], np.stack(leaders))[0]
            best = int(np.argmax(sims))
            if sims[best] >= threshold:
                clusters[best].append(i)
                continue
        clusters.append([i])
        leaders.append(e)
    return clusters


@dataclass(frozen=True)
class Job:
    """One request as the denoiser sees it.

    Attributes:
        condition: index of its prompt's conditioning row.
        seed: seed of its initial noise.
        steps: total denoising steps T.
        server_steps: steps run on the server; the phone runs the remaining T - server_steps.
    """

    condition: int
    seed: int
    steps: int
    server_steps: int

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise DenoiseError(f"steps T = {self.steps}: a request needs at least 1 denoising step")
        if not 0 <= self.server_steps <= self.steps:
            raise DenoiseError(f"server_steps = {self.server_steps} is outside [0, T = {self.steps}]")


@dataclass(frozen=True)
class Group:
    """Jobs that share a prefix: same T, similar prompts, k shared steps (k <= every member's server steps)."""

    members: tuple[int, ...]
    shared: int


@dataclass(frozen=True)
class Call:
    """One batched UNet call on the server (phone-side trajectories are not in it).

    Attributes:
        steps: T of the trajectories in the call.
        index: step index within T (0 first).
        prefixes: groups whose shared trajectory is in the call.
        branches: jobs whose own trajectory is in the call.
    """

    steps: int
    index: int
    prefixes: tuple[int, ...]
    branches: tuple[int, ...]

    @property
    def size(self) -> int:
        return len(self.prefixes) + len(self.branches)


def make_groups(jobs: Sequence[Job], clusters: Sequence[Sequence[int]], shared_fraction: float) -> list[Group]:
    """Split clusters by T and give each part k = round(shared_fraction * T) shared steps.

    k is capped by the smallest `server_steps` in the part (a prefix runs on the server),
    and a part of one request shares nothing.
    """
    if not 0.0 <= shared_fraction <= 1.0:
        raise DenoiseError(f"shared fraction {shared_fraction} is outside [0, 1]")
    groups = []
    for members in clusters:
        by_steps: dict[int, list[int]] = {}
        for j in members:
            by_steps.setdefault(jobs[j].steps, []).append(j)
        for steps, part in by_steps.items():
            k = round(shared_fraction * steps) if len(part) > 1 else 0
            k = min(k, *(jobs[j].server_steps for j in part))
            groups.append(Group(tuple(part), k))
    return groups


def plan(jobs: Sequence[Job], groups: Sequence[Group]) -> list[Call]:
    """The server's UNet calls, in order: steps of a T run in lockstep, one call per step index."""
    calls = []
    group_of = {j: g for g, group in enumerate(groups) for j in group.members}
    for steps in sorted({jobs[j].steps for group in groups for j in group.members}):
        in_t = [g for g, group in enumerate(groups) if jobs[group.members[0]].steps == steps]
        for i in range(steps):
            prefixes = tuple(g for g in in_t if i < groups[g].shared)
            branches = tuple(j for g in in_t for j in groups[g].members
                             if groups[group_of[j]].shared <= i < jobs[j].server_steps)
            if prefixes or branches:
                calls.append(Call(steps, i, prefixes, branches))
    return calls


def server_evaluations(calls: Sequence[Call]) -> int:
    """UNet evaluations on the server (one per trajectory per call)."""
    return sum(c.size for c in calls)


@dataclass
class Outcome:
    """What a denoising run produced.

    Attributes:
        images: (n, H, W, 3) uint8, one per job.
        latents: (n, C, H, W) final latents, one per job.
        calls: the server's UNet calls.
        handoff_latents: per job, the latents handed to the phone (None when the server finished it).
        evaluations: UNet evaluations actually run, server and phone.
        wall_s: wall time of the run, s.
    """

    images: np.ndarray
    latents: torch.Tensor
    calls: list[Call]
    handoff_latents: list[torch.Tensor | None]
    evaluations: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0


@dataclass
class Trajectory:
    """One denoising trajectory: its latents, its own scheduler (which may keep history) and noise source."""

    x: torch.Tensor
    scheduler: object
    generator: torch.Generator

    def branch(self, seed: int) -> Trajectory:
        """A copy that continues from here with its own scheduler state and its own noise (stochastic samplers)."""
        return Trajectory(self.x.clone(), copy.deepcopy(self.scheduler), step_generator(seed))


def step_generator(seed: int) -> torch.Generator:
    """The generator of a trajectory's per-step noise (stochastic samplers), apart from its initial noise."""
    return torch.Generator().manual_seed(int(np.random.SeedSequence([int(seed), 1]).generate_state(1)[0]))


class CooperativeDenoiser:
    """Runs groups of jobs with shared prefixes and batched branches on an image model.

    Args:
        model: an `ImageModel` (the shipped one or a diffusers folder).
    """

    def __init__(self, model) -> None:
        self.model = model

    @torch.no_grad()
    def run(self, jobs: Sequence[Job], groups: Sequence[Group], conditions: torch.Tensor) -> Outcome:
        """Denoise every job; the server's calls follow `plan(jobs, groups)`.

        Args:
            jobs: the requests.
            groups: how they share (from `make_groups`); every job in exactly one group.
            conditions: conditioning rows, indexed by `Job.condition`.
        """
        started = time.perf_counter()
        model = self.model
        seen = sorted(j for g in groups for j in g.members)
        if seen != list(range(len(jobs))):
            raise DenoiseError("every job must be in exactly one group")
        latents = [None] * len(jobs)
        handoff: list[torch.Tensor | None] = [None] * len(jobs)
        counts = {"server": 0, "phone": 0}
        for steps in sorted({j.steps for j in jobs}):
            in_t = [g for g in groups if jobs[g.members[0]].steps == steps]
            template = model.scheduler()
            template.set_timesteps(steps)

            def start(seed: int) -> Trajectory:
                scheduler = copy.deepcopy(template)
                return Trajectory(model.noise(seed) * scheduler.init_noise_sigma, scheduler, step_generator(seed))

            # Trajectories: a prefix per sharing group, then one per member once it branches.
            prefix = {id(g): start(jobs[g.members[0]].seed) for g in in_t if g.shared > 0}
            own = {j: start(jobs[j].seed) for g in in_t if g.shared == 0 for j in g.members}
            centroid = {id(g): model.prefix_condition(conditions[[jobs[j].condition for j in g.members]])
                        for g in in_t}
            for i, t in enumerate(template.timesteps):
                for g in in_t:                      # branch point: every member continues from the shared state
                    if g.shared > 0 and i == g.shared:
                        shared = prefix.pop(id(g))
                        own.update({j: shared.branch(jobs[j].seed) for j in g.members})
                keys = [("prefix", g) for g in in_t if id(g) in prefix] + [("own", j) for j in sorted(own)]
                trajectories = [prefix[id(k)] if kind == "prefix" else own[k] for kind, k in keys]
                x = torch.cat([tr.scheduler.scale_model_input(tr.x, t) for tr in trajectories])
                cond = torch.stack([centroid[id(k)] if kind == "prefix" else conditions[jobs[k].condition]
                                    for kind, k in keys])
                for kind, k in keys:
                    on_server = kind == "prefix" or i < jobs[k].server_steps
                    counts["server" if on_server else "phone"] += 1
                    if kind == "own" and i == jobs[k].server_steps and jobs[k].server_steps < steps:
                        handoff[k] = own[k].x.clone()
                model_output = model.predict(x, t, cond)
                for row, tr in enumerate(trajectories):
                    tr.x = tr.scheduler.step(model_output[row:row + 1], t, tr.x, generator=tr.generator).prev_sample
            # a group that shares all T steps never branches: its members get the shared image
            for g in in_t:
                if id(g) in prefix:
                    shared = prefix.pop(id(g))
                    own.update({j: shared.branch(jobs[j].seed) for j in g.members})
            for j, tr in own.items():
                latents[j] = tr.x
        final = torch.cat(latents)
        return Outcome(images=model.decode(final), latents=final, calls=plan(jobs, groups), handoff_latents=handoff,
                       evaluations=counts,
                       wall_s=time.perf_counter() - started)
