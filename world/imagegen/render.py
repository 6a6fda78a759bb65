"""The GPU server's engine: cooperative denoising, real or profiled (`imagegen.render` in the YAML).

Both modes cluster a batch's prompts (MiniLM, cosine threshold), give each
cluster a shared prefix, lay out the server's UNet calls with
`cooperative.plan`, and time them with the server's profile:

    latency of a call of b trajectories = t_step(b),  energy = e_step(b),
    shared equally by the call's trajectories (a prefix's share by its members).

A request is done on the server after the call that runs its last server step.

    render: real     runs the calls on the image model (the shipped one, or
                     `model: PATH`), keeps every image, and measures its
                     fidelity and sharpness (`world.imagegen.quality`).
    render: profile  runs nothing; fidelity and sharpness come from the quality
                     tables measured on the shipped model (`quality.json`).

Either way each request gets the same fields: cluster, shared steps, server
energy and finish time, sharpness, fidelity, and the latents' size when its
last steps run on the phone.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from agents.gpu_server import BatchTiming
from agents.request import ImageRequest
from world.compute import GpuProfile, ImageGenConfig, ProfiledCost
from world.imagegen.cooperative import Call, Group, Job, cluster, make_groups, plan
from world.imagegen.model import SHIPPED_DIR
from world.imagegen.shapes import SIZE, parse

QUALITY_FILE = SHIPPED_DIR / "quality.json"
SHIPPED_LATENT_BITS = 3 * SIZE * SIZE * 16     # the shipped model's latents in float16, bits


class QualityTable:
    """Fidelity and sharpness from the tables measured on the shipped model.

    fidelity(T, f) = fidelity_T(T) * sharing(f) / sharing(0), where f = k / T is the
    shared fraction and `sharing` the similar-prompt column; sharpness(T) likewise
    interpolated over T.
    """

    def __init__(self, path: Path = QUALITY_FILE) -> None:
        data = json.loads(Path(path).read_text())
        steps = data["steps"]
        self.t = np.asarray([row["steps"] for row in steps], dtype=float)
        self.fidelity = np.asarray([row["fidelity"] for row in steps])
        self.sharpness = np.asarray([min(1.0, row["sharpness"]) for row in steps])
        sharing = data["sharing"]
        self.fraction = np.asarray([row["fraction"] for row in sharing])
        similar = np.asarray([row["similar_fidelity"] for row in sharing])
        self.sharing = similar / similar[0]

    def assess(self, steps: int, shared_fraction: float = 0.0) -> tuple[float, float]:
        """(sharpness, fidelity), each in [0, 1]."""
        fidelity = np.interp(steps, self.t, self.fidelity) * np.interp(shared_fraction, self.fraction, self.sharing)
        return float(np.interp(steps, self.t, self.sharpness)), float(np.clip(fidelity, 0.0, 1.0))


@lru_cache(maxsize=1)
def shared_encoder():
    """One MiniLM encoder per process (loading it takes seconds)."""
    from world.imagegen.text import PromptEncoder

    return PromptEncoder(threads=1)


def _timing(calls: Sequence[Call], jobs: Sequence[Job], groups: Sequence[Group],
            cost: ProfiledCost) -> BatchTiming:
    finish = np.zeros(len(jobs))
    energy = np.zeros(len(jobs))
    clock = 0.0
    for call in calls:
        clock += cost.step_latency_s(call.size)
        share = cost.step_energy_j(call.size) / call.size
        for g in call.prefixes:
            members = groups[g].members
            energy[list(members)] += share / len(members)
            finish[[j for j in members if jobs[j].server_steps == call.index + 1]] = clock
        for j in call.branches:
            energy[j] += share
            if jobs[j].server_steps == call.index + 1:
                finish[j] = clock
    return BatchTiming(finish_s=finish.tolist(), energy_j=energy.tolist(), busy_s=clock)


class CooperativeRender:
    """A `ComputeModel` that serves batches with shared prefixes (see the module docstring).

    Args:
        cfg: the scenario's `imagegen` section.
        profile: the server's cost profile.
        seed: the run's seed (each request's noise is drawn from it and the request id).
        model: the image model, required for `render: real`.
    """

    def __init__(self, cfg: ImageGenConfig, profile: GpuProfile, seed: int, model=None) -> None:
        self.cfg = cfg
        self.cost = ProfiledCost(profile)
        self.seed = seed
        self.model = model
        if cfg.render == "real":
            if model is None:
                raise ValueError("render: real needs an image model")
            from world.imagegen.cooperative import CooperativeDenoiser
            from world.imagegen.pipeline import load_judge

            self.denoiser = CooperativeDenoiser(model)
            self.judge = load_judge()
            self.encoder = model.encoder
            self.latent_bits = model.latent_bits()
        else:
            self.encoder = shared_encoder()
            self.latent_bits = SHIPPED_LATENT_BITS
        self.table = QualityTable()
        self.clusters_formed = 0        # clusters of two or more requests
        self.shared_steps_saved = 0     # server UNet evaluations saved against independent runs
        self.evaluations = 0            # server UNet evaluations run
        self.batches = 0

    def step_latency_s(self, batch: int) -> float:
        return self.cost.step_latency_s(batch)

    def serve(self, batch: Sequence[ImageRequest]) -> BatchTiming:
        """Cluster, plan, time (and in real mode run and judge) one batch of requests."""
        prompts = list(dict.fromkeys(r.prompt for r in batch))
        row = {p: i for i, p in enumerate(prompts)}
        embeddings = self.encoder.encode(prompts)
        jobs = [Job(row[r.prompt], self._noise_seed(r), r.steps, r.server_steps) for r in batch]
        clusters = cluster(embeddings[[j.condition for j in jobs]], self.cfg.similarity_threshold)
        groups = make_groups(jobs, clusters, self.cfg.shared_fraction)
        calls = plan(jobs, groups)
        self.batches += 1
        timing = _timing(calls, jobs, groups, self.cost)
        run = sum(c.size for c in calls)
        self.evaluations += run
        self.shared_steps_saved += sum(j.server_steps for j in jobs) - run
        self.clusters_formed += sum(len(g.members) > 1 and g.shared > 0 for g in groups)

        verdicts = images = sharp = None
        if self.cfg.render == "real":
            from world.imagegen.quality import judge, sharpness_noise

            outcome = self.denoiser.run(jobs, groups, self.model.conditions(prompts))
            images = outcome.images
            verdicts = judge(self.judge, images, [parse(r.prompt) for r in batch])
            sharp = sharpness_noise(images)[0]
        for g, group in enumerate(groups):
            for j in group.members:
                r = batch[j]
                r.extra["cluster"] = f"{self.batches}.{g}" if len(group.members) > 1 else "solo"
                r.extra["shared_steps"] = group.shared
                r.extra["seen"] = ""
                if r.device_steps > 0:
                    r.payload_bits = float(self.latent_bits)
                sharpness, fidelity = self.table.assess(r.steps, group.shared / max(1, r.steps))
                if images is not None:
                    r.image = images[j]
                    sharpness = min(1.0, float(sharp[j]))
                    if verdicts[j] is not None:
                        fidelity = verdicts[j].fidelity
                        r.extra["seen"] = verdicts[j].seen
                r.sharpness, r.fidelity = sharpness, fidelity
        return timing

    def _noise_seed(self, r: ImageRequest) -> int:
        return int(np.random.SeedSequence([self.seed, r.request_id]).generate_state(1)[0])


def make_engines(cfg, seed: int) -> list:
    """One compute engine per GPU server of a scenario: cooperative unless `imagegen.share` is off."""
    gen = cfg.imagegen
    if not gen.share and gen.render == "profile":
        return [ProfiledCost(s) for s in cfg.gpu_servers]
    model = None
    if gen.render == "real":
        from world.imagegen.pipeline import load_image_model

        model = load_image_model(gen.model, device=gen.device, dtype=gen.dtype, threads=gen.threads)
    return [CooperativeRender(gen if gen.share else gen.model_copy(update={"shared_fraction": 0.0}), s, seed, model)
            for s in cfg.gpu_servers]
