"""G-DDPG trained on live persona answers beside the same run on the frozen fit of them.

    python benchmarks/live_training.py [--scenario city_block] [--episodes 6] [--slots 60] [--out DIR]

Two training runs of `scenarios.train` with the same seed, episodes and options, on the scenario cut
to --slots slots per episode: one with `--feedback live` (the embedded LLM answers every delivery,
through the answer cache) and one with `--feedback frozen` (the scenario's fitted persona-feedback
model rates every delivery). Prints both curves episode by episode (reward, total QoE per slot,
QoE per request, steps, wait, LLM answers) and draws them into one figure (--plot, default
docs/gddpg_live_vs_frozen.png). Learning starts after --learning-starts rated requests.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from scenarios.commands import scenario_path  # noqa: E402  # the repository root is on the path from here
from scenarios.loader import load_scenario  # noqa: E402
from scenarios.train_options import TrainOptions  # noqa: E402
from scenarios.training import train  # noqa: E402

KEYS = (("reward_per_slot", "reward/slot"), ("total_qoe_per_slot", "QoE/slot"), ("mean_qoe", "QoE/request"),
        ("mean_steps", "steps"), ("mean_wait_s", "wait s"), ("requests_rated", "rated"), ("wall_s", "wall s"))



def header() -> str:
    """The table's header: an episode column, then each quantity for the frozen and the live run."""
    return f"{'episode':>7} " + " ".join(f"{f + ' ' + label:>20}" for f in ("frozen", "live") for _, label in KEYS[:5])

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="city_block")
    parser.add_argument("--episodes", type=int, default=6)
    parser.add_argument("--slots", type=int, default=60, help="slots per episode")
    parser.add_argument("--learning-starts", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-live-training")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "gddpg_live_vs_frozen.png")
    args = parser.parse_args()

    source = scenario_path(args.scenario)
    cfg = load_scenario(source)
    data = cfg.model_dump(mode="json")
    data["slots"] = args.slots
    for key in ("checkpoint",):
        data["base_station"][key] = None
    for key in ("learned_start",):      # absolute: the copy lives elsewhere
        if data["feedback"][key]:
            data["feedback"][key] = str((source.parent / data["feedback"][key]).resolve())
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{cfg.name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))

    curves = {}
    for feedback in ("frozen", "live"):
        started = time.perf_counter()
        opts = TrainOptions(policy="gddpg", episodes=args.episodes, seed=args.seed, feedback=feedback,
                            learning_starts=args.learning_starts)
        curves[feedback] = train(path, opts, args.out / f"gddpg-{feedback}", force=True)
        print(f"{feedback}: {args.episodes} episodes of {args.slots} slots in {time.perf_counter() - started:.0f} s",
              flush=True)

    print(f"\n{cfg.name}, G-DDPG, seed {args.seed}, {args.episodes} episodes of {args.slots} slots, learning after "
          f"{args.learning_starts} rated requests; frozen = the fitted persona model, live = "
          f"{cfg.feedback.llm.backend}:{cfg.feedback.llm.model} for every delivery")
    head = header()
    print(head)
    print("-" * len(head))
    for i in range(args.episodes):
        cells = [f"{curves[f][i][k]:>20.3f}" for f in ("frozen", "live") for k, _ in KEYS[:5]]
        print(f"{i + 1:>7} " + " ".join(cells))
    for f in ("frozen", "live"):
        print(f"{f}: rated {sum(r['requests_rated'] for r in curves[f]):.0f} requests, "
              f"{sum(r['wall_s'] for r in curves[f]):.0f} s of training")

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.6), dpi=110)
    FigureCanvasAgg(fig)
    for j, (key, label) in enumerate(KEYS[:3]):
        ax = fig.add_subplot(1, 3, j + 1)
        for f in ("frozen", "live"):
            ax.plot(range(1, args.episodes + 1), [r[key] for r in curves[f]], marker="o", label=f)
        ax.set_xlabel("episode")
        ax.set_title(label, fontsize=9)
        ax.legend(fontsize=8)
    fig.suptitle(f"G-DDPG on {cfg.name}: live persona answers vs the frozen fit (seed {args.seed})", fontsize=10)
    fig.tight_layout()
    args.plot.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.plot)
    print(f"figure: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
