"""Command line: `python -m scenarios run|sweep|validate|list|new|reference` and `python -m scenarios.<name>`.

Exit status: 0 done, 1 stopped by --fail-fast or an unexpected error, 2 bad input (one message on
stderr, no traceback unless --debug), 130 interrupted (Ctrl-C or SIGTERM; the run folder keeps every
finished slot and the message says how to resume).
The live view is drawn only when stdout is a terminal and --no-live is not given; otherwise
progress goes out as plain ASCII lines.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from scenarios.commands import (EXIT_FAILED, EXIT_INTERRUPTED, Parser, add_debug_option, guarded, positive_int,
                                scenario_path, seed_int)
from scenarios.loader import SHIPPED, ScenarioError, load_scenario, parse_scenario, with_options
from scenarios.reference import reference_markdown, shipped_scenarios
from scenarios.report import ascii_only
from scenarios.sweep_cli import add_sweep_parser, sweep_command
from world.config import NAME, POLICIES
from world.llm_config import ollama_host

if TYPE_CHECKING:
    from rich.console import Console

    from scenarios.report import Report
    from world.runner import SlotRunner

# Commands load the simulator (torch, Mesa, llama.cpp, LangChain) when they run it, inside the command's
# function: --help, validate, list, new and reference start in well under a second.
EPILOG = """\
The run folder gets config.yaml, slots.csv, requests.csv and users.csv as the run goes, and at
the end the plots (qoe_by_persona.png, energy.png, latency.png; learning_curve.png when a learner
ran), image_sheet.png and run.json (how the run ended). Ctrl-C or SIGTERM stops a run with every
finished slot kept; --resume RUN_DIR goes on with it. Exit status: 0 done, 1 stopped by --fail-fast
or an unexpected error, 2 bad input, 130 interrupted.
"""


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", type=positive_int, metavar="N", help="slots to simulate (default: the scenario's 'slots')")
    parser.add_argument("--seed", type=seed_int, metavar="S",
                        help="seed of every random draw (default: the scenario's 'seed'); same seed, same run")
    parser.add_argument("--policy", choices=POLICIES, metavar="P",
                        help=f"the base station's policy, one of: {', '.join(POLICIES)} "
                             f"(default: the scenario's base_station.policy)")
    parser.add_argument("--checkpoint", type=Path, metavar="PATH",
                        help="trained weights for a learner (gddpg, ddpg): a policy.pt written by "
                             "`python -m scenarios.train` (default: the scenario's base_station.checkpoint)")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="run folder (default: runs/<name>-<date>-<time>-seed<S>)")
    parser.add_argument("--force", action="store_true", help="replace the run in an existing --out folder")
    parser.add_argument("--fail-fast", action="store_true",
                        help="stop at once when the language model fails to answer (default: count and go on)")
    parser.add_argument("--no-live", action="store_true",
                        help="plain progress lines instead of the live view (automatic when stdout is not a terminal)")
    parser.add_argument("--resume", type=Path, metavar="RUN_DIR",
                        help="go on with an interrupted run: its finished slots are replayed (the personas' recorded "
                             "answers, no model calls) and checked against slots.csv, then the rest is run; "
                             "--steps N runs it longer than first asked")
    add_debug_option(parser)


def _run(path: Path | None, args: argparse.Namespace, prog: str) -> int:
    from scenarios.tables import RunFolder, read_table

    if args.resume is not None:
        given = [flag for flag, value in (("FILE", path), ("--seed", args.seed), ("--policy", args.policy),
                                          ("--checkpoint", args.checkpoint), ("--out", args.out),
                                          ("--force", args.force or None)) if value is not None]
        if given:
            raise ScenarioError(f"--resume goes on with the run as it started: drop {', '.join(given)} "
                                f"(only --steps, --fail-fast, --no-live and --debug go with --resume)")
        cfg = RunFolder(args.resume).read_config()
    else:
        cfg = with_options(load_scenario(path), args.policy, args.checkpoint)
    if cfg.feedback.asks_model and cfg.feedback.llm.backend == "ollama":
        ollama_host(cfg.feedback.llm)       # a malformed address is said now, not after seconds of imports

    from rich.console import Console

    from scenarios.live import LiveView
    from scenarios.report import write_report
    from scenarios.run import FeedbackFailed, default_run_dir, run_scenario
    from scenarios.sheet import SheetSampler

    out = args.resume or args.out or default_run_dir(cfg, cfg.seed if args.seed is None else args.seed)
    seed = cfg.seed if args.seed is None else args.seed
    steps = cfg.slots if args.steps is None else args.steps
    console = Console()
    live = not args.no_live and console.is_terminal and not console.is_dumb_terminal
    sampler = SheetSampler()
    started = time.perf_counter()
    run = lambda log, observer, progress=None: run_scenario(  # noqa: E731
        cfg, steps=steps, seed=seed, out=out, force=args.force, fail_fast=args.fail_fast, log=log, observer=observer,
        resume=args.resume is not None, progress=progress)
    status = 0
    try:
        if live:
            with LiveView(console, steps, out=str(out)) as view:
                run(view.note, _both(view.observe, sampler.observe), progress=lambda line: None)  # drawn, not told
        else:
            run(_plain, sampler.observe)
    except KeyboardInterrupt:
        done = len(read_table(RunFolder(out).slots))
        print(f"interrupted after slot {done}: every finished slot is in {out}; go on with: "
              f"{prog} --resume {out}" + (f" --steps {steps}" if args.steps is not None else ""), file=sys.stderr)
        status = EXIT_INTERRUPTED
    except FeedbackFailed as exc:
        print(f"stopped (--fail-fast): {exc}; after fixing the model, go on with: {prog} --resume {out}",
              file=sys.stderr)
        status = EXIT_FAILED
    except OSError as exc:
        if not out.is_dir() or exc.filename is None or not Path(exc.filename).is_relative_to(out):
            raise       # not the run folder's tables: guarded() says what it was
        print(f"error: cannot write {exc.filename}: {exc.strerror}; every finished slot is kept in {out}; "
              f"free space, then go on with: {prog} --resume {out}", file=sys.stderr)
        print(f"run folder: {out}")
        return EXIT_FAILED
    wall_s = time.perf_counter() - started
    if RunFolder(out).slots.is_file():
        try:
            report = write_report(out, sampler.cells(), policy=cfg.base_station.policy,
                                  budget_j=cfg.base_station.energy_budget_j_per_slot, wall_s=wall_s)
        except KeyboardInterrupt:
            print(f"interrupted while drawing the plots; the run's tables in {out} are whole", file=sys.stderr)
            status = EXIT_INTERRUPTED
        else:
            _print_summary(report, cfg.name, console if live else None)
    print(f"run folder: {out}")
    return status


def _both(*observers: Callable[[SlotRunner], None]) -> Callable[[SlotRunner], None]:
    def observe(run: SlotRunner) -> None:
        for o in observers:
            o(run)
    return observe


def _plain(line: str) -> None:
    print(ascii_only(line), flush=True)


def _print_summary(report: Report, name: str, console: Console | None) -> None:
    from scenarios.report import summary_lines, summary_table

    if console is not None:
        console.print(summary_table(report, title=f"{name}: summary"))
        return
    for line in summary_lines(report):
        print(line)


def run_shipped(yaml_path: Path, argv: list[str] | None = None) -> int:
    """Entry point of `python -m scenarios.<name>`: run one shipped scenario."""
    parser = Parser(
        prog=f"python -m scenarios.{yaml_path.stem}", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=f"Run the shipped scenario {yaml_path.name}: a live view in a terminal, plain progress "
                    f"lines otherwise, then a summary, plots and an image sheet in the run folder.")
    _add_run_options(parser)
    args = parser.parse_args(argv)
    return guarded(_run, None if args.resume else yaml_path, args, parser.prog, debug=args.debug)


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m scenarios`."""
    parser = Parser(prog="python -m scenarios", epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     description="Run, check, list and start scenario files.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser("run", help="run a scenario file (or a shipped scenario by name)", epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter,
                              description="Run a scenario: live view in a terminal, then summary, plots, image sheet.")
    run.add_argument("file", metavar="FILE", nargs="?",
                     help="scenario YAML, or the name of a shipped scenario (see 'list'); none with --resume")
    _add_run_options(run)
    add_sweep_parser(commands)
    check = commands.add_parser("validate", help="check a scenario file and say what is wrong",
                                description="Check a scenario file; exit 2 with one message per problem.")
    check.add_argument("file", metavar="FILE", help="scenario YAML, or the name of a shipped scenario")
    add_debug_option(check)
    commands.add_parser("list", help="list the shipped scenarios", description="List the shipped scenarios.")
    new = commands.add_parser("new", help="write a commented scenario file to start from",
                              description="Write NAME.yaml: a copy of a shipped scenario, every field commented "
                                          "with its unit, named NAME. Edit it, then 'validate' and 'run' it.")
    new.add_argument("name", metavar="NAME",
                     help="scenario name (letters, digits, '_', '-'); writes NAME.yaml here, "
                          "or give a path ending in .yaml")
    new.add_argument("--from", dest="template", default="city_block", metavar="SCENARIO",
                     help="shipped scenario to start from (default: city_block; see 'list')")
    new.add_argument("--force", action="store_true", help="replace an existing file")
    add_debug_option(new)
    redraw = commands.add_parser("report", help="redraw a run folder's plots and print its summary",
                                 description="Redraw the plots (qoe_by_persona.png, energy.png, latency.png) of a "
                                             "run folder from its tables and print its summary: for a run stopped "
                                             "while plotting, or to see a finished run again. The image sheet is "
                                             "drawn only while a run goes.")
    redraw.add_argument("run_dir", metavar="RUN_DIR", type=Path, help="a run folder written by 'run'")
    add_debug_option(redraw)
    commands.add_parser("reference", help="print the scenario reference (Markdown) generated from the schema",
                        description="Print every scenario field with its unit, default and allowed range "
                                    "(this is scenarios/README.md).")
    args = parser.parse_args(argv)
    if args.command == "run":
        if args.file is None and args.resume is None:
            run.error("give a scenario FILE, or --resume RUN_DIR")
        path = None if args.file is None else scenario_path(args.file)
        return guarded(_run, path, args, "python -m scenarios run", debug=args.debug)
    if args.command == "sweep":
        return guarded(sweep_command, scenario_path(args.file), args, debug=args.debug)
    if args.command == "validate":
        return guarded(_validate, scenario_path(args.file), debug=args.debug)
    if args.command == "list":
        return _list()
    if args.command == "report":
        return guarded(_report, args.run_dir, debug=args.debug)
    if args.command == "new":
        return guarded(_new, args.name, args.template, args.force, debug=args.debug)
    print(reference_markdown(), end="")
    return 0


def _report(out: Path) -> int:
    from scenarios.report import write_report

    from scenarios.tables import RunFolder

    folder = RunFolder(out)
    if not folder.slots.is_file() or not folder.config.is_file():
        raise ScenarioError(f"report: '{out}' is not a run folder (no slots.csv and config.yaml); give a folder "
                            f"written by `python -m scenarios run`")
    cfg = load_scenario(folder.config)
    report = write_report(out, None, policy=cfg.base_station.policy,
                          budget_j=cfg.base_station.energy_budget_j_per_slot)
    _print_summary(report, cfg.name, None)
    print(f"run folder: {out}")
    return 0


def _validate(path: Path) -> int:
    cfg = load_scenario(path)
    print(f"{path}: valid ({cfg.name}: {cfg.users.count} users, {len(cfg.gpu_servers)} GPU server(s), "
          f"{len(cfg.prompts.topics)} prompt topics, feedback {cfg.feedback.mode})")
    return 0


def _list() -> int:
    rows = [(s.path.stem, f"{s.cfg.users.count}", f"{len(s.cfg.gpu_servers)}", s.cfg.feedback.mode, s.summary)
            for s in shipped_scenarios()]
    header = ("name", "users", "GPUs", "feedback", "what it is")
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(4)]
    for r in (header, *rows):
        print("  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4])
    print("\nrun one: python -m scenarios run NAME   start your own: python -m scenarios new NAME")
    return 0


def _new(name: str, template: str, force: bool) -> int:
    path = Path(name) if name.endswith((".yaml", ".yml")) else Path(f"{name}.yaml")
    if not NAME.fullmatch(path.stem):
        raise ScenarioError(f"new: '{path.stem}' is not a scenario name; use letters, digits, '_' and '-', "
                            f"starting with a letter or digit")
    source = SHIPPED / f"{template}.yaml"
    if not NAME.fullmatch(template) or not source.is_file():
        names = ", ".join(s.path.stem for s in shipped_scenarios())
        raise ScenarioError(f"new --from: no shipped scenario '{template}'; shipped: {names}")
    if path.exists() and not force:
        raise ScenarioError(f"new: '{path}' already exists; choose another name, or pass --force to replace it")
    text = new_scenario_text(path.stem, source)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"new: cannot write '{path}': {exc.strerror}") from None
    print(f"wrote {path} (from {source.name}); check it with: python -m scenarios validate {path}")
    print(f"run it with: python -m scenarios run {path} --steps 20")
    return 0


def new_scenario_text(name: str, source: Path) -> str:
    """A shipped scenario's commented YAML, renamed, with a header on how to go on; checked before it is returned."""
    body = source.read_text(encoding="utf-8")
    body, renamed = re.subn(r"^name: .*$", f"name: {name}", body, count=1, flags=re.MULTILINE)
    if not renamed:
        raise ScenarioError(f"new: template {source.name} has no top-level 'name:' line")
    header = (f"# {name}: started from {source.name} by `python -m scenarios new`.\n"
              f"# Every field below carries its unit; the full reference (unit, default, allowed range of\n"
              f"# every field) is scenarios/README.md, or `python -m scenarios reference`.\n"
              f"# Check: python -m scenarios validate {name}.yaml   Run: python -m scenarios run {name}.yaml\n#\n")
    text = header + body
    parse_scenario(text, source=f"{name}.yaml")
    return text
