"""G-DDPG: DDPG whose actor is a conditional diffusion model over the action (Du et al.).

The actor denoises an action out of Gaussian noise in a few steps, conditioned on the state: an
MLP noise predictor eps(x_i, i, s) with a sinusoidal embedding of the step i, the 'vp' beta
schedule, and the DDPM posterior at each step, as in Du et al.'s public GDMOPT code. The actor is
trained by the DDPG loss `-Q(s, actor(s))` back-propagated through the whole denoising chain;
the twin-Q critic, the target networks and their soft updates are `policies.ddpg.DDPG`'s.

Where this code departs from the paper and the GDMOPT code:
- The action is a per-request row in [0, 1] (steps, server share, power), not the paper's joint
  vector over all users; one network serves every request of a slot (see `policies.ddpg`).
- The chain runs in [-1, 1] (the denoised estimate is clipped there at every step, as GDMOPT's
  `clip_denoised`) and its result is mapped to [0, 1] by (x + 1) / 2; GDMOPT ends its AIGC actor
  in a softmax over users instead.
- `predict(deterministic=True)` runs the chain from x_N = 0 without the per-step noise (the mode of
  the chain's input); GDMOPT always samples. Exploring samples the chain and adds Gaussian noise.
- No behaviour-cloning term (GDMOPT's `bc_coef` option): the actor learns from the critic alone.
- Twin critics with the smaller target; the paper's pseudo-code has one critic.
- Learning rates, widths and batch size are this project's (`policies.ddpg.DDPG` arguments), chosen
  for a 2-core CPU; GDMOPT uses a 1e-4 actor rate and batch 512.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from policies.ddpg import DDPG, mlp


def vp_beta_schedule(steps: int, b_min: float = 0.1, b_max: float = 10.0) -> torch.Tensor:
    """Betas of the variance-preserving SDE discretised in `steps` steps (GDMOPT's 'vp' schedule)."""
    i = torch.arange(1, steps + 1, dtype=torch.float64)
    alpha = torch.exp(-b_min / steps - 0.5 * (b_max - b_min) * (2 * i - 1) / steps ** 2)
    return (1.0 - alpha).float()


class SinusoidalPosEmb(nn.Module):
    """Step index -> sin/cos features at geometric frequencies."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        freqs = torch.exp(torch.arange(half, dtype=torch.float32) * -(math.log(10000.0) / (half - 1)))
        angles = t.float()[:, None] * freqs[None, :]
        return torch.cat([angles.sin(), angles.cos()], dim=-1)


class NoisePredictor(nn.Module):
    """eps(x_i, i, s): an MLP over the noisy action, the step's embedding and the state."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: int = 256, t_dim: int = 16) -> None:
        super().__init__()
        self.time_mlp = nn.Sequential(SinusoidalPosEmb(t_dim), nn.Linear(t_dim, t_dim * 2), nn.Mish(),
                                      nn.Linear(t_dim * 2, t_dim))
        self.mid = mlp([act_dim + t_dim + obs_dim, hidden, hidden, act_dim])

    def forward(self, x: torch.Tensor, t: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        return self.mid(torch.cat([x, self.time_mlp(t), obs], dim=-1))


class DiffusionActor(nn.Module):
    """s -> a in [0, 1] by `steps` reverse-diffusion steps from Gaussian noise.

    Args:
        obs_dim: state size.
        act_dim: action size.
        hidden: width of the noise predictor.
        steps: denoising steps N (GDMOPT uses 5-6).
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: int = 256, steps: int = 5) -> None:
        super().__init__()
        self.act_dim, self.steps = act_dim, steps
        self.model = NoisePredictor(obs_dim, act_dim, hidden)
        betas = vp_beta_schedule(steps)
        alphas = 1.0 - betas
        cumprod = torch.cumprod(alphas, dim=0)
        cumprod_prev = torch.cat([torch.ones(1), cumprod[:-1]])
        posterior_var = betas * (1.0 - cumprod_prev) / (1.0 - cumprod)
        self.register_buffer("sqrt_recip_cumprod", torch.sqrt(1.0 / cumprod))
        self.register_buffer("sqrt_recipm1_cumprod", torch.sqrt(1.0 / cumprod - 1.0))
        self.register_buffer("posterior_log_var", torch.log(posterior_var.clamp(min=1e-20)))
        self.register_buffer("posterior_mean_coef1", betas * torch.sqrt(cumprod_prev) / (1.0 - cumprod))
        self.register_buffer("posterior_mean_coef2", (1.0 - cumprod_prev) * torch.sqrt(alphas) / (1.0 - cumprod))

    def forward(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        n = obs.shape[0]
        x = torch.zeros(n, self.act_dim) if deterministic else torch.randn(n, self.act_dim)
        for i in reversed(range(self.steps)):
            t = torch.full((n,), i, dtype=torch.long)
            eps = self.model(x, t, obs)
            x0 = (self.sqrt_recip_cumprod[i] * x - self.sqrt_recipm1_cumprod[i] * eps).clamp(-1.0, 1.0)
            mean = self.posterior_mean_coef1[i] * x0 + self.posterior_mean_coef2[i] * x
            if i > 0 and not deterministic:
                x = mean + torch.exp(0.5 * self.posterior_log_var[i]) * torch.randn_like(x)
            else:
                x = mean
        return (x.clamp(-1.0, 1.0) + 1.0) / 2.0


class GDDPG(DDPG):
    """DDPG with a diffusion-model actor (see the module docstring).

    Args:
        denoising_steps: steps N of the actor's reverse diffusion.
        **kwargs: as `policies.ddpg.DDPG`.
    """

    name = "gddpg"

    def __init__(self, denoising_steps: int = 5, **kwargs) -> None:
        self.denoising_steps = denoising_steps
        super().__init__(**kwargs)
        self.config["denoising_steps"] = denoising_steps

    def make_actor(self) -> nn.Module:
        return DiffusionActor(self.obs_dim, self.act_dim, self.config["hidden"], self.denoising_steps)
