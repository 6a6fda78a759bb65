"""LLM faults injected through a loopback server: a backend that stops, stalls, errs or answers junk.

Unit tests drive `LangChainFeedback` over the real LangChain clients, ChatOllama as `ollama_chat`
builds it and ChatOpenAI as `embedded_chat` builds it, against `FaultServer`. Program tests run
`python -m scenarios run` as a subprocess against the server in this process. No model is
loaded: a good server answers one canned answer. The waits between tries are real only in the
program tests (0.5 s, then 1 s).
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import simpy
import yaml

from agents.feedback import Delivery, Feedback
from agents.persona import BigFive, Persona
from tests.shipped import CITY_BLOCK, ROOT
from tests.world.fault_server import JUNK, FaultServer
from world.feedback import FeedbackBackendError, FeedbackPool
from world.llm import LangChainFeedback, LlmConfig, embedded_chat, ollama_chat

PERSONA = Persona("Ana", BigFive(openness=0.5, conscientiousness=0.5, extraversion=0.5, agreeableness=0.5,
                                 neuroticism=0.5))
DELIVERY = Delivery(prompt="a red circle on a blue background", steps=20, sharpness=0.7, fidelity=0.8, wait_s=3.0)
CLIENTS = ("ollama", "openai")
TIMEOUT_S = 0.3               # feedback.llm.timeout_s of these tests, s
BACKOFF = [0.5, 1.0]          # LangChainFeedback's waits between its three tries, s


@dataclass
class Endpoint:
    """What `embedded_chat` reads of an EmbeddedServer: the fault server stands in for llama.cpp."""

    base_url: str
    api_key: str
    alias: str


@pytest.fixture
def server() -> Iterator[FaultServer]:
    fault_server = FaultServer(stall_s=10.0)
    yield fault_server
    fault_server.close()


def backend(server: FaultServer, client: str, on_sleep: Callable[[], None] = lambda: None,
            ) -> tuple[LangChainFeedback, list[float]]:
    """A backend as `build_backends` makes it, over the given client, whose waits are recorded instead of slept."""
    cfg = LlmConfig(backend="ollama" if client == "ollama" else "embedded", ollama_host=server.host,
                    timeout_s=TIMEOUT_S)
    chat = (ollama_chat(server.host, cfg) if client == "ollama"
            else embedded_chat(Endpoint(server.host, "key", cfg.model), cfg))   # type: ignore[arg-type]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        on_sleep()

    return LangChainFeedback(chat, f"{client}:fault", logprobs=client == "openai", max_retries=cfg.max_retries,
                             sleep=sleep), sleeps


def assert_failed(answer: Feedback, why: str) -> None:
    assert answer.failed and not answer.valid, answer
    assert answer.rating is None and answer.score is None and answer.qoe is None
    assert why in answer.error, answer.error


# --- through the real clients -------------------------------------------------------------------


@pytest.mark.parametrize("client", CLIENTS)
def test_good_server_answers(server: FaultServer, client: str) -> None:
    feedback, sleeps = backend(server, client)
    answer = feedback.give_feedback(PERSONA, DELIVERY)
    assert answer.valid and not answer.failed and answer.rating == 4 and answer.text, answer
    assert server.chats == 1 and sleeps == []


@pytest.mark.parametrize("client", CLIENTS)
def test_stopped_server_fails_after_bounded_tries(server: FaultServer, client: str) -> None:
    server.fail("stop")
    feedback, sleeps = backend(server, client)
    answer = feedback.give_feedback(PERSONA, DELIVERY)
    assert_failed(answer, "backend unreachable after 3 tries")
    assert sleeps == BACKOFF and server.chats == 0          # every try was refused at the door


@pytest.mark.parametrize("client", CLIENTS)
def test_server_dying_mid_request_fails_after_bounded_tries(server: FaultServer, client: str) -> None:
    server.fail("stop", after=1)
    feedback, sleeps = backend(server, client)
    assert feedback.give_feedback(PERSONA, DELIVERY).valid
    answer = feedback.give_feedback(PERSONA, DELIVERY)
    assert_failed(answer, "backend unreachable after 3 tries")
    # the second chat reached the server, which hung up without answering; the retries were refused
    assert server.chats == 2 and server.faulted == 1 and sleeps == BACKOFF


@pytest.mark.parametrize("fault", ["stop", "error"])
@pytest.mark.parametrize("client", CLIENTS)
def test_server_that_comes_back_answers_again(server: FaultServer, client: str, fault: str) -> None:
    server.fail(fault)  # type: ignore[arg-type]
    feedback, sleeps = backend(server, client, on_sleep=server.recover)    # back while the backend waits
    answer = feedback.give_feedback(PERSONA, DELIVERY)
    assert answer.valid and answer.rating == 4, answer
    assert sleeps == BACKOFF[:1] and server.chats == (2 if fault == "error" else 1)


@pytest.mark.parametrize("stall", ["before", "headers", "trickle"])
@pytest.mark.parametrize("client", CLIENTS)
def test_stalled_server_times_out_at_the_yaml_timeout(server: FaultServer, client: str, stall: str) -> None:
    """timeout_s limits the whole answer: no answer, headers and then nothing, or an answer that never ends."""
    server.fail("stall", stall=stall)  # type: ignore[arg-type]
    feedback, sleeps = backend(server, client)
    started = time.perf_counter()
    answer = feedback.give_feedback(PERSONA, DELIVERY)
    took_s = time.perf_counter() - started
    assert_failed(answer, "backend unreachable after 3 tries")
    assert "Timeout" in answer.error
    assert server.chats == 3 and sleeps == BACKOFF
    # three tries of timeout_s each (the waits between them are recorded, not slept): never sooner; the upper
    # bound only catches a hang (a trickle that is never cut off), with room for a busy machine
    assert 3 * TIMEOUT_S * 0.9 <= took_s < 600, took_s


@pytest.mark.parametrize("junk", list(JUNK))
@pytest.mark.parametrize("client", CLIENTS)
def test_junk_is_asked_again_then_counted_invalid(server: FaultServer, client: str, junk: str) -> None:
    server.fail("junk", junk=junk)
    feedback, sleeps = backend(server, client)
    answer = feedback.give_feedback(PERSONA, DELIVERY)
    assert not answer.valid and not answer.failed, answer
    assert answer.rating is None and answer.expected_rating is None and answer.qoe is None
    assert "no valid answer in 3 attempts" in answer.error
    assert server.chats == 3 and sleeps == []         # max_retries 2: asked three times, no waiting


@pytest.mark.parametrize("client", CLIENTS)
def test_server_error_is_retried_then_failed(server: FaultServer, client: str) -> None:
    server.fail("error")
    feedback, sleeps = backend(server, client)
    answer = feedback.give_feedback(PERSONA, DELIVERY)
    assert_failed(answer, "backend error after 3 tries")
    assert "500" in answer.error and server.chats == 3 and sleeps == BACKOFF


@pytest.mark.parametrize("client", CLIENTS)
def test_refused_request_fails_at_once(server: FaultServer, client: str) -> None:
    """A 4xx (the model was removed, say) will not change by asking again."""
    server.fail("error", status=404)
    feedback, sleeps = backend(server, client)
    answer = feedback.give_feedback(PERSONA, DELIVERY)
    assert_failed(answer, "backend refused the request (HTTP 404)")
    assert server.chats == 1 and sleeps == []


def test_ollama_error_inside_an_answer_is_retried_then_failed(server: FaultServer) -> None:
    """Ollama reports a model runner that dies mid-answer as an error line in a stream that began with 200."""
    server.fail("error", status=200)
    feedback, sleeps = backend(server, "ollama")
    answer = feedback.give_feedback(PERSONA, DELIVERY)
    assert_failed(answer, "backend error after 3 tries")
    assert "llama runner process has terminated" in answer.error and server.chats == 3 and sleeps == BACKOFF


@pytest.mark.parametrize("client", CLIENTS)
def test_request_our_code_cannot_encode_is_a_bug_that_propagates(server: FaultServer, client: str) -> None:
    """Only what the server answered is counted; a TypeError from building the request is raised."""
    feedback, _ = backend(server, client)
    if client == "ollama":
        feedback.chat.format = {"type": object()}            # type: ignore[attr-defined]
    else:
        feedback.chat.bound.extra_body = {"seed": object()}  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="not JSON serializable"):
        feedback.give_feedback(PERSONA, DELIVERY)
    assert server.chats == 0


def test_backend_bug_reaches_the_simulation_as_itself() -> None:
    """SimPy raises a process's error again as type(e)(*e.args); errors that need more must not turn into
    a TypeError about their own constructor."""

    class Broken:
        name = "broken"

        def give_feedback(self, persona: Persona, delivery: Delivery) -> Feedback:
            raise json.JSONDecodeError("Expecting value", "<html>", 0)

    pool = FeedbackPool([Broken()], backend_id="broken", sampling={})
    env = simpy.Environment()

    def user() -> Iterator[simpy.Event]:
        pending: Future[Feedback] = pool.submit(PERSONA, DELIVERY)
        yield env.timeout(1.0)
        pending.result()

    env.process(user())
    with pytest.raises(FeedbackBackendError, match="'broken' raised JSONDecodeError: Expecting value") as excinfo:
        env.run()
    pool.close()
    assert isinstance(excinfo.value.__cause__.__cause__, json.JSONDecodeError)   # SimPy's copy, then ours


# --- the whole program --------------------------------------------------------------------------

STEPS = 8   # the first answers come in slot 6 (images take some 3 s at these settings)
# each program run: the fault its server is set to, and the run's timeout_s and extra flags
RUNS = {
    "dies": ({"mode": "stop", "after": 2}, 2.0, ()),
    "dies-fail-fast": ({"mode": "stop", "after": 2}, 2.0, ("--fail-fast",)),
    "stalls": ({"mode": "stall", "after": 1}, TIMEOUT_S, ()),
    "junk": ({"mode": "junk", "junk": "protocol", "after": 1}, 2.0, ()),
}


@dataclass
class Program:
    """One `python -m scenarios run` against a fault server."""

    server: FaultServer
    out: Path
    done: subprocess.CompletedProcess[str]

    def slots(self) -> list[dict[str, str]]:
        return rows(self.out / "slots.csv")

    def requests(self) -> list[dict[str, str]]:
        """The requests finished within the run's slots (those finished after its last slot, while the clock
        ran on without new requests, are in requests.csv too, but not in slots.csv's counts)."""
        last = len(self.slots())
        return [r for r in rows(self.out / "requests.csv") if int(r["finished_slot"]) <= last]

    def ended(self) -> dict[str, object]:
        return json.loads((self.out / "run.json").read_text())


def fault_scenario(folder: Path, host: str, timeout_s: float) -> Path:
    """The shipped city block answered live by the Ollama API at host: 2 users who ask often and answer fast,
    no response cache, images profiled."""
    data = yaml.safe_load(CITY_BLOCK.read_text())
    assert data["feedback"]["mode"] == "live"
    data["users"].update(count=2, request_rate_per_s=0.5)
    data["imagegen"]["render"] = "profile"
    data["feedback"].update(cache=None, think_s=[0.0, 0.5])
    data["feedback"]["llm"].update(backend="ollama", ollama_host=host, timeout_s=timeout_s)
    path = folder / "faults.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def programs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Program]]:
    """Every run of RUNS, all at once: they spend their time starting up and waiting on the faults."""
    folders = {name: tmp_path_factory.mktemp(name) for name in RUNS}   # not thread-safe: made here

    def start(name: str) -> Program:
        fault, timeout_s, flags = RUNS[name]
        server = FaultServer(stall_s=10.0)
        server.fail(**fault)  # type: ignore[arg-type]
        folder = folders[name]
        done = subprocess.run(
            [sys.executable, "-m", "scenarios", "run", str(fault_scenario(folder, server.host, timeout_s)),
             "--steps", str(STEPS), "--out", str(folder / "r"), "--no-live", "--policy", "fixed", *flags],
            cwd=ROOT, capture_output=True, text=True, timeout=600)
        return Program(server, folder / "r", done)

    with ThreadPoolExecutor(len(RUNS)) as pool:
        ran = dict(zip(RUNS, pool.map(start, RUNS)))
    yield ran
    for program in ran.values():
        program.server.close()


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def total(slots: list[dict[str, str]], column: str) -> int:
    return int(sum(float(s[column]) for s in slots))


def answered(program: Program) -> tuple[int, int]:
    """(invalid, failed) over every request the run answered, those after its last slot too."""
    requests = rows(program.out / "requests.csv")
    failed = sum(r["feedback_failed"] == "True" for r in requests)
    return sum(r["feedback_valid"] == "False" for r in requests) - failed, failed


def summary(stdout: str) -> tuple[int, int]:
    """(invalid, failed) from the printed summary's language-model line."""
    found = re.search(r"^language model: \d+ calls, \d+ cache hits, (\d+) invalid, (\d+) failed", stdout, re.M)
    assert found, stdout
    return int(found[1]), int(found[2])


def assert_went_on(program: Program) -> list[dict[str, str]]:
    """Exit 0 without a traceback, every slot finished; the slots."""
    assert program.done.returncode == 0, program.done.stderr
    assert "Traceback" not in program.done.stderr
    slots = program.slots()
    assert [int(s["slot"]) for s in slots] == list(range(1, STEPS + 1))
    assert program.ended()["status"] == "finished"
    return slots


def test_backend_dying_mid_run_is_counted_and_the_run_goes_on(programs: dict[str, Program]) -> None:
    program = programs["dies"]
    slots = assert_went_on(program)
    failed = total(slots, "feedback_failed")
    assert failed > 0 and summary(program.done.stdout) == answered(program) and answered(program)[1] >= failed
    requests = program.requests()
    assert sum(r["feedback_valid"] == "True" for r in requests) == 2
    assert sum(r["feedback_failed"] == "True" for r in requests) == failed
    assert all("unreachable after 3 tries" in r["feedback_error"] for r in requests if r["feedback_failed"] == "True")
    assert program.server.chats == 2 + program.server.faulted     # once dead, nothing more reached it


def test_backend_dying_mid_run_stops_it_with_fail_fast(programs: dict[str, Program]) -> None:
    program = programs["dies-fail-fast"]
    assert program.done.returncode == 1, program.done.stderr
    assert "Traceback" not in program.done.stderr
    assert "stopped (--fail-fast)" in program.done.stderr and "did not answer" in program.done.stderr
    assert "--resume" in program.done.stderr
    slots = program.slots()
    assert [int(s["slot"]) for s in slots] == list(range(1, len(slots) + 1)) and len(slots) < STEPS
    assert float(slots[-1]["feedback_failed"]) > 0 and total(slots[:-1], "feedback_failed") == 0
    assert program.ended()["status"] == "stopped" and program.ended()["slots_done"] == len(slots)


def test_stalled_backend_is_counted_failed_by_its_timeout(programs: dict[str, Program]) -> None:
    program = programs["stalls"]
    slots = assert_went_on(program)
    failed = total(slots, "feedback_failed")
    assert failed > 0 and summary(program.done.stdout) == answered(program) and answered(program)[1] >= failed
    errors = [r["feedback_error"] for r in program.requests() if r["feedback_failed"] == "True"]
    assert len(errors) == failed and all("ReadTimeout" in e for e in errors)


def test_junk_answers_are_counted_invalid_and_the_run_goes_on(programs: dict[str, Program]) -> None:
    program = programs["junk"]
    slots = assert_went_on(program)
    invalid = total(slots, "feedback_invalid")
    assert invalid > 0 and total(slots, "feedback_failed") == 0
    assert summary(program.done.stdout) == answered(program) and answered(program)[0] >= invalid
    bad = [r for r in program.requests() if r["feedback_valid"] == "False"]
    assert len(bad) == invalid
    assert all(r["rating"] == "" and "not an answer of the API" in r["feedback_error"] for r in bad)
