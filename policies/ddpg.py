"""DDPG for the base station: an MLP actor, a twin-Q critic, target networks (the paper's baseline).

The learner reads like CleanRL's `ddpg_continuous_action.py`: `actor`, `target_actor`, `qf1`,
`qf2`, `qf1_target`, `qf2_target`, `tau`, `gamma`. `GDDPG` (`policies/gddpg.py`) is this learner
with the actor swapped for a diffusion model. Departures from textbook DDPG:
- twin critics with the smaller target (as TD3 and the GDMOPT code do), one actor update per
  critic update;
- the actor ends in a sigmoid: actions live in [0, 1], the box of `ACTION_FEATURES`;
- observations are standardised with fixed centres and scales per feature (`OBS_CENTER`,
  `OBS_SCALE`), not running statistics, so a checkpoint means the same thing on any run;
- one decision per request, one network shared by all requests of a slot (the paper acts on the
  joint state of all users); with `gamma = 0` (the default) each request is a one-step decision
  and the critic learns its immediate reward, as in the GDMOPT code's one-step environments.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from agents.base_station import ACTION_FEATURES, OBS_CENTER, OBS_FEATURES, OBS_SCALE
from world.files import write_atomic

CHECKPOINT_FORMAT = "aigcsim-policy/1"


class CheckpointError(ValueError):
    """A checkpoint cannot be used: missing, corrupted, for another policy or another layout."""


class NonFiniteError(RuntimeError):
    """A network produced NaN or infinite values."""


class ReplayBuffer:
    """Transitions (obs, action, reward, next_obs, done) in a ring of fixed size.

    Args:
        obs_dim: observation size.
        act_dim: action size.
        capacity: most transitions kept, count.
    """

    def __init__(self, obs_dim: int, act_dim: int, capacity: int) -> None:
        self.capacity = capacity
        self.obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.action = np.zeros((capacity, act_dim), dtype=np.float32)
        self.reward = np.zeros(capacity, dtype=np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.done = np.ones(capacity, dtype=np.float32)
        self.size = 0
        self.pos = 0

    def add(self, obs: np.ndarray, action: np.ndarray, reward: float,
            next_obs: np.ndarray | None = None, done: bool = True) -> None:
        """Store one transition; a one-step decision has no next observation (done)."""
        i = self.pos
        self.obs[i], self.action[i], self.reward[i] = obs, action, reward
        self.next_obs[i] = obs if next_obs is None else next_obs
        self.done[i] = float(done)
        self.pos = (self.pos + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """A uniform batch of stored transitions, as tensors."""
        idx = rng.integers(0, self.size, size=batch_size)
        return {k: torch.from_numpy(getattr(self, k)[idx]) for k in ("obs", "action", "reward", "next_obs", "done")}

    def state_dict(self) -> dict[str, Any]:
        n = self.size
        return {"obs": torch.from_numpy(self.obs[:n].copy()), "action": torch.from_numpy(self.action[:n].copy()),
                "reward": torch.from_numpy(self.reward[:n].copy()),
                "next_obs": torch.from_numpy(self.next_obs[:n].copy()),
                "done": torch.from_numpy(self.done[:n].copy()), "pos": self.pos}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        n = len(state["reward"])
        if n > self.capacity:
            raise CheckpointError(f"replay buffer of {n} transitions exceeds the capacity {self.capacity}")
        for k in ("obs", "action", "reward", "next_obs", "done"):
            getattr(self, k)[:n] = state[k].numpy()
        self.size, self.pos = n, int(state["pos"]) % self.capacity


def mlp(sizes: list[int], out_act: nn.Module | None = None) -> nn.Sequential:
    """Linear layers with Mish between them (the GDMOPT code's activation)."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.Mish())
    if out_act is not None:
        layers.append(out_act)
    return nn.Sequential(*layers)


class MlpActor(nn.Module):
    """s -> a in [0, 1]: two hidden layers, sigmoid output."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: int = 256) -> None:
        super().__init__()
        self.net = mlp([obs_dim, hidden, hidden, act_dim], nn.Sigmoid())

    def forward(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        return self.net(obs)


class QNetwork(nn.Module):
    """(s, a) -> Q."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: int = 256) -> None:
        super().__init__()
        self.net = mlp([obs_dim + act_dim, hidden, hidden, 1])

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([obs, action], dim=-1)).squeeze(-1)


class DDPG:
    """Deterministic policy gradient with twin critics; the actor is an MLP.

    Args:
        obs_dim: observation row size (default: `OBS_FEATURES`).
        act_dim: action row size (default: `ACTION_FEATURES`).
        seed: seeds the networks, the exploration noise and the replay sampling.
        hidden: width of the hidden layers.
        actor_lr: Adam step size of the actor.
        critic_lr: Adam step size of the critics.
        gamma: discount; 0 for one-step decisions.
        tau: soft update rate of the target networks.
        exploration_noise: standard deviation of the Gaussian noise added to actions when exploring.
        batch_size: transitions per update.
        policy_delay: critic updates per actor update (TD3's delayed policy updates).
        critic_warmup: critic updates before the actor's first update: an untrained critic's
            gradient drives the actor into the bounds of the box, where it sticks.
        buffer_size: replay capacity, transitions.
        obs_center, obs_scale: standardisation of observations; default the fixed `OBS_CENTER`/`OBS_SCALE`.
    """

    name = "ddpg"

    def __init__(self, obs_dim: int = len(OBS_FEATURES), act_dim: int = len(ACTION_FEATURES), seed: int = 0,
                 hidden: int = 256, actor_lr: float = 1e-3, critic_lr: float = 3e-3, gamma: float = 0.0,
                 tau: float = 0.005, exploration_noise: float = 0.1, batch_size: int = 128,
                 policy_delay: int = 2, critic_warmup: int = 200, buffer_size: int = 100_000, obs_center: np.ndarray | None = None,
                 obs_scale: np.ndarray | None = None) -> None:
        self.config = {"obs_dim": obs_dim, "act_dim": act_dim, "hidden": hidden, "actor_lr": actor_lr,
                       "critic_lr": critic_lr, "gamma": gamma, "tau": tau, "exploration_noise": exploration_noise,
                       "batch_size": batch_size, "policy_delay": policy_delay, "critic_warmup": critic_warmup,
                       "buffer_size": buffer_size}
        self.policy_delay, self.critic_warmup = policy_delay, critic_warmup
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.gamma, self.tau = gamma, tau
        self.exploration_noise = exploration_noise
        self.batch_size = batch_size
        default = obs_dim == len(OBS_FEATURES)
        self.obs_center = np.asarray(obs_center if obs_center is not None else
                                     (OBS_CENTER if default else np.zeros(obs_dim)), dtype=np.float32)
        self.obs_scale = np.asarray(obs_scale if obs_scale is not None else
                                    (OBS_SCALE if default else np.ones(obs_dim)), dtype=np.float32)
        self.rng = np.random.default_rng(seed)
        torch.manual_seed(seed)     # the networks' initial weights and the diffusion actor's noise
        self.actor = self.make_actor()
        self.target_actor = self.make_actor()
        self.target_actor.load_state_dict(self.actor.state_dict())
        self.qf1, self.qf2 = QNetwork(obs_dim, act_dim, hidden), QNetwork(obs_dim, act_dim, hidden)
        self.qf1_target, self.qf2_target = QNetwork(obs_dim, act_dim, hidden), QNetwork(obs_dim, act_dim, hidden)
        self.qf1_target.load_state_dict(self.qf1.state_dict())
        self.qf2_target.load_state_dict(self.qf2.state_dict())
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=actor_lr)
        self.q_optimizer = torch.optim.Adam([*self.qf1.parameters(), *self.qf2.parameters()], lr=critic_lr)
        self.buffer = ReplayBuffer(obs_dim, act_dim, buffer_size)
        self.updates = 0

    def make_actor(self) -> nn.Module:
        return MlpActor(self.obs_dim, self.act_dim, self.config["hidden"])

    def _normalise(self, obs: np.ndarray | torch.Tensor) -> torch.Tensor:
        obs = torch.as_tensor(np.asarray(obs, dtype=np.float32))
        return (obs - torch.from_numpy(self.obs_center)) / torch.from_numpy(self.obs_scale)

    def predict(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """(n, obs_dim) rows -> (n, act_dim) actions in [0, 1]; exploring adds Gaussian noise, then clips."""
        obs = np.asarray(obs, dtype=np.float32).reshape(-1, self.obs_dim)
        with torch.no_grad():
            action = self.actor(self._normalise(obs), deterministic=deterministic).numpy().astype(float)
        if not np.all(np.isfinite(action)):
            raise NonFiniteError(f"the {self.name} actor returned NaN or infinite actions; "
                                 f"the weights are damaged: retrain, or load an earlier checkpoint")
        if not deterministic:
            action = action + self.rng.normal(0.0, self.exploration_noise, size=action.shape)
        return np.clip(action, 0.0, 1.0)

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One critic step and one actor step on a batch; soft-update the targets. Returns the losses."""
        obs, next_obs = self._normalise(batch["obs"]), self._normalise(batch["next_obs"])
        action, reward, done = batch["action"], batch["reward"], batch["done"]
        with torch.no_grad():
            if self.gamma > 0:
                next_action = self.target_actor(next_obs, deterministic=False)
                next_q = torch.min(self.qf1_target(next_obs, next_action), self.qf2_target(next_obs, next_action))
            else:
                next_q = torch.zeros_like(reward)
            target = reward + self.gamma * (1.0 - done) * next_q
        qf_loss = ((self.qf1(obs, action) - target) ** 2).mean() + ((self.qf2(obs, action) - target) ** 2).mean()
        self.q_optimizer.zero_grad()
        qf_loss.backward()
        self.q_optimizer.step()

        self.updates += 1
        losses = {"qf_loss": qf_loss.item(), "actor_loss": math.nan}
        if self.updates <= self.critic_warmup or self.updates % self.policy_delay:
            return losses
        # the actor's loss -Q(s, actor(s)), back-propagated through the whole actor (for G-DDPG, its denoising chain)
        actor_loss = -self.qf1(obs, self.actor(obs, deterministic=False)).mean()
        self.actor_optimizer.zero_grad()
        actor_loss.backward()
        self.actor_optimizer.step()
        losses["actor_loss"] = actor_loss.item()
        if not (math.isfinite(qf_loss.item()) and math.isfinite(actor_loss.item())):
            raise NonFiniteError(f"{self.name} update {self.updates}: the losses became non-finite "
                                 f"(critic {qf_loss.item()}, actor {actor_loss.item()}); lower the learning rates")
        with torch.no_grad():
            for net, target_net in ((self.actor, self.target_actor), (self.qf1, self.qf1_target),
                                    (self.qf2, self.qf2_target)):
                for p, tp in zip(net.parameters(), target_net.parameters()):
                    tp.mul_(1.0 - self.tau).add_(self.tau * p)
        return losses

    def learn(self) -> dict[str, float] | None:
        """One update on a batch from the replay buffer, once it holds a batch."""
        if self.buffer.size < self.batch_size:
            return None
        return self.update(self.buffer.sample(self.batch_size, self.rng))

    # -- checkpoints ------------------------------------------------------------------------------

    def state_dict(self, with_buffer: bool = True) -> dict[str, Any]:
        """Everything needed to act and to go on training: tensors and plain values only."""
        state = {"format": CHECKPOINT_FORMAT, "policy": self.name, "config": dict(self.config),
                 "obs_features": list(OBS_FEATURES) if self.obs_dim == len(OBS_FEATURES) else [],
                 "action_features": list(ACTION_FEATURES) if self.act_dim == len(ACTION_FEATURES) else [],
                 "obs_center": torch.from_numpy(self.obs_center.copy()),
                 "obs_scale": torch.from_numpy(self.obs_scale.copy()), "updates": self.updates,
                 "rng": json.dumps(self.rng.bit_generator.state), "torch_rng": torch.get_rng_state()}
        for k in ("actor", "target_actor", "qf1", "qf2", "qf1_target", "qf2_target", "actor_optimizer",
                  "q_optimizer"):
            state[k] = getattr(self, k).state_dict()
        if with_buffer:
            state["buffer"] = self.buffer.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` gave; refuses another policy or another layout."""
        if state.get("policy") != self.name:
            raise CheckpointError(f"checkpoint is for policy '{state.get('policy')}', not '{self.name}'")
        mine = list(OBS_FEATURES) if self.obs_dim == len(OBS_FEATURES) else []
        if state.get("obs_features") != mine or state.get("config", {}).get("obs_dim") != self.obs_dim:
            raise CheckpointError(f"checkpoint observes {state.get('obs_features')} "
                                  f"({state.get('config', {}).get('obs_dim')} values), this code observes "
                                  f"{mine or self.obs_dim}: it was made for another observation layout; retrain it with "
                                  f"`python -m scenarios.train SCENARIO --policy {self.name}` (`make checkpoint` "
                                  f"remakes the shipped one)")
        acts = list(ACTION_FEATURES) if self.act_dim == len(ACTION_FEATURES) else []
        if state.get("action_features") != acts or state.get("config", {}).get("act_dim") != self.act_dim:
            raise CheckpointError(f"checkpoint acts on {state.get('action_features')}, this code on "
                                  f"{acts or self.act_dim}: it was made for another action layout")
        for k in ("actor", "target_actor", "qf1", "qf2", "qf1_target", "qf2_target"):
            bad = [name for name, t in state.get(k, {}).items() if t.is_floating_point() and not torch.isfinite(t).all()]
            if bad:
                raise CheckpointError(f"checkpoint's {k} holds NaN or infinite weights ({', '.join(bad[:3])}); "
                                      f"use an earlier checkpoint or retrain")
        try:
            for k in ("actor", "target_actor", "qf1", "qf2", "qf1_target", "qf2_target", "actor_optimizer",
                      "q_optimizer"):
                getattr(self, k).load_state_dict(state[k])
        except (KeyError, RuntimeError, ValueError) as exc:
            raise CheckpointError(f"checkpoint weights do not fit this {self.name} ({exc})") from None
        self.obs_center = state["obs_center"].numpy().copy()
        self.obs_scale = state["obs_scale"].numpy().copy()
        self.updates = int(state["updates"])
        self.rng.bit_generator.state = json.loads(state["rng"])
        torch.set_rng_state(state["torch_rng"])
        if "buffer" in state:
            self.buffer.load_state_dict(state["buffer"])

    def to_bytes(self, extra: dict[str, Any] | None = None, with_buffer: bool = True) -> bytes:
        """A checkpoint's content (see `save`), held in memory until it is written."""
        state = self.state_dict(with_buffer)
        state["extra"] = extra or {}
        buffer = io.BytesIO()
        torch.save(state, buffer)
        return buffer.getvalue()

    def save(self, path: Path, extra: dict[str, Any] | None = None, with_buffer: bool = True) -> None:
        """Write a checkpoint atomically (a temporary file beside it, then a rename)."""
        write_atomic(path, self.to_bytes(extra, with_buffer))

    @classmethod
    def from_checkpoint(cls, path: Path) -> tuple[DDPG, dict[str, Any]]:
        """The learner saved at `path` (built with its saved hyperparameters) and the checkpoint's `extra`."""
        state = read_checkpoint(path)
        if state.get("policy") != cls.name:
            raise CheckpointError(f"'{path}' is a checkpoint of policy '{state.get('policy')}', not '{cls.name}'")
        config = dict(state["config"])
        learner = cls(**config)
        try:
            learner.load_state_dict(state)
        except CheckpointError as exc:
            raise CheckpointError(f"'{path}': {exc}") from None
        return learner, dict(state.get("extra", {}))


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint's contents, loaded with `weights_only=True` (tensors and plain values, no code)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint '{path}' does not exist") from None
    except OSError as exc:
        raise CheckpointError(f"checkpoint '{path}' cannot be read: {exc.strerror}") from None
    try:
        state = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except Exception as exc:  # torch raises many kinds for a damaged file
        raise CheckpointError(f"checkpoint '{path}' is corrupted or not a checkpoint "
                              f"({type(exc).__name__}); use a file written by `python -m scenarios.train`") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"'{path}' is not an {CHECKPOINT_FORMAT} checkpoint; "
                              f"use a file written by `python -m scenarios.train`")
    return state
