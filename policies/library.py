"""The allocation environment in the shapes RL libraries expect, and its per-request transitions.

`policies.env.AllocationEnv` speaks the simulator's units: a (max_requests, 14) observation of raw
features (gain near -90 dB, distance near 150 m, ...) with a mask column, and a (max_requests, 3)
action in [0, 1]. Libraries such as Stable-Baselines3 assume a flat, scaled observation and a
symmetric action box. Nothing here changes what is simulated; only the units change.

`LibraryEnv(cfg, feedback, seed=s)` is the slot-level environment for them, with Gymnasium's and
SB3's checkers passing without warnings:
    observation  Box(-OBS_LIMIT, OBS_LIMIT, (max_requests * 14,)), float32: row by row, each feature
                 standardised as (value - OBS_CENTER) / OBS_SCALE (`agents.base_station`), clipped to
                 +-OBS_LIMIT (never reached on the shipped scenarios), then the mask (1 request, 0 empty
                 row); an empty row is all zeros
    action       Box(-1, 1, (max_requests * 3,)), float32: row by row steps, server_share, power, -1 the
                 low end of each (min_steps, all on the phone, min_power_w) and +1 the high end
    reward       the slot's reward of `AllocationEnv`, unchanged
    seeding      reset without a seed gives episode k (counted from 0) the block `episode_seed(seed, k)`,
                 the blocks `scenarios.train` gives episode k of a run seeded `seed`

Most slots hold few requests (in the city block most hold none) and a slot's
reward arrives seconds after its decisions, so a slot-level learner has little to go on. The project's
learners assign credit per request instead: `RequestView` gives the same transitions to any learner, one
per rated request, in the same units (a 13-value scaled row, a 3-value action in [-1, 1], the request's
reward share; each transition is a one-step episode: done, no next observation):

    view = RequestView(AllocationEnv(cfg, feedback))
    row = view.run_episode(act, episode_seed(seed, k), learn)    # act(rows) -> actions; learn(transitions)

Episodes here cannot be a Gymnasium `step` loop: a request's reward is known only after later slots
have been decided, so the view calls the learner (`act`) for every slot's requests and hands it the
rated transitions (`learn`) as they come. `policies.sb3.SB3Learner` connects Stable-Baselines3 to it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from agents.base_station import ACTION_FEATURES, OBS_CENTER, OBS_FEATURES, OBS_SCALE
from agents.feedback import FeedbackService
from policies.env import AllocationEnv, Outcome, episode_seed, run_episode
from world.config import ScenarioConfig

OBS_LIMIT = 100.0      # scaled features are clipped to +-OBS_LIMIT (a gain 1500 dB from its centre)


def scale_rows(rows: np.ndarray) -> np.ndarray:
    """Raw observation rows (..., len(OBS_FEATURES)) -> standardised, clipped, float32."""
    scaled = (np.asarray(rows, dtype=np.float32) - OBS_CENTER) / OBS_SCALE
    return np.clip(scaled, -OBS_LIMIT, OBS_LIMIT).astype(np.float32)


def to_unit(actions: np.ndarray) -> np.ndarray:
    """Actions in [-1, 1] -> the environment's [0, 1] (out-of-box values clipped)."""
    return np.clip((np.asarray(actions, dtype=float) + 1.0) / 2.0, 0.0, 1.0)


def to_symmetric(actions: np.ndarray) -> np.ndarray:
    """Actions in [0, 1] -> [-1, 1]."""
    return (2.0 * np.asarray(actions, dtype=np.float32) - 1.0).astype(np.float32)


class LibraryEnv(gym.Env):
    """`AllocationEnv` flat and scaled, with actions in [-1, 1] and the benchmark's episode seeds (see the
    module docstring). `inner` is the wrapped environment; `outcomes` and `model` are its own.

    Args:
        cfg: the scenario; `slots` is the episode length.
        feedback: the personas' answers (see `AllocationEnv`).
        seed: the run seed of the episode blocks: reset without a seed gives the k-th episode (from 0)
            the block `episode_seed(seed, k)`; an explicit seed is used as given and does not count.
        max_requests: requests decided per slot (rows), count.
    """

    metadata = {"render_modes": []}

    def __init__(self, cfg: ScenarioConfig, feedback: FeedbackService | None, seed: int = 0,
                 max_requests: int = 8) -> None:
        self.inner = AllocationEnv(cfg, feedback, max_requests)
        self.rows = max_requests
        width = len(OBS_FEATURES) + 1
        low = np.full((max_requests, width), -OBS_LIMIT, dtype=np.float32)
        high = np.full((max_requests, width), OBS_LIMIT, dtype=np.float32)
        low[:, -1], high[:, -1] = 0.0, 1.0
        self.observation_space = gym.spaces.Box(low.ravel(), high.ravel(), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (max_requests * len(ACTION_FEATURES),), dtype=np.float32)
        self.run_seed = seed
        self.episode = 0

    @property
    def model(self) -> Any:
        return self.inner.model

    @property
    def outcomes(self) -> list[Outcome]:
        return self.inner.outcomes

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is None:
            seed = episode_seed(self.run_seed, self.episode)
            self.episode += 1
        obs, info = self.inner.reset(seed=seed, options=options)
        return self._scaled(obs), info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action = np.asarray(action, dtype=float)
        if action.size != self.action_space.shape[0]:
            raise ValueError(f"action of {action.size} values; expected {self.action_space.shape[0]} "
                             f"({self.rows} rows of {', '.join(ACTION_FEATURES)})")
        obs, reward, terminated, truncated, info = self.inner.step(to_unit(action.reshape(self.rows, -1)))
        return self._scaled(obs), float(reward), terminated, truncated, info

    @staticmethod
    def _scaled(obs: np.ndarray) -> np.ndarray:
        scaled = np.zeros_like(obs, dtype=np.float32)
        filled = obs[:, -1] > 0
        scaled[filled, :-1] = scale_rows(obs[filled, :-1])
        scaled[:, -1] = obs[:, -1]
        return scaled.ravel()


@dataclass(frozen=True)
class Transition:
    """A rated request as a one-step transition, in library units."""

    obs: np.ndarray       # (len(OBS_FEATURES),) the scaled row it was decided on, float32
    action: np.ndarray    # (len(ACTION_FEATURES),) the action it got, in [-1, 1], float32
    reward: float         # its QoE less its share of the energy penalties and its phone-energy term
    qoe: float            # the persona's rating mapped to [0, 1]


class RequestView:
    """The per-request transitions of an `AllocationEnv`, as the project's learners train on them.

    Args:
        env: the environment; its episodes, seeds and rewards are used unchanged.
    """

    observation_space = gym.spaces.Box(-OBS_LIMIT, OBS_LIMIT, (len(OBS_FEATURES),), dtype=np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (len(ACTION_FEATURES),), dtype=np.float32)

    def __init__(self, env: AllocationEnv) -> None:
        self.env = env

    def run_episode(self, act: Callable[[np.ndarray], np.ndarray], seed: int,
                    learn: Callable[[list[Transition]], None] | None = None) -> dict[str, float]:
        """One episode on the block `seed` (see `policies.env.episode_seed`).

        Args:
            act: (n, 13) scaled rows of the requests waiting in a slot -> (n, 3) actions in [-1, 1].
            learn: called after every slot with the requests rated in it (the last slot's call holds those
                rated while the episode's last requests were finished).

        Returns:
            The episode's metrics, `policies.env.EPISODE_METRICS` (what `scenarios.train` reports).
        """
        def unit_act(rows: np.ndarray) -> np.ndarray:
            actions = np.asarray(act(scale_rows(rows)), dtype=float)
            if actions.shape != (len(rows), len(ACTION_FEATURES)) or not np.all(np.isfinite(actions)):
                raise ValueError(f"act returned {actions.shape} actions for {len(rows)} rows (or non-finite values); "
                                 f"expected ({len(rows)}, {len(ACTION_FEATURES)}) finite values in [-1, 1]")
            return to_unit(actions)

        def unit_learn(outcomes: list[Outcome]) -> None:
            learn([Transition(obs=scale_rows(o.obs), action=to_symmetric(o.action), reward=float(o.reward),
                              qoe=float(o.qoe)) for o in outcomes])

        return run_episode(self.env, unit_act, seed, unit_learn if learn is not None else None)
