"""The GPU server's engine: cooperative denoising, real or profiled (`imagegen.render` in the YAML).

Both modes cluster a batch's prompts (MiniLM, cosine threshold), give each
cluster a shared prefix, lay out the server's UNet calls with
`cooperative.plan`, and time them with the server's profile:

    latency of a call of b trajectories = t_step(b),  energy = e_step(b),
    shared equally by the call's trajectories (a prefix's share by its members).

A request is done on the server after the call that runs its last server step.

    render: real     runs the calls on the image model (the shipped one, or
                     `model: PATH`) with the scenario's scheduler, keeps every
                     image, and measures its fidelity and detail
                     (`world.imagegen.quality`).
    render: profile  runs nothing; fidelity and detail come from the quality
                     tables measured on the shipped model for that scheduler
                     (`quality.json`).

Either way each request gets the same fields: cluster, shared steps, server
energy and finish time, detail (as `sharpness`: how much of the picture's fine
detail is there), fidelity, and the latents' size when its last steps run on
the phone.
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
from world.imagegen.model import SHIPPED_DIR, Manifest
from world.imagegen.shapes import parse

QUALITY_FILE = SHIPPED_DIR / "quality.json"


def shipped_latent_bits(bits_per_value: int = 16) -> int:
    """The shipped model's latents on the radio (float16 by default), bits, from its manifest."""
    spec = Manifest.read(SHIPPED_DIR).spec
    return spec.latent_channels * spec.latent_size ** 2 * bits_per_value


class QualityTable:
    """Fidelity and detail from the tables measured on the shipped model, for one scheduler.

    fidelity(T, f) = fidelity_T(T) * similar_fidelity(f) / similar_fidelity(0), where f = k / T
    is the shared fraction and `similar_*` the similar-prompt columns of the sharing table
    (measured with DDIM); detail(T, f) likewise. Both interpolated linearly over T.
    """

    def __init__(self, path: Path = QUALITY_FILE, scheduler: str = "ddim") -> None:
        data = json.loads(Path(path).read_text())
        steps = data["schedulers"][scheduler]["steps"]
        self.t = np.asarray([row["steps"] for row in steps], dtype=float)
        self.fidelity = np.asarray([row["fidelity"] for row in steps])
        self.detail = np.asarray([row["detail"] for row in steps])
        sharing = data["sharing"]
        self.fraction = np.asarray([row["fraction"] for row in sharing])
        self.sharing = {name: np.asarray([row[f"similar_{name}"] for row in sharing]) / sharing[0][f"similar_{name}"]
                        for name in ("fidelity", "detail")}

    def assess(self, steps: int, shared_fraction: float = 0.0) -> tuple[float, float]:
        """(detail, fidelity), each in [0, 1]."""
        detail = np.interp(steps, self.t, self.detail) * np.interp(shared_fraction, self.fraction,
                                                                     self.sharing["detail"])
        fidelity = np.interp(steps, self.t, self.fidelity) * np.interp(shared_fraction, self.fraction,
                                                                       self.sharing["fidelity"])
        return float(np.clip(detail, 0.0, 1.0)), float(np.clip(fidelity, 0.0, 1.0))


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

            from world.imagegen.quality import DetailReference

            self.denoiser = CooperativeDenoiser(model)
            self.judge = load_judge()
            self.reference = DetailReference(getattr(model, "roundtrip", None))
            self.encoder = model.encoder
            self.latent_bits = model.latent_bits()
        else:
            self.encoder = shared_encoder()
            self.latent_bits = shipped_latent_bits()
        self.table = QualityTable(scheduler=cfg.scheduler)
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

        drawn = self._draw(batch, jobs, groups, prompts) if self.cfg.render == "real" else None
        for g, group in enumerate(groups):
            for j in group.members:
                r = batch[j]
                r.cluster = f"{self.batches}.{g}" if len(group.members) > 1 else "solo"
                r.shared_steps = group.shared
                if r.device_steps > 0:
                    r.payload_bits = float(self.latent_bits)
                self._assess(r, group.shared, None if drawn is None else (drawn[0][j], drawn[1][j]))
        return timing

    def render_on_phone(self, batch: Sequence[ImageRequest]) -> None:
        """Draw requests whose every step runs on the phone (`render: real` only).

        The phone runs the same model from the request's own noise; here that is done on the
        simulation host, while the time and energy booked are the phone's (on delivery). Each
        image is judged as a server's is; nothing is shared and the GPU's counters do not move.
        """
        if self.cfg.render != "real" or not batch:
            return
        prompts = list(dict.fromkeys(r.prompt for r in batch))
        row = {p: i for i, p in enumerate(prompts)}
        jobs = [Job(row[r.prompt], self._noise_seed(r), r.steps, 0) for r in batch]
        images, verdicts = self._draw(batch, jobs, [Group((j,), 0) for j in range(len(jobs))], prompts)
        for r, image, verdict in zip(batch, images, verdicts):
            r.shared_steps = 0
            self._assess(r, 0, (image, verdict))

    def _draw(self, batch: Sequence[ImageRequest], jobs: Sequence[Job], groups: Sequence[Group],
              prompts: Sequence[str]) -> tuple[np.ndarray, list]:
        """Run the jobs on the image model; (images, the judge's verdict per request or None)."""
        from world.imagegen.quality import judge

        images = self.denoiser.run(jobs, groups, self.model.conditions(list(prompts))).images
        return images, judge(self.judge, images, [parse(r.prompt) for r in batch], self.reference)

    def _assess(self, r: ImageRequest, shared: int, drawn: tuple | None) -> None:
        """A request's detail and fidelity: the judge's verdict on its image, else the quality table."""
        sharpness, fidelity = self.table.assess(r.steps, shared / max(1, r.steps))
        r.seen = ""
        if drawn is not None:
            r.image, verdict = drawn
            if verdict is not None:     # a prompt the judge cannot read keeps the table's figures
                sharpness, fidelity, r.seen = verdict.detail, verdict.fidelity, verdict.seen
        r.sharpness, r.fidelity = sharpness, fidelity

    def cluster_sizes(self, prompts: Sequence[str]) -> list[int]:
        """Per prompt, the size of the cluster `serve` would put it in if `prompts` were one batch
        (1 each when sharing is off)."""
        if self.cfg.shared_fraction == 0 or len(prompts) < 2:
            return [1] * len(prompts)
        sizes = [1] * len(prompts)
        for members in cluster(self.encoder.encode(list(prompts)), self.cfg.similarity_threshold):
            for j in members:
                sizes[j] = len(members)
        return sizes

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

        model = load_image_model(gen.model, device=gen.device, dtype=gen.dtype, threads=gen.threads,
                                 scheduler=gen.scheduler)
    return [CooperativeRender(gen if gen.share else gen.model_copy(update={"shared_fraction": 0.0}), s, seed, model)
            for s in cfg.gpu_servers]
