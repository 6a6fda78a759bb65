"""The learned feedback model (`feedback.mode: learned`): ratings at scale without an LLM call each.

A ridge regressor maps (persona traits, delivery attributes and their
products) to the rating. A share of deliveries still goes to the LLM; their
answers are the training pairs, and every `refresh_slots` slots the regressor
is refitted. Before a refit it is scored on the newest fifth of the pairs,
held out (MAE and Spearman correlation with the LLM's ratings), then fitted
on all of them. Predictions are bounded to the rating scale 1-5.

Only the newest `max_pairs` pairs are kept (MAX_PAIRS, 10,000, by default:
about 4 MB, and hours of answers from the embedded LLM), so a long run with
live answers holds no more than a short one; a run with fewer answers fits
on all of them, as before.
"""

from __future__ import annotations

import json
import math
from collections import deque
from concurrent.futures import Future
from pathlib import Path

import numpy as np

from agents.feedback import Delivery, Feedback, FeedbackService, FeedbackStats, perceived_levels
from world.files import write_atomic
from agents.persona import TRAITS, Persona

LEARNED_BACKEND = "learned"
MAX_PAIRS = 10_000          # newest LLM answers kept as training pairs, count
FIT_FORMAT = "aigcsim-feedback-fit/2"   # /2: features of what the persona is told (FEATURE_NAMES)


class FeedbackFitError(ValueError):
    """A saved feedback fit cannot be used: missing, unreadable, or made for other features."""


SEEN = ("look", "match", "wait_a_bit_long", "wait_very_long")
FEATURE_NAMES = ("intercept", *TRAITS, *SEEN, *(f"{t}*{a}" for t in TRAITS for a in SEEN))


def features(persona: Persona, delivery: Delivery) -> np.ndarray:
    """FEATURE_NAMES: an intercept, the traits, what the persona is told, and every trait x told product.

    What the persona is told (`agents.feedback.perceived_levels`): the look (0 a smeared mess .. 1
    flawless), the subject match (0 something else .. 1 exactly), and whether the wait was at least
    "a bit long" and whether it was "very long" (the steps of the personas' wait rules)."""
    traits = np.array(persona.traits.as_tuple())
    look, match, wait = perceived_levels(delivery)
    seen = np.array([look / 4.0, match / 3.0, float(wait >= 2), float(wait >= 3)])
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
        live: the pool of real model instances; None when every answer is predicted (a start
            fit and live_share 0: a frozen persona-feedback model, as the benchmarks use).
        rng: the model's seeded generator (which deliveries go live).
        live_share: share of deliveries answered by the LLM once a regressor exists.
        min_pairs: LLM answers needed before the first fit.
        ridge: L2 penalty of the regressor.
        start: weights of an earlier fit (`load_fit`) to predict with from the first delivery.
        max_pairs: newest LLM answers kept as training pairs; older ones are dropped.
    """

    def __init__(self, live: FeedbackService | None, rng: np.random.Generator, live_share: float,
                 min_pairs: int, ridge: float = 1.0, start: np.ndarray | None = None,
                 max_pairs: int = MAX_PAIRS) -> None:
        if live is None and (start is None or live_share > 0):
            raise ValueError("LearnedFeedback without a live pool needs a start fit and live_share 0")
        if max_pairs < min_pairs:
            raise ValueError(f"max_pairs ({max_pairs}) must be at least min_pairs ({min_pairs}): the first fit "
                             f"needs min_pairs pairs kept")
        self.live = live
        self.stats = live.stats if live is not None else FeedbackStats()
        self.rng = rng
        self.live_share = live_share
        self.min_pairs = min_pairs
        self.ridge = ridge
        self.weights: np.ndarray | None = start
        self.max_pairs = max_pairs
        self._x: deque[np.ndarray] = deque(maxlen=max_pairs)
        self._y: deque[float] = deque(maxlen=max_pairs)
        self.agreement: dict[str, float] = {"pairs": 0, "mae": math.nan, "spearman": math.nan}

    def submit(self, persona: Persona, delivery: Delivery) -> Future[Feedback]:
        """LLM answer (always before the first fit, then with probability live_share), else a prediction."""
        if self.live is not None and (self.weights is None or self.rng.random() < self.live_share):
            return self.live.submit(persona, delivery)
        score = self.predict(persona, delivery)
        self.stats.learned += 1
        done: Future[Feedback] = Future()
        done.set_result(Feedback(text="", rating=int(round(score)), expected_rating=score, raw="",
                                 latency_s=0.0, backend=LEARNED_BACKEND, valid=True))
        return done

    @property
    def pairs(self) -> int:
        """Valid LLM answers kept as training pairs (the newest max_pairs)."""
        return len(self._y)

    def predict(self, persona: Persona, delivery: Delivery) -> float:
        """The rating the fitted regressor expects, bounded to 1-5."""
        return float(np.clip(features(persona, delivery) @ self.weights, 1.0, 5.0))

    def learn(self, persona: Persona, delivery: Delivery, feedback: Feedback) -> None:
        """Keep a valid LLM answer as a training pair (dropping the oldest beyond max_pairs)."""
        if feedback.valid and feedback.backend != LEARNED_BACKEND and feedback.score is not None:
            self._x.append(features(persona, delivery))
            self._y.append(float(feedback.score))

    def refresh(self) -> None:
        """Score the regressor on the newest pairs held out, then refit on all pairs kept."""
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

    def state(self) -> dict[str, object]:
        """What the model has learned so far and where its draws stand, as plain values (for checkpoints)."""
        return {"weights": None if self.weights is None else [float(w) for w in self.weights],
                "x": [[float(v) for v in row] for row in self._x], "y": list(self._y),
                "rng": json.dumps(self.rng.bit_generator.state), "agreement": dict(self.agreement)}

    def restore(self, state: dict[str, object]) -> None:
        """Go on from `state()`: the same fit, the same pairs, the same next draws."""
        self.weights = None if state["weights"] is None else np.array(state["weights"], dtype=float)
        # a state saved with more pairs than this model keeps goes on with the newest of them
        self._x = deque((np.array(row, dtype=float) for row in state["x"]), maxlen=self.max_pairs)
        self._y = deque((float(v) for v in state["y"]), maxlen=self.max_pairs)
        self.rng.bit_generator.state = json.loads(state["rng"])
        self.agreement = dict(state["agreement"])

    def save(self, path: Path, source: str) -> None:
        """Write the current fit as JSON (weights, pairs, agreement, where the answers came from)."""
        if self.weights is None:
            raise ValueError("nothing fitted yet: collect at least min_pairs LLM answers and refresh()")
        data = {"format": FIT_FORMAT, "features": list(FEATURE_NAMES), "source": source,
                "agreement": self.agreement, "weights": [float(w) for w in self.weights]}
        write_atomic(path, json.dumps(data, indent=1) + "\n")

    def close(self) -> None:
        if self.live is not None:
            self.live.close()


def load_fit(path: Path) -> np.ndarray:
    """Weights of a saved fit, checked against this module's feature layout."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FeedbackFitError(f"feedback fit '{path}' does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FeedbackFitError(f"feedback fit '{path}' cannot be read ({exc})") from None
    expected = len(FEATURE_NAMES)
    weights = data.get("weights") if isinstance(data, dict) else None
    if (data.get("format") if isinstance(data, dict) else None) != FIT_FORMAT or not isinstance(weights, list) \
            or data.get("features") != list(FEATURE_NAMES) or len(weights) != expected \
            or not all(isinstance(w, (int, float)) for w in weights):
        raise FeedbackFitError(f"feedback fit '{path}' is not a {FIT_FORMAT} file with the {expected} features of "
                               f"this version (it was made for other features or is damaged); remake it with "
                               f"`python -m scenarios.fit_feedback SCENARIO --out {path} --force` (`make "
                               f"feedback-fit` for the city block)")
    result = np.array(weights, dtype=float)
    if not np.all(np.isfinite(result)):
        raise FeedbackFitError(f"feedback fit '{path}' holds non-finite weights")
    return result
