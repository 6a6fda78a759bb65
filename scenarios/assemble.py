"""A block's parts from its scenario: the base station's policy, the personas' feedback service, the
shipped model files they load (checked by sha256). `run`, `train`, `sweep` and the benchmarks build them here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from agents.base_station import ACTION_FEATURES, OBS_FEATURES, AllocationPolicy
from agents.feedback import FeedbackBackend, FeedbackService
from policies.ddpg import DDPG, CheckpointError
from policies.gddpg import GDDPG
from policies.heuristics import FixedPolicy, GreedyPolicy, OptimumPolicy, RandomPolicy
from scenarios.loader import SHIPPED, ScenarioError
from scenarios.replay import RecordedAnswers
from world.config import LEARNER_NAMES, ScenarioConfig
from world.llm_config import LlmConfig
from world.feedback import FeedbackCache, FeedbackPool
from world.feedback_model import FeedbackFitError, LearnedFeedback, load_fit
from world.ray_feedback import build_ray_backends

LEARNERS = {"gddpg": GDDPG, "ddpg": DDPG}     # the learners' classes, by their names in world.config
assert tuple(LEARNERS) == LEARNER_NAMES


@dataclass
class Assembly:
    """A block's parts, each built once from its scenario: the base station's policy, the personas' feedback
    service (None when they are silent) and `close`, which shuts the service's language model down."""

    policy: AllocationPolicy
    feedback: FeedbackService | None
    close: Callable[[], None]


def assemble(cfg: ScenarioConfig, seed: int, recorded: RecordedAnswers | None = None,
             policy: AllocationPolicy | None = None) -> Assembly:
    """The parts of the scenario's block; nothing is written.

    The model files the scenario names are checked first (the base station's checkpoint, the feedback fit),
    so a bad one is refused before a language model starts; then the feedback service starts, and
    'optimum' plans on it.

    Args:
        cfg: the scenario.
        seed: seeds the untrained learner, the answer noise and the random policy.
        recorded: a resumed run's answers, served again while there are any before the model is asked.
        policy: the caller's own policy instead of the scenario's (the learner that `train` trains).

    Raises:
        ScenarioError: a model file is missing, damaged or made for other features.
        LlmSetupError: the language model cannot be started or reached.
    """
    fit = _start_fit(cfg)
    if policy is None and cfg.base_station.policy == "optimum":
        if cfg.feedback.mode != "learned" and fit is None:
            raise ScenarioError("policy 'optimum' plans on the learned persona-feedback model: set "
                                "feedback.learned_start (make a fit with `python -m scenarios.fit_feedback`)")
    elif policy is None:
        policy = _policy(cfg, seed)
    feedback, close = _feedback(cfg, seed, fit, recorded)
    if policy is None:
        planned = feedback if isinstance(feedback, LearnedFeedback) else \
            LearnedFeedback(None, np.random.default_rng([seed, 3]), 0.0, 30, start=fit)
        policy = OptimumPolicy(cfg, planned)
    return Assembly(policy, feedback, close)


def _start_fit(cfg: ScenarioConfig) -> np.ndarray | None:
    """The weights of the scenario's `feedback.learned_start` fit, checked; None when it names none."""
    if not cfg.feedback.learned_start:
        return None
    try:
        return load_fit(resolve_shipped(cfg.feedback.learned_start, "feedback.learned_start"))
    except FeedbackFitError as exc:
        raise ScenarioError(f"feedback.learned_start: {exc}") from None


def _policy(cfg: ScenarioConfig, seed: int) -> AllocationPolicy:
    """The base station's policy named in the scenario, but 'optimum' (which plans on the feedback service).

    A learner (gddpg, ddpg) loads `base_station.checkpoint` when it names one, else starts untrained.
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
        if learner.obs_dim != len(OBS_FEATURES) or learner.act_dim != len(ACTION_FEATURES):
            raise ScenarioError(f"base_station.checkpoint: '{path}' observes {learner.obs_dim} values and acts on "
                                f"{learner.act_dim}; the base station gives {len(OBS_FEATURES)} and takes "
                                f"{len(ACTION_FEATURES)}: it was made for another observation layout; retrain it with "
                                f"`python -m scenarios.train SCENARIO --policy {name}`")
        return learner
    if name == "greedy":
        return GreedyPolicy(cfg)
    if name == "random":
        return RandomPolicy(np.random.default_rng([seed, 1]))
    return FixedPolicy()


def build_backends(cfg: LlmConfig, instances: int) -> tuple[list[FeedbackBackend], Callable[[], None]]:
    """`world.llm.build_backends`, imported only when a language model is started (LangChain, the OpenAI
    client and llama.cpp take over a second to import, which a run from the answer cache or a frozen
    persona model does without); an embedded instance loads its model when first asked (about 5 s and
    2 GB each, which a run answered from the cache does without)."""
    from world.llm import build_backends as build

    return build(cfg, instances, lazy=True)


def _feedback(cfg: ScenarioConfig, seed: int, start: np.ndarray | None, recorded: RecordedAnswers | None,
              ) -> tuple[FeedbackService | None, Callable[[], None]]:
    """The personas' feedback service named in the scenario, starting from the fit `start`, and how to shut
    it down. With `recorded`, the model's answers come from a resumed run's record while there is one."""
    fcfg = cfg.feedback
    if fcfg.mode == "silent":
        return None, lambda: None
    if not fcfg.asks_model:                     # learned, frozen on its start fit
        frozen = LearnedFeedback(None, np.random.default_rng([seed, 2]), 0.0, fcfg.learned_min_pairs, start=start)
        return frozen, frozen.close
    if fcfg.serve == "ray":
        backends, close_backends = build_ray_backends(fcfg.llm, fcfg.instances)
    else:
        backends, close_backends = build_backends(fcfg.llm, fcfg.instances)
    sampling = fcfg.llm.model_dump(include={"temperature", "top_logprobs", "max_tokens", "max_retries"})
    cache = FeedbackCache(fcfg.cache) if fcfg.cache else None
    # the cache key names the model by its file's hash, so a changed model never reuses old answers
    model_hash = fcfg.llm.ollama_model
    if fcfg.llm.backend == "embedded":
        from world.llm import EMBEDDED_MODELS

        model_hash = EMBEDDED_MODELS[fcfg.llm.model].sha256
    pool = FeedbackPool(backends, backend_id=f"{backends[0].name}@{model_hash}", sampling=sampling, cache=cache)
    asked: FeedbackService = pool
    if recorded is not None:
        recorded.pool = pool
        asked = recorded
    engine = asked
    if fcfg.mode == "learned":
        engine = LearnedFeedback(asked, np.random.default_rng([seed, 2]), fcfg.learned_live_share,
                                 fcfg.learned_min_pairs, start=start)

    def close() -> None:
        engine.close()
        close_backends()

    return engine, close


def resolve_shipped(name: str, field: str) -> Path:
    """A file named in a scenario: as given (relative to the working folder), else beside the shipped scenarios.

    A shipped model file (a trained checkpoint, a feedback fit) is checked against the sha256 in
    scenarios/SHA256SUMS before it is used.
    """
    path = Path(name)
    if not (path.is_file() or path.is_absolute()):
        path = SHIPPED / path
        if not path.is_file():
            raise ScenarioError(f"{field}: '{name}' does not exist here or in {SHIPPED}; give a path to an "
                                f"existing file")
    verify_shipped(path, field)
    return path


def shipped_sums(folder: Path | None = None) -> dict[str, str]:
    """The sha256 of each shipped model file, by its path relative to the scenarios folder (SHA256SUMS)."""
    sums = (folder or SHIPPED) / "SHA256SUMS"
    if not sums.is_file():
        return {}
    return {rel.strip().lstrip("*"): digest for digest, rel in
            (line.split(maxsplit=1) for line in sums.read_text(encoding="utf-8").splitlines() if line.strip())}


def verify_shipped(path: Path, field: str) -> None:
    """Refuse a shipped model file whose content is not the one the project ships."""
    try:
        rel = path.resolve().relative_to(SHIPPED.resolve()).as_posix()
    except ValueError:
        return          # not a shipped file: the user's own, checked by its loader
    expected = shipped_sums().get(rel)
    if expected is None or not path.is_file():
        return
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != expected:
        raise ScenarioError(f"{field}: the shipped file {path} has sha256 {digest[:16]}..., expected "
                            f"{expected[:16]}... (scenarios/SHA256SUMS): it was changed or damaged; restore it "
                            f"(`git checkout -- scenarios/{rel}` or reinstall aigcsim), or rebuild it with "
                            f"`make checkpoint` / `make feedback-fit`")


def with_seed_and_slots(cfg: ScenarioConfig, seed: int, slots: int) -> ScenarioConfig:
    """The scenario with --seed and --steps applied, checked as if they were written in the file."""
    try:
        return ScenarioConfig.model_validate({**cfg.model_dump(), "seed": seed, "slots": slots})
    except ValidationError as exc:
        err = exc.errors()[0]
        flag = {"seed": "--seed", "slots": "--steps"}.get(str(err["loc"][0]), ".".join(map(str, err["loc"])))
        raise ScenarioError(f"{flag}: got {err.get('input')!r}; {err['msg']}") from None
