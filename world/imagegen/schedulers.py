"""The samplers a scenario can pick (`imagegen.scheduler`), as diffusers schedulers over the training schedule.

    ddim      DDIMScheduler, deterministic (eta 0), the default and the seed papers' sampler.
    dpm++     DPMSolverMultistepScheduler, 2nd-order DPM-Solver++, deterministic: Stable Diffusion
              users' choice for 20-25 steps.
    euler_a   EulerAncestralDiscreteScheduler: fresh noise at every step (stochastic).
    ddpm      DDPMScheduler on a shortened schedule: ancestral sampling (stochastic).

All use "trailing" timestep spacing, which starts at the last training step (pure noise): with
few steps that matters. Each scheduler instance holds one trajectory's state (DPM++ keeps its
previous model outputs), so a branch of a shared prefix continues from a copy of the prefix's.
"""

from __future__ import annotations

from typing import Literal, get_args

Scheduler = Literal["ddim", "dpm++", "euler_a", "ddpm"]
SCHEDULERS: tuple[str, ...] = get_args(Scheduler)
STOCHASTIC = frozenset({"euler_a", "ddpm"})     # draw fresh noise at each step: they take a generator


def make_scheduler(name: str, train_timesteps: int, beta_schedule: str, prediction_type: str):
    """A fresh scheduler `name` over the training noise schedule.

    Raises:
        ValueError: unknown name (the message lists the known ones).
    """
    common = {"num_train_timesteps": train_timesteps, "beta_schedule": beta_schedule,
              "prediction_type": prediction_type, "timestep_spacing": "trailing"}
    if name == "ddim":
        from diffusers import DDIMScheduler

        # no clipping: latents are not bounded like pixels
        return DDIMScheduler(**common, clip_sample=False, set_alpha_to_one=True)
    if name == "dpm++":
        from diffusers import DPMSolverMultistepScheduler

        return DPMSolverMultistepScheduler(**common, algorithm_type="dpmsolver++", solver_order=2,
                                           final_sigmas_type="zero")
    if name == "euler_a":
        from diffusers import EulerAncestralDiscreteScheduler

        return EulerAncestralDiscreteScheduler(**common)
    if name == "ddpm":
        from diffusers import DDPMScheduler

        return DDPMScheduler(**common, clip_sample=False)
    raise ValueError(f"unknown scheduler {name!r}; known: {', '.join(SCHEDULERS)}")
