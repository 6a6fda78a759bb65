"""Persona feedback served by Ray actors (`feedback.serve: ray`): same answers as local, spread over actors."""

from __future__ import annotations

import csv
import os
import sys
import time
from pathlib import Path

import pytest

from agents.answer import RATINGS
from agents.feedback import Delivery, Feedback
from agents.persona import BigFive, Persona
from scenarios.run import run_scenario
from tests.shipped import HANG_S, shipped
from tests.world.ollama_compat import OllamaCompatServer
from tests.world.scripted import BuildBroken, BuildRaising, BuildScripted, ScriptedBackend
from world.feedback import FeedbackPool
from world.llm import EmbeddedServer, LlmConfig, LlmSetupError
from world.ray_feedback import build_ray_backends, ray_backends

ray = pytest.importorskip("ray", reason="Ray is the optional extra: pip install -e '.[ray]' (make setup does)")

PERSONAS = [Persona(name, BigFive(openness=o, conscientiousness=0.5, extraversion=0.4, agreeableness=a,
                                  neuroticism=n), background="")
            for name, o, a, n in (("Ana", 0.8, 0.7, 0.2), ("Bo", 0.2, 0.3, 0.9))]
DELIVERIES = [Delivery(prompt="a red circle on a blue background", steps=s, sharpness=sh, fidelity=fi, wait_s=w)
              for s, sh, fi, w in ((40, 0.95, 0.9, 2.0), (6, 0.2, 0.3, 14.0))]
QUESTIONS = [(p, d) for p in PERSONAS for d in DELIVERIES]


def answers(pool: FeedbackPool, questions: list[tuple[Persona, Delivery]] = QUESTIONS) -> list[Feedback]:
    futures = [pool.submit(p, d) for p, d in questions]
    return [f.result(timeout=300) for f in futures]


def same(answer: Feedback) -> tuple[object, ...]:
    """Everything an answer says, less the wall-clock latency."""
    return answer.text, answer.rating, answer.expected_rating, answer.valid, answer.error, answer.backend


def test_answers_through_actors_equal_local_answers_and_spread_over_them(ray_local: None) -> None:
    backends, close = ray_backends(BuildScripted(delay_s=0.05), instances=2)
    pool = FeedbackPool(backends, backend_id="scripted", sampling={})
    try:
        remote = answers(pool)
    finally:
        pool.close()
        close()
    local = [ScriptedBackend().give_feedback(p, d) for p, d in QUESTIONS]
    assert [same(a) for a in remote] == [same(a) for a in local]
    assert len({a.raw for a in remote}) == 2, "both actors answered"
    assert os.getpid() not in {int(a.raw) for a in remote}, "answers come from the actors' processes"


def test_the_local_rays_workers_run_at_this_processs_priority(ray_local: None) -> None:
    """Not at Ray's default nice 15, where beside busy programs they would get a few percent of a core."""
    import ray

    @ray.remote
    def niceness() -> int:
        return os.nice(0)

    assert ray.get(niceness.remote(), timeout=HANG_S) == os.nice(0)


def test_an_actor_that_cannot_build_its_backend_is_a_setup_error(ray_local: None) -> None:
    with pytest.raises(LlmSetupError, match="could not start its model.*the model file is damaged"):
        ray_backends(BuildBroken(), instances=1)


def test_a_lost_actor_gives_failed_answers_and_a_backend_bug_is_raised(ray_local: None) -> None:
    backends, close = ray_backends(BuildScripted(), instances=1)
    ray.kill(backends[0].actor)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:      # ray.kill returns at once; a call made meanwhile may still be answered
        try:
            ray.get(backends[0].actor.name.remote(), timeout=60)
        except ray.exceptions.RayActorError:
            break
        time.sleep(0.1)
    answer = backends[0].give_feedback(*QUESTIONS[0])
    close()
    assert answer.failed and not answer.valid and "feedback actor lost" in answer.error
    backends, close = ray_backends(BuildRaising(), instances=1)
    try:
        with pytest.raises(KeyError, match="a bug in a backend"):
            backends[0].give_feedback(*QUESTIONS[0])
    finally:
        close()


def test_without_ray_the_setting_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)       # import ray now raises ImportError
    with pytest.raises(LlmSetupError, match=r"Ray is not installed: pip install -e '\.\[ray\]'"):
        build_ray_backends(LlmConfig(), 1)


@pytest.mark.llm
def test_an_ollama_client_in_an_actor_reaches_the_server(ray_local: None, llm_server: EmbeddedServer) -> None:
    compat = OllamaCompatServer(llm_server.chat_completion, "qwen2.5:0.5b")
    try:
        backends, close = build_ray_backends(LlmConfig(backend="ollama", ollama_host=compat.host, timeout_s=HANG_S), 1)
        try:
            answer = backends[0].give_feedback(*QUESTIONS[0])
        finally:
            close()
    finally:
        compat.close()
    assert answer.valid and answer.rating in RATINGS and answer.backend == "ollama:qwen2.5:0.5b", answer


@pytest.mark.llm
def test_a_run_with_feedback_on_ray_equals_the_local_run(ray_local: None, tmp_path: Path) -> None:
    """Same seed, no cache: every request and every answer of the real model is the same wherever it runs
    (two instances in actors, two local ones)."""
    tables = {}
    for serve in ("local", "ray"):
        cfg = shipped({"users": {"count": 4, "request_rate_per_s": 0.1}, "imagegen": {"render": "profile"},
                       "feedback": {"mode": "live", "serve": serve, "instances": 2, "cache": None,
                                    # no prompt cache: its reuse of what a server computed before moves
                                    # expected ratings in their third decimal; the fast model: this is
                                    # about where it runs; no answer failed in one run alone (HANG_S)
                                    "llm": {"prompt_cache": False, "model": "qwen2.5-coder-0.5b",
                                            "timeout_s": HANG_S}}})
        # eight slots issue three requests (one rated in slot 6, two as the run finishes)
        run_scenario(cfg, steps=8, seed=7, out=tmp_path / serve, log=lambda line: None)
        with (tmp_path / serve / "requests.csv").open(newline="") as f:
            tables[serve] = [{k: v for k, v in row.items() if "latency" not in k} for row in csv.DictReader(f)]
    rated = [r for r in tables["local"] if r["feedback_valid"] == "True"]
    assert len(rated) >= 2, "the run must rate a few images to compare"
    assert tables["ray"] == tables["local"]
