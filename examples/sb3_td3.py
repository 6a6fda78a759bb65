"""Stable-Baselines3's TD3 as the city block's base station, trained like G-DDPG (`pip install -e '.[sb3]'`).

    python examples/sb3_td3.py [--algorithm td3|sac|ddpg] [--episodes 100] [--seed 0]

It trains on the per-request view (one transition per rated request, the same as `scenarios.train`),
with the scenario's frozen persona-feedback fit, on the blocks `scenarios.train --seed S` trains on,
then reports the reward per slot on 5 held-out blocks (those `benchmarks/user_centric.py` evaluates on).
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from policies.env import EVALUATION_SEED, episode_seed  # noqa: E402  # the repository root is on the path from here
from policies.library import RequestView  # noqa: E402
from policies.sb3 import SB3Learner  # noqa: E402
from scenarios.commands import scenario_path  # noqa: E402
from scenarios.training import training_env  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--algorithm", default="td3", choices=("td3", "sac", "ddpg"))
parser.add_argument("--episodes", type=int, default=100)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

torch.set_num_threads(1)
env, close = training_env(scenario_path("city_block"), seed=args.seed, feedback="frozen")
view = RequestView(env)                                  # act on scaled rows, learn from rated requests
agent = SB3Learner(args.algorithm, view, seed=args.seed)  # SB3's defaults, the project's training budget
for k in range(args.episodes):
    row = view.run_episode(agent.act, episode_seed(args.seed, k), agent.learn)
    print(f"episode {k + 1}: reward/slot {row['reward_per_slot']:.3f}, QoE/request {row['mean_qoe']:.3f}, "
          f"steps {row['mean_steps']:.1f}, {agent.updates} updates", flush=True)
agent.exploring = False                                  # deterministic actions on blocks it never saw
held_out = [view.run_episode(agent.act, episode_seed(EVALUATION_SEED, k)) for k in range(5)]
print(f"held-out reward/slot: {np.mean([r['reward_per_slot'] for r in held_out]):.3f} over 5 blocks")
close()
