"""Serving feedback: the response cache, the pool of instances, the learned feedback model.

The backend here is a scripted fake (allowed in unit tests of the code around a
model); the real embedded model is exercised in test_llm.py.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from agents.feedback import Delivery, Feedback
from agents.persona import BigFive, Persona
from agents.feedback import LATENCY_WINDOW, FeedbackStats
from world.feedback import FeedbackBackendError, FeedbackCache, FeedbackPool
from tests.shipped import HANG_S
from tests.world.scripted import ScriptedBackend
from world.feedback_model import LearnedFeedback, features, spearman

ANA = Persona("Ana", BigFive(0.5, 0.9, 0.5, 0.2, 0.9))
BEN = Persona("Ben", BigFive(0.5, 0.1, 0.5, 0.9, 0.1))


def delivery(sharpness: float = 0.8, wait_s: float = 3.0, prompt: str = "a red circle") -> Delivery:
    return Delivery(prompt=prompt, steps=int(sharpness * 50), sharpness=sharpness, fidelity=0.9, wait_s=wait_s)


def test_cache_persists_valid_answers_across_instances(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    backend = ScriptedBackend()
    pool = FeedbackPool([backend], "scripted", {"temperature": 0.0}, FeedbackCache(path))
    first = pool.submit(ANA, delivery()).result()
    pool.close()
    again = FeedbackPool([backend], "scripted", {"temperature": 0.0}, FeedbackCache(path))
    second = again.submit(ANA, delivery()).result()
    assert backend.calls == 1 and again.stats.cache_hits == 1 and again.stats.calls == 0
    assert second.cached and second.latency_s == 0.0
    assert (second.rating, second.expected_rating, second.text) == (first.rating, first.expected_rating, first.text)
    other = again.submit(BEN, delivery()).result()          # another persona is another question
    assert not other.cached and backend.calls == 2
    again.close()


def test_cache_key_covers_backend_persona_delivery_and_sampling() -> None:
    base = FeedbackCache.key("b", ANA, delivery(), {"temperature": 0.0})
    assert base == FeedbackCache.key("b", ANA, delivery(), {"temperature": 0.0})
    assert base != FeedbackCache.key("b2", ANA, delivery(), {"temperature": 0.0})
    assert base != FeedbackCache.key("b", BEN, delivery(), {"temperature": 0.0})
    assert base != FeedbackCache.key("b", ANA, delivery(wait_s=9.0), {"temperature": 0.0})
    assert base != FeedbackCache.key("b", ANA, delivery(), {"temperature": 0.7})


def test_invalid_and_failed_answers_are_counted_and_never_cached(tmp_path: Path) -> None:
    cache = FeedbackCache(tmp_path / "c.sqlite")
    pool = FeedbackPool([ScriptedBackend(garbage=True)], "scripted", {}, cache)
    answer = pool.submit(ANA, delivery()).result()
    assert not answer.valid and answer.rating is None and answer.qoe is None
    assert pool.stats.invalid == 1
    assert cache.get(FeedbackCache.key("scripted", ANA, delivery(), {})) is None
    pool.close()
    down = FeedbackPool([ScriptedBackend(down=True)], "scripted", {}, None)
    assert down.submit(ANA, delivery()).result().failed and down.stats.failed == 1
    down.close()


def test_instances_answer_concurrently() -> None:
    """Each call waits until the other instance is in a call too: one after another, the first would wait
    in vain (two minutes, then a failed answer)."""
    meet = threading.Barrier(2)
    backends = [ScriptedBackend(meet=meet) for _ in range(2)]
    pool = FeedbackPool(backends, "scripted", {}, None)
    futures = [pool.submit(ANA, delivery(sharpness=s)) for s in (0.1, 0.3, 0.5, 0.7)]
    assert all(f.result().valid for f in futures)
    assert not meet.broken
    assert sum(b.calls for b in backends) == 4
    assert all(b.peak_active == 1 for b in backends)    # one call at a time per instance
    pool.close()


def test_a_persona_keeps_to_the_instance_that_has_read_its_instructions() -> None:
    """One answer at a time, so both instances are always idle: the persona's own instance answers (its prompt
    cache holds the persona's instructions and examples), and a new persona goes to the other one."""
    backends = [ScriptedBackend() for _ in range(2)]
    pool = FeedbackPool(backends, "scripted", {}, None)
    for k, persona in enumerate([ANA, ANA, BEN, ANA, BEN, BEN, ANA]):
        assert pool.submit(persona, delivery(sharpness=k / 10)).result().valid
    assert sorted(sorted(set(b.asked)) for b in backends) == [["Ana"], ["Ben"]]
    assert sum(b.calls for b in backends) == 7
    pool.close()


def test_identical_questions_in_flight_are_asked_once() -> None:
    backend = ScriptedBackend(delay_s=0.1)
    pool = FeedbackPool([backend], "scripted", {}, None)
    a, b = pool.submit(ANA, delivery()), pool.submit(ANA, delivery())
    first, second = a.result(), b.result()
    assert backend.calls == 1 and pool.stats.calls == 1 and pool.stats.cache_hits == 1
    # the request records count what the statistics count: one call, and one answer served again
    assert not first.cached and first.latency_s > 0
    assert second == first.reused() and second.cached and second.latency_s == 0.0
    pool.close()


def test_a_failed_call_fails_the_identical_question_waiting_on_it_too() -> None:
    class Raising(ScriptedBackend):
        def give_feedback(self, persona: Persona, delivery: Delivery) -> Feedback:
            super().give_feedback(persona, delivery)
            raise ConnectionError("refused")

    backend = Raising(delay_s=0.1)
    pool = FeedbackPool([backend], "scripted", {}, None)
    a, b = pool.submit(ANA, delivery()), pool.submit(ANA, delivery())
    for future in (a, b):
        with pytest.raises(FeedbackBackendError, match="refused"):
            future.result(timeout=HANG_S)       # a bound on a hang, not on speed
    assert backend.calls == 1
    pool.close()


def test_spearman() -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0])
    assert spearman(x, x ** 3) == pytest.approx(1.0)
    assert spearman(x, -x) == pytest.approx(-1.0)
    assert spearman(np.array([1.0, 1.0, 2.0]), np.array([1.0, 2.0, 3.0])) == pytest.approx(0.866, abs=1e-3)
    assert np.isnan(spearman(x, np.ones(4)))


def test_learned_model_fits_llm_answers_and_predicts_the_rest() -> None:
    backend = ScriptedBackend()
    learned = LearnedFeedback(FeedbackPool([backend], "scripted", {}, None), np.random.default_rng(0),
                              live_share=0.1, min_pairs=30)
    rng = np.random.default_rng(1)
    personas = [ANA, BEN]
    for _ in range(80):                         # before the first fit every delivery goes to the LLM
        persona, d = personas[rng.integers(2)], delivery(rng.uniform(0, 1), rng.uniform(0, 20))
        learned.learn(persona, d, learned.submit(persona, d).result())
    assert backend.calls == 80
    learned.refresh()
    assert learned.agreement["pairs"] == 80
    assert learned.agreement["mae"] < 0.5 and learned.agreement["spearman"] > 0.8
    answers = [learned.submit(ANA, delivery(rng.uniform(0, 1), rng.uniform(0, 20))).result() for _ in range(200)]
    predicted = [a for a in answers if a.backend == "learned"]
    assert 150 < len(predicted) < 200 and learned.stats.learned == len(predicted)   # about 90 % predicted
    assert all(1.0 <= a.expected_rating <= 5.0 for a in predicted)
    learned.live_share = 0.0                    # from here on every answer is predicted
    slow_bad = learned.submit(ANA, delivery(sharpness=0.1, wait_s=20.0)).result()
    fast_good = learned.submit(ANA, delivery(sharpness=0.95, wait_s=1.0)).result()
    assert slow_bad.backend == fast_good.backend == "learned"
    assert slow_bad.expected_rating < fast_good.expected_rating
    learned.close()


def test_learned_model_waits_for_enough_pairs() -> None:
    learned = LearnedFeedback(FeedbackPool([ScriptedBackend()], "scripted", {}, None), np.random.default_rng(0),
                              live_share=0.1, min_pairs=30)
    for _ in range(10):
        learned.learn(ANA, delivery(), learned.submit(ANA, delivery()).result())
    learned.refresh()
    assert learned.weights is None and learned.agreement["pairs"] == 0
    learned.close()


def test_learned_model_keeps_the_newest_pairs_up_to_max_pairs() -> None:
    learned = LearnedFeedback(FeedbackPool([ScriptedBackend()], "scripted", {}, None), np.random.default_rng(0),
                              live_share=0.1, min_pairs=5, max_pairs=20)
    rows, scores = [], []
    for k in range(50):                         # the k-th answer is to an image that waited k seconds
        d = delivery(sharpness=0.5 + k / 100, wait_s=float(k))
        answer = learned.submit(BEN, d).result()
        learned.learn(BEN, d, answer)
        rows.append(features(BEN, d).tolist())
        scores.append(answer.score)
    learned.refresh()
    assert learned.pairs == 20 and learned.agreement["pairs"] == 20
    state = learned.state()
    assert state["x"] == rows[30:] and state["y"] == scores[30:]          # the newest 20, in order
    again = LearnedFeedback(None, np.random.default_rng(9), 0.0, 5, start=learned.weights)
    again.restore(state)                        # the same pairs: the same refit
    again.refresh()
    assert np.allclose(again.weights, learned.weights)
    fewer = LearnedFeedback(None, np.random.default_rng(9), 0.0, 5, start=learned.weights, max_pairs=10)
    fewer.restore(state)                        # a model that keeps fewer goes on with the newest
    assert fewer.state()["x"] == rows[40:] and fewer.state()["y"] == scores[40:]
    with pytest.raises(ValueError, match="max_pairs"):
        LearnedFeedback(None, np.random.default_rng(0), 0.0, 30, start=learned.weights, max_pairs=10)
    learned.close()


def test_median_latency_is_over_the_latest_calls() -> None:
    stats = FeedbackStats()
    assert np.isnan(stats.median_latency_s())
    stats.latencies_s.extend([0.5, 1.5, 1.0])
    assert stats.median_latency_s() == 1.0
    stats.latencies_s.extend([9.0] * LATENCY_WINDOW)     # a long run keeps only the window
    assert len(stats.latencies_s) == LATENCY_WINDOW and stats.median_latency_s() == 9.0


def test_fit_features_are_what_the_persona_is_told() -> None:
    """The regressor reads the words the persona got (look, match, wait steps) and their products with traits."""
    from agents.persona import BigFive, Persona
    from world.feedback_model import FEATURE_NAMES, features

    persona = Persona("x", BigFive(0.1, 0.2, 0.3, 0.4, 0.9))
    row = dict(zip(FEATURE_NAMES, features(persona, Delivery("a red circle", 20, 0.9, 0.75, 10.0))))
    assert row["intercept"] == 1.0 and row["neuroticism"] == 0.9
    assert (row["look"], row["match"]) == pytest.approx((3 / 4, 2 / 3))          # "sharp", "mostly what I asked for"
    assert (row["wait_a_bit_long"], row["wait_very_long"]) == (1.0, 0.0)       # 10 s: "a bit long"
    assert row["neuroticism*wait_a_bit_long"] == pytest.approx(0.9) and row["openness*look"] == pytest.approx(0.075)
    slow = dict(zip(FEATURE_NAMES, features(persona, Delivery("a red circle", 20, 0.9, 0.75, 20.0))))
    assert (slow["wait_a_bit_long"], slow["wait_very_long"]) == (1.0, 1.0)
