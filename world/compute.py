"""Compute cost of denoising: per-step latency and energy on a GPU server and on a phone.

Profiled model (constants in the YAML):
    t_step(b) = step_latency_s * (1 + batch_latency_slope * (b - 1))   one step of a batch of b, s
    e_step(b) = step_energy_j  * (1 + batch_energy_slope  * (b - 1))   energy of that step, J

A batch runs its denoising steps in lockstep; a request leaves the batch when
its own steps are done, so the batch shrinks and later steps get cheaper.
Each step's energy is shared equally by the requests still in the batch.

`ProfiledCost` implements the `ComputeModel` interface of `agents.gpu_server`;
the real denoising engine is another implementation of that interface.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from world.imagegen.schedulers import Scheduler

if TYPE_CHECKING:       # the config classes here load without Mesa (`validate` stays fast)
    from agents.gpu_server import BatchTiming


class GpuProfile(BaseModel):
    """Cost constants of one GPU server."""

    # strict: a number is a number (true is not 1, 4.5 is not a count); no NaN or infinity
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    step_latency_s: float = Field(0.05, gt=0, description="Latency of one denoising step at batch 1, s.")
    batch_latency_slope: float = Field(
        0.15, ge=0, description="Extra latency per step for each further image in the batch, fraction of step_latency_s.")
    step_energy_j: float = Field(15.0, gt=0, description="Energy of one denoising step at batch 1, J.")
    batch_energy_slope: float = Field(
        0.10, ge=0, description="Extra energy per step for each further image in the batch, fraction of step_energy_j.")
    max_batch: int = Field(16, ge=1, le=1024, description="Most images denoised together in one batch, count.")


class PhoneProfile(BaseModel):
    """Cost constants of a phone finishing the last steps itself."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    step_latency_s: float = Field(0.8, gt=0, description="Latency of one denoising step on the phone, s.")
    step_energy_j: float = Field(2.0, gt=0, description="Energy of one denoising step on the phone, J.")


class ProfiledCost:
    """Batch timing from a calibrated profile (no denoising is run)."""

    def __init__(self, profile: GpuProfile) -> None:
        self.profile = profile

    def step_latency_s(self, batch: int) -> float:
        """t_step(b), s."""
        p = self.profile
        return p.step_latency_s * (1.0 + p.batch_latency_slope * (batch - 1))

    def step_energy_j(self, batch: int) -> float:
        """e_step(b), J."""
        p = self.profile
        return p.step_energy_j * (1.0 + p.batch_energy_slope * (batch - 1))

    def serve(self, batch: Sequence) -> BatchTiming:
        """Cost a batch of requests without sharing (each runs its own server steps)."""
        return self.batch_timing([r.server_steps for r in batch])

    def batch_timing(self, steps: Sequence[int]) -> BatchTiming:
        """Finish offsets and energy of a lockstep batch whose members need `steps` server steps."""
        steps_arr = np.asarray(steps, dtype=int)
        finish_s = np.zeros(len(steps_arr))
        energy_j = np.zeros(len(steps_arr))
        clock_s = 0.0
        done = 0
        for level in np.unique(steps_arr):
            active = steps_arr >= level
            batch = int(active.sum())
            run = int(level) - done
            if run > 0:
                clock_s += run * self.step_latency_s(batch)
                energy_j[active] += run * self.step_energy_j(batch) / batch
            finish_s[steps_arr == level] = clock_s
            done = int(level)
        from agents.gpu_server import BatchTiming

        return BatchTiming(finish_s=finish_s.tolist(), energy_j=energy_j.tolist(), busy_s=clock_s)


class QualityProfile(BaseModel):
    """How clean and how faithful an image is after a number of denoising steps.

    The fallback for compute engines that do not judge their images (the
    cooperative engine of `world.imagegen.render` does, really or from its tables):
        sharpness = 1 - exp(-steps / sharpness_steps)
        fidelity  = 1 - exp(-steps / fidelity_steps)
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    sharpness_steps: float = Field(10.0, gt=0, description="Steps after which 63 % of the noise is gone, count.")
    fidelity_steps: float = Field(6.0, gt=0, description="Steps after which the content is 63 % settled, count.")


class ProfiledQuality:
    """Sharpness and fidelity of a delivered image from its total steps."""

    def __init__(self, profile: QualityProfile) -> None:
        self.profile = profile

    def assess(self, steps: int) -> tuple[float, float]:
        """(sharpness, fidelity), each in [0, 1]."""
        p = self.profile
        return 1.0 - math.exp(-steps / p.sharpness_steps), 1.0 - math.exp(-steps / p.fidelity_steps)


class ImageGenConfig(BaseModel):
    """How the GPU servers denoise: cooperative sharing, and whether images are really generated."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    render: Literal["profile", "real"] = Field(
        "profile", description="'real': run the image model for every request and judge each image; 'profile': "
                               "cost the same UNet calls and take quality from the shipped quality tables.")
    model: str = Field(
        "shipped", min_length=1, max_length=4096,
        description="'shipped' for the project's model, or a folder: a diffusers pipeline (unet/, vae/, "
                    "text_encoder/, ...) or weights with a manifest.")
    scheduler: Scheduler = Field(
        "ddim", description="Sampler, each with its own measured quality table: ddim (deterministic, the "
                            "default); dpm++ (DPM-Solver++ 2M); euler_a (Euler ancestral); ddpm (ancestral).")
    device: str = Field("cpu", min_length=1, max_length=32,
                        description="Torch device of the image model (cpu, cuda or cuda:N).")
    dtype: Literal["float32", "float16", "bfloat16"] = Field("float32", description="Weights' number format.")
    threads: int = Field(1, ge=1, le=64, description="Torch CPU threads for the image model, count.")
    share: bool = Field(True, description="Share denoising prefixes between similar prompts.")
    similarity_threshold: float = Field(
        0.75, ge=-1, le=1, description="Least MiniLM cosine similarity to a cluster's first prompt to join it.")
    shared_fraction: float = Field(
        0.1, ge=0, le=1, description="Share k/T of a cluster's steps T (capped by its members' server steps).")

    @field_validator("model", "device")
    @classmethod
    def _printable(cls, text: str) -> str:
        if not text.isprintable():
            raise ValueError(f"{text[:40]!r} contains control characters")
        return text
