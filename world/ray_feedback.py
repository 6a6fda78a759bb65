"""Persona feedback served by Ray actors: one model instance (embedded) or one client (Ollama) each.

`feedback.serve: ray` in a scenario puts each of the `feedback.instances` model instances in its own
Ray actor, so a large population's answers spread over a cluster's cores (`RAY_ADDRESS`), or over
this machine's when no cluster is named. The simulation does not change: the `FeedbackPool` keeps
the response cache and hands each question to a free instance; here an instance is a `RayBackend`,
a handle that forwards `give_feedback` to its actor and waits for the answer. The actor builds its
backend with `build_backends`, the code a local run uses, so the same question with the same
seed and model gets the same answer wherever it is asked.

Ray is an optional extra (`pip install -e .[ray]`); nothing here imports it until it is used.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agents.feedback import Delivery, Feedback, FeedbackBackend
from agents.persona import Persona
from world.llm_config import LlmConfig, LlmSetupError

READY_TIMEOUT_S = 300.0     # an actor waits for a free CPU, then loads its model (seconds on a laptop)
INSTALL_HINT = "pip install -e '.[ray]'"
NICENESS = "RAY_worker_niceness"   # Ray's setting (environment) for the niceness of the workers it starts


def ray_available() -> bool:
    """Whether the optional Ray extra is installed."""
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def import_ray() -> Any:
    """The `ray` module, or LlmSetupError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise LlmSetupError(f"feedback.serve is 'ray' but Ray is not installed: {INSTALL_HINT} "
                            f"(or set feedback.serve: local)") from None
    return ray


def ensure_ray(num_cpus: int | None = None) -> bool:
    """Connect to Ray: the cluster at RAY_ADDRESS when set, else a new local Ray on this machine.

    Returns:
        True when this call started Ray (the caller shuts it down), False when it was already running.
    """
    ray = import_ray()
    if ray.is_initialized():
        return False
    if os.environ.get("RAY_ADDRESS"):
        ray.init(logging_level=logging.ERROR, log_to_driver=False)     # the cluster decides how many CPUs
    else:
        # "local": a new Ray of our own, never a cluster that `ray start` left on this machine. Ray starts its
        # workers at nice 15, where beside any busy program a sweep's runs or a model actor get a few percent
        # of a core (an actor then misses READY_TIMEOUT_S): this Ray's workers run at the caller's priority.
        # Its raylet reads the setting as it starts; the caller's environment is left as it was.
        before = os.environ.get(NICENESS)
        os.environ.setdefault(NICENESS, "0")
        try:
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, logging_level=logging.ERROR,
                     log_to_driver=False)
        finally:
            if before is None:
                os.environ.pop(NICENESS, None)
    return True


class FeedbackActor:
    """Holds one feedback backend inside a Ray actor (see `ray_backends`).

    Args:
        make_backend: builds the backend and returns it with its shutdown function; runs in the actor.
    """

    def __init__(self, make_backend: Callable[[], tuple[FeedbackBackend, Callable[[], None]]]) -> None:
        self.backend, self._close = make_backend()

    def name(self) -> str:
        return self.backend.name

    def give_feedback(self, persona: Persona, delivery: Delivery) -> Feedback:
        return self.backend.give_feedback(persona, delivery)

    def close(self) -> None:
        self._close()


class RayBackend:
    """A `FeedbackBackend` whose answers come from a `FeedbackActor`.

    An actor that dies (its node is lost, its process killed) gives failed answers, as a server
    that cannot be reached does; an error raised inside the backend is raised here.
    """

    def __init__(self, actor: Any, name: str) -> None:
        self.actor = actor
        self.name = name

    def give_feedback(self, persona: Persona, delivery: Delivery) -> Feedback:
        import ray

        start = time.perf_counter()
        try:
            return ray.get(self.actor.give_feedback.remote(persona, delivery))
        except ray.exceptions.RayTaskError as exc:
            raise exc.cause from None                   # the backend's own error: a bug, as in a local pool
        except ray.exceptions.RayActorError as exc:
            reason = str(exc).strip().splitlines()[0][:200]
            return Feedback(text="", rating=None, expected_rating=None, raw="", latency_s=time.perf_counter() - start,
                            backend=self.name, valid=False, error=f"feedback actor lost: {reason}", failed=True)


def ray_backends(make_backend: Callable[[], tuple[FeedbackBackend, Callable[[], None]]], instances: int,
                 cpus_per_instance: float = 1.0) -> tuple[list[RayBackend], Callable[[], None]]:
    """`instances` actors, each building its own backend with `make_backend`, and how to stop them.

    Waits until every actor has built its backend, so a model that cannot start is reported here.

    Raises:
        LlmSetupError: Ray is missing, an actor could not build its backend, or the cluster had no
            room for the actors within READY_TIMEOUT_S.
    """
    ray = import_ray()
    started = ensure_ray()
    remote = ray.remote(num_cpus=cpus_per_instance, max_restarts=0)(FeedbackActor)
    actors = [remote.remote(make_backend) for _ in range(instances)]

    def close() -> None:
        for actor in actors:
            try:
                ray.get(actor.close.remote(), timeout=30)
            except (ray.exceptions.RayError, TimeoutError):
                pass                                     # a dead actor has nothing left to close
            ray.kill(actor)
        if started:
            ray.shutdown()

    try:
        names = ray.get([a.name.remote() for a in actors], timeout=READY_TIMEOUT_S)
    except ray.exceptions.GetTimeoutError:
        close()
        raise LlmSetupError(f"the {instances} feedback actor(s) did not start within {READY_TIMEOUT_S:.0f} s: the "
                            f"Ray cluster has no {cpus_per_instance:g} CPU free for each, or the model is slow to "
                            f"load; lower feedback.instances or add nodes") from None
    except ray.exceptions.RayActorError as exc:
        close()
        cause = str(exc).strip().splitlines()[-1][:300]
        raise LlmSetupError(f"a feedback actor could not start its model: {cause}") from None
    except BaseException:
        close()
        raise
    return [RayBackend(actor, name) for actor, name in zip(actors, names)], close


def build_ray_backends(cfg: LlmConfig, instances: int) -> tuple[list[RayBackend], Callable[[], None]]:
    """`build_backends` with each instance in its own Ray actor (one CPU, or `threads` for embedded).

    The model cache folder is made absolute here, so actors on this machine find the assembled
    model file where a local run keeps it, whatever their working folder.
    """
    cfg = cfg.model_copy(update={"cache_dir": str(Path(cfg.cache_dir).absolute())})
    cpus = float(cfg.threads) if cfg.backend == "embedded" else 1.0
    return ray_backends(_BuildOne(cfg), instances, cpus_per_instance=cpus)


class _BuildOne:
    """Builds one backend from an LLM config inside an actor (a class, so Ray can pickle it)."""

    def __init__(self, cfg: LlmConfig) -> None:
        self.cfg = cfg

    def __call__(self) -> tuple[FeedbackBackend, Callable[[], None]]:
        from world.llm import build_backends       # in the actor's process, when it starts its model

        backends, close = build_backends(self.cfg, 1)
        return backends[0], close
