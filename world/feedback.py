"""Serving persona feedback to the simulation: a response cache, a pool of model
instances working concurrently, and the learned feedback model for scale.

The users hold a `FeedbackService` (`submit(persona, delivery) -> Future`):
the call starts the answer at once and the user collects it after its think
time in SimPy time, so the clock never waits on a model unless the answer is
still not there when the user would speak.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from agents.feedback import Delivery, Feedback, FeedbackBackend, FeedbackStats, feedback_messages
from agents.persona import Persona
from world.llm_config import LlmSetupError


class FeedbackBackendError(RuntimeError):
    """A backend raised instead of answering: a bug, since backends return failures as answers."""


class FeedbackCache:
    """Content-addressed answers on disk (SQLite): key = sha256 of everything that decides an answer.

    Args:
        path: the database file; its folder is created.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, feedback TEXT NOT NULL)")

    @staticmethod
    def key(backend_id: str, persona: Persona, delivery: Delivery, sampling: dict[str, object]) -> str:
        """sha256 over backend and model hash, persona, the delivery's attributes, the chat the model is sent
        (so that a changed prompt never reuses old answers) and the sampling settings."""
        content = {"backend": backend_id, "persona": asdict(persona), "delivery": delivery.key(),
                   "messages": feedback_messages(persona, delivery), "sampling": sampling}
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()

    def get(self, key: str) -> Feedback | None:
        """The stored answer, marked cached with zero latency, or None."""
        with self._lock:
            row = self._db.execute("SELECT feedback FROM answers WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        return Feedback(**json.loads(row[0])).reused()

    def put(self, key: str, feedback: Feedback) -> None:
        """Store a valid answer (invalid and failed answers are not cached: asking again may work)."""
        if not feedback.valid:
            return
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO answers VALUES (?, ?)", (key, json.dumps(feedback.as_dict())))

    def close(self) -> None:
        with self._lock:
            self._db.close()


# What reading a persona's instructions and examples costs, in answers whose prefix a model instance already
# holds: with the 1.5B on one thread, a persona's first answer took 26-34 s (575-745 prompt tokens), its next
# 6-7 s (30 new tokens, the rest from llama.cpp's prompt cache), so the prefix costs about 3.5 answers.
PREFIX_COST = 3


@dataclass
class _Lane:
    """One model instance, its own thread, and what it has read."""

    backend: FeedbackBackend
    executor: ThreadPoolExecutor
    queued: int = 0                                     # work waiting or running, in answers (see PREFIX_COST)
    read: set[Persona] = field(default_factory=set)     # personas whose instructions its prompt cache holds


class FeedbackPool:
    """Answers from a response cache, else from one of several model instances, concurrently.

    Each instance answers one call at a time. A call goes to the instance expected to finish it first:
    the work queued there plus, where that instance has not read the persona's instructions yet
    (its prompt cache does not hold them), the cost of reading them. So a persona keeps to the
    instance that knows it unless that one is PREFIX_COST answers busier than another.

    Args:
        backends: one per model instance; each serves one call at a time.
        backend_id: names the backend and the model's hash, for the cache key.
        sampling: the settings that change answers (temperature, ...), for the cache key.
        cache: where answers are kept across runs; None for no cache.
    """

    def __init__(self, backends: Sequence[FeedbackBackend], backend_id: str, sampling: dict[str, object],
                 cache: FeedbackCache | None = None) -> None:
        if not backends:
            raise ValueError("FeedbackPool needs at least one backend")
        self.backend_id = backend_id
        self.sampling = sampling
        self.cache = cache
        self.stats = FeedbackStats()
        self._lanes = [_Lane(b, ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"feedback-{k}"))
                       for k, b in enumerate(backends)]
        self._in_flight: dict[str, Future[Feedback]] = {}
        self._lock = threading.Lock()
        self.agreement: dict[str, float] = {}     # a pool asks the LLM every time: nothing learned to score

    def submit(self, persona: Persona, delivery: Delivery) -> Future[Feedback]:
        """The persona's answer: from the cache, from an identical question still being answered, or a new call."""
        key = FeedbackCache.key(self.backend_id, persona, delivery, self.sampling)
        with self._lock:
            pending = self._in_flight.get(key)
            if pending is not None:
                self.stats.cache_hits += 1
                return _served_again(pending)
            stored = self.cache.get(key) if self.cache else None
            if stored is not None:
                self.stats.cache_hits += 1
                done: Future[Feedback] = Future()
                done.set_result(stored)
                return done
            # ties go to the instance that knows fewer personas, so that personas spread over the instances
            lane = min(self._lanes, key=lambda ln: (ln.queued + (0 if persona in ln.read else PREFIX_COST),
                                                    len(ln.read)))
            work = 1 + (0 if persona in lane.read else PREFIX_COST)
            lane.queued += work
            lane.read.add(persona)
            future = lane.executor.submit(self._ask, lane, work, key, persona, delivery)
            self._in_flight[key] = future
            return future

    def learn(self, persona: Persona, delivery: Delivery, feedback: Feedback) -> None:
        """Nothing to learn: every answer comes from a model (see LearnedFeedback)."""

    def refresh(self) -> None:
        """Nothing to refit (see LearnedFeedback)."""

    def _ask(self, lane: _Lane, work: int, key: str, persona: Persona, delivery: Delivery) -> Feedback:
        backend = lane.backend
        try:
            feedback = backend.give_feedback(persona, delivery)
        except LlmSetupError:           # a model that could not start (on its first call): bad input, said as is
            with self._lock:
                self._in_flight.pop(key, None)
            raise
        except Exception as exc:
            with self._lock:
                self._in_flight.pop(key, None)
            # SimPy raises a process's error again as type(exc)(*exc.args), which fails for errors whose
            # constructor wants more (JSONDecodeError, openai's errors): the bug would read as a TypeError
            raise FeedbackBackendError(f"the feedback backend {backend.name!r} raised {type(exc).__name__}: "
                                       f"{exc}") from exc
        finally:
            with self._lock:
                lane.queued -= work
        with self._lock:
            self.stats.calls += 1
            self.stats.latencies_s.append(feedback.latency_s)
            self.stats.invalid += int(not feedback.valid and not feedback.failed)
            self.stats.failed += int(feedback.failed)
            if self.cache:
                self.cache.put(key, feedback)
            self._in_flight.pop(key, None)
        return feedback

    def close(self) -> None:
        """Wait for running calls, then release the threads and the cache."""
        for lane in self._lanes:
            lane.executor.shutdown(wait=True, cancel_futures=True)
        if self.cache:
            self.cache.close()


def _served_again(pending: Future[Feedback]) -> Future[Feedback]:
    """The answer to an identical question still being asked, as a cache hit (zero latency) when it comes: the
    request records then count one model call, as the pool's statistics do."""
    hit: Future[Feedback] = Future()

    def settle(done: Future[Feedback]) -> None:
        if done.cancelled():        # the pool closed before the call ran
            hit.cancel()
            return
        error = done.exception()
        if error is not None:
            hit.set_exception(error)
        else:
            hit.set_result(done.result().reused())

    pending.add_done_callback(settle)
    return hit
