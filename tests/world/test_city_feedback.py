"""Users answer in the simulation: after a think time in SimPy time, with QoE recorded.

The feedback backend is the scripted fake; the path with the real model runs in
tests/scenarios/test_city_block.py (marked llm).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from policies.heuristics import FixedPolicy, RandomPolicy
from tests.shipped import shipped
from tests.world.scripted import ScriptedBackend
from world.city import CityBlock
from world.config import ScenarioConfig
from world.feedback import FeedbackPool
from world.feedback_model import LearnedFeedback
from world.runner import FEEDBACK_METRICS, SlotRunner


def config(users: dict | None = None, feedback: dict | None = None) -> ScenarioConfig:
    return shipped({"users": users or {}, "feedback": feedback or {}})


def run(model: CityBlock, slots: int) -> tuple[list, pd.DataFrame]:
    """Run `slots` slots as a run does (through a SlotRunner): the finished requests and the slots' rows."""
    runner, finished, rows = SlotRunner(model), [], []
    for _ in range(slots):
        rows.append(runner.step())
        finished += model.completed
    return finished, pd.DataFrame(rows)


def test_users_answer_after_their_think_time() -> None:
    cfg = config(feedback={"think_s": (3.0, 6.0)})
    backend = ScriptedBackend()
    model = CityBlock(cfg, FixedPolicy(), feedback=FeedbackPool([backend], "scripted", {}, None))
    finished, m = run(model, 80)
    assert len(finished) > 10
    assert len(finished) <= backend.calls <= len(finished) + model.in_flight     # the rest still thinking
    for r in finished:
        assert 3.0 <= r.feedback_s - r.delivered_s <= 6.0
        assert r.state.value == "rated" and r.feedback.valid and 0.0 <= r.qoe <= 1.0
    assert m["requests_rated"].sum() == len(finished)
    assert m["total_qoe"].sum() == pytest.approx(sum(r.qoe for r in finished))
    assert len(finished) <= m["llm_calls"].iloc[-1] <= backend.calls


def test_persona_population_from_an_explicit_list_and_from_sampling() -> None:
    listed = config(users={"count": 5, "population": {"personas": [
        {"name": "Ana", "openness": 0.1, "conscientiousness": 0.9, "extraversion": 0.5, "agreeableness": 0.2,
         "neuroticism": 0.95, "background": "A nurse."},
        {"name": "Ben", "openness": 0.9, "conscientiousness": 0.1, "extraversion": 0.5, "agreeableness": 0.9,
         "neuroticism": 0.05}]}})
    model = CityBlock(listed, FixedPolicy())
    # more users than personas: the list is taken in turn and each repeat is numbered, so every user has a name
    assert [u.persona.name for u in model.user_list] == ["Ana 1", "Ben 1", "Ana 2", "Ben 2", "Ana 3"]
    assert model.user_list[0].persona.background == "A nurse."
    assert [u.persona.name for u in CityBlock(listed.model_copy(update={"users": listed.users.model_copy(
        update={"count": 2})}), FixedPolicy()).user_list] == ["Ana", "Ben"]
    sampled = config(users={"count": 400, "population": {"trait_means": {"neuroticism": 0.8}, "concentration": 10}})
    traits = np.array([u.persona.traits.as_tuple() for u in CityBlock(sampled, FixedPolicy()).user_list])
    assert traits[:, 4].mean() == pytest.approx(0.8, abs=0.03)
    assert traits[:, 0].mean() == pytest.approx(0.5, abs=0.03)
    again = np.array([u.persona.traits.as_tuple() for u in CityBlock(sampled, FixedPolicy()).user_list])
    assert np.array_equal(traits, again)                     # same seed, same people


def test_same_seed_same_feedback_run() -> None:
    def ratings(seed: int) -> list:
        model = CityBlock(config(), RandomPolicy(np.random.default_rng(seed)), seed=seed,
                          feedback=FeedbackPool([ScriptedBackend() for _ in range(2)], "scripted", {}, None))
        return [(r.request_id, r.feedback.expected_rating, r.feedback_s) for r in run(model, 60)[0]]

    assert ratings(5) == ratings(5)
    assert ratings(5) != ratings(6)


def test_invalid_answers_are_counted_not_rated() -> None:
    model = CityBlock(config(), FixedPolicy(),
                      feedback=FeedbackPool([ScriptedBackend(garbage=True)], "scripted", {}, None))
    finished, m = run(model, 60)
    assert finished and all(math.isnan(r.qoe) for r in finished)
    assert m["feedback_invalid"].sum() == len(finished)
    assert m["total_qoe"].sum() == 0.0 and m["mean_qoe"].isna().all()


def test_learned_mode_predicts_most_answers_after_refits() -> None:
    cfg = config(users={"count": 60}, feedback={"mode": "learned", "learned_min_pairs": 20,
                                                "learned_refresh_slots": 30, "learned_live_share": 0.2})
    backend = ScriptedBackend()
    engine = LearnedFeedback(FeedbackPool([backend], "scripted", {}, None), np.random.default_rng(1),
                             cfg.feedback.learned_live_share, cfg.feedback.learned_min_pairs)
    model = CityBlock(cfg, RandomPolicy(np.random.default_rng(0)), feedback=engine)
    finished, m = run(model, 240)
    learned = m["learned_answers"].iloc[-1]
    assert learned > backend.calls                      # most answers come from the regressor
    assert m["learned_pairs"].iloc[-1] >= 20
    assert m["learned_mae"].iloc[-1] < 0.6 and m["learned_spearman"].iloc[-1] > 0.6
    asked = backend.calls + learned
    assert len(finished) <= asked <= len(finished) + m["in_flight"].iloc[-1]   # the rest still thinking


def test_the_runner_not_the_block_refits_the_service_and_reads_its_statistics() -> None:
    """A bare block's slot is the world's alone: no refit, no language-model columns; a SlotRunner refits the
    service every learned_refresh_slots slots and adds its statistics to the slot's row."""
    cfg = config(feedback={"learned_refresh_slots": 7})
    backend = ScriptedBackend()
    pool = FeedbackPool([backend], "scripted", {}, None)
    refits = []
    pool.refresh = lambda: refits.append(model.slot)          # type: ignore[method-assign]
    model = CityBlock(cfg, FixedPolicy(), feedback=pool)
    for _ in range(20):
        model.step()
    assert refits == [] and not set(FEEDBACK_METRICS) & set(model.slot_metrics)
    runner = SlotRunner(model)
    for _ in range(20):
        row = runner.step()
    assert refits == [21, 28, 35]
    assert list(row)[-len(FEEDBACK_METRICS):] == list(FEEDBACK_METRICS)
    assert 0 < row["llm_calls"] <= backend.calls
