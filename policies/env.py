"""A Gymnasium environment over `CityBlock`: the base station's decision, one slot per step.

Observation: `Box(max_requests, len(OBS_FEATURES) + 1)`, float32. Row i is the i-th request
    waiting at the base station at the start of the slot (arrival order), in the layout and units
    of `agents.base_station.OBS_FEATURES`:
        gain_db        channel power gain to the user this slot, dB
        distance_m     distance to the user, m
        gpu_backlog_s  work queued on the least loaded GPU, s
        age_s          time since the request was issued, s
        user_qoe       the user's recent QoE, 0-1 (0.5 before its first answer)
        slot_requests  requests allocated in this slot, count
        openness .. neuroticism   the user's Big Five traits, 0-1 (0.5 each when the scenario's
                       base_station.observe_traits is false: a base station that does not know its users)
        similar_requests  requests of this slot in this one's prompt cluster (the GPU's own
                       clustering), itself included, count: what sharing a prefix can save
        gpu_waiting    requests queued on the least loaded GPU, not yet started, count
    and the last column is the mask: 1 for a request, 0 for an empty row (all zeros).
    Variable numbers of requests: a fixed maximum with a mask. Requests beyond `max_requests`
    wait at the base station for the next slot, keeping their place (their age grows).
Action: `Box(max_requests, len(ACTION_FEATURES))` in [0, 1], the layout of `ACTION_FEATURES`:
    steps (0 -> min_steps, 1 -> max_steps), server_share (share of the steps on the GPU, the phone
    runs the rest) and power (0 -> min_power_w, 1 -> max_power_w). Rows of empty slots are ignored.
Reward: total QoE the personas reported in the slot (each rating mapped to [0, 1]) minus
    `energy_penalty * over_budget_j / energy_budget_j_per_slot`, where over_budget_j is the
    GPU + radio energy of the slot above the budget, minus `device_energy_weight * device_energy_j`,
    the phones' own denoising energy of the images delivered in the slot (the users' batteries, J;
    the wait those steps cause is already in the personas' ratings). Answers come seconds after a decision, so
    the reward of a slot is for decisions of earlier slots.
terminated: never (the block does not end); truncated: after `slots` slots. The last step then runs
    the clock on, deciding nothing new, until every decided request has been rated (at most
    DRAIN_S): their QoE and energy count in that step's reward (and `info` says how much, under
    drain_*: slots, QoE, energies, rated; delivered with the sums of their waits, steps and powers), so a
    policy is not judged by where the episode happens to cut its answers off.
info: diagnostics only (the slot's own metrics of `world.city.SLOT_METRICS`, those that are defined:
    a mean over no requests is left out); nothing in it is meant to be learned from.
The block goes slot by slot through `world.runner.SlotRunner`, which refits a learning feedback service
on its cadence, as in a run.

For learners that assign credit per request, `outcomes` holds, after every step, one
`Outcome` per request rated during the slot: the observation row and the action it was decided
with, its QoE, its energy and its reward share `qoe - energy_penalty - device_energy_weight *
device_energy_j`, where the request's energy
penalty is its share of the penalties of the slots in which its energy was spent (a slot's
penalty split over the requests in proportion to the energy spent for each in that slot). The
shares add up to the slots' penalties, so the rewards of all requests add up to the slots'
rewards. This is how `scenarios.train` trains: each request is a one-step decision, as in the
GDMOPT code's one-step environments.

`run_episode` runs one episode with any per-request policy and adds up the episode's metrics as
`scenarios.train` and the benchmarks report them; `episode_seed` gives the block of each episode, the
same for every learner (`EVALUATION_SEED` for blocks no training run meets). `policies.library` wraps
this environment in the shapes RL libraries expect (scaled, flat, actions in [-1, 1]) and exposes the
per-request transitions to external learners.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from agents.base_station import ACTION_FEATURES, OBS_FEATURES, AllocationPolicy, Planner
from agents.feedback import FeedbackService
from world.city import CityBlock
from world.config import ScenarioConfig
from world.runner import SlotRunner

DRAIN_S = 300.0     # longest the clock runs on after an episode's last slot, s


EVALUATION_SEED = 10_000    # run seed of held-out evaluation blocks: episode_seed(EVALUATION_SEED, k)
# what run_episode returns: per slot over the episode's slots, per request over the requests rated or delivered
EPISODE_METRICS = ("slots", "reward_per_slot", "total_qoe_per_slot", "mean_qoe", "requests_rated",
                   "energy_j_per_slot", "over_budget_j_per_slot", "device_energy_j_per_slot", "mean_wait_s",
                   "mean_steps", "mean_power_w", "at_bounds")


def episode_seed(seed: int, episode: int) -> int:
    """The block of episode `episode` of a run seeded `seed`, for `reset(seed=...)`: distinct per pair and
    the same on every machine. `scenarios.train` and the benchmarks seed every episode with it, so a learner
    whose episode k of seed s is reset with `episode_seed(s, k)` meets exactly the blocks theirs met."""
    return int(np.random.SeedSequence([seed, episode]).generate_state(1)[0])


@dataclass(frozen=True)
class Outcome:
    """A rated request, as a one-step transition."""

    obs: np.ndarray          # OBS_FEATURES row it was decided on
    action: np.ndarray       # ACTION_FEATURES row it got
    qoe: float               # the persona's rating mapped to [0, 1]
    energy_j: float          # GPU share + radio, J
    reward: float            # qoe minus its share of the energy penalties


class _Decided:
    """The base station's policy inside the environment: answers with the action of the current step."""

    def __init__(self) -> None:
        self.action = np.zeros((0, len(ACTION_FEATURES)))

    def predict(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        return self.action[:len(obs)]


class AllocationEnv(gym.Env):
    """The base station's allocation problem on a city block (see the module docstring for the layout).

    Args:
        cfg: the scenario; `slots` is the episode length.
        feedback: the personas' answers (a pool or the learned model); None: users stay silent and
            every reward is 0 (useful only for checking the interface).
        max_requests: rows of the observation and action, count.
    """

    metadata = {"render_modes": []}

    def __init__(self, cfg: ScenarioConfig, feedback: FeedbackService | None,
                 max_requests: int = 8) -> None:
        if max_requests < 1:
            raise ValueError(f"max_requests must be at least 1, got {max_requests}")
        self.cfg = cfg
        self.feedback = feedback
        self.max_requests = max_requests
        width = len(OBS_FEATURES) + 1
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(max_requests, width), dtype=np.float32)
        self.action_space = gym.spaces.Box(0.0, 1.0, shape=(max_requests, len(ACTION_FEATURES)), dtype=np.float32)
        self.model: CityBlock | None = None
        self.runner: SlotRunner | None = None
        self.outcomes: list[Outcome] = []
        self._decided = _Decided()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        """A fresh block (seeded from `seed`, or from the environment's generator), sensed for its first slot."""
        super().reset(seed=seed)
        block_seed = int(self.np_random.integers(2 ** 31)) if seed is None else seed
        self.model = CityBlock(self.cfg, self._decided, seed=block_seed, feedback=self.feedback)
        self.model.base_station.max_per_slot = self.max_requests
        self.runner = SlotRunner(self.model)
        self.outcomes = []
        self.runner.sense()
        return self._observe(), {"slot": 0}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Allocate the waiting requests with `action`, run the slot, sense the next one."""
        if self.model is None:
            raise RuntimeError("call reset() before step()")
        action = np.asarray(action, dtype=float).reshape(self.action_space.shape)
        if not np.all(np.isfinite(action)):
            raise ValueError("action holds NaN or infinite values")
        self._decided.action = np.clip(action, 0.0, 1.0)
        model = self.model
        self.runner.serve()
        m = model.slot_metrics
        reward = self._reward(m)
        self.outcomes = [self._outcome(r) for r in model.completed
                         if r.decision is not None and not np.isnan(r.qoe)]
        truncated = model.slot >= self.cfg.slots
        info = {k: float(v) for k, v in m.items() if not np.isnan(v)}
        if truncated:
            reward += self._drain(info)
        self.runner.sense()
        return self._observe(), reward, False, truncated, info

    def decide(self, policy: AllocationPolicy, rows: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """`policy`'s actions for the waiting requests, whose observation rows (unscaled, no mask) are `rows`:
        a `Planner` is handed the base station, the requests themselves and their rows at full precision, as
        inside a run."""
        if isinstance(policy, Planner):
            station = self.model.base_station
            requests = station.pending()[:len(rows)]
            return policy.plan(station, requests, station.observe(requests))
        return policy.predict(rows, deterministic=deterministic)

    def _drain(self, info: dict[str, float]) -> float:
        """At the episode's end, run the clock on without new decisions until every decided request is
        rated (at most `DRAIN_S`): their QoE and energy count in the last step. Returns the reward added."""
        model, bs = self.model, self.model.base_station
        bs.max_per_slot = 0
        added = qoe = energy = over = rated = device = delivered = wait = steps = power = 0.0
        slots = 0
        while model.in_flight > len(bs.inbox) and slots * self.cfg.slot_s < DRAIN_S:
            self.runner.step()
            m = model.slot_metrics
            added += self._reward(m)
            qoe += m["total_qoe"]
            energy += m["service_energy_j"]
            over += m["over_budget_j"]
            device += m["device_energy_j"]
            rated += m["requests_rated"]
            delivered += len(model.delivered)
            wait += sum(r.wait_s for r in model.delivered)
            steps += sum(r.steps for r in model.delivered)
            power += sum(r.power_w for r in model.delivered)
            slots += 1
            self.outcomes += [self._outcome(r) for r in model.completed
                              if r.decision is not None and not np.isnan(r.qoe)]
        bs.max_per_slot = self.max_requests
        info.update(drain_slots=float(slots), drain_qoe=float(qoe), drain_energy_j=float(energy),
                    drain_over_budget_j=float(over), drain_device_energy_j=float(device), drain_rated=float(rated),
                    drain_delivered=delivered, drain_wait_s_sum=float(wait), drain_steps_sum=float(steps),
                    drain_power_w_sum=float(power))
        return added

    def _reward(self, m: dict[str, float]) -> float:
        """A slot's reward: its QoE less the over-budget penalty and the phones' battery term."""
        return self.cfg.base_station.reward(float(m["total_qoe"]), float(m["over_budget_j"]),
                                            float(m["device_energy_j"]))

    def _outcome(self, request: Any) -> Outcome:
        obs, action = request.decision
        return Outcome(obs=obs, action=action, qoe=request.qoe, energy_j=request.energy_j,
                       reward=self.cfg.base_station.reward(request.qoe, 0.0, request.device_energy_j)
                       - request.energy_penalty)

    def _observe(self) -> np.ndarray:
        bs = self.model.base_station
        requests = bs.pending()
        obs = np.zeros(self.observation_space.shape, dtype=np.float32)
        if requests:
            rows = bs.observe(requests)
            obs[:len(rows), :-1] = rows
            obs[:len(rows), -1] = 1.0
        return obs


def run_episode(env: AllocationEnv, act: Callable[[np.ndarray], np.ndarray], seed: int,
                on_outcomes: Callable[[list[Outcome]], None] | None = None) -> dict[str, float]:
    """One episode of `env` on the block `seed`, to its end (the last step's drain included).

    Args:
        act: the policy: (n, len(OBS_FEATURES)) rows of the requests waiting in a slot -> (n,
            len(ACTION_FEATURES)) actions in [0, 1]; called only for slots with requests.
        seed: the block (see `episode_seed`).
        on_outcomes: called after every step with `env.outcomes`, the requests rated in it (a learner
            stores them as one-step transitions).

    Returns:
        `EPISODE_METRICS`: reward, QoE and energies per slot; QoE per rated request; waits, steps and
        power per delivered request (those delivered after the last slot included); the share of action
        values at the bounds of the box.
    """
    obs, _ = env.reset(seed=seed)
    reward = qoe = energy = over = rated = device = delivered = wait = steps = power = 0.0
    slots = 0
    bounds = values = 0
    while True:
        mask = obs[:, -1] > 0
        action = np.zeros(env.action_space.shape, dtype=np.float32)
        if mask.any():
            chosen = np.asarray(act(obs[mask, :-1]), dtype=np.float32)
            action[mask] = chosen
            bounds += int(np.sum((chosen <= 1e-3) | (chosen >= 1 - 1e-3)))
            values += chosen.size
        obs, r, terminated, truncated, info = env.step(action)
        slots += 1
        reward += r
        qoe += info["total_qoe"] + info.get("drain_qoe", 0.0)
        rated += info["requests_rated"] + info.get("drain_rated", 0.0)
        energy += info["service_energy_j"] + info.get("drain_energy_j", 0.0)
        over += info["over_budget_j"] + info.get("drain_over_budget_j", 0.0)
        device += info["device_energy_j"] + info.get("drain_device_energy_j", 0.0)
        delivered += info["requests_delivered"] + info.get("drain_delivered", 0.0)
        if "mean_steps" in info:
            steps += info["mean_steps"] * info["requests_delivered"]
            power += info["mean_power_w"] * info["requests_delivered"]
            wait += info["mean_wait_s"] * info["requests_delivered"]
        steps += info.get("drain_steps_sum", 0.0)       # the slow ones, delivered after the last slot
        power += info.get("drain_power_w_sum", 0.0)
        wait += info.get("drain_wait_s_sum", 0.0)
        if on_outcomes is not None:
            on_outcomes(env.outcomes)
        if terminated or truncated:
            break
    return {
        "slots": slots, "reward_per_slot": reward / slots, "total_qoe_per_slot": qoe / slots,
        "mean_qoe": qoe / rated if rated else math.nan, "requests_rated": rated,
        "energy_j_per_slot": energy / slots, "over_budget_j_per_slot": over / slots,
        "device_energy_j_per_slot": device / slots, "mean_wait_s": wait / delivered if delivered else math.nan,
        "mean_steps": steps / delivered if delivered else math.nan,
        "mean_power_w": power / delivered if delivered else math.nan,
        "at_bounds": bounds / values if values else math.nan,
    }
