"""Stable-Baselines3 learners on the per-request view (`pip install -e '.[sb3]'`).

`SB3Learner` trains an SB3 off-policy algorithm (TD3, SAC or DDPG) on exactly the transitions the
project's G-DDPG and DDPG learn from (`policies.library.RequestView`), with the same budget as
`scenarios.train`: uniform random actions until `learning_starts` requests have been rated, then
`updates_per_request` gradient steps for each rated request. Everything else is SB3's default (its
networks, learning rates, batch size), so its figures are those of a standard implementation.
TD3 and DDPG explore with Gaussian noise on the deterministic action (`exploration_noise`, in [-1, 1]
units: 0.2 is the project's 0.1 on [0, 1]); SAC samples its own stochastic policy.

    view = RequestView(AllocationEnv(cfg, feedback))
    agent = SB3Learner("td3", view, seed=0)
    for k in range(100):
        row = view.run_episode(agent.act, episode_seed(0, k), agent.learn)

SB3's own `learn()` cannot drive this view: a request's reward is known only after later slots were
decided, which a Gymnasium step cannot return; `act` and `learn` take its place.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from policies.library import RequestView, Transition

try:
    from stable_baselines3 import DDPG, SAC, TD3
    from stable_baselines3.common.logger import Logger
except ImportError as exc:      # the optional extra
    raise ImportError("Stable-Baselines3 is not installed: pip install -e '.[sb3]'") from exc

ALGORITHMS = {"td3": TD3, "sac": SAC, "ddpg": DDPG}


class _Spaces(gym.Env):
    """What SB3 builds its networks from: the per-request view's spaces. It is never stepped."""

    def __init__(self, view: RequestView) -> None:
        self.observation_space = view.observation_space
        self.action_space = view.action_space

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        raise RuntimeError("the per-request view is driven by RequestView.run_episode with SB3Learner.act and "
                           "SB3Learner.learn, not by SB3's learn(): rewards arrive after later decisions")

    def step(self, action: np.ndarray) -> Any:
        return self.reset()


class SB3Learner:
    """An SB3 algorithm acting on and learning from `RequestView` transitions.

    Args:
        algorithm: 'td3', 'sac' or 'ddpg'.
        view: the per-request view it acts in.
        seed: seeds SB3 (networks, replay sampling) and the exploration.
        learning_starts: rated requests collected with uniform random actions before the policy acts.
        updates_per_request: gradient steps per rated request once the buffer holds a batch.
        exploration_noise: standard deviation of TD3's and DDPG's Gaussian action noise, [-1, 1] units.
        **kwargs: passed to the SB3 algorithm (learning_rate, batch_size, policy_kwargs, ...).
    """

    def __init__(self, algorithm: str, view: RequestView, seed: int = 0, learning_starts: int = 256,
                 updates_per_request: int = 2, exploration_noise: float = 0.2, **kwargs: Any) -> None:
        if algorithm not in ALGORITHMS:
            raise ValueError(f"unknown SB3 algorithm '{algorithm}'; choose one of {', '.join(ALGORITHMS)}")
        self.name = f"sb3-{algorithm}"
        self.model = ALGORITHMS[algorithm]("MlpPolicy", _Spaces(view), seed=seed, device="cpu",
                                           learning_starts=learning_starts, **kwargs)
        self.model.set_logger(Logger(folder=None, output_formats=[]))
        self.stochastic = algorithm == "sac"
        self.learning_starts = learning_starts
        self.updates_per_request = updates_per_request
        self.exploration_noise = exploration_noise
        self.exploring = True           # False: deterministic actions, for evaluation
        self.rng = np.random.default_rng([seed, 7])
        self.transitions = 0

    @property
    def updates(self) -> int:
        return int(self.model._n_updates)

    def act(self, rows: np.ndarray) -> np.ndarray:
        """(n, 13) scaled rows -> (n, 3) actions in [-1, 1]: random before learning starts, then the policy's
        (with exploration noise while exploring)."""
        size = (len(rows), self.model.action_space.shape[0])
        if self.exploring and self.transitions < self.learning_starts:
            return self.rng.uniform(-1.0, 1.0, size=size)
        action, _ = self.model.predict(rows, deterministic=not (self.exploring and self.stochastic))
        if self.exploring and not self.stochastic:
            action = action + self.rng.normal(0.0, self.exploration_noise, size=size)
        return np.clip(action, -1.0, 1.0)

    def learn(self, transitions: list[Transition]) -> None:
        """Store each rated request as a one-step transition (done) and train on the buffer."""
        buffer = self.model.replay_buffer
        for t in transitions:
            buffer.add(t.obs[None], t.obs[None], t.action[None], np.array([t.reward]), np.array([True]), [{}])
            self.transitions += 1
            if buffer.size() >= self.model.batch_size:
                self.model.train(gradient_steps=self.updates_per_request, batch_size=self.model.batch_size)
