"""Train the base station's policy on a scenario: `python -m scenarios.train FILE --policy gddpg`.

    python -m scenarios.train city_block --policy gddpg --episodes 30 --seed 0
    python -m scenarios.train city_block --policy gddpg --episodes 60 --out runs/train-x --resume

Each episode is a fresh block, seeded from --seed and the episode number; a learner learns from every
request rated (`scenarios/training.py` is the loop, and what a script of one's own imports); heuristic
policies run the same episodes without learning, so their curves compare with the learners'. The options,
their defaults and what --resume goes on with are `scenarios/train_options.py`.

The run folder holds:
    config.yaml          the resolved scenario (with the --feedback and --render choices applied)
    train.json           policy, hyperparameters, seed, feedback and rendering mode, episodes asked
    curve.csv            one row per episode (appended): reward, total QoE and energy per slot, ...
    checkpoints/last.pt  the learner, its replay buffer and every random state after the last checkpointed
                         episode; Ctrl-C or SIGTERM writes it for the last finished episode (--resume)
    policy.pt            the trained learner without its buffer (for `--checkpoint`), at the end
    learning_curve.png   reward per episode, at the end
Weights are saved as state dicts and loaded with `weights_only=True`.

Exit status: 0 done, 1 unexpected error, 2 bad input (one message on stderr, no traceback unless
--debug), 130 interrupted (Ctrl-C or SIGTERM: the checkpoint of the last finished episode is written
and the command to resume is printed). A resumed run ends exactly as an uninterrupted one would.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable

from scenarios.commands import EXIT_INTERRUPTED, Parser, add_debug_option, guarded, positive_int, scenario_path, seed_int
from scenarios.curve import read_curve, tail_mean
from scenarios.tables import RunFolder
from scenarios.train_options import FEEDBACK, RECORDED, TrainOptions, resumed_options
from world.config import POLICIES

def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m scenarios.train", description=__doc__.split("\n\n")[0],
                    epilog="The run folder and exit status: see `pydoc scenarios.train`. With --resume, a run goes on "
                           "with the options it was started with (train.json); give only --episodes to lengthen it.")
    parser.add_argument("file", metavar="FILE", nargs="?",
                        help="scenario YAML, or the name of a shipped scenario (with --resume: the run folder's own)")
    parser.add_argument("--policy", choices=POLICIES, metavar="P",
                        help=f"what to train or run, one of: {', '.join(POLICIES)} (default: gddpg)")
    parser.add_argument("--episodes", type=positive_int, metavar="N",
                        help="episodes (default 100: about 4 minutes for gddpg on the city block; with --resume: "
                             "as the run was started)")
    parser.add_argument("--seed", type=seed_int, metavar="S", help="seed of the learner and the blocks (default 0)")
    parser.add_argument("--feedback", choices=FEEDBACK,
                        help="learned (default): the persona-feedback model refreshed from a share of real LLM "
                             "answers; frozen: the scenario's fitted model only, no LLM; live: the LLM rates "
                             "every delivery (slow)")
    parser.add_argument("--render", choices=("profile", "real"),
                        help="images from the measured quality tables (default: profile) or drawn by the real model")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="run folder (default: runs/train-<scenario>-<policy>-seed<S>)")
    parser.add_argument("--resume", action="store_true",
                        help="go on from the run folder's last checkpoint, with the options the run was started with")
    parser.add_argument("--force", action="store_true", help="replace the run in an existing --out folder")
    parser.add_argument("--checkpoint-every", type=positive_int, metavar="K",
                        help="episodes between checkpoints (default 5)")
    parser.add_argument("--updates-per-request", type=positive_int, metavar="U",
                        help="learner updates per rated request (default 2)")
    parser.add_argument("--learning-starts", type=positive_int, metavar="N",
                        help="rated requests the learner collects with uniform random actions before it acts "
                             "(default 256)")
    parser.add_argument("--max-requests", type=positive_int, metavar="K",
                        help="requests the base station decides per slot; more wait (default 8)")
    parser.add_argument("--threads", type=positive_int, metavar="T", help="torch threads (default 1)")
    parser.add_argument("--no-progress", action="store_true", help="plain lines instead of a progress bar")
    add_debug_option(parser)
    args = parser.parse_args(argv)
    if args.file is None and not (args.resume and args.out):
        parser.error("give a scenario FILE (or, with --resume, the run's --out folder)")
    return guarded(_train, args, debug=args.debug)


def _train(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    path = scenario_path(args.file) if args.file is not None else None
    given = {k: getattr(args, k) for k in RECORDED if getattr(args, k) is not None}
    out = args.out or Path("runs") / f"train-{path.stem}-{given.get('policy', RECORDED['policy'])}-seed{given.get('seed', RECORDED['seed'])}"
    if args.resume:
        opts = resumed_options(out, given, args.episodes, path)
        path = RunFolder(out, "training").config      # the scenario as the run resolved it
    else:
        opts = TrainOptions(episodes=args.episodes or TrainOptions.episodes, **{**RECORDED, **given})
    from policies.ddpg import NonFiniteError        # the trainer loads torch: --help and refused options are quick
    from scenarios.training import train

    try:
        with _progress(args.no_progress) as report:
            curve = train(path, opts, out, resume=args.resume, force=args.force, progress=report)
    except NonFiniteError as exc:
        raise NonFiniteError(f"{exc}; the last checkpoint in {out / 'checkpoints'} is untouched") from None
    except KeyboardInterrupt:
        done = len(read_curve(RunFolder(out, "training").curve))
        print(f"interrupted after episode {done}: the checkpoint of the last finished episode is in "
              f"{out / 'checkpoints'}; go on with: python -m scenarios.train --out {out} --resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"{opts.policy}: {len(curve)} episodes in {time.perf_counter() - started:.0f} s; last 20%: reward/slot "
          f"{tail_mean(curve, 'reward_per_slot'):.3f}, total QoE/slot "
          f"{tail_mean(curve, 'total_qoe_per_slot'):.3f}, energy/slot "
          f"{tail_mean(curve, 'energy_j_per_slot'):.0f} J")
    print(f"run folder: {out}")
    return 0


class _progress:
    """A rich progress bar over episodes in a terminal, plain lines otherwise."""

    def __init__(self, plain: bool) -> None:
        from rich.console import Console

        self.console = Console()
        self.plain = plain or not self.console.is_terminal
        self.bar = None

    def __enter__(self) -> Callable[[int, int, dict[str, float]], None]:
        if not self.plain:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                                TextColumn("{task.fields[status]}"), console=self.console)
            self.bar.start()
            self.task = self.bar.add_task("episodes", total=None, status="")
        return self.report

    def report(self, done: int, total: int, row: dict[str, float]) -> None:
        status = (f"reward/slot {row['reward_per_slot']:.3f}  QoE/slot {row['total_qoe_per_slot']:.3f}  "
                  f"energy {row['energy_j_per_slot']:.0f} J/slot")
        if self.bar is None:
            print(f"episode {done}/{total}: {status}  ({row['wall_s']:.1f} s)", flush=True)
        else:
            self.bar.update(self.task, completed=done, total=total, status=status)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


if __name__ == "__main__":
    sys.exit(main())
