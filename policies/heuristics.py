"""Baseline allocation policies that do not learn."""

from __future__ import annotations

import numpy as np

from agents.base_station import ACTION_FEATURES


class FixedPolicy:
    """The same action for every request; default: most steps, all on the GPU, most power.

    Args:
        steps: action 'steps' in [0, 1].
        server_share: action 'server_share' in [0, 1].
        power: action 'power' in [0, 1].
    """

    def __init__(self, steps: float = 1.0, server_share: float = 1.0, power: float = 1.0) -> None:
        self.action = np.array([steps, server_share, power], dtype=float)
        if not np.all((self.action >= 0) & (self.action <= 1)):
            raise ValueError(f"FixedPolicy actions must lie in [0, 1], got {self.action.tolist()}")

    def predict(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """One copy of the fixed action per request row."""
        return np.tile(self.action, (len(obs), 1))


class RandomPolicy:
    """Uniformly random actions, from a seeded generator.

    Args:
        rng: generator, seeded by the caller (the model's seed for reproducible runs).
    """

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def predict(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Uniform draws in [0, 1] for every request and action dimension."""
        return self.rng.uniform(0.0, 1.0, size=(len(obs), len(ACTION_FEATURES)))
