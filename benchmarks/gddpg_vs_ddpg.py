"""G-DDPG against DDPG and the heuristics on one scenario, with the same feedback for all.

    python benchmarks/gddpg_vs_ddpg.py [--scenario city_block] [--episodes 100] [--seeds 5] [--workers 2]
                                      [--policies gddpg,ddpg,sb3-td3,...]

Every policy is trained (or, for a heuristic, run) for the same episodes with 5 seeds through
`scenarios.train`, with `--feedback frozen`: the scenario's persona-feedback model, fitted on
real LLM answers (`scenarios/feedback_fits/`), rates every delivery, so every policy and seed
is judged by the same users. Images are profiled from the real model's measured quality tables.
Stable-Baselines3's TD3 and SAC (`sb3-td3`, `sb3-sac`; the `sb3` extra) train on the same per-request
transitions with the same budget (`policies.sb3.SB3Learner`): the same episodes and blocks (`episode_seed`),
random actions for the first 256 rated requests, 2 gradient steps per rated request, SB3's defaults otherwise.

Prints, per policy, the mean over seeds of the last 20% of episodes: total QoE per slot (with a
95% confidence interval over seeds, Student t), reward per slot, service energy per slot, energy
over the budget, steps, power and the share of action values at the bounds of the box; then the
G-DDPG / DDPG ratio and the wall time of one training
run. Saves the learning curves (mean over seeds, band = 95% CI) as gddpg_vs_ddpg.png in --out.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scenarios.report import ci95  # noqa: E402  # the repository root is on the path from here
from scenarios.curve import tail_mean  # noqa: E402

POLICIES = ("gddpg", "ddpg", "sb3-td3", "sb3-sac", "greedy", "fixed", "random", "optimum")


def one_run(args: tuple[str, str, int, int, str]) -> tuple[str, int, list[dict[str, float]], float]:
    scenario, policy, seed, episodes, out = args
    from scenarios.commands import scenario_path
    from scenarios.train_options import TrainOptions
    from scenarios.training import train

    started = time.perf_counter()
    if policy.startswith("sb3-"):
        curve = sb3_run(scenario_path(scenario), policy.removeprefix("sb3-"), seed, episodes)
    else:
        opts = TrainOptions(policy=policy, episodes=episodes, seed=seed, feedback="frozen")
        curve = train(scenario_path(scenario), opts, Path(out) / f"{policy}-seed{seed}", force=True)
    return policy, seed, curve, time.perf_counter() - started


def sb3_run(path: Path, algorithm: str, seed: int, episodes: int) -> list[dict[str, float]]:
    """An SB3 learner trained as `scenarios.train` trains the project's (same feedback, blocks and budget)."""
    import torch

    from policies.env import episode_seed
    from policies.library import RequestView
    from policies.sb3 import SB3Learner
    from scenarios.train_options import TrainOptions
    from scenarios.training import training_env

    torch.set_num_threads(1)
    opts = TrainOptions(policy=f"sb3-{algorithm}", episodes=episodes, seed=seed, feedback="frozen")
    env, close = training_env(path, seed, opts.feedback, max_requests=opts.max_requests)
    try:
        view = RequestView(env)
        agent = SB3Learner(algorithm, view, seed=seed, learning_starts=opts.learning_starts,
                           updates_per_request=opts.updates_per_request)
        return [{"episode": k, **view.run_episode(agent.act, episode_seed(seed, k), agent.learn)}
                for k in range(episodes)]
    finally:
        close()


def plot(curves: dict[str, list[list[dict[str, float]]]], path: Path, key: str, label: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4.5), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for policy, runs in curves.items():
        values = np.array([[r[key] for r in run] for run in runs])
        mean = values.mean(axis=0)
        half = np.array([ci95(list(col)) for col in values.T]) if len(runs) > 1 else np.zeros_like(mean)
        episodes = np.arange(1, values.shape[1] + 1)
        ax.plot(episodes, mean, label=policy)
        ax.fill_between(episodes, mean - half, mean + half, alpha=0.2)
    ax.set_xlabel("episode")
    ax.set_ylabel(label)
    ax.legend(fontsize=8)
    ax.set_title(f"{label}: mean over {len(next(iter(curves.values())))} seeds, band 95% CI")
    fig.tight_layout()
    fig.savefig(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", default="city_block")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2, help="training runs side by side (processes)")
    parser.add_argument("--policies", default=",".join(POLICIES))
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-gddpg-vs-ddpg")
    args = parser.parse_args()
    policies = args.policies.split(",")
    jobs = [(args.scenario, p, s, args.episodes, str(args.out)) for p in policies for s in range(args.seeds)]
    started = time.perf_counter()
    results: dict[str, list[tuple[int, list[dict[str, float]], float]]] = {p: [] for p in policies}
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for policy, seed, curve, wall in pool.map(one_run, jobs):
            results[policy].append((seed, curve, wall))
            print(f"  {policy} seed {seed}: {wall:.0f} s, last-20% total QoE/slot {tail_mean(curve, 'total_qoe_per_slot'):.3f}",
                  flush=True)
    print(f"\n{args.scenario}: {args.episodes} episodes x {args.seeds} seeds per policy, feedback frozen "
          f"(the same fitted persona model for all), {args.workers} runs side by side, {time.perf_counter() - started:.0f} s")
    header = (f"{'policy':<8} {'total QoE/slot':>20} {'reward/slot':>12} {'energy J/slot':>14} {'over budget J':>14} "
              f"{'phone J/slot':>12} {'wait s':>7} {'QoE/request':>12} {'steps':>6} {'power W':>8} {'at bounds':>9} "
              f"{'wall s/run':>11}")
    print(header)
    print("-" * len(header))
    summary: dict[str, float] = {}
    per_request: dict[str, float] = {}
    rewards: dict[str, list[float]] = {}
    for policy in policies:
        runs = sorted(results[policy], key=lambda r: r[0])
        qoe = [tail_mean(c, "total_qoe_per_slot") for _, c, _ in runs]
        summary[policy] = float(np.mean(qoe))
        per_request[policy] = float(np.mean([tail_mean(c, 'mean_qoe') for _, c, _ in runs]))
        rewards[policy] = [tail_mean(c, 'reward_per_slot') for _, c, _ in runs]
        print(f"{policy:<8} {np.mean(qoe):>11.4f} +- {ci95(qoe):<6.4f} "
              f"{np.mean(rewards[policy]):>12.4f} "
              f"{np.mean([tail_mean(c, 'energy_j_per_slot') for _, c, _ in runs]):>14.1f} "
              f"{np.mean([tail_mean(c, 'over_budget_j_per_slot') for _, c, _ in runs]):>14.1f} "
              f"{np.mean([tail_mean(c, 'device_energy_j_per_slot') for _, c, _ in runs]):>12.1f} "
              f"{np.mean([tail_mean(c, 'mean_wait_s') for _, c, _ in runs]):>7.1f} "
              f"{per_request[policy]:>12.4f} "
              f"{np.mean([tail_mean(c, 'mean_steps') for _, c, _ in runs]):>6.1f} "
              f"{np.mean([tail_mean(c, 'mean_power_w') for _, c, _ in runs]):>8.2f} "
              f"{np.mean([tail_mean(c, 'at_bounds') for _, c, _ in runs]):>9.2f} "
              f"{np.mean([w for _, _, w in runs]):>11.0f}")
    best, worst = max(per_request, key=per_request.get), min(per_request, key=per_request.get)
    print(f"\nQoE per request, best - worst policy: {per_request[best] - per_request[worst]:.3f} "
          f"({best} {per_request[best]:.3f}, {worst} {per_request[worst]:.3f}; target >= 0.15)")
    learners = [p for p in ("gddpg", "ddpg", "sb3-td3", "sb3-sac") if p in rewards]
    if "optimum" in rewards:
        for learner in learners:
            print(f"{learner} reward / grid optimum's: {np.mean(rewards[learner]) / np.mean(rewards['optimum']):.3f} "
                  f"(target >= 0.95)")
    for other in learners[1:] if learners[:1] == ["gddpg"] else []:
        # paired by seed: the same blocks for both learners
        ratios = [tail_mean(g, "total_qoe_per_slot") / tail_mean(d, "total_qoe_per_slot")
                  for (_, g, _), (_, d, _) in zip(sorted(results["gddpg"], key=lambda r: r[0]),
                                                  sorted(results[other], key=lambda r: r[0]))]
        reward_ratio = np.mean(rewards["gddpg"]) / np.mean(rewards[other])
        print(f"G-DDPG / {other} total QoE per slot: {np.mean(ratios):.3f} +- {ci95(ratios):.3f} (95% CI over "
              f"{len(ratios)} paired seeds; the paper reports 1.15 over DDPG); reward per slot: {reward_ratio:.3f}")
    curves = {p: [c for _, c, _ in sorted(results[p], key=lambda r: r[0])] for p in policies}
    args.out.mkdir(parents=True, exist_ok=True)
    plot(curves, args.out / "gddpg_vs_ddpg.png", "reward_per_slot", "reward per slot (total QoE - energy penalty)")
    plot(curves, args.out / "gddpg_vs_ddpg_qoe.png", "total_qoe_per_slot", "total QoE per slot")
    print(f"learning curves: {args.out / 'gddpg_vs_ddpg.png'}, {args.out / 'gddpg_vs_ddpg_qoe.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
