"""The profiled cost of denoising: per-step latency and energy, and lockstep batches."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from world.compute import GpuProfile, PhoneProfile, ProfiledCost

PROFILE = GpuProfile(step_latency_s=0.05, batch_latency_slope=0.15, step_energy_j=15.0,
                     batch_energy_slope=0.10, max_batch=16)
COST = ProfiledCost(PROFILE)


def t(b: int) -> float:
    """t_step(b) by hand, s."""
    return 0.05 * (1 + 0.15 * (b - 1))


def e(b: int) -> float:
    """e_step(b) by hand, J."""
    return 15.0 * (1 + 0.10 * (b - 1))


@pytest.mark.parametrize(("batch", "latency_s", "energy_j"), [
    (1, 0.05, 15.0),
    (2, 0.0575, 16.5),
    (4, 0.0725, 19.5),
    (16, 0.1625, 37.5),
])
def test_step_cost_grows_linearly_with_batch(batch: int, latency_s: float, energy_j: float) -> None:
    assert COST.step_latency_s(batch) == pytest.approx(latency_s)
    assert COST.step_energy_j(batch) == pytest.approx(energy_j)


def test_batching_is_cheaper_per_image() -> None:
    for b in range(2, 17):
        assert COST.step_latency_s(b) > COST.step_latency_s(b - 1)
        assert COST.step_latency_s(b) / b < COST.step_latency_s(1)
        assert COST.step_energy_j(b) / b < COST.step_energy_j(1)


def test_flat_profile_has_no_batch_penalty() -> None:
    flat = ProfiledCost(GpuProfile(step_latency_s=0.2, batch_latency_slope=0.0,
                                   step_energy_j=3.0, batch_energy_slope=0.0))
    assert flat.step_latency_s(7) == 0.2
    assert flat.step_energy_j(7) == 3.0
    timing = flat.batch_timing([4, 10])
    assert timing.finish_s == pytest.approx([0.8, 2.0])
    # 4 shared steps of 3 J, then 6 alone
    assert timing.energy_j == pytest.approx([4 * 3.0 / 2, 4 * 3.0 / 2 + 6 * 3.0])


def test_single_request() -> None:
    timing = COST.batch_timing([20])
    assert timing.finish_s == pytest.approx([20 * 0.05])
    assert timing.energy_j == pytest.approx([20 * 15.0])
    assert timing.busy_s == pytest.approx(1.0)


def test_equal_steps_finish_together_and_share_energy() -> None:
    timing = COST.batch_timing([10, 10, 10])
    assert timing.finish_s == pytest.approx([10 * t(3)] * 3)
    assert timing.busy_s == pytest.approx(10 * t(3))
    assert timing.energy_j == pytest.approx([10 * e(3) / 3] * 3)
    assert sum(timing.energy_j) == pytest.approx(10 * e(3))


def test_mixed_steps_follow_the_shrinking_batch() -> None:
    # Lockstep: steps 1-2 run with 4 members, 3-5 with 3, 6-9 with 1.
    timing = COST.batch_timing([2, 5, 5, 9])
    first = 2 * t(4)
    second = first + 3 * t(3)
    third = second + 4 * t(1)
    assert timing.finish_s == pytest.approx([first, second, second, third])
    assert timing.busy_s == pytest.approx(third)
    share_1 = 2 * e(4) / 4
    share_2 = 3 * e(3) / 3
    assert timing.energy_j == pytest.approx([share_1, share_1 + share_2, share_1 + share_2,
                                             share_1 + share_2 + 4 * e(1)])
    assert sum(timing.energy_j) == pytest.approx(2 * e(4) + 3 * e(3) + 4 * e(1))
    # literal cross-check of the hand formulas: 2*0.0725 + 3*0.065 + 4*0.05 = 0.54 s
    assert timing.busy_s == pytest.approx(0.54)


def test_mixed_steps_any_order() -> None:
    ordered = COST.batch_timing([2, 5, 5, 9])
    shuffled = COST.batch_timing([9, 5, 2, 5])
    back = [3, 1, 0, 2]     # shuffled member i is ordered member back[i]
    assert shuffled.finish_s == pytest.approx([ordered.finish_s[j] for j in back])
    assert shuffled.energy_j == pytest.approx([ordered.energy_j[j] for j in back])
    assert shuffled.busy_s == pytest.approx(ordered.busy_s)


def test_all_distinct_steps() -> None:
    timing = COST.batch_timing([1, 2, 3])
    assert timing.finish_s == pytest.approx([t(3), t(3) + t(2), t(3) + t(2) + t(1)])
    assert timing.energy_j == pytest.approx([e(3) / 3, e(3) / 3 + e(2) / 2, e(3) / 3 + e(2) / 2 + e(1)])


def test_batch_is_faster_than_serial_but_slower_than_one() -> None:
    steps = [30] * 8
    timing = COST.batch_timing(steps)
    assert 30 * t(1) < timing.busy_s < 8 * 30 * t(1)
    assert sum(timing.energy_j) < 8 * 30 * e(1)


def test_profiles_validate() -> None:
    with pytest.raises(ValidationError, match="step_latency_s"):
        GpuProfile(step_latency_s=0.0)
    with pytest.raises(ValidationError, match="max_batch"):
        GpuProfile(max_batch=0)
    with pytest.raises(ValidationError, match="batch_energy_slope"):
        GpuProfile(batch_energy_slope=-0.1)
    with pytest.raises(ValidationError, match="step_energy_j"):
        PhoneProfile(step_energy_j=-1.0)
