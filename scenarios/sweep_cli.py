"""`python -m scenarios sweep`: its options, and running a sweep with a progress bar (or plain lines) and a
summary over seeds. The sweep itself (planning, running on Ray, results) is `scenarios/sweep.py`.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

from scenarios.commands import EXIT_FAILED, EXIT_INTERRUPTED, add_debug_option, positive_int
from scenarios.loader import ScenarioError, load_scenario
from scenarios.report import ascii_only
from world.config import LEARNER_NAMES, POLICIES

SWEEP_EPILOG = """\
The sweep folder (default runs/sweep-<name>) gets one run folder per combination, results.csv (a
row per run), summary.csv (mean and 95% interval over seeds per policy and variant) and
comparison.png. A run that fails is reported and the others go on; running the same command
again skips the finished runs. Without Ray installed (pip install -e '.[ray]'), the runs go one
after another. On a cluster (RAY_ADDRESS), the sweep folder must be on a file system every node
sees. Exit status: 0 all finished, 1 some runs failed, 2 bad input, 130 interrupted.
"""


def add_sweep_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """The `sweep` command's options, on `python -m scenarios`."""
    sweep = commands.add_parser(
        "sweep", help="run every combination of policies x seeds x --set variants (Ray tasks)",
        epilog=SWEEP_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run every combination of policies, seeds and scenario variants, each in its own run folder, "
                    "as Ray tasks (a local Ray, or the cluster at RAY_ADDRESS); then a results table and a "
                    "comparison plot. Rerunning the same sweep skips the runs that finished.")
    sweep.add_argument("file", metavar="FILE", help="scenario YAML, or the name of a shipped scenario")
    sweep.add_argument("--seeds", default="1", metavar="N|S,S,...",
                       help="how many seeds (5: seeds 0-4), or the seeds (3,8,21) (default: 1)")
    sweep.add_argument("--policies", metavar="P,P,...",
                       help=f"policies to compare, from: {', '.join(POLICIES)} (default: the scenario's)")
    sweep.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                       help="set a scenario field by its dotted path (users.count=100, feedback.mode=learned); "
                            "the same key given again adds a variant: every value is run")
    sweep.add_argument("--steps", type=positive_int, metavar="N", help="slots per run (default: the scenario's 'slots')")
    sweep.add_argument("--checkpoint", dest="checkpoints", action="append", default=[], metavar="POLICY=PATH",
                       help="trained weights for a learner in the sweep, e.g. ddpg=runs/train-x/policy.pt (default: "
                            "the scenario's checkpoint for its own policy; other learners act untrained: runs "
                            "evaluate, they do not train)")
    sweep.add_argument("--out", type=Path, metavar="DIR", help="sweep folder (default: runs/sweep-<name>)")
    sweep.add_argument("--workers", type=positive_int, metavar="N",
                       help="CPUs of the local Ray (default: all of this machine's); not with RAY_ADDRESS")
    sweep.add_argument("--cpus-per-run", type=_cpus, default=1.0, metavar="C",
                       help="CPUs Ray reserves for each run (default: 1)")
    sweep.add_argument("--no-ray", action="store_true", help="run the combinations one after another here")
    sweep.add_argument("--force", action="store_true", help="redo runs that finished earlier")
    add_debug_option(sweep)
    return sweep


def sweep_command(path: Path, args: argparse.Namespace) -> int:
    """`python -m scenarios sweep`: plan, run (on Ray when it is there), tell how each run went, summarize."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from scenarios.sweep import run_sweep, summarize
    from scenarios.sweep_plan import parse_policies, parse_seeds, parse_sets, plan_sweep
    from world.ray_feedback import INSTALL_HINT, ray_available

    cfg = load_scenario(path)
    seeds = parse_seeds(args.seeds)
    policies = parse_policies(args.policies, cfg.base_station.policy)
    sets = parse_sets(args.sets)
    checkpoints = {}
    for item in args.checkpoints:
        name, sep, ckpt = item.partition("=")
        if not sep or not name or not ckpt:
            raise ScenarioError(f"--checkpoint {item!r}: give POLICY=PATH, e.g. --checkpoint ddpg=runs/x/policy.pt")
        checkpoints[name.strip()] = Path(ckpt)
    if args.workers is not None and os.environ.get("RAY_ADDRESS"):
        raise ScenarioError(f"--workers sizes a local Ray, but RAY_ADDRESS={os.environ['RAY_ADDRESS']} names a "
                            f"cluster, whose CPUs decide; drop --workers (or unset RAY_ADDRESS)")
    plan = plan_sweep(path, seeds, policies, sets, steps=args.steps, checkpoints=checkpoints)
    out = args.out or Path("runs") / f"sweep-{cfg.name}"
    use_ray = not args.no_ray and ray_available()
    where = ("on the Ray cluster at RAY_ADDRESS" if os.environ.get("RAY_ADDRESS") else
             f"on a local Ray of {args.workers or os.cpu_count()} CPUs")
    if args.no_ray:
        where = "one after another in this process (--no-ray)"
    elif not use_ray:
        where = (f"one after another in this process: Ray is not installed ({INSTALL_HINT} runs them in "
                 f"parallel)")
    axes = [k for k, v in sets.items() if len(v) > 1]
    print(f"sweep of {cfg.name}: {len(plan)} runs = {len(policies)} policies x {len(seeds)} seeds"
          + "".join(f" x {len(sets[k])} {k}" for k in axes) + f", {plan[0].cfg.slots} slots each; {where}")
    for policy in policies:
        ckpt = next(r.cfg.base_station.checkpoint for r in plan if r.policy == policy)
        if policy in LEARNER_NAMES:
            print(f"  {policy}: " + (f"checkpoint {ckpt}" if ckpt else
                                     "untrained: acts with its initial weights, as runs do not train (train one "
                                     "with python -m scenarios.train, then --checkpoint POLICY=PATH)"))
    console = Console()
    bar = console.is_terminal and not console.is_dumb_terminal
    meta = {"scenario": str(path), "seeds": seeds, "policies": policies, "sets": sets,
            "slots": plan[0].cfg.slots, "command": " ".join(sys.argv[1:]) if sys.argv else ""}
    started = time.perf_counter()
    status = 0
    with Progress(TextColumn("[bold]runs"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                  TimeElapsedColumn(), console=console, disable=not bar) as progress:
        task = progress.add_task("", total=len(plan))
        count = 0

        def on_done(row: dict[str, object], how: str) -> None:
            nonlocal count
            count += 1
            progress.advance(task)
            text = _run_line(row, how)
            progress.update(task, description=text)
            if bar:
                if how == "failed":
                    progress.console.print(f"[red]failed[/] {row['run']}: {row['error']}")
            else:
                print(ascii_only(f"[{count}/{len(plan)}] {text}"), flush=True)

        try:
            result = run_sweep(plan, out, use_ray=use_ray, workers=args.workers, cpus_per_run=args.cpus_per_run,
                               force=args.force, on_done=on_done, meta=meta)
        except KeyboardInterrupt:
            result = None
    if result is None:
        print(f"interrupted with {count} of {len(plan)} runs done: the finished runs are kept in {out} and "
              f"results.csv holds them; run the same command again to do the rest", file=sys.stderr)
        return EXIT_INTERRUPTED
    wall = time.perf_counter() - started
    print(f"{result.ran} ran, {result.skipped} finished earlier and skipped, {len(result.failed)} failed "
          f"in {wall:.1f} s")
    for line in _summary_lines(summarize(result.rows)):
        print(line)
    for name, error in result.failed:
        print(ascii_only(f"failed: {name}: {error}"), file=sys.stderr)
    if result.failed:
        print(f"{len(result.failed)} run(s) failed; fix the cause and run the same command again: only the "
              f"runs not finished are done again", file=sys.stderr)
        status = EXIT_FAILED
    for f in result.files:
        print(f"wrote {f}")
    return status


def _run_line(row: dict[str, object], how: str) -> str:
    if how == "failed":
        return f"{row['run']} failed"
    if how == "skipped":
        return f"{row['run']} finished earlier, skipped"
    return f"{row['run']} finished in {row['wall_s']} s (QoE {_num(row['mean_qoe'])}, wait {_num(row['mean_wait_s'])} s)"


def _num(value: object) -> str:
    try:
        number = float(value)          # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "-"
    return "-" if math.isnan(number) else f"{number:.3g}"


def _summary_lines(groups: list[dict[str, object]]) -> list[str]:
    """The mean over seeds (and its 95% interval) of each policy and variant, as aligned text."""
    from scenarios.sweep import COMPARED

    keys = tuple(m for m, _ in COMPARED)
    names = [" ".join([str(g["policy"]), *(f"{k}={v}" for k, v in g.items()
                                            if k not in ("policy", "runs") and not k.startswith(keys))])
             for g in groups]
    width = max([len(n) for n in names] + [6])
    lines = [f"{'policy':<{width}}  runs  {'QoE':>15}  {'wait s':>15}  {'energy J/slot':>17}"]
    for name, g in zip(names, groups):
        cells = [f"{_num(g[m])} +- {_num(g[m + '_ci95'])}" for m in keys]
        lines.append(f"{name:<{width}}  {g['runs']:>4}  {cells[0]:>15}  {cells[1]:>15}  {cells[2]:>17}")
    return [ascii_only(line) for line in lines]


def _cpus(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of CPUs, got {text!r}") from None
    if not 0 < value <= 1024:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 1024, got {text}")
    return value
