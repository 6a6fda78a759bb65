"""What the live view costs: slots per second with and without it, and how often it redraws.

Runs the shipped city block with 50 users and silent feedback (no language model, so the world
runs as fast as it can and the view's share is as large as it gets) through `run_scenario`,
writing its run folder, once without an observer and once inside a `LiveView` drawing to a
file-backed console that rich treats as a terminal (so it runs without a tty). Runs alternate and
the median of `--repeats` is reported.

    python benchmarks/live_view.py [--users 50] [--slots 15000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console

from scenarios.live import LiveView
from scenarios.loader import load_scenario
from scenarios.run import run_scenario

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "city_block.yaml"


def measure(users: int, slots: int, live: bool, folder: Path) -> dict[str, float]:
    """One run; slots per second, and the view's redraws when it is on."""
    base = load_scenario(SCENARIO)
    data = base.model_dump(mode="python")
    data["users"]["count"] = users
    data["feedback"]["mode"] = "silent"
    cfg = type(base).model_validate(data)
    quiet = lambda line: None  # noqa: E731
    if not live:
        started = time.perf_counter()
        run_scenario(cfg, steps=slots, out=folder, log=quiet)
        return {"seconds": time.perf_counter() - started, "frames": 0}
    console = Console(file=io.StringIO(), force_terminal=True, width=160, height=60, color_system="truecolor")
    view = LiveView(console, slots, out=str(folder))
    started = time.perf_counter()
    with view:
        run_scenario(cfg, steps=slots, out=folder, log=view.note, observer=view.observe)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "frames": view.frames}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--slots", type=int, default=15000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    results: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.repeats):
            for live in (False, True):
                results[live].append(measure(args.users, args.slots, live, Path(tmp) / f"{live}-{k}"))
    plain = statistics.median(r["seconds"] for r in results[False])
    header = f"{'view':<16} {'users':>6} {'slots':>6} {'run s':>7} {'slots/s':>9} {'slowdown':>9} " \
             f"{'redraws':>8} {'redraws/s':>10}"
    print(header)
    print("-" * len(header))
    for live in (False, True):
        seconds = statistics.median(r["seconds"] for r in results[live])
        frames = statistics.median(r["frames"] for r in results[live])
        slowdown = f"{seconds / plain - 1:+.1%}" if live else "-"
        rate = f"{frames / seconds:.1f}" if live else "-"
        print(f"{'live view' if live else 'none (--no-live)':<16} {args.users:>6} {args.slots:>6} {seconds:>7.2f} "
              f"{args.slots / seconds:>9.0f} {slowdown:>9} {frames if live else '-':>8} {rate:>10}")
    print(f"median of {args.repeats} alternating runs each; feedback.mode silent; view drawn to a file-backed "
          f"console (160 x 60) treated as a terminal")


if __name__ == "__main__":
    main()
