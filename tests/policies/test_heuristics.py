"""Baseline policies: the right shape, in [0, 1], reproducible."""

from __future__ import annotations

import math

import numpy as np
import pytest

from agents.base_station import ACTION_FEATURES, OBS_FEATURES
from policies.heuristics import FixedPolicy, RandomPolicy


def obs(n: int) -> np.ndarray:
    return np.random.default_rng(n).normal(size=(n, len(OBS_FEATURES)))


@pytest.mark.parametrize("n", [0, 1, 7])
def test_fixed_policy_repeats_its_action(n: int) -> None:
    action = FixedPolicy(steps=0.25, server_share=0.5, power=0.75).predict(obs(n))
    assert action.shape == (n, len(ACTION_FEATURES)) == (n, 3)
    assert np.array_equal(action, np.tile([0.25, 0.5, 0.75], (n, 1)))


def test_fixed_policy_default_is_most_steps_on_gpu_at_most_power() -> None:
    action = FixedPolicy().predict(obs(4), deterministic=False)
    assert np.array_equal(action, np.ones((4, 3)))


def test_fixed_policy_rows_are_independent_copies() -> None:
    policy = FixedPolicy(steps=0.5)
    first = policy.predict(obs(3))
    first[0, 0] = 0.9
    assert policy.predict(obs(3))[0, 0] == 0.5


@pytest.mark.parametrize("field", ["steps", "server_share", "power"])
@pytest.mark.parametrize("value", [-0.1, 1.1, math.nan])
def test_fixed_policy_refuses_out_of_range(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        FixedPolicy(**{field: value})


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_fixed_policy_accepts_the_bounds(value: float) -> None:
    assert np.all(FixedPolicy(value, value, value).predict(obs(2)) == value)


def test_random_policy_shape_and_range() -> None:
    action = RandomPolicy(np.random.default_rng(0)).predict(obs(5000))
    assert action.shape == (5000, 3)
    assert np.all((action >= 0) & (action <= 1))
    assert action.mean(axis=0) == pytest.approx([0.5] * 3, abs=0.02)
    assert action.std(axis=0) == pytest.approx([math.sqrt(1 / 12)] * 3, abs=0.01)
    assert RandomPolicy(np.random.default_rng(0)).predict(obs(0)).shape == (0, 3)


def test_random_policy_reproducible_with_seed() -> None:
    a, b, c = (RandomPolicy(np.random.default_rng(s)) for s in (7, 7, 8))
    first_a, first_b = a.predict(obs(10)), b.predict(obs(10))
    np.testing.assert_array_equal(first_a, first_b)
    np.testing.assert_array_equal(a.predict(obs(4)), b.predict(obs(4)))
    assert not np.array_equal(first_a, c.predict(obs(10)))
    assert not np.array_equal(first_a[:4], a.predict(obs(4)))     # the stream moves on
