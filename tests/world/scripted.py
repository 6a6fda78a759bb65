"""A scripted feedback backend: a fake for unit tests of the code around a model (never the path a user runs)."""

from __future__ import annotations

import threading
import time

import numpy as np

from agents.feedback import Delivery, Feedback
from agents.persona import Persona


class ScriptedBackend:
    """Rates by a fixed rule of the delivery; can be told to answer garbage or fail; counts its calls."""

    name = "scripted"

    def __init__(self, delay_s: float = 0.0, garbage: bool = False, down: bool = False) -> None:
        self.calls = 0
        self.delay_s = delay_s
        self.garbage = garbage
        self.down = down
        self.active = 0
        self.peak_active = 0
        self._lock = threading.Lock()

    def give_feedback(self, persona: Persona, delivery: Delivery) -> Feedback:
        with self._lock:
            self.calls += 1
            self.active += 1
            self.peak_active = max(self.peak_active, self.active)
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
