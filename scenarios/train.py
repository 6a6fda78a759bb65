"""Train the base station's policy on a scenario: `python -m scenarios.train FILE --policy gddpg`.

    python -m scenarios.train city_block --policy gddpg --episodes 30 --seed 0
    python -m scenarios.train city_block --policy gddpg --episodes 60 --out runs/train-x --resume

Each episode is a fresh block (seeded from --seed and the episode number) run for the scenario's
`slots` through `policies.env.AllocationEnv`. Every request rated during an episode is one
transition (its observation row, its action, its reward share); the learner makes
--updates-per-request updates for each. Heuristic policies run the same episodes without
learning, so their curves compare with the learners'.

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
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from policies.ddpg import DDPG, CheckpointError, NonFiniteError
from agents.base_station import ACTION_FEATURES
from policies.env import AllocationEnv, Outcome, episode_seed, run_episode as run_episode_of
from scenarios.commands import EXIT_INTERRUPTED, Parser, add_debug_option, guarded, positive_int, scenario_path, seed_int
from scenarios.curve import append_curve, read_curve, tail_mean, write_curve
from scenarios.loader import ScenarioError, load_scenario
from scenarios.assemble import LEARNERS, assemble
from scenarios.tables import RunFolder
from world.files import write_atomic
from world.config import POLICIES, ScenarioConfig
from world.feedback_model import LearnedFeedback

FEEDBACK = ("learned", "frozen", "live")


@dataclass
class TrainOptions:
    """What a training run does besides the scenario."""

    policy: str
    episodes: int
    seed: int
    feedback: str = "learned"
    render: str = "profile"
    updates_per_request: int = 2
    learning_starts: int = 256
    max_requests: int = 8
    checkpoint_every: int = 5
    threads: int = 1


def training_config(cfg: ScenarioConfig, opts: TrainOptions) -> ScenarioConfig:
    """The scenario as trained: images rendered as asked, feedback as asked.

    'learned': the persona-feedback model, started from the scenario's `learned_start` when it names
    one and refreshed from a share of real LLM answers; 'frozen': that start fit alone, no LLM
    (every policy and seed sees the same feedback); 'live': the LLM answers every delivery.
    """
    fb = cfg.feedback
    if opts.feedback == "live":
        fb = fb.model_copy(update={"mode": "live"})
    elif opts.feedback == "learned":
        fb = fb.model_copy(update={"mode": "learned"})
    else:
        if not fb.learned_start:
            raise ScenarioError("--feedback frozen needs a fitted feedback model: set feedback.learned_start in "
                                "the scenario (make one with `python -m scenarios.fit_feedback`)")
        fb = fb.model_copy(update={"mode": "learned", "learned_live_share": 0.0})
    bs = cfg.base_station.model_copy(update={"policy": opts.policy, "checkpoint": None})
    return cfg.model_copy(update={"feedback": fb, "base_station": bs,
                                  "imagegen": cfg.imagegen.model_copy(update={"render": opts.render})})


def training_env(path: Path, seed: int = 0, feedback: str = "frozen", render: str = "profile",
                 max_requests: int = 8) -> tuple[AllocationEnv, Callable[[], None]]:
    """The environment `train` trains in, for a learner of one's own, and how to shut its feedback down.

    The scenario at `path` with images and feedback as `train --render/--feedback` would have them;
    feedback seeded like `train --seed` (for 'frozen', the same persona model and answer noise).
    """
    opts = TrainOptions(policy="fixed", episodes=1, seed=seed, feedback=feedback, render=render,
                        max_requests=max_requests)   # the caller decides: the scenario's policy is never asked
    cfg = training_config(load_scenario(path), opts)
    parts = assemble(cfg, seed)
    return AllocationEnv(cfg, parts.feedback, max_requests), parts.close


def run_episode(env: AllocationEnv, policy: Any, learner: DDPG | None, opts: TrainOptions, seed: int,
                rng: np.random.Generator) -> dict[str, float]:
    """One episode; a learner explores and learns as requests are rated. Returns the episode's row."""
    started = time.perf_counter()
    losses: list[dict[str, float]] = []
    updates0 = learner.updates if learner else 0

    def act(rows: np.ndarray) -> np.ndarray:
        if learner is not None and learner.buffer.size < opts.learning_starts:
            return rng.uniform(0.0, 1.0, size=(len(rows), len(ACTION_FEATURES)))
        return env.decide(policy, rows, deterministic=learner is None)

    def learn(outcomes: list[Outcome]) -> None:
        for o in outcomes:
            learner.buffer.add(o.obs, o.action, o.reward)
            for _ in range(opts.updates_per_request):
                loss = learner.learn()
                if loss is not None:
                    losses.append(loss)

    row = run_episode_of(env, act, seed, learn if learner is not None else None)
    return {
        **row, "transitions": learner.buffer.size if learner else 0,
        "updates": (learner.updates - updates0) if learner else 0,
        "qf_loss": _mean([l["qf_loss"] for l in losses]),
        "actor_loss": _mean([l["actor_loss"] for l in losses if not math.isnan(l["actor_loss"])]),
        "wall_s": time.perf_counter() - started,
    }


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan


def train(path: Path, opts: TrainOptions, out: Path, resume: bool = False, force: bool = False,
          progress: Callable[[int, int, dict[str, float]], None] | None = None) -> list[dict[str, float]]:
    """Train (or run, for a heuristic) `opts.policy` on the scenario at `path`; write the run folder.

    Raises:
        ScenarioError: bad input (scenario, folder, checkpoint, options).
        LlmSetupError: the language model cannot be started.
        NonFiniteError: a network produced non-finite values (the last checkpoint stays).
    """
    torch.set_num_threads(opts.threads)
    cfg = training_config(load_scenario(path), opts)
    folder = RunFolder(out, "training")
    last = folder.checkpoint
    learner: DDPG | None = None
    start_episode = 0
    extra: dict[str, Any] = {}
    if resume and not folder.options.is_file():
        raise ScenarioError(f"--resume: '{out}' holds no training run (no train.json); start without --resume")
    finished = read_curve(folder.curve) if resume else []
    if resume and len(finished) >= opts.episodes:
        raise ScenarioError(f"--resume: '{out}' has finished all {len(finished)} episodes; to train longer, pass "
                            f"--episodes with more than {len(finished)}")
    fresh = resume and not last.is_file()       # stopped before its first checkpoint: start it again here
    if fresh and finished and opts.policy not in LEARNERS:
        raise ScenarioError(f"--resume: '{out}' runs the heuristic '{opts.policy}', which keeps no checkpoint to go "
                            f"on from; run it again with --force")
    if resume and not fresh:
        saved = folder.read_json(folder.options)
        if saved["policy"] != opts.policy or saved["seed"] != opts.seed:
            raise ScenarioError(f"--resume: '{out}' trains {saved['policy']} with seed {saved['seed']}, not "
                                f"{opts.policy} with seed {opts.seed}; pass the same --policy and --seed")
        try:
            learner, extra = LEARNERS[opts.policy].from_checkpoint(last) if opts.policy in LEARNERS else (None, {})
        except CheckpointError as exc:
            raise ScenarioError(f"--resume: {exc}") from None
        start_episode = int(extra.get("episode", -1)) + 1
    else:
        folder.refuse_occupied(force or fresh)
        if opts.policy in LEARNERS:
            learner = LEARNERS[opts.policy](seed=opts.seed)
    # the parts are built before the folder is written: a bad fit, or a language model that cannot start,
    # leaves it as it was
    parts = assemble(cfg, opts.seed, policy=learner)
    feedback, policy = parts.feedback, parts.policy
    curve: list[dict[str, float]] = []
    try:
        if resume and not fresh:
            curve = [r for r in finished if r["episode"] < start_episode]
            write_curve(folder.curve, curve)
        else:
            folder.create(force or fresh)
            folder.write_config(cfg)
            folder.write_options({**opts.__dict__, "scenario": str(path), "feedback_mode": cfg.feedback.mode,
                                  "learned_live_share": cfg.feedback.learned_live_share,
                                  "learned_start": cfg.feedback.learned_start,
                                  "hyperparameters": learner.config if learner is not None else {}})
        if "feedback" in extra and isinstance(feedback, LearnedFeedback):
            feedback.restore(extra["feedback"])
        env = AllocationEnv(cfg, feedback, opts.max_requests)
    except BaseException:
        parts.close()
        raise
    rng = np.random.default_rng([opts.seed, 7])      # the learner's random actions before learning starts
    if "train_rng" in extra:
        rng.bit_generator.state = json.loads(extra["train_rng"])
    unsaved: bytes | None = None      # the checkpoint of the last finished episode, when it is not on disk yet
    unwritten: dict[str, float] | None = None     # that episode's curve row, when it is not in curve.csv yet
    try:
        for episode in range(start_episode, opts.episodes):
            row = {"episode": episode, **run_episode(env, policy, learner, opts, episode_seed(opts.seed, episode), rng)}
            if learner is not None:     # the episode's checkpoint exists before its row does: a stop keeps both
                extra = {"episode": episode, "scenario": cfg.name, "train_rng": json.dumps(rng.bit_generator.state)}
                if isinstance(feedback, LearnedFeedback):
                    extra["feedback"] = feedback.state()
                unsaved, unwritten = learner.to_bytes(extra), row
            append_curve(folder.curve, row)
            unwritten = None
            curve.append(row)
            if learner is not None and ((episode + 1) % opts.checkpoint_every == 0 or episode + 1 == opts.episodes):
                write_atomic(last, unsaved)
                unsaved = None
            if progress is not None:
                progress(episode + 1, opts.episodes, row)
    except KeyboardInterrupt:
        if unsaved is not None:
            if unwritten is not None:
                append_curve(folder.curve, unwritten)
            write_atomic(last, unsaved)
        raise
    finally:
        parts.close()
    if learner is not None:
        learner.save(folder.policy, {"episode": opts.episodes - 1, "scenario": cfg.name}, with_buffer=False)
    if curve:
        from scenarios.plots import plot_learning_curve

        plot_learning_curve([{"episode": r["episode"], "reward": r["reward_per_slot"]} for r in curve],
                            folder / "learning_curve.png")
    return curve


# The options a run is started with, with their defaults: recorded in train.json, and what --resume goes on with.
RECORDED = {"policy": "gddpg", "seed": 0, "feedback": "learned", "render": "profile", "updates_per_request": 2,
            "learning_starts": 256, "max_requests": 8, "checkpoint_every": 5, "threads": 1}
FLAGS = {k: "--" + k.replace("_", "-") for k in RECORDED}


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


def resumed_options(out: Path, given: dict[str, Any], episodes: int | None, file: Path | None) -> TrainOptions:
    """The options `out` was started with (its train.json), lengthened to `episodes` when given.

    Raises:
        ScenarioError: `out` holds no training run, or an option given contradicts the recorded one.
    """
    folder = RunFolder(out, "training")
    try:
        saved = folder.read_json(folder.options)
    except FileNotFoundError:
        raise ScenarioError(f"--resume: '{out}' holds no training run (no train.json); start without --resume") from None
    except (OSError, ValueError) as exc:
        raise ScenarioError(f"--resume: cannot read '{folder.options}' ({exc}); start again with --force") from None
    recorded = {k: saved.get(k, default) for k, default in RECORDED.items()}
    for key, value in given.items():
        if value != recorded[key]:
            raise ScenarioError(f"--resume: '{out}' trains {recorded['policy']} with {FLAGS[key]} {recorded[key]}, "
                                f"not {value}; a resumed run goes on with the options it was started with: drop "
                                f"{FLAGS[key]} (or start a new run with another --out)")
    if file is not None and saved.get("scenario") and Path(saved["scenario"]).resolve() != file.resolve():
        raise ScenarioError(f"--resume: '{out}' trains on {saved['scenario']}, not {file}; drop FILE or give that one")
    return TrainOptions(episodes=episodes or int(saved.get("episodes", 1)), **recorded)


def _train(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    path = scenario_path(args.file) if args.file is not None else None
    given = {k: getattr(args, k) for k in RECORDED if getattr(args, k) is not None}
    out = args.out or Path("runs") / f"train-{path.stem}-{given.get('policy', RECORDED['policy'])}-seed{given.get('seed', 0)}"
    if args.resume:
        opts = resumed_options(out, given, args.episodes, path)
        path = RunFolder(out, "training").config      # the scenario as the run resolved it
    else:
        opts = TrainOptions(episodes=args.episodes or 100, **{**RECORDED, **given})
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
