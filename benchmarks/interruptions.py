"""Interruption drill: stop real runs with SIGINT or SIGTERM at random moments, resume them, count what was lost.

Runs the shipped city block (trained G-DDPG base station) as a user would, with
`python -m scenarios run`, once without interruption and then N times stopped at a random slot
and resumed with `--resume`. A record is lost when a row of the uninterrupted run's slots.csv or
requests.csv is missing from (or differs in) the resumed run's. Prints one row per interruption.

    python benchmarks/interruptions.py [--runs 8] [--steps 200] [--feedback learned|live] [--seed 0]

'learned' (default): the city block's frozen persona-feedback fit, profiled images (fast).
'live': the persona LLM answers every delivery (cache off), so the replay serves the recorded
answers; real images; slower (use --steps 60).
"""

from __future__ import annotations

import argparse
import csv
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CITY_BLOCK = ROOT / "scenarios" / "city_block.yaml"
VARYING = {"llm_calls", "cache_hits", "cache_hit_rate", "llm_median_latency_s", "feedback_latency_s",
           "feedback_cached"}


def variant(folder: Path, feedback: str) -> Path:
    data = yaml.safe_load(CITY_BLOCK.read_text())
    data["base_station"]["checkpoint"] = str(CITY_BLOCK.parent / data["base_station"]["checkpoint"])
    data["feedback"]["learned_start"] = str(CITY_BLOCK.parent / data["feedback"]["learned_start"])
    if feedback == "learned":
        data["imagegen"]["render"] = "profile"
        data["feedback"].update(mode="learned", learned_live_share=0.0)
    else:
        data["feedback"]["cache"] = None
    path = folder / f"drill-{feedback}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def rows(path: Path) -> list[tuple[tuple[str, str], ...]]:
    with path.open(newline="") as f:
        return [tuple((k, v) for k, v in r.items() if k not in VARYING) for r in csv.DictReader(f)]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scenarios", "run", *args, "--no-live"], cwd=ROOT,
                          capture_output=True, text=True)


def slots_done(path: Path) -> int:
    return max(0, path.read_text().count("\n") - 1) if path.is_file() else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--feedback", choices=("learned", "live"), default="learned")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random interruption points")
    args = parser.parse_args()
    draw = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        scenario = variant(folder, args.feedback)
        started = time.perf_counter()
        whole = run(str(scenario), "--steps", str(args.steps), "--out", str(folder / "whole"))
        whole_s = time.perf_counter() - started
        if whole.returncode != 0:
            raise SystemExit(f"the uninterrupted run failed: {whole.stderr}")
        truth = {name: rows(folder / "whole" / name) for name in ("slots.csv", "requests.csv")}
        print(f"city block, {args.feedback} feedback, {args.steps} slots; uninterrupted run {whole_s:.1f} s, "
              f"{len(truth['slots.csv'])} slot rows, {len(truth['requests.csv'])} request rows\n")
        print(f"{'run':>3}  {'signal':7}  {'stopped at':>10}  {'exit':>4}  {'kept':>5}  {'resume s':>8}  "
              f"{'rows':>6}  {'lost':>4}")
        lost_total = 0
        for k in range(args.runs):
            sig = signal.SIGTERM if k % 2 else signal.SIGINT
            out = folder / f"run{k}"
            target = draw.randint(1, args.steps - 1)
            proc = subprocess.Popen([sys.executable, "-m", "scenarios", "run", str(scenario), "--steps",
                                     str(args.steps), "--out", str(out), "--no-live"], cwd=ROOT,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            while proc.poll() is None and slots_done(out / "slots.csv") < target:
                time.sleep(0.02)
            proc.send_signal(sig)
            proc.communicate()
            kept = slots_done(out / "slots.csv")
            started = time.perf_counter()
            resumed = run("--resume", str(out))
            resume_s = time.perf_counter() - started
            got = {name: rows(out / name) for name in truth}
            lost = sum(len(set(truth[n]) - set(got[n])) for n in truth) + (resumed.returncode != 0)
            lost_total += lost
            print(f"{k + 1:>3}  {sig.name:7}  {target:>10}  {proc.returncode:>4}  {kept:>5}  {resume_s:>8.1f}  "
                  f"{sum(map(len, got.values())):>6}  {lost:>4}")
        print(f"\n{args.runs} interruptions, records lost: {lost_total}")


if __name__ == "__main__":
    main()
