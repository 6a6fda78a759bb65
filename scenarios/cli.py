"""Command line: `python -m scenarios run|sweep|validate|list|new|reference` and `python -m scenarios.<name>`.

Exit status: 0 done, 1 stopped by --fail-fast or an unexpected error, 2 bad input (one message on
stderr, no traceback unless --debug), 130 interrupted (Ctrl-C or SIGTERM; the run folder keeps every
finished slot and the message says how to resume).
The live view is drawn only when stdout is a terminal and --no-live is not given; otherwise
progress goes out as plain ASCII lines.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from typing import TYPE_CHECKING, NoReturn

from scenarios.loader import SHIPPED, ScenarioError, load_scenario, parse_scenario
from scenarios.reference import reference_markdown, shipped_scenarios
from scenarios.report import ascii_only
from world.config import LEARNER_NAMES, MAX_SEED, NAME, POLICIES
from world.llm_config import LlmSetupError

if TYPE_CHECKING:
    from rich.console import Console

    from scenarios.report import Report
    from world.city import CityBlock

# Commands load the simulator (torch, Mesa, llama.cpp, LangChain) when they run it, inside the command's
# function: --help, validate, list, new and reference start in well under a second.
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

EPILOG = """\
The run folder gets config.yaml, slots.csv, requests.csv and users.csv as the run goes, and at
the end the plots (qoe_by_persona.png, energy.png, latency.png; learning_curve.png when a learner
ran), image_sheet.png and run.json (how the run ended). Ctrl-C or SIGTERM stops a run with every
finished slot kept; --resume RUN_DIR goes on with it. Exit status: 0 done, 1 stopped by --fail-fast
or an unexpected error, 2 bad input, 130 interrupted.
"""


SWEEP_EPILOG = """\
The sweep folder (default runs/sweep-<name>) gets one run folder per combination, results.csv (a
row per run), summary.csv (mean and 95% interval over seeds per policy and variant) and
comparison.png. A run that fails is reported and the others go on; running the same command
again skips the finished runs. Without Ray installed (pip install -e '.[ray]'), the runs go one
after another. On a cluster (RAY_ADDRESS), the sweep folder must be on a file system every node
sees. Exit status: 0 all finished, 1 some runs failed, 2 bad input, 130 interrupted.
"""


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error: what is wrong and where the help is, exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def positive_int(text: str) -> int:
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def seed_int(text: str) -> int:
    value = _integer(text)
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be 0 to {MAX_SEED}, got {value}")
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None


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


def add_debug_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="print the traceback behind an error message")


def interrupt_on_sigterm() -> None:
    """SIGTERM (a scheduler, `kill`) stops the program as Ctrl-C does: what is finished is kept."""
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def scenario_path(name_or_path: str | Path) -> Path:
    """A file path as given, or the shipped scenario of that name ('rush_hour' -> scenarios/rush_hour.yaml)."""
    path = Path(name_or_path)
    shipped = SHIPPED / f"{name_or_path}.yaml"
    if not path.exists() and NAME.fullmatch(str(name_or_path)) and shipped.is_file():
        return shipped
    return path


def _run(path: Path | None, args: argparse.Namespace, prog: str) -> int:
    from rich.console import Console

    from scenarios.live import LiveView
    from scenarios.report import SheetSampler, write_report
    from scenarios.assemble import with_options
    from scenarios.replay import resume_config
    from scenarios.run import FeedbackFailed, default_run_dir, run_scenario
    from scenarios.tables import RunFolder, read_table

    if args.resume is not None:
        given = [flag for flag, value in (("FILE", path), ("--seed", args.seed), ("--policy", args.policy),
                                          ("--checkpoint", args.checkpoint), ("--out", args.out),
                                          ("--force", args.force or None)) if value is not None]
        if given:
            raise ScenarioError(f"--resume goes on with the run as it started: drop {', '.join(given)} "
                                f"(only --steps, --fail-fast, --no-live and --debug go with --resume)")
        cfg, out = resume_config(args.resume), args.resume
    else:
        cfg = with_options(load_scenario(path), args.policy, args.checkpoint)
        out = args.out or default_run_dir(cfg, cfg.seed if args.seed is None else args.seed)
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


def _both(*observers: Callable[[CityBlock], None]) -> Callable[[CityBlock], None]:
    def observe(model: CityBlock) -> None:
        for o in observers:
            o(model)
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


def guarded(fn: Callable[..., int], *args: object, debug: bool = False) -> int:
    """Run a command: bad input ends with one message on stderr and exit status 2, never a traceback
    (unless `debug`); an unexpected error says what it was and how to see more, exit status 1."""
    interrupt_on_sigterm()
    try:
        return fn(*args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as exc:
        if debug:
            traceback.print_exc()
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}; free space or fix the permissions and run again",
              file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:
        if isinstance(exc, _bad_input_errors()):
            if debug:
                traceback.print_exc()
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        if debug:
            raise
        print(f"error: unexpected {type(exc).__name__}: {exc}\nThis is a bug in aigcsim: run again with --debug "
              f"for the traceback and report it", file=sys.stderr)
        return EXIT_FAILED


def _bad_input_errors() -> tuple[type[Exception], ...]:
    """The errors that mean bad input (a scenario, a model file, weights): one message, exit status 2. An error
    class of a module that was never imported cannot have been raised, so only loaded modules are asked."""
    errors: list[type[Exception]] = [ScenarioError, LlmSetupError]
    for module, name in (("policies.ddpg", "NonFiniteError"), ("world.imagegen.model", "WeightsError")):
        if module in sys.modules:
            errors.append(getattr(sys.modules[module], name))
    return tuple(errors)


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
        return guarded(_sweep, scenario_path(args.file), args, debug=args.debug)
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


def _sweep(path: Path, args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from scenarios.sweep import parse_policies, parse_seeds, parse_sets, plan_sweep, run_sweep, summarize
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
