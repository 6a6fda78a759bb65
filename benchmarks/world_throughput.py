"""Slots per second of the world alone: mobility, channel, requests, GPU queue and cost model.

Runs the shipped city block with N users (and one profiled GPU server per 100
users, so the service keeps up), the fixed policy, no feedback and no files.
Prints a table; the target on 2 cores is 1,000 users x 1,000 slots in <= 60 s.

    python benchmarks/world_throughput.py [--users 100 1000 10000] [--slots 1000 1000 100]
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

from policies.heuristics import FixedPolicy
from scenarios.loader import load_scenario
from world.city import CityBlock

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "city_block.yaml"


def measure(users: int, slots: int) -> dict[str, float]:
    """Build the block with `users` users and time `slots` slots."""
    base = load_scenario(SCENARIO)
    data = base.model_dump(mode="python")
    data["users"]["count"] = users
    data["imagegen"]["render"] = "profile"      # the world alone: cost the cooperative UNet calls, draw nothing
    server = data["gpu_servers"][0]
    data["gpu_servers"] = [dict(server, name=f"edge-{k}") for k in range(max(1, users // 100))]
    cfg = type(base).model_validate(data)
    started = time.perf_counter()
    model = CityBlock(cfg, FixedPolicy(), seed=42)
    built = time.perf_counter()
    issued = delivered = 0
    for _ in range(slots):
        model.step()
        issued += model.slot_metrics["requests_issued"]
        delivered += model.slot_metrics["requests_delivered"]
    ran = time.perf_counter() - built
    return {"users": users, "slots": slots, "build_s": built - started, "run_s": ran,
            "slots_per_s": slots / ran, "us_per_user_slot": 1e6 * ran / (slots * users),
            "requests": issued, "delivered": delivered,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--slots", type=int, nargs="+", default=[1000, 1000, 100])
    args = parser.parse_args()
    if len(args.slots) != len(args.users):
        parser.error("--slots needs one value per --users value")
    rows = [measure(u, s) for u, s in zip(args.users, args.slots)]
    header = f"{'users':>7} {'slots':>6} {'build s':>8} {'run s':>8} {'slots/s':>9} {'us/user-slot':>13} " \
             f"{'requests':>9} {'delivered':>10} {'peak RSS MB':>12}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['users']:>7} {r['slots']:>6} {r['build_s']:>8.2f} {r['run_s']:>8.2f} {r['slots_per_s']:>9.1f} "
              f"{r['us_per_user_slot']:>13.2f} {r['requests']:>9.0f} {r['delivered']:>10.0f} {r['peak_rss_mb']:>12.0f}")


if __name__ == "__main__":
    main()
