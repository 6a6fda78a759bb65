"""Command line: `python -m scenarios run|validate FILE` and the per-scenario runners."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scenarios.loader import ScenarioError, load_scenario
from scenarios.run import FeedbackFailed, run_scenario
from world.llm import LlmSetupError

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", type=int, metavar="N", help="slots to simulate (default: the scenario's 'slots')")
    parser.add_argument("--seed", type=int, metavar="S", help="seed of the run (default: the scenario's 'seed')")
    parser.add_argument("--out", type=Path, metavar="DIR", help="run folder (default: runs/<name>-<time>-seed<S>)")
    parser.add_argument("--force", action="store_true", help="replace the run in an existing --out folder")
    parser.add_argument("--fail-fast", action="store_true",
                        help="stop at once when the language model fails to answer (default: count and go on)")


def _run(path: Path, args: argparse.Namespace) -> int:
    cfg = load_scenario(path)
    try:
        result = run_scenario(cfg, steps=args.steps, seed=args.seed, out=args.out, force=args.force,
                              fail_fast=args.fail_fast)
    except KeyboardInterrupt:
        print("interrupted: every finished slot is in the run folder", file=sys.stderr)
        return EXIT_INTERRUPTED
    except FeedbackFailed as exc:
        print(f"stopped (--fail-fast): {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"done: {result.slots} slots in {result.seconds:.2f} s; {result.requests_issued} requests issued, "
          f"{result.requests_delivered} delivered, {result.requests_rated} rated; mean wait "
          f"{result.mean_wait_s:.2f} s, mean QoE {result.mean_qoe:.3f}; service energy {result.service_energy_j:.0f} J")
    if result.llm_calls or result.cache_hits:
        print(f"feedback: {result.llm_calls} LLM calls, {result.cache_hits} cache hits, "
              f"{result.feedback_invalid} invalid answers, {result.feedback_failed} failed")
    print(f"run folder: {result.out}")
    return 0


def _guarded(fn, *args) -> int:
    """Bad input ends with one message on stderr and exit status 2, never a traceback."""
    try:
        return fn(*args)
    except (ScenarioError, LlmSetupError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


def run_shipped(yaml_path: Path, argv: list[str] | None = None) -> int:
    """Entry point of `python -m scenarios.<name>`: run one shipped scenario."""
    parser = argparse.ArgumentParser(prog=f"python -m scenarios.{yaml_path.stem}",
                                     description=f"Run the shipped scenario {yaml_path.name}.")
    _add_run_options(parser)
    args = parser.parse_args(argv)
    return _guarded(_run, yaml_path, args)


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m scenarios`."""
    parser = argparse.ArgumentParser(prog="python -m scenarios", description="Run or check scenario files.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a scenario file")
    run.add_argument("file", type=Path, help="scenario YAML")
    _add_run_options(run)
    check = commands.add_parser("validate", help="check a scenario file and say what is wrong")
    check.add_argument("file", type=Path, help="scenario YAML")
    args = parser.parse_args(argv)
    if args.command == "run":
        return _guarded(_run, args.file, args)
    return _guarded(_validate, args.file)


def _validate(path: Path) -> int:
    cfg = load_scenario(path)
    print(f"{path}: valid ({cfg.name}: {cfg.users.count} users, {len(cfg.gpu_servers)} GPU server(s), "
          f"{len(cfg.prompts.topics)} prompt topics)")
    return 0
