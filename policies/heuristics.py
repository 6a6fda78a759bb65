"""Baseline allocation policies that do not learn: fixed, random, greedy, and the optimum reference."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from agents.base_station import ACTION_FEATURES, OBS_FEATURES, BaseStation
from agents.feedback import Delivery, rating_qoe
from agents.gpu_server import least_loaded
from agents.request import ImageRequest
from world.config import ScenarioConfig
from world.feedback_model import LearnedFeedback
from world.imagegen.render import CooperativeRender
from world.radio import shannon_rate_bps


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


def _share_j(cfg: ScenarioConfig) -> float:
    """Per-request share of the slot budget, J: budget / max(1, expected requests per slot).

    A planning proxy: the environment charges each request its share of the penalties of the slots
    it actually pushed over budget, which depends on the other requests of those slots."""
    expected = cfg.users.count * cfg.users.request_rate_per_s * cfg.slot_s
    return cfg.base_station.energy_budget_j_per_slot / max(1.0, expected)


def _steps_fraction(steps: int, min_steps: int, max_steps: int) -> float:
    """Action 'steps' that the base station turns back into `steps` (it rounds min + a * (max - min))."""
    return 0.0 if max_steps == min_steps else (steps - min_steps) / (max_steps - min_steps)


class GreedyPolicy:
    """More steps and more power to better channels, within each request's share of the energy budget.

    Per slot (the rows of one `predict` call), with n requests and T_min, T_max, P_min, P_max the limits:

        q_i     = #{j : gain_db_j <= gain_db_i} / n              channel rank, the best is 1; ties share it
        P_i     = P_min + q_i * (P_max - P_min)                  transmit power, W
        E_tx_i  = P_i * payload_bits / rate_bps(P_i, g_i)        radio energy, J (Shannon rate, `world.radio`)
        cap_i   = floor((share_j - E_tx_i) / e_step)             steps the rest of the share pays for, count
        T_i     = max(T_min, min(round(T_min + q_i * (T_max - T_min)), cap_i))

    where share_j = energy_budget_j_per_slot / max(1, users.count * request_rate_per_s * slot_s)  J (a
    per-request proxy of the slot budget, see `_share_j`) and e_step the first GPU server's step energy at
    batch 1, J. All steps run on the GPU (server_share 1): a phone step takes far longer (0.8 s against
    0.03 s in the shipped block). Going from
    the best channel down, T_i is held to at most the T of the next better channel, so a better channel
    never gets fewer steps, even when its higher power leaves less of its share for steps. Deterministic.

    Args:
        cfg: the scenario (limits, budget, radio, first GPU server's profile).
    """

    def __init__(self, cfg: ScenarioConfig) -> None:
        bs = cfg.base_station
        self.radio = cfg.radio
        self.min_steps, self.max_steps = bs.min_steps, bs.max_steps
        self.step_energy_j = cfg.gpu_servers[0].step_energy_j
        self.share_j = _share_j(cfg)

    def predict(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """(n, len(OBS_FEATURES)) rows of one slot -> (n, 3) actions in [0, 1]."""
        obs = np.asarray(obs, dtype=float)
        if obs.ndim != 2 or obs.shape[1] != len(OBS_FEATURES):
            raise ValueError(f"GreedyPolicy expects observations of shape (n, {len(OBS_FEATURES)}), got {obs.shape}")
        if not np.all(np.isfinite(obs)):
            raise ValueError("GreedyPolicy got observations with NaN or infinite values")
        n = len(obs)
        action = np.zeros((n, len(ACTION_FEATURES)))
        if n == 0:
            return action
        gain_db = obs[:, OBS_FEATURES.index("gain_db")]
        q = (gain_db[None, :] <= gain_db[:, None]).sum(axis=1) / n
        radio = self.radio
        power_w = radio.min_power_w + q * (radio.max_power_w - radio.min_power_w)
        tx_j = power_w * radio.payload_bits / shannon_rate_bps(power_w, 10.0 ** (gain_db / 10.0), radio)
        cap = np.floor((self.share_j - tx_j) / self.step_energy_j)
        target = np.round(self.min_steps + q * (self.max_steps - self.min_steps))
        steps = np.maximum(self.min_steps, np.minimum(target, cap))
        held = float(self.max_steps)
        for i in np.argsort(-gain_db, kind="stable"):     # best channel first
            steps[i] = held = min(steps[i], held)
        action[:, 0] = [_steps_fraction(int(t), self.min_steps, self.max_steps) for t in steps]
        action[:, 1] = 1.0
        action[:, 2] = q
        return action


@dataclass(frozen=True)
class Forecast:
    """What `OptimumPolicy` expects of one request under one action."""

    server_steps: int        # count
    device_steps: int        # count
    power_w: float           # W
    wait_s: float            # from issuing to holding the image, s
    sharpness: float         # 0-1
    fidelity: float          # 0-1
    rating: float            # the learned persona model's rating, 1-5
    qoe: float               # (rating - 1) / 4
    energy_j: float          # GPU steps + radio, J
    device_energy_j: float   # the phone's own steps, J
    reward: float            # qoe - energy_penalty * max(0, energy_j - share_j) / budget_j - w_d * device_energy_j

    @property
    def steps(self) -> int:
        """Total denoising steps, count."""
        return self.server_steps + self.device_steps


class OptimumPolicy:
    """Per-request grid search for the best predicted reward: an upper reference, not a deployable policy.

    It peeks at what the base station cannot observe: who asks (the persona, through the learned
    persona-feedback model) and what (the prompt). It also ignores every interaction between requests:
    batching and prefix sharing on the GPU, and the queue that the other requests of the slot add.

    For each request and each candidate (steps a_T, server_share s, power a_P) of the grid
    linspace(0, 1, steps_grid) x shares x linspace(0, 1, power_grid), rounded as the base station does:

        T = round(T_min + a_T (T_max - T_min)),  T_s = round(T s),  T_d = T - T_s,  P = P_min + a_P (P_max - P_min)
        t_tx_s   = payload_bits / rate_bps(P, g)                   Shannon rate at this slot's gain g
        wait_s   = age_s + [T_s > 0] (gpu_backlog_s + T_s t_step) + t_tx_s + T_d t_phone
        energy_j = T_s e_step + P t_tx_s                           GPU + radio; the phone's steps are the user's
        rating   = feedback.predict(persona, Delivery(prompt, T, sharpness, fidelity, wait_s))     1-5
        qoe      = (rating - 1) / 4
        device_j = T_d e_phone                                     the user's battery, J
        reward   = qoe - energy_penalty * max(0, energy_j - share_j) / budget_j - device_energy_weight * device_j

    with t_step, e_step the batch-1 step latency (s) and energy (J) of the least loaded GPU server (the
    one the base station would pick), t_phone and e_phone the phone's step latency (s) and energy (J), share_j the per-request proxy of the slot budget (`_share_j`).
    payload_bits is the image's, or the latents' when the phone finishes steps the GPU started on a
    cooperative engine, as the simulator sends. Sharpness and fidelity at T are the cooperative engine's
    quality table without sharing (`world.imagegen.render.QualityTable`, measured on the shipped model:
    what profiled runs deliver); for a request the GPU does not touch, or an engine without a table,
    `model.quality` (the simulator's own fallback). The channel is the slot's:
    a transfer starting in a later slot meets a redrawn channel. The first best candidate wins ties.

    Args:
        cfg: the scenario (limits, budget and penalty, radio, phone, GPU profiles).
        feedback: the learned persona-feedback model, fitted (weights set).
        steps_grid: values of the steps action, count (at least 2: both ends).
        power_grid: values of the power action, count (at least 2: both ends).
        shares: values of the server_share action, each in [0, 1].
    """

    def __init__(self, cfg: ScenarioConfig, feedback: LearnedFeedback, steps_grid: int = 10, power_grid: int = 5,
                 shares: tuple[float, ...] = (1.0, 0.8, 0.5)) -> None:
        if steps_grid < 2 or power_grid < 2:
            raise ValueError(f"steps_grid and power_grid must be at least 2, got {steps_grid} and {power_grid}")
        if not shares or not all(0.0 <= s <= 1.0 for s in shares):
            raise ValueError(f"shares must be a non-empty tuple of values in [0, 1], got {shares}")
        if feedback.weights is None:
            raise ValueError("OptimumPolicy needs a fitted feedback model (LearnedFeedback with weights)")
        self.cfg = cfg
        self.feedback = feedback
        self.share_j = _share_j(cfg)
        self.candidates = np.array([(a_t, s, a_p) for a_t in np.linspace(0.0, 1.0, steps_grid) for s in shares
                                    for a_p in np.linspace(0.0, 1.0, power_grid)])

    def plan(self, station: BaseStation, requests: Sequence[ImageRequest], obs: np.ndarray) -> np.ndarray:
        """The best candidate for each request, planned from who asks and for what, and from the block
        `station` serves (its channel, GPU servers and quality); `obs` holds the requests' observation rows.

        Raises:
            ValueError: `obs` does not have one row per request.
        """
        obs = np.asarray(obs, dtype=float)
        if obs.shape != (len(requests), len(OBS_FEATURES)):
            raise ValueError(f"OptimumPolicy got observations of shape {obs.shape} for {len(requests)} requests; "
                             f"it needs one row per request, in order")
        action = np.zeros((len(requests), len(ACTION_FEATURES)))
        for i, (request, row) in enumerate(zip(requests, obs)):
            rewards = [self._forecast(station, request, row, a).reward for a in self.candidates]
            action[i] = self.candidates[int(np.argmax(rewards))]
        return action

    def predict(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Not enough to plan from: observation rows do not say who asks or for what."""
        raise TypeError("OptimumPolicy plans from the requests themselves, not from observation rows alone: "
                        "call plan(station, requests, obs), as the base station does")

    def forecast(self, station: BaseStation, request: ImageRequest, action: np.ndarray) -> Forecast:
        """What the search expects of `request` under the action row `action`, as of now."""
        return self._forecast(station, request, station.observe([request])[0], action)

    def predicted_reward(self, station: BaseStation, request: ImageRequest, action: np.ndarray) -> float:
        """The reward the search expects of `request` under the action row `action`."""
        return self.forecast(station, request, action).reward

    def _forecast(self, station: BaseStation, request: ImageRequest, row: np.ndarray, action: np.ndarray) -> Forecast:
        model, cfg = station.model, self.cfg
        bs = cfg.base_station
        server_steps, device_steps, power_w = station.limits.decode(action)
        total = server_steps + device_steps
        k = least_loaded(model.gpu_servers)
        engine = model.gpu_servers[k].compute
        cooperative = server_steps > 0 and isinstance(engine, CooperativeRender)
        payload_bits = engine.latent_bits if cooperative and device_steps > 0 else cfg.radio.payload_bits
        gain = 10.0 ** (row[OBS_FEATURES.index("gain_db")] / 10.0)
        tx_s = payload_bits / float(shannon_rate_bps(power_w, gain, cfg.radio))
        gpu_s = 0.0      # a request without server steps goes straight to the radio: it queues for no GPU
        if server_steps > 0:
            gpu_s = row[OBS_FEATURES.index("gpu_backlog_s")] + server_steps * engine.step_latency_s(1)
        wait_s = float(row[OBS_FEATURES.index("age_s")] + gpu_s + tx_s + device_steps * cfg.phone.step_latency_s)
        sharpness, fidelity = engine.table.assess(total) if cooperative else model.quality.assess(total)

        persona = model.users_by_id[request.user_id].persona
        rating = self.feedback.predict(persona, Delivery(request.prompt, total, sharpness, fidelity, wait_s))
        qoe = rating_qoe(rating)
        energy_j = server_steps * cfg.gpu_servers[k].step_energy_j + power_w * tx_s
        device_j = device_steps * cfg.phone.step_energy_j
        reward = bs.reward(qoe, max(0.0, energy_j - self.share_j), device_j)
        return Forecast(server_steps=server_steps, device_steps=device_steps, power_w=power_w, wait_s=wait_s,
                        sharpness=sharpness, fidelity=fidelity, rating=rating, qoe=qoe, energy_j=energy_j,
                        device_energy_j=device_j, reward=reward)
