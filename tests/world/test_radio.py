"""The downlink channel: path loss, Shannon rate, fading draws and timed transfers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import simpy
from pydantic import ValidationError

from world.radio import Radio, RadioConfig, path_loss_db, shannon_rate_bps

CFG = RadioConfig(bandwidth_hz=1.0e6, noise_dbm_per_hz=-174.0, pl0_db=15.3, d0_m=1.0, alpha=3.76,
                  min_power_w=0.1, max_power_w=1.0, payload_bits=8.0e5)


def noise_w(cfg: RadioConfig) -> float:
    """N0 * B in W, by hand: dBm/Hz -> W/Hz is 10^((dBm - 30) / 10)."""
    return 10.0 ** ((cfg.noise_dbm_per_hz - 30.0) / 10.0) * cfg.bandwidth_hz


def test_noise_density_from_dbm() -> None:
    # -174 dBm/Hz = 10^-17.4 mW/Hz = 10^-20.4 W/Hz
    assert CFG.noise_w_per_hz == pytest.approx(10.0 ** -20.4, rel=1e-12)
    assert RadioConfig(noise_dbm_per_hz=30.0).noise_w_per_hz == pytest.approx(1.0)


@pytest.mark.parametrize(("distance_m", "expected_db"), [
    (1.0, 15.3),               # at d0: PL0
    (10.0, 15.3 + 37.6),       # one decade: + 10 * alpha
    (100.0, 15.3 + 2 * 37.6),  # 90.5 dB
    (1000.0, 128.1),           # the 3GPP 128.1 + 37.6 log10(d/km) at 1 km
])
def test_path_loss_by_hand(distance_m: float, expected_db: float) -> None:
    assert float(path_loss_db(distance_m, CFG)) == pytest.approx(expected_db, abs=1e-9)


def test_path_loss_other_reference_distance() -> None:
    cfg = RadioConfig(pl0_db=40.0, d0_m=5.0, alpha=2.0)
    # 40 + 10 * 2 * log10(50 / 5) = 60
    assert float(path_loss_db(50.0, cfg)) == pytest.approx(60.0)
    assert float(path_loss_db(5.0, cfg)) == pytest.approx(40.0)


def test_path_loss_floors_distance_at_d0() -> None:
    cfg = RadioConfig(pl0_db=40.0, d0_m=5.0, alpha=2.0)
    near = path_loss_db(np.array([0.0, 1e-9, 2.5, 4.999, 5.0]), cfg)
    np.testing.assert_allclose(near, 40.0)
    assert np.all(np.isfinite(near))
    assert float(path_loss_db(5.001, cfg)) > 40.0


def test_path_loss_rises_with_distance_and_is_vectorised() -> None:
    d = np.linspace(1.0, 600.0, 50)
    loss = path_loss_db(d, CFG)
    assert loss.shape == d.shape
    assert np.all(np.diff(loss) > 0)
    expected = [CFG.pl0_db + 10 * CFG.alpha * math.log10(x / CFG.d0_m) for x in d]
    np.testing.assert_allclose(loss, expected, rtol=1e-12)
    grid = path_loss_db(np.array([[1.0, 10.0], [100.0, 1000.0]]), CFG)
    assert grid.shape == (2, 2)
    np.testing.assert_allclose(grid, [[15.3, 52.9], [90.5, 128.1]])


def test_shannon_rate_round_numbers() -> None:
    n = noise_w(CFG)
    # SNR 1 -> log2(2) = 1 bit/s/Hz; SNR 3 -> 2; SNR 255 -> 8; SNR 0 -> 0
    assert float(shannon_rate_bps(1.0, n, CFG)) == pytest.approx(1.0e6)
    assert float(shannon_rate_bps(0.5, 6 * n, CFG)) == pytest.approx(2.0e6)
    assert float(shannon_rate_bps(1.0, 255 * n, CFG)) == pytest.approx(8.0e6)
    assert float(shannon_rate_bps(1.0, 0.0, CFG)) == 0.0


def test_shannon_rate_by_hand_for_a_real_link() -> None:
    # 1 W to a user 100 m away, no fading: g = 10^(-90.5 / 10)
    g = 10.0 ** (-90.5 / 10.0)
    n0_w_per_hz = 10.0 ** ((-174.0 - 30.0) / 10.0)
    expected = 1.0e6 * math.log2(1.0 + 1.0 * g / (n0_w_per_hz * 1.0e6))
    assert float(shannon_rate_bps(1.0, g, CFG)) == pytest.approx(expected, rel=1e-12)
    # SNR = -90.5 dB - (-174 dBm/Hz - 30 + 60 dB-Hz) = 53.5 dB -> log2(1 + 10^5.35) = 17.77 bit/s/Hz
    assert expected == pytest.approx(17.7723e6, rel=1e-5)


def test_rate_monotone_in_power_gain_and_distance() -> None:
    powers = np.linspace(0.1, 1.0, 10)
    gains = np.logspace(-14, -8, 10)
    assert np.all(np.diff(shannon_rate_bps(powers, 1e-10, CFG)) > 0)
    assert np.all(np.diff(shannon_rate_bps(0.5, gains, CFG)) > 0)
    distances = np.linspace(5.0, 500.0, 20)
    gain_at = 10.0 ** (-path_loss_db(distances, CFG) / 10.0)
    assert np.all(np.diff(shannon_rate_bps(1.0, gain_at, CFG)) < 0)


def test_shannon_rate_broadcasts() -> None:
    p = np.array([[0.1], [1.0]])                  # (2, 1)
    g = np.array([1e-12, 1e-10, 1e-8])           # (3,)
    rate = shannon_rate_bps(p, g, CFG)
    assert rate.shape == (2, 3)
    by_hand = [[1e6 * math.log2(1 + pi * gj / noise_w(CFG)) for gj in g] for pi in (0.1, 1.0)]
    np.testing.assert_allclose(rate, by_hand, rtol=1e-12)


def test_rate_scales_with_bandwidth_at_fixed_snr() -> None:
    # Same SNR (P g / (N0 B) = 3) on twice the bandwidth: twice the rate.
    wide = RadioConfig(bandwidth_hz=2.0e6)
    assert float(shannon_rate_bps(1.0, 3 * noise_w(wide), wide)) == pytest.approx(4.0e6)


def radio(seed: int, cfg: RadioConfig = CFG, env: simpy.Environment | None = None) -> Radio:
    return Radio(cfg, env or simpy.Environment(), np.random.default_rng(seed), (0.0, 0.0))


def test_redraw_fading_is_exponential_with_mean_one() -> None:
    # PL0 = 0 dB and everyone within d0: the gain is the fading draw itself.
    cfg = RadioConfig(pl0_db=0.0, d0_m=10.0)
    r = radio(7, cfg)
    positions = np.random.default_rng(0).uniform(-5.0, 5.0, size=(40_000, 2))
    r.redraw(positions)
    fading = r.gain
    assert fading.shape == (40_000,)
    assert np.all(fading > 0)
    assert fading.mean() == pytest.approx(1.0, abs=0.03)        # sd of the mean 0.005
    assert fading.var() == pytest.approx(1.0, abs=0.08)          # Exp(1): variance 1
    assert np.mean(fading > 1.0) == pytest.approx(math.exp(-1.0), abs=0.02)   # P(X > 1) = 1/e
    assert np.median(fading) == pytest.approx(math.log(2.0), abs=0.03)


def test_redraw_distances_and_mean_gain_follow_path_loss() -> None:
    r = Radio(CFG, simpy.Environment(), np.random.default_rng(3), (200.0, 200.0))
    positions = np.tile([[300.0, 200.0]], (20_000, 1))          # all 100 m east of the BS
    r.redraw(positions)
    np.testing.assert_allclose(r.distance_m, 100.0)
    mean_gain_db = 10 * math.log10(r.gain.mean())
    assert mean_gain_db == pytest.approx(-90.5, abs=0.15)


def test_redraw_reproducible_with_seed_and_fresh_each_slot() -> None:
    positions = np.array([[10.0, 0.0], [0.0, 50.0], [30.0, 40.0]])
    a, b, c = radio(5), radio(5), radio(6)
    a.redraw(positions)
    b.redraw(positions)
    c.redraw(positions)
    np.testing.assert_array_equal(a.gain, b.gain)
    assert not np.array_equal(a.gain, c.gain)
    first = a.gain.copy()
    a.redraw(positions)
    assert not np.array_equal(first, a.gain)               # block fading: a new draw each slot
    np.testing.assert_allclose(a.distance_m, [10.0, 50.0, 50.0])


def test_transfer_in_simpy_time() -> None:
    env = simpy.Environment()
    r = radio(11, env=env)
    r.redraw(np.array([[120.0, 0.0], [40.0, 30.0]]))
    gain = float(r.gain[1])
    rate = CFG.bandwidth_hz * math.log2(1.0 + 0.4 * gain / noise_w(CFG))
    assert r.rate_bps(1, 0.4) == pytest.approx(rate, rel=1e-12)
    env.run(until=3.0)                                   # the transfer starts mid-run
    proc = env.process(r.transmit(1, 0.4))
    env.run()
    transfer = proc.value
    duration = CFG.payload_bits / rate
    assert env.now == pytest.approx(3.0 + duration, rel=1e-12)
    assert transfer.start_s == 3.0
    assert transfer.end_s == pytest.approx(3.0 + duration, rel=1e-12)
    assert transfer.rate_bps == pytest.approx(rate, rel=1e-12)
    assert transfer.energy_j == pytest.approx(0.4 * duration, rel=1e-12)
    assert transfer.gain == gain


def test_transfer_keeps_the_gain_of_its_start_slot() -> None:
    env = simpy.Environment()
    r = radio(2, cfg=RadioConfig(payload_bits=1.0e9), env=env)   # long enough to span a redraw
    positions = np.array([[50.0, 0.0]])
    r.redraw(positions)
    gain_at_start = float(r.gain[0])
    proc = env.process(r.transmit(0, 1.0))
    env.run(until=1e-6)
    r.redraw(positions)
    assert r.gain[0] != gain_at_start
    env.run()
    assert proc.value.gain == gain_at_start
    assert proc.value.end_s == pytest.approx(1.0e9 / float(shannon_rate_bps(1.0, gain_at_start, r.cfg)))


def test_parallel_transfers_do_not_share_rate() -> None:
    env = simpy.Environment()
    r = radio(4, env=env)
    r.redraw(np.array([[60.0, 0.0], [60.0, 0.0]]))
    one = env.process(r.transmit(0, 1.0))
    two = env.process(r.transmit(0, 1.0))
    env.run()
    assert one.value.end_s == two.value.end_s == pytest.approx(CFG.payload_bits / r.rate_bps(0, 1.0))


def test_config_rejects_min_power_above_max() -> None:
    with pytest.raises(ValidationError, match=r"min_power_w \(2.0\) must not exceed max_power_w \(1.0\)"):
        RadioConfig(min_power_w=2.0, max_power_w=1.0)
    assert RadioConfig(min_power_w=0.5, max_power_w=0.5).min_power_w == 0.5


@pytest.mark.parametrize("field", ["bandwidth_hz", "d0_m", "alpha", "min_power_w", "max_power_w", "payload_bits"])
def test_config_rejects_non_positive(field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        RadioConfig(**{field: 0.0})


def test_config_is_frozen_and_strict() -> None:
    with pytest.raises(ValidationError):
        RadioConfig(bandwith_hz=1.0)            # typo: unknown key
    with pytest.raises(ValidationError):
        CFG.alpha = 2.0                         # type: ignore[misc]
