"""A scripted feedback backend: a fake for unit tests of the code around a model (never the path a user runs)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

import numpy as np

from agents.feedback import Delivery, Feedback, FeedbackBackend
from world.llm import LlmSetupError
from agents.persona import Persona


class ScriptedBackend:
    """Rates by a fixed rule of the delivery; can be told to answer garbage or fail; counts its calls."""

    name = "scripted"

    def __init__(self, delay_s: float = 0.0, garbage: bool = False, down: bool = False,
                 meet: threading.Barrier | None = None) -> None:
        self.calls = 0
        self.asked: list[str] = []      # the personas' names, in the order they were asked
        self.meet = meet        # every call waits here for the other parties' calls (a test of concurrency)
        self.delay_s = delay_s
        self.garbage = garbage
        self.down = down
        self.active = 0
        self.peak_active = 0
        self._lock = threading.Lock()

    def give_feedback(self, persona: Persona, delivery: Delivery) -> Feedback:
        with self._lock:
            self.calls += 1
            self.asked.append(persona.name)
            self.active += 1
            self.peak_active = max(self.peak_active, self.active)
        if self.meet is not None:
            self.meet.wait(timeout=120)         # BrokenBarrierError when the others never come
        time.sleep(self.delay_s)
        with self._lock:
            self.active -= 1
        if self.down:
            return Feedback("", None, None, "", 0.01, self.name, valid=False, error="refused", failed=True)
        if self.garbage:
            return Feedback("", None, None, "nonsense", 0.01, self.name, valid=False, error="not JSON")
        score = 1 + 4 * delivery.sharpness - persona.traits.neuroticism * min(delivery.wait_s, 20) / 10
        score = float(np.clip(score, 1, 5))
        return Feedback("It is fine.", int(round(score)), score, "{}", 0.01, self.name, valid=True)


# Builders of backends inside Ray actors (tests/world/test_ray_feedback.py): picklable by reference.


class BuildScripted:
    """Builds a ScriptedBackend inside an actor, noting the actor's process in each answer."""

    def __init__(self, **kwargs: object) -> None:
        self.kwargs = kwargs

    def __call__(self) -> tuple[FeedbackBackend, Callable[[], None]]:
        return PidBackend(ScriptedBackend(**self.kwargs)), lambda: None


class PidBackend:
    """Notes the process that answered in `raw`."""

    name = "scripted"

    def __init__(self, inner: ScriptedBackend) -> None:
        self.inner = inner

    def give_feedback(self, persona: Persona, delivery: Delivery) -> Feedback:
        answer = self.inner.give_feedback(persona, delivery)
        return Feedback(**{**answer.as_dict(), "raw": str(os.getpid())})


class BuildBroken:
    """Fails to build its backend, as a damaged model file would."""

    def __call__(self) -> tuple[FeedbackBackend, Callable[[], None]]:
        raise LlmSetupError("the model file is damaged")


class RaisingBackend:
    """Raises instead of answering: a bug."""

    name = "raising"

    def give_feedback(self, persona: Persona, delivery: Delivery) -> Feedback:
        raise KeyError("a bug in a backend")


class BuildRaising:
    def __call__(self) -> tuple[FeedbackBackend, Callable[[], None]]:
        return RaisingBackend(), lambda: None
