"""Training the base station's policy: the loop `python -m scenarios.train` runs (`scenarios/train.py` is the
command: its options, resuming, progress).

Each episode is a fresh block (seeded from the run's seed and the episode number) run for the scenario's
`slots` through `policies.env.AllocationEnv`. Every request rated during an episode is one transition
(its observation row, its action, its reward share); the learner makes `updates_per_request` updates for
each. Heuristic policies run the same episodes without learning, so their curves compare with the
learners'. `train` writes the training's run folder (see `scenarios/train.py`); `training_env` builds the
same environment for a learner of one's own.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from agents.base_station import ACTION_FEATURES
from policies.ddpg import DDPG, CheckpointError
from policies.env import AllocationEnv, Outcome, episode_seed, run_episode as run_episode_of
from scenarios.assemble import LEARNERS, assemble
from scenarios.curve import append_curve, read_curve, write_curve
from scenarios.loader import ScenarioError, load_scenario
from scenarios.tables import RunFolder
from scenarios.train_options import TrainOptions
from world.config import ScenarioConfig
from world.feedback_model import LearnedFeedback
from world.files import write_atomic


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
    saved = folder.read_options() if resume else {}
    finished = read_curve(folder.curve) if resume else []
    if resume and len(finished) >= opts.episodes:
        raise ScenarioError(f"--resume: '{out}' has finished all {len(finished)} episodes; to train longer, pass "
                            f"--episodes with more than {len(finished)}")
    fresh = resume and not last.is_file()       # stopped before its first checkpoint: start it again here
    if fresh and finished and opts.policy not in LEARNERS:
        raise ScenarioError(f"--resume: '{out}' runs the heuristic '{opts.policy}', which keeps no checkpoint to go "
                            f"on from; run it again with --force")
    if resume and not fresh:
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
