"""How the simulation scales: sweeps on Ray workers, persona feedback on model instances, populations.

Sweep (--part sweep): the same sweep of 8 short runs of the city block (2 policies x 4 seeds, learned
frozen feedback, profiled images, each run's plots drawn) as Ray tasks on a local Ray of 1, then 2
workers (CPUs): wall time, speed-up and parallel efficiency (speed-up / workers). Ray's start is
timed apart.

Feedback (--part feedback): the same 16 different questions to the embedded persona model, all
submitted at once to a `FeedbackPool` of 1, then 2 model instances (no cache), with the instances in
this process and then in Ray actors: answers per second, median latency of one answer, speed-up.

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

    python benchmarks/scaling.py [--part all|sweep|feedback|population] [--users 100 1000 10000]
                                 [--slots 1000 1000 600]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from scenarios.loader import load_scenario
from scenarios.run import run_scenario
from world.runner import SlotRunner
from world.ray_feedback import ensure_ray

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "city_block.yaml"
PAGE_MB = resource.getpagesize() / 2 ** 20


def rss_mb() -> float:
    """This process's resident memory now, MB (Linux: /proc/self/statm)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * PAGE_MB


def peak_rss_mb() -> float:
    """This process's peak resident memory, MB (Linux: VmHWM).

    Not getrusage's ru_maxrss, which a spawned child inherits from the parent it was forked from.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


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

    def at_half(run: SlotRunner) -> None:
        if run.model.slot == slots // 2:
            middle["rss_mb"] = rss_mb()

    with tempfile.TemporaryDirectory() as folder:
        result = run_scenario(cfg, steps=slots, seed=42, out=Path(folder) / "run", log=lambda line: None,
                              observer=at_half)
        end_mb = rss_mb()
    return {"users": users, "slots": slots, "ms_per_slot": 1e3 * result.seconds / slots,
            "us_per_user_slot": 1e6 * result.seconds / (slots * users), "requests": result.requests_issued,
            "peak_rss_mb": peak_rss_mb(),
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


def sweep_table(runs: int = 8, users: int = 1000, slots: int = 600, workers: tuple[int, ...] = (1, 2)) -> None:
    """The same sweep of `runs` short runs on a local Ray of 1, then 2 workers: wall time, speed-up, efficiency."""
    import ray

    from scenarios.sweep import run_sweep
    from scenarios.sweep_plan import parse_sets, plan_sweep

    seeds = list(range(runs // 2))
    sets = parse_sets([f"users.count={users}", "feedback.mode=learned", "feedback.learned_live_share=0",
                       "imagegen.render=profile"])
    plan = plan_sweep(SCENARIO, seeds, ["greedy", "fixed"], sets, steps=slots)
    print(f"sweep: {len(plan)} runs of the city block ({users} users, {slots} slots, learned frozen feedback, "
          f"profiled images, plots drawn), each as a Ray task of 1 CPU; {os.cpu_count()} CPUs here")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in workers:
            started = time.perf_counter()
            ensure_ray(num_cpus=n)
            ready = time.perf_counter()
            result = run_sweep(plan, Path(tmp) / f"workers{n}", workers=n)
            ran = time.perf_counter() - ready
            ray.shutdown()
            assert not result.failed, result.failed
            run_s = [float(r["wall_s"]) for r in result.rows]
            rows.append((n, ready - started, ran, statistics.fmean(run_s)))
    base = rows[0][2]
    print(f"{'workers':>7} {'Ray start s':>11} {'sweep s':>8} {'s per run':>10} {'speed-up':>9} {'efficiency':>11}")
    for n, start_s, ran, per_run in rows:
        print(f"{n:>7} {start_s:>11.1f} {ran:>8.1f} {per_run:>10.2f} {base / ran:>9.2f} {base / ran / n:>10.0%}")


def feedback_table(questions: int = 16, instances: tuple[int, ...] = (1, 2)) -> None:
    """Answers per second of the embedded persona model with 1 and 2 instances, in this process and in Ray actors."""
    import ray

    from agents.feedback import Delivery
    from agents.persona import BigFive, Persona
    from world.feedback import FeedbackPool
    from world.llm import LlmConfig, build_backends
    from world.ray_feedback import build_ray_backends

    rng = np.random.default_rng(0)
    asked = []
    for i in range(questions):
        traits = BigFive(*(float(x) for x in rng.uniform(0.1, 0.9, 5)))
        asked.append((Persona(f"P{i}", traits, background=""),
                      Delivery(prompt="a red circle on a blue background", steps=int(rng.integers(5, 50)),
                               sharpness=float(rng.uniform(0.2, 1.0)), fidelity=float(rng.uniform(0.2, 1.0)),
                               wait_s=float(rng.uniform(0.5, 20.0)))))
    cfg = LlmConfig(cache_dir=str(ROOT / ".cache" / "aigcsim"))
    print(f"feedback: {questions} different questions to the embedded model ({cfg.model}, {cfg.threads} thread per "
          f"instance, no cache), all submitted at once")
    print(f"{'served':>7} {'instances':>9} {'start s':>8} {'answers':>8} {'valid':>6} {'wall s':>7} {'answers/s':>10} "
          f"{'median s':>9} {'speed-up':>9}")
    for serve in ("local", "ray"):
        base = None
        for n in instances:
            started = time.perf_counter()
            if serve == "ray":
                ensure_ray(num_cpus=n)
                backends, close = build_ray_backends(cfg, n)
            else:
                backends, close = build_backends(cfg, n)
            pool = FeedbackPool(backends, backend_id="bench", sampling={})
            ready = time.perf_counter()
            answers = [f.result() for f in [pool.submit(p, d) for p, d in asked]]
            wall = time.perf_counter() - ready
            pool.close()
            close()
            if serve == "ray" and ray.is_initialized():
                ray.shutdown()
            rate = len(answers) / wall
            base = base or rate
            print(f"{serve:>7} {n:>9} {ready - started:>8.1f} {len(answers):>8} {sum(a.valid for a in answers):>6} "
                  f"{wall:>7.1f} {rate:>10.2f} {np.median([a.latency_s for a in answers]):>9.2f} {rate / base:>9.2f}")


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
    if args.part in ("all", "sweep"):
        sweep_table()
        print()
    if args.part in ("all", "feedback"):
        feedback_table()
        print()
    if args.part in ("all", "population"):
        population_table(tuple(args.users), tuple(args.slots))


if __name__ == "__main__":
    main()
