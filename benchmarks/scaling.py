"""How the simulation scales.

Population (--part population): time per slot and memory of whole runs of the shipped city block with
100, 1,000 and 10,000 users in learned/profiled mode: the frozen learned persona-feedback model (the
scenario's `learned_start` fit, no LLM), profiled GPU servers (`imagegen.render: profile`, one per 100
users, so the service keeps up), the greedy base station (the shipped G-DDPG puts every step on the
phones, which would leave the GPU servers idle), and the run folder written as a user's run writes it
(`scenarios.run.run_scenario`, into a temporary folder). Each size runs in a fresh process, so its peak
RSS is its own. The target is about linear growth in users: a steady time per user-slot, and memory
that does not grow with slots. The RSS growth column is measured over the second half of each run;
by then every user holds its last two images (`MobileUser.received`; with 0.02 requests/s a user has
received two after some 100 s, nearly all after 300 s), so what is left is what a run keeps per slot.

    python benchmarks/scaling.py [--part all|population] [--users 100 1000 10000] [--slots 1000 1000 600]
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from scenarios.loader import load_scenario
from scenarios.run import run_scenario
from world.city import CityBlock

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "city_block.yaml"
PAGE_MB = resource.getpagesize() / 2 ** 20


def rss_mb() -> float:
    """This process's resident memory now, MB (Linux: /proc/self/statm)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * PAGE_MB


def measure_population(users: int, slots: int, policy: str = "greedy") -> dict[str, float]:
    """Run the city block with `users` users for `slots` slots in learned/profiled mode (see the module docstring)."""
    base = load_scenario(SCENARIO)
    data = base.model_dump(mode="python")
    data["users"]["count"] = users
    data["imagegen"]["render"] = "profile"
    data["feedback"].update(mode="learned", learned_live_share=0.0)
    data["base_station"].update(policy=policy, checkpoint=None)
    server = data["gpu_servers"][0]
    data["gpu_servers"] = [dict(server, name=f"edge-{k}") for k in range(max(1, users // 100))]
    cfg = type(base).model_validate(data)
    middle: dict[str, float] = {}

    def at_half(model: CityBlock) -> None:
        if model.slot == slots // 2:
            middle["rss_mb"] = rss_mb()

    with tempfile.TemporaryDirectory() as folder:
        result = run_scenario(cfg, steps=slots, seed=42, out=Path(folder) / "run", log=lambda line: None,
                              observer=at_half)
        end_mb = rss_mb()
    return {"users": users, "slots": slots, "ms_per_slot": 1e3 * result.seconds / slots,
            "us_per_user_slot": 1e6 * result.seconds / (slots * users), "requests": result.requests_issued,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "rss_growth_mb": end_mb - middle["rss_mb"]}


def population_table(users: tuple[int, ...] = (100, 1000, 10000), slots: tuple[int, ...] = (1000, 1000, 600),
                     policy: str = "greedy") -> list[dict[str, float]]:
    """Measure each population size in a fresh process and print the table; returns its rows."""
    if len(slots) != len(users):
        raise ValueError(f"slots needs one value per users value, got {len(slots)} for {len(users)}")
    rows = []
    for n, s in zip(users, slots):
        # spawn, not fork: the child starts without this process's memory, so its peak RSS is its own
        with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
            rows.append(pool.submit(measure_population, n, s, policy).result())
    header = (f"{'users':>7} {'slots':>6} {'ms/slot':>8} {'us/user-slot':>13} {'requests':>9} "
              f"{'peak RSS MB':>12} {'RSS growth MB, 2nd half':>24}")
    print(f"Population: learned (frozen) feedback, profiled GPU servers (1 per 100 users), {policy} base station")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['users']:>7} {r['slots']:>6} {r['ms_per_slot']:>8.2f} {r['us_per_user_slot']:>13.2f} "
              f"{r['requests']:>9} {r['peak_rss_mb']:>12.0f} {r['rss_growth_mb']:>24.1f}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("all", "sweep", "feedback", "population"), default="all",
                        help="which section to measure (default: all)")
    parser.add_argument("--users", type=int, nargs="+", default=[100, 1000, 10000],
                        help="population: users per run")
    parser.add_argument("--slots", type=int, nargs="+", default=[1000, 1000, 600],
                        help="population: slots per run, one per --users value")
    args = parser.parse_args()
    if len(args.slots) != len(args.users):
        parser.error("--slots needs one value per --users value")
    if any(s < 2 for s in args.slots):
        parser.error("--slots must be at least 2: the RSS growth is measured over a run's second half")
    # the sweep and feedback sections (--part sweep, --part feedback) go here, each in its own functions
    if args.part in ("all", "population"):
        population_table(tuple(args.users), tuple(args.slots))


if __name__ == "__main__":
    main()
