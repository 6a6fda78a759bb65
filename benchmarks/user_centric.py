"""Does the base station treat its users differently where their personalities differ?

    python benchmarks/user_centric.py [--scenario city_block] [--policies gddpg,greedy,fixed]
                                      [--checkpoint PATH] [--seeds 5]

Runs each policy on the scenario's block (profiled images, the frozen persona-feedback fit rating
every delivery, as in training) for --seeds episodes of the scenario's slots, each with the
environment's drain (every decided request is rated), and prints, per persona group, what the
policy gave the requests it decided: mean total steps, share of them on the GPU, transmit power,
wait, phone energy and QoE. Groups: neuroticism (anxious, >= 0.5, against calm) and
conscientiousness (meticulous, >= 0.5, against easy-going). A learner loads --checkpoint, else
the scenario's `base_station.checkpoint` (the shipped one for the city block).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scenarios.commands import scenario_path  # noqa: E402  # the repository root is on the path from here
from scenarios.loader import load_scenario  # noqa: E402

GROUPS = (("neuroticism", "anxious", "calm"), ("conscientiousness", "meticulous", "easy-going"))
COLUMNS = ("steps", "gpu_share", "power_w", "wait_s", "phone_j", "qoe")


def run_policy(path: Path, policy: str, checkpoint: Path | None, seeds: int) -> list[dict[str, float]]:
    """Every rated request of `seeds` episodes under `policy`: its user's traits and what it got."""
    import torch

    from policies.env import EVALUATION_SEED, AllocationEnv, episode_seed
    from scenarios.assemble import LEARNERS, assemble
    from scenarios.train_options import TrainOptions
    from scenarios.training import training_config

    torch.set_num_threads(1)
    cfg = training_config(load_scenario(path), TrainOptions(policy=policy, episodes=1, seed=0, feedback="frozen"))
    if policy in LEARNERS:
        shipped = load_scenario(path).base_station.checkpoint
        chosen = str(checkpoint.resolve()) if checkpoint else shipped
        cfg = cfg.model_copy(update={"base_station": cfg.base_station.model_copy(update={"checkpoint": chosen})})
    parts = assemble(cfg, 0)
    rows: list[dict[str, float]] = []
    try:
        env = AllocationEnv(cfg, parts.feedback)
        agent = parts.policy
        for episode in range(seeds):
            obs, _ = env.reset(seed=episode_seed(EVALUATION_SEED, episode))     # blocks no training run has seen
            done = False
            while not done:
                mask = obs[:, -1] > 0
                action = np.zeros(env.action_space.shape, dtype=np.float32)
                if mask.any():
                    action[mask] = env.decide(agent, obs[mask, :-1])
                obs, _, _, done, _ = env.step(action)
                for r in env.model.completed:
                    if r.decision is None or np.isnan(r.qoe):
                        continue
                    traits = env.model.users_by_id[r.user_id].persona.traits
                    rows.append({"neuroticism": traits.neuroticism, "conscientiousness": traits.conscientiousness,
                                 "steps": r.steps, "gpu_share": r.server_steps / r.steps, "power_w": r.power_w,
                                 "wait_s": r.wait_s, "phone_j": r.device_energy_j, "qoe": r.qoe})
    finally:
        parts.close()
    return rows


def table(policy: str, rows: list[dict[str, float]]) -> list[str]:
    lines = [f"{policy}: {len(rows)} rated requests",
             f"  {'group':<40} {'n':>4} {'steps':>6} {'GPU share':>9} {'power W':>8} {'wait s':>7} {'phone J':>8} "
             f"{'QoE':>6}"]
    for trait, high, low in GROUPS:
        for name, chosen in ((f"{high} ({trait} >= 0.5)", [r for r in rows if r[trait] >= 0.5]),
                             (f"{low} ({trait} < 0.5)", [r for r in rows if r[trait] < 0.5])):
            if not chosen:
                lines.append(f"  {name:<40} {0:>4}")
                continue
            m = {c: float(np.mean([r[c] for r in chosen])) for c in COLUMNS}
            lines.append(f"  {name:<40} {len(chosen):>4} {m['steps']:>6.1f} {m['gpu_share']:>9.2f} "
                         f"{m['power_w']:>8.2f} {m['wait_s']:>7.1f} {m['phone_j']:>8.1f} {m['qoe']:>6.3f}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="city_block")
    parser.add_argument("--policies", default="gddpg,greedy,fixed")
    parser.add_argument("--checkpoint", type=Path, default=None, help="learner weights (default: the scenario's)")
    parser.add_argument("--seeds", type=int, default=5, help="episodes per policy")
    args = parser.parse_args()
    path = scenario_path(args.scenario)
    print(f"{args.scenario}: {args.seeds} episodes per policy, profiled images, frozen persona-feedback fit; "
          f"means per request decided and rated")
    for policy in args.policies.split(","):
        print("\n".join(table(policy, run_policy(path, policy, args.checkpoint, args.seeds))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
