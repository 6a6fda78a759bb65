"""Run a scenario: build the block, step it, and write the run folder as it goes.

The run folder holds:
    config.yaml    the resolved scenario (written once, atomically, before the first slot)
    slots.csv      one row per finished slot (appended and flushed every slot)
    requests.csv   one row per finished request, with the user's feedback (appended and flushed every slot)
    users.csv      one row per user: name, persona summary, Big Five traits, walking speed
so a run that is interrupted keeps every slot it finished. Plots, the image sheet and the
summary are drawn from these files afterwards (`scenarios/report.py`).
"""

from __future__ import annotations

import csv
import math
import os
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Callable

import numpy as np
import yaml

from agents.base_station import AllocationPolicy
from agents.persona import TRAITS
from agents.request import ImageRequest
from policies.ddpg import DDPG, CheckpointError
from policies.gddpg import GDDPG
from policies.heuristics import FixedPolicy, GreedyPolicy, OptimumPolicy, RandomPolicy
from scenarios.loader import SHIPPED, ScenarioError
from world.city import SLOT_METRICS, CityBlock
from world.config import ScenarioConfig
from world.feedback import FeedbackCache, FeedbackPool
from world.feedback_model import FeedbackFitError, LearnedFeedback, load_fit
from world.llm import EMBEDDED_MODELS, build_backends

USER_FIELDS = ("user_id", "index", "name", "persona", *TRAITS, "speed_mps")
# the request's own fields, then what the GPU servers' cooperative engine adds (empty when it does not share)
RENDER_FIELDS = ("cluster", "shared_steps", "seen")
REQUEST_FIELDS = (*ImageRequest(request_id=0, user_id=0, persona="", prompt="", topic="", issued_s=0.0).as_record(),
                  *RENDER_FIELDS)


POLICIES = ("gddpg", "ddpg", "greedy", "optimum", "fixed", "random")   # what base_station.policy and --policy accept
LEARNERS = {"gddpg": GDDPG, "ddpg": DDPG}


def make_policy(cfg: ScenarioConfig, seed: int,
                feedback: FeedbackPool | LearnedFeedback | None = None) -> AllocationPolicy:
    """The base station's policy named in the scenario.

    A learner (gddpg, ddpg) loads `base_station.checkpoint` when it names one, else starts untrained.
    'optimum' plans on the learned persona-feedback model: the run's own when feedback is learned,
    else the scenario's `feedback.learned_start` fit; call its `bind(model)` once the block exists.
    """
    name = cfg.base_station.policy
    if name in LEARNERS:
        if cfg.base_station.checkpoint is None:
            return LEARNERS[name](seed=seed)
        path = resolve_shipped(cfg.base_station.checkpoint, "base_station.checkpoint")
        try:
            learner, _ = LEARNERS[name].from_checkpoint(path)
        except CheckpointError as exc:
            raise ScenarioError(f"base_station.checkpoint: {exc}") from None
        return learner
    if name == "greedy":
        return GreedyPolicy(cfg)
    if name == "optimum":
        if not isinstance(feedback, LearnedFeedback):
            if not cfg.feedback.learned_start:
                raise ScenarioError("policy 'optimum' plans on the learned persona-feedback model: set "
                                    "feedback.learned_start (make a fit with `python -m scenarios.fit_feedback`)")
            try:
                start = load_fit(resolve_shipped(cfg.feedback.learned_start, "feedback.learned_start"))
            except FeedbackFitError as exc:
                raise ScenarioError(f"feedback.learned_start: {exc}") from None
            feedback = LearnedFeedback(None, np.random.default_rng([seed, 3]), 0.0, 30, start=start)
        return OptimumPolicy(cfg, feedback)
    if name == "random":
        return RandomPolicy(np.random.default_rng([seed, 1]))
    return FixedPolicy()


class FeedbackFailed(RuntimeError):
    """The language model stopped answering and the run was asked to stop at once (--fail-fast)."""


def make_feedback(cfg: ScenarioConfig, seed: int) -> tuple[FeedbackPool | LearnedFeedback | None, Callable[[], None]]:
    """The personas' feedback service named in the scenario, and how to shut it down."""
    fcfg = cfg.feedback
    if fcfg.mode == "silent":
        return None, lambda: None
    start = None
    if fcfg.learned_start:
        try:
            start = load_fit(resolve_shipped(fcfg.learned_start, "feedback.learned_start"))
        except FeedbackFitError as exc:
            raise ScenarioError(f"feedback.learned_start: {exc}") from None
    if fcfg.mode == "learned" and start is not None and fcfg.learned_live_share == 0:
        frozen = LearnedFeedback(None, np.random.default_rng([seed, 2]), 0.0, fcfg.learned_min_pairs, start=start)
        return frozen, frozen.close
    backends, close_backends = build_backends(fcfg.llm, fcfg.instances)
    sampling = fcfg.llm.model_dump(include={"temperature", "top_logprobs", "max_tokens", "max_retries"})
    cache = FeedbackCache(fcfg.cache) if fcfg.cache else None
    # the cache key names the model by its file's hash, so a changed model never reuses old answers
    model_hash = EMBEDDED_MODELS[fcfg.llm.model].sha256 if fcfg.llm.backend == "embedded" else fcfg.llm.ollama_model
    pool = FeedbackPool(backends, backend_id=f"{backends[0].name}@{model_hash}", sampling=sampling, cache=cache)
    engine: FeedbackPool | LearnedFeedback = pool
    if fcfg.mode == "learned":
        engine = LearnedFeedback(pool, np.random.default_rng([seed, 2]), fcfg.learned_live_share,
                                 fcfg.learned_min_pairs, start=start)

    def close() -> None:
        engine.close()
        close_backends()

    return engine, close


def resolve_shipped(name: str, field: str) -> Path:
    """A file named in a scenario: as given (relative to the working folder), else beside the shipped scenarios."""
    path = Path(name)
    if path.is_file() or path.is_absolute():
        return path
    beside = SHIPPED / path
    if beside.is_file():
        return beside
    raise ScenarioError(f"{field}: '{name}' does not exist here or in {SHIPPED}; give a path to an existing file")


def default_run_dir(cfg: ScenarioConfig, seed: int) -> Path:
    """runs/<scenario>-<date>-<time>-seed<seed>."""
    return Path("runs") / f"{cfg.name}-{datetime.now():%Y%m%d-%H%M%S}-seed{seed}"


def prepare_run_dir(out: Path, force: bool) -> Path:
    """Create the run folder; refuse to write into one that holds a run unless forced."""
    if out.exists() and not out.is_dir():
        raise ScenarioError(f"--out '{out}' is a file, not a folder; choose another path")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ScenarioError(f"run folder '{out}' already holds files; choose another --out, "
                            f"or pass --force to replace its run")
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name in ("config.yaml", "slots.csv", "requests.csv", "users.csv"):
            (out / name).unlink(missing_ok=True)
    except OSError as exc:
        raise ScenarioError(f"cannot create run folder '{out}': {exc.strerror}; choose another --out") from None
    return out


def write_atomic(path: Path, text: str) -> None:
    """Write text to a temporary file beside `path`, then rename it into place."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


@dataclass
class RunResult:
    """Where a run wrote and what it measured."""

    out: Path
    slots: int
    requests_issued: int
    requests_delivered: int
    requests_rated: int
    mean_wait_s: float
    mean_qoe: float
    feedback_invalid: int
    feedback_failed: int
    llm_calls: int
    cache_hits: int
    service_energy_j: float
    seconds: float


class RunWriter:
    """Append-only CSV tables of a run folder."""

    def __init__(self, out: Path) -> None:
        self._files: list[IO[str]] = []
        self.slots = self._open(out / "slots.csv", SLOT_METRICS)
        self.requests = self._open(out / "requests.csv", REQUEST_FIELDS)

    def _open(self, path: Path, fields: tuple[str, ...]) -> csv.DictWriter:
        f = path.open("a", newline="", encoding="utf-8")
        self._files.append(f)
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        return writer

    def write_slot(self, model: CityBlock) -> None:
        """The slot just finished: its metrics and the requests finished in it."""
        self.slots.writerow(model.slot_metrics)
        for r in model.completed:
            self.requests.writerow(r.as_record())
        for f in self._files:
            f.flush()

    def close(self) -> None:
        for f in self._files:
            f.close()


def write_users(path: Path, model: CityBlock) -> None:
    """Who the users are, one row each: the plots group QoE by persona type from here."""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=USER_FIELDS)
        writer.writeheader()
        for u in model.user_list:
            writer.writerow({"user_id": u.unique_id, "index": u.index, "name": u.persona.name,
                             "persona": u.persona.summary(), **dict(zip(TRAITS, u.persona.traits.as_tuple())),
                             "speed_mps": u.speed_mps})


def run_scenario(cfg: ScenarioConfig, steps: int | None = None, seed: int | None = None,
                 out: Path | None = None, force: bool = False, fail_fast: bool = False,
                 log: Callable[[str], None] = print,
                 observer: Callable[[CityBlock], None] | None = None,
                 log_every_s: float = 30.0) -> RunResult:
    """Build the block from `cfg`, run it, write the run folder.

    Args:
        cfg: the scenario.
        steps: slots to run; default `cfg.slots`.
        seed: overrides `cfg.seed`.
        out: run folder; default under runs/.
        force: replace the run in an existing folder.
        fail_fast: stop at the first feedback the language model failed to give.
        log: where progress lines go (plain ASCII, one line each): every tenth of the run,
            and at least every `log_every_s` seconds of wall time.
        observer: called with the model after every slot (and its files) is finished; the live
            view reads the model there. It must not change the model.
        log_every_s: wall-clock seconds between progress lines at the latest.

    Raises:
        ScenarioError: bad input (run folder, steps).
        LlmSetupError: the language model cannot be started or reached.
        FeedbackFailed: with fail_fast, the model stopped answering.
    """
    seed = cfg.seed if seed is None else seed
    steps = cfg.slots if steps is None else steps
    if steps < 1:
        raise ScenarioError(f"--steps must be at least 1, got {steps}")
    cfg = cfg.model_copy(update={"seed": seed, "slots": steps})
    # a bad checkpoint is refused before the run folder is touched ('optimum' needs the feedback first)
    policy = make_policy(cfg, seed) if cfg.base_station.policy != "optimum" else None
    out = prepare_run_dir(out or default_run_dir(cfg, seed), force)
    write_atomic(out / "config.yaml", yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))

    log(f"running {cfg.name}: {steps} slots of {cfg.slot_s:g} s, seed {seed}, run folder {out}")
    feedback, close_feedback = make_feedback(cfg, seed)
    policy = policy or make_policy(cfg, seed, feedback)
    model = CityBlock(cfg, policy, feedback=feedback)
    if hasattr(policy, "bind"):
        policy.bind(model)
    write_users(out / "users.csv", model)
    writer = RunWriter(out)
    issued = delivered = rated = invalid = failed = 0
    waits: list[float] = []
    qoe: list[float] = []
    energy = 0.0
    started = time.perf_counter()
    every = max(1, steps // 10)
    logged = started
    try:
        for _ in range(steps):
            model.step()
            writer.write_slot(model)
            m = model.slot_metrics
            issued += int(m["requests_issued"])
            delivered += int(m["requests_delivered"])
            rated += int(m["requests_rated"])
            invalid += int(m["feedback_invalid"])
            failed += int(m["feedback_failed"])
            waits += [r.wait_s for r in model.delivered]
            qoe += [r.qoe for r in model.completed if not math.isnan(r.qoe)]
            energy += m["service_energy_j"]
            if fail_fast and m["feedback_failed"]:
                first = next(r.feedback for r in model.completed if r.feedback and r.feedback.failed)
                raise FeedbackFailed(f"slot {model.slot}: the language model did not answer ({first.error}); "
                                     f"finished slots are in {out}")
            if observer is not None:
                observer(model)
            now = time.perf_counter()
            if model.slot % every == 0 or model.slot == steps or now - logged >= log_every_s:
                logged = now
                log(f"slot {model.slot}/{steps}  t={m['time_s']:.0f}s  issued={issued}  delivered={delivered}  "
                    f"rated={rated}  in_flight={m['in_flight']}  mean_qoe={_fmt(qoe)}  "
                    f"llm_calls={m['llm_calls']}  cache_hits={m['cache_hits']}  invalid={invalid}  "
                    f"failed={failed}  gpu={m['gpu_utilisation']:.0%}  energy={energy:.0f}J")
    finally:
        writer.close()
        close_feedback()
    m = model.slot_metrics
    return RunResult(out=out, slots=model.slot, requests_issued=issued, requests_delivered=delivered,
                     requests_rated=rated, mean_wait_s=float(np.mean(waits)) if waits else math.nan,
                     mean_qoe=float(np.mean(qoe)) if qoe else math.nan, feedback_invalid=invalid,
                     feedback_failed=failed, llm_calls=int(m["llm_calls"]), cache_hits=int(m["cache_hits"]),
                     service_energy_j=energy, seconds=time.perf_counter() - started)


def _fmt(values: list[float]) -> str:
    return f"{np.mean(values):.2f}" if values else "-"
