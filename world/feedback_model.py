"""The learned feedback model (`feedback.mode: learned`): ratings at scale without an LLM call each.

A ridge regressor maps (persona traits, delivery attributes and their
products) to the rating. A share of deliveries still goes to the LLM; their
answers are the training pairs, and every `refresh_slots` slots the regressor
is refitted. Before a refit it is scored on the newest fifth of the pairs,
held out (MAE and Spearman correlation with the LLM's ratings), then fitted
on all of them. Predictions are bounded to the rating scale 1-5.
"""

from __future__ import annotations

import math
from concurrent.futures import Future

import numpy as np

from agents.feedback import Delivery, Feedback
from agents.persona import Persona
from world.feedback import FeedbackPool

LEARNED_BACKEND = "learned"


def features(persona: Persona, delivery: Delivery) -> np.ndarray:
    """Traits, delivery attributes, and every trait x attribute product."""
    traits = np.array(persona.traits.as_tuple())
    seen = np.array([delivery.sharpness, delivery.fidelity, math.log1p(delivery.wait_s), delivery.steps / 50.0])
    return np.concatenate([[1.0], traits, seen, np.outer(traits, seen).ravel()])


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties); NaN when either side is constant."""
    ra, rb = _ranks(a), _ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def _ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x), dtype=float)
    for value in np.unique(x):
        tied = x == value
        ranks[tied] = ranks[tied].mean()
    return ranks


class LearnedFeedback:
    """FeedbackService that asks the LLM for a share of deliveries and predicts the rest.

    Args:
        live: the pool of real model instances.
        rng: the model's seeded generator (which deliveries go live).
        live_share: share of deliveries answered by the LLM once a regressor exists.
        min_pairs: LLM answers needed before the first fit.
        ridge: L2 penalty of the regressor.
    """

    def __init__(self, live: FeedbackPool, rng: np.random.Generator, live_share: float,
                 min_pairs: int, ridge: float = 1.0) -> None:
        self.live = live
        self.stats = live.stats
        self.rng = rng
        self.live_share = live_share
        self.min_pairs = min_pairs
        self.ridge = ridge
        self.weights: np.ndarray | None = None
        self._x: list[np.ndarray] = []
        self._y: list[float] = []
        self.agreement: dict[str, float] = {"pairs": 0, "mae": math.nan, "spearman": math.nan}

    def submit(self, persona: Persona, delivery: Delivery) -> Future[Feedback]:
        """LLM answer (always before the first fit, then with probability live_share), else a prediction."""
        if self.weights is None or self.rng.random() < self.live_share:
            return self.live.submit(persona, delivery)
        score = float(np.clip(features(persona, delivery) @ self.weights, 1.0, 5.0))
        self.stats.learned += 1
        done: Future[Feedback] = Future()
        done.set_result(Feedback(text="", rating=int(round(score)), expected_rating=score, raw="",
                                 latency_s=0.0, backend=LEARNED_BACKEND, valid=True))
        return done

    def learn(self, persona: Persona, delivery: Delivery, feedback: Feedback) -> None:
        """Keep a valid LLM answer as a training pair."""
        if feedback.valid and feedback.backend != LEARNED_BACKEND and feedback.score is not None:
            self._x.append(features(persona, delivery))
            self._y.append(float(feedback.score))

    def refresh(self) -> None:
        """Score the regressor on the newest pairs held out, then refit on all pairs."""
        n = len(self._y)
        if n < self.min_pairs:
            return
        x, y = np.array(self._x), np.array(self._y)
        split = n - max(1, n // 5)
        held_out = np.clip(x[split:] @ self._fit(x[:split], y[:split]), 1.0, 5.0)
        self.agreement = {"pairs": n, "mae": float(np.abs(held_out - y[split:]).mean()),
                          "spearman": spearman(held_out, y[split:])}
        self.weights = self._fit(x, y)

    def _fit(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        penalty = self.ridge * np.eye(x.shape[1])
        penalty[0, 0] = 0.0        # the intercept is not shrunk
        return np.linalg.solve(x.T @ x + penalty, x.T @ y)

    def close(self) -> None:
        self.live.close()
