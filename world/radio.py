"""The downlink radio channel from the base station to the phones.

Models (DESIGN.md, "Starting models"):
    PL_dB    = PL0_dB + 10 * alpha * log10(d / d0)        path loss, dB
    |h|^2    ~ Exp(1)                                       Rayleigh fading, redrawn every slot
    g        = 10^(-PL_dB / 10) * |h|^2                     channel power gain, linear
    rate_bps = B * log2(1 + P * g / (N0 * B))               Shannon rate, bit/s
    t_tx     = payload_bits / rate_bps                      transmit time, s
    E_tx     = P * t_tx                                     transmit energy, J

Each request is served on its own channel of bandwidth B (OFDMA-like), so
transfers do not share a rate. Fading is block fading: a transfer keeps the
gain of the slot in which it starts.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

import numpy as np
import simpy
from pydantic import BaseModel, ConfigDict, Field, model_validator


class RadioConfig(BaseModel):
    """Downlink channel and transmitter constants."""

    # strict: a number is a number (true is not 1); no NaN or infinity
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    bandwidth_hz: float = Field(1.0e6, gt=0, description="Bandwidth B of one request's channel, Hz.")
    # 10^(N0 / 10) overflows a float above about 3000 dBm/Hz; -174 is thermal noise at room temperature
    noise_dbm_per_hz: float = Field(-174.0, ge=-300, le=300, description="Noise power spectral density N0, dBm/Hz.")
    pl0_db: float = Field(15.3, ge=0, le=300, description="Path loss PL0 at the reference distance d0, dB.")
    d0_m: float = Field(1.0, gt=0, description="Reference distance d0, m; closer users get the loss at d0.")
    alpha: float = Field(3.76, gt=0, le=10, description="Path-loss exponent alpha, dimensionless.")
    min_power_w: float = Field(0.1, gt=0, description="Lowest transmit power P_min per request, W.")
    max_power_w: float = Field(1.0, gt=0, description="Highest transmit power P_max per request, W.")
    payload_bits: float = Field(8.0e5, gt=0, description="Size of one delivered image, bits.")

    @model_validator(mode="after")
    def _power_range(self) -> RadioConfig:
        if self.min_power_w > self.max_power_w:
            raise ValueError(
                f"min_power_w ({self.min_power_w}) must not exceed max_power_w ({self.max_power_w})"
            )
        return self

    @property
    def noise_w_per_hz(self) -> float:
        """N0 in W/Hz."""
        return 10 ** ((self.noise_dbm_per_hz - 30.0) / 10.0)


def path_loss_db(distance_m: np.ndarray | float, cfg: RadioConfig) -> np.ndarray:
    """PL_dB = PL0_dB + 10 * alpha * log10(d / d0), with d floored at d0 (near field)."""
    d = np.maximum(np.asarray(distance_m, dtype=float), cfg.d0_m)
    return cfg.pl0_db + 10.0 * cfg.alpha * np.log10(d / cfg.d0_m)


MIN_RATE_BPS = 1.0   # floor of a transfer's rate, bit/s


def shannon_rate_bps(power_w: np.ndarray | float, gain: np.ndarray | float, cfg: RadioConfig) -> np.ndarray:
    """rate_bps = B * log2(1 + P * g / (N0 * B))."""
    noise_w = cfg.noise_w_per_hz * cfg.bandwidth_hz
    snr = np.asarray(power_w, dtype=float) * np.asarray(gain, dtype=float) / noise_w
    return cfg.bandwidth_hz * np.log1p(snr) / np.log(2.0)   # log1p: a weak link keeps a tiny rate, not 0


@dataclass(frozen=True)
class Transfer:
    """What one finished transfer measured."""

    start_s: float
    end_s: float
    rate_bps: float
    energy_j: float
    gain: float


class Radio:
    """The channel between the base station and every user, redrawn each slot.

    Args:
        cfg: channel constants.
        env: the model's SimPy clock.
        rng: the model's seeded generator (fading draws).
        bs_position_m: base-station coordinates (x, y), m.
    """

    def __init__(self, cfg: RadioConfig, env: simpy.Environment, rng: np.random.Generator,
                 bs_position_m: tuple[float, float]) -> None:
        self.cfg = cfg
        self.env = env
        self.rng = rng
        self.bs_position_m = np.asarray(bs_position_m, dtype=float)
        self.distance_m = np.zeros(0)
        self.gain = np.zeros(0)

    def redraw(self, positions_m: np.ndarray) -> None:
        """New slot: distances from the users' positions, fresh Rayleigh fading."""
        self.distance_m = np.linalg.norm(positions_m - self.bs_position_m, axis=1)
        fading = self.rng.exponential(1.0, size=len(positions_m))
        self.gain = 10.0 ** (-path_loss_db(self.distance_m, self.cfg) / 10.0) * fading

    def rate_bps(self, user_index: int, power_w: float) -> float:
        """Rate to one user this slot at the given power."""
        return float(shannon_rate_bps(power_w, self.gain[user_index], self.cfg))

    def transmit(self, user_index: int, power_w: float,
                 bits: float | None = None) -> Generator[simpy.Event, None, Transfer]:
        """SimPy process: send one image (or `bits` bits: latents handed to the phone); returns when the last
        bit has arrived."""
        gain = float(self.gain[user_index])
        # a link in deep outage (underflowing gain) still ends: at 1 bit/s, the image waits that long
        rate = max(float(shannon_rate_bps(power_w, gain, self.cfg)), MIN_RATE_BPS)
        start = self.env.now
        duration_s = (self.cfg.payload_bits if bits is None else bits) / rate
        yield self.env.timeout(duration_s)
        return Transfer(start_s=start, end_s=self.env.now, rate_bps=rate,
                        energy_j=power_w * duration_s, gain=gain)
